"""The agents' desk: queues with counts and filters, claiming, and task forms."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, g, redirect, render_template, request, url_for

from engine import Actor, TaskInfo, TicketInfo, ValidationFailed

from .. import forms
from ..facade import desk
from .common import (
    PRIORITIES,
    TICKET_STATUSES,
    back,
    clean,
    page_number,
    require_login,
    require_roles,
    safe_next,
)
from .tickets import request_fields

bp = Blueprint("desk", __name__, url_prefix="/desk")
bp.before_request(require_login)

QUEUES = [
    ("mine", "Assigned to me"),
    ("group", "My groups"),
    ("unassigned", "Unassigned"),
    ("all", "All I can act on"),
]
PER_PAGE = 20


@bp.before_request
def _agents_only():
    require_roles("agent", "manager")


@bp.get("")
def index():
    actor = g.user
    queue = clean(request.args, "queue", QUEUES) or "all"
    services = desk().services()
    filters = {
        "status": clean(request.args, "status", TICKET_STATUSES),
        "priority": clean(request.args, "priority", PRIORITIES),
        "service": clean(request.args, "service", [(s.key, s.name) for s in services]),
        "q": clean(request.args, "q"),
    }
    page = desk().tasks(actor, queue=None if queue == "all" else queue,
                        page=page_number(request.args.get("page")), per_page=PER_PAGE,
                        **filters)
    return render_template(
        "desk/index.html", page=page, queue=queue, queues=QUEUES,
        counts=desk().queue_counts(actor), filters=filters, statuses=TICKET_STATUSES,
        priorities=PRIORITIES, services=services, filtered=any(filters.values()),
        here=request.full_path if request.query_string else request.path,
    )


@bp.post("/tasks/<task_id>/claim")
def claim(task_id: str):
    task = desk().claim(g.user, task_id)
    flash(f"{task.ticket}: {task.title} is now assigned to you.", "success")
    return redirect(back(url_for("desk.index")))


@bp.post("/tasks/<task_id>/release")
def release(task_id: str):
    task = desk().release(g.user, task_id)
    flash(f"{task.ticket}: {task.title} released to the group.", "success")
    return redirect(back(url_for("desk.index")))


@bp.route("/tasks/<task_id>", methods=["GET", "POST"])
def task(task_id: str):
    actor = g.user
    info = desk().task(actor, task_id)
    queue_url = safe_next(request.values.get("next")) or url_for("desk.index")
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    if request.method == "POST":
        values = request.form.to_dict()
        data = forms.parse(info.form, request.form)
        try:
            ticket = desk().complete(actor, info.id, data)
        except ValidationFailed as err:
            errors = dict(err.errors)
        else:
            flash(f"{ticket.number}: {info.title} completed.", "success")
            return redirect(queue_url)
    ticket = desk().ticket(actor, info.ticket)
    known = set(info.form.get("properties", {}))
    return render_template(
        "desk/task.html", task=info, ticket=ticket,
        fields=forms.fields(info.form, values, errors),
        other_errors={k: v for k, v in errors.items() if k not in known},
        comments=desk().comments(actor, info.ticket), next=queue_url,
        may_work=_may_work(actor, info, ticket),
        request_fields=request_fields(ticket),
        service_names={s.key: s.name for s in desk().services()},
    ), (422 if errors else 200)


def _may_work(actor: Actor, info: TaskInfo, ticket: TicketInfo) -> bool:
    """Whether the form is worth showing (the engine checks again when completing)."""
    if info.status != "ready":
        return False
    if info.for_requester:
        return ticket.requester == actor.username
    if info.assignee not in (None, actor.username):
        return False
    return "admin" in actor.roles or info.group in actor.groups
