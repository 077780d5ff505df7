"""Each user's notifications: what the outbox sent them (or holds for them)."""

from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, url_for

from ..facade import desk
from .common import page_number, require_login

bp = Blueprint("notifications", __name__)
bp.before_request(require_login)


@bp.get("/notifications")
def index():
    unread = request.args.get("unread") == "1"
    page = desk().notifications(g.user, page=page_number(request.args.get("page")),
                                per_page=25, unread=unread)
    return render_template("notifications/index.html", page=page, unread=unread)


@bp.post("/notifications/read")
def read():
    ids = request.form.getlist("id", type=int)
    marked = desk().mark_read(g.user, ids or None)
    flash(f"{marked} notification{'s' if marked != 1 else ''} marked read.", "success")
    return redirect(url_for("notifications.index"))
