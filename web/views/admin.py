"""Administration: steps the engine could not finish, and the notification outbox."""

from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, url_for

from engine import GuichetError

from ..facade import desk
from .common import page_number, require_login, require_roles

bp = Blueprint("admin", __name__, url_prefix="/admin")
bp.before_request(require_login)

OUTBOX_STATES = [("pending", "Pending"), ("sent", "Sent"), ("failed", "Failed"),
                 ("no_email", "No address")]


@bp.get("/failures")
def failures():
    actor = require_roles("admin")
    return render_template("admin/failures.html", failures=desk().failures(actor))


@bp.post("/failures/<int:failure_id>/retry")
def retry(failure_id: int):
    actor = require_roles("admin")
    try:
        result = desk().retry_failure(actor, failure_id)
    except GuichetError as err:
        flash(f"The retry failed again: {err.message}", "error")
    else:
        flash(f"Retried: {result.ticket} moved on.", "success")
    return redirect(url_for("admin.failures"))


@bp.get("/outbox")
def outbox():
    require_roles("admin", "manager")
    state = request.args.get("state") or None
    if state not in {None, *(key for key, _ in OUTBOX_STATES)}:
        state = None
    page = desk().outbox(g.user, page=page_number(request.args.get("page")), per_page=50,
                         state=state)
    return render_template("admin/outbox.html", page=page, state=state, states=OUTBOX_STATES)
