"""Service status: every service, its state, the incidents affecting it, and when
service should be back; agents set a state by hand (e.g. planned maintenance)."""

from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, url_for

from engine import GuichetError

from ..facade import desk
from .common import SERVICE_STATES, is_desk_user, require_login

bp = Blueprint("status", __name__)
bp.before_request(require_login)


@bp.get("/status")
def index():
    board = desk().status_board(g.user)
    troubled = [s for s in board if s.state != "nominal"]
    return render_template("status.html", board=board, troubled=troubled,
                           states=SERVICE_STATES, may_set=is_desk_user(g.user))


@bp.post("/status/<key>/state")
def set_state(key: str):
    try:
        service = desk().set_service_state(g.user, key, request.form.get("state", ""),
                                           request.form.get("reason", "").strip())
    except GuichetError as err:
        if getattr(err, "errors", None):
            flash("; ".join(err.errors.values()), "error")
        else:
            raise
    else:
        flash(f"{service.name} is now {SERVICE_STATES.get(service.state, service.state)}.",
              "success")
    return redirect(url_for("status.index"))
