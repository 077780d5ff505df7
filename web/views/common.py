"""What every page shares: the signed-in user, access checks, engine errors as pages."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Flask,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.datastructures import MultiDict

from engine import Actor, Conflict, Forbidden, GuichetError, NotFound, ValidationFailed

from ..errors import audit_refusal
from ..facade import desk

TICKET_STATUSES = [
    ("new", "New"), ("in_progress", "In progress"), ("pending_approval", "Pending approval"),
    ("awaiting_requester", "Awaiting requester"), ("resolved", "Resolved"),
    ("closed", "Closed"), ("rejected", "Rejected"),
]
PRIORITIES = [("P1", "P1 critical"), ("P2", "P2 high"), ("P3", "P3 moderate"),
              ("P4", "P4 low"), ("P5", "P5 planning")]
SERVICE_STATES = {"nominal": "Operational", "degraded": "Degraded",
                  "interrupted": "Interrupted", "maintenance": "Planned maintenance"}
ROLE_LABELS = {"requester": "Requester", "agent": "Agent", "manager": "Manager",
               "process_owner": "Process owner", "auditor": "Auditor", "admin": "Administrator",
               "monitor": "Monitoring"}


# -- the signed-in user ------------------------------------------------------------------


def load_user() -> None:
    """``g.user``: the actor named in the session cookie, or None (also for the API)."""
    g.user = None
    if request.path.startswith(("/api/", "/static/")):
        return
    username = session.get("user")
    if not isinstance(username, str) or not username:
        return
    actor = desk().actor(username)
    if actor is None:  # deactivated or removed since sign-in
        session.clear()
        return
    g.user = actor


def require_login():
    """``before_request`` of the page blueprints: anonymous visitors go to the sign-in page."""
    if g.get("user") is None:
        target = request.full_path if request.query_string else request.path
        return redirect(url_for("auth.login", next=target))
    return None


def require_roles(*roles: str) -> Actor:
    """The signed-in actor when they hold one of ``roles`` (admins hold every role); else 403."""
    actor: Actor = g.user
    if not actor.roles & (set(roles) | {"admin"}):
        abort(403, "This page is for " + " and ".join(_role_plural(r) for r in roles) + ".")
    return actor


def _role_plural(role: str) -> str:
    return ROLE_LABELS.get(role, role).lower() + "s"


def is_desk_user(actor: Actor | None) -> bool:
    return bool(actor and actor.works_desk)


def may_report(actor: Actor | None) -> bool:
    return bool(actor and actor.may_report)


def is_staff(actor: Actor | None) -> bool:
    return bool(actor and actor.is_staff)


def home_for(actor: Actor) -> str:
    """Where each role starts: the desk, the audit trail, the processes, or the portal."""
    if is_desk_user(actor):
        return url_for("desk.index")
    if "auditor" in actor.roles:
        return url_for("audit.index")
    if "process_owner" in actor.roles and "processes.index" in current_app.view_functions:
        return url_for("processes.index")
    return url_for("portal.index")


# -- redirects ---------------------------------------------------------------------------


def safe_next(target: str | None) -> str | None:
    """``target`` when it is a path on this site (no scheme, no host, no ``//``), else None."""
    if not target or not isinstance(target, str):
        return None
    target = target.strip()
    if "\\" in target or any(ord(c) < 32 for c in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


def back(fallback: str | None = None) -> str:
    """Where to send the user after a POST: ``next``, the referring page of this site, or home."""
    candidate = safe_next(request.form.get("next") or request.args.get("next"))
    if candidate:
        return candidate
    referrer = request.referrer
    if referrer:
        parts = urlsplit(referrer)
        if parts.netloc == request.host:
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            if safe_next(path):
                return path
    return fallback or (home_for(g.user) if g.get("user") else url_for("auth.login"))


def page_number(value: Any) -> int:
    """A page number from the query string; anything odd is page 1."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        return 1
    return number if 1 <= number <= 100000 else 1


def clean(args: MultiDict, name: str, allowed: list[tuple[str, str]] | None = None) -> str | None:
    """A filter value from the query string: stripped, None when empty or not allowed."""
    value = (args.get(name) or "").strip()
    if not value:
        return None
    if allowed is not None and value not in {k for k, _ in allowed}:
        return None
    return value[:200]


# -- engine errors as pages --------------------------------------------------------------


def error_page(status: int, message: str, title: str | None = None):
    # 503: the database cannot be reached; the header must not ask it for counts. (The user
    # may well be known: who they are is kept for a few seconds.)
    g.database_unreachable = status == 503
    if "user" not in g:  # refused before load_user ran (a CSRF failure): still show the header
        try:
            load_user()
        except Exception:
            g.user = None
    return render_template("errors/error.html", status=status, message=message,
                           title=title or ERROR_TITLES.get(status, "Something went wrong")), status


ERROR_TITLES = {
    400: "This request could not be handled",
    403: "You may not open this page",
    404: "Page not found",
    405: "Not allowed here",
    413: "Too much data",
    422: "This could not be done",
    500: "Something went wrong on our side",
}


def register_error_pages(app: Flask) -> None:
    """Engine errors raised by a page (the API blueprint has its own handlers)."""

    @app.errorhandler(NotFound)
    def _not_found(err: NotFound):
        return error_page(404, err.message)

    @app.errorhandler(Forbidden)
    def _forbidden(err: Forbidden):
        audit_refusal(err.message)
        return error_page(403, err.message)

    @app.errorhandler(Conflict)
    def _conflict(err: Conflict):
        flash(_sentence(err.message), "error")
        return redirect(back())

    @app.errorhandler(ValidationFailed)
    def _invalid(err: ValidationFailed):
        details = "; ".join(f"{k}: {v}" for k, v in sorted(err.errors.items()))
        return error_page(400, f"{err.message} {details}".strip())

    @app.errorhandler(GuichetError)
    def _other(err: GuichetError):
        return error_page(422, err.message)


def _sentence(text: str) -> str:
    text = text.strip()
    return (text[:1].upper() + text[1:]) if text else text


# -- template helpers --------------------------------------------------------------------


def format_dt(value: datetime | None, with_zone: bool = True) -> str:
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    text = value.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
    return f"{text} UTC" if with_zone else text


def iso_dt(value: datetime | None) -> str:
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.isoformat()


def humanize(value: Any) -> str:
    text = str(value or "").replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def json_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "yes" if value else "no"
    return json.dumps(value, ensure_ascii=False, default=str)


def time_left(due: datetime | None) -> dict[str, Any]:
    """``{"text", "overdue"}``: how long until ``due`` on the engine's clock, in words."""
    if due is None:
        return {"text": "", "overdue": False}
    if due.tzinfo is None:
        due = due.replace(tzinfo=UTC)
    seconds = int((due - desk().clock()).total_seconds())
    words = _duration(abs(seconds))
    if seconds < 0:
        return {"text": f"overdue by {words}", "overdue": True}
    return {"text": f"{words} left", "overdue": False}


def _duration(seconds: int) -> str:
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min" if minutes else "under 1 min"


def unread_notifications() -> int:
    """The signed-in user's unread notifications (one indexed count)."""
    user = g.get("user")
    return desk().unread_count(user) if user and not g.get("database_unreachable") else 0


def register_template_helpers(app: Flask) -> None:
    app.add_template_filter(time_left, "time_left")
    app.add_template_filter(format_dt, "dt")
    app.add_template_filter(iso_dt, "isodt")
    app.add_template_filter(humanize, "humanize")
    app.add_template_filter(json_value, "json_value")

    # Globals rather than a context processor: imported macros see them too.
    app.jinja_env.globals.update(
        status_labels=dict(TICKET_STATUSES),
        service_states=SERVICE_STATES,
        role_labels=ROLE_LABELS,
        is_desk_user=is_desk_user,
        may_report=may_report,
        is_staff=is_staff,
        url_with=url_with,
        initials=initials,
        unread_notifications=unread_notifications,
    )


def url_with(**changes: Any) -> str:
    """The current page's URL with some query arguments changed (None removes one).

    The page number is dropped unless given: a new filter starts again at page 1.
    """
    args = request.args.to_dict(flat=False)
    args.pop("page", None)
    for name, value in changes.items():
        if value is None or value == "":
            args.pop(name, None)
        else:
            args[name] = [str(value)]
    return url_for(request.endpoint, **(request.view_args or {}), **args)


def initials(name: str) -> str:
    parts = [p for p in (name or "").split() if p]
    return "".join(p[0] for p in parts[:2]).upper() or "?"
