"""Service status: every service and its state, for anyone signed in."""

from __future__ import annotations

from flask import Blueprint, render_template

from ..facade import desk
from .common import SERVICE_STATES, require_login

bp = Blueprint("status", __name__)
bp.before_request(require_login)


@bp.get("/status")
def index():
    services = desk().services()
    troubled = [s for s in services if s.state != "nominal"]
    return render_template("status.html", services=services, troubled=troubled,
                           states=SERVICE_STATES)
