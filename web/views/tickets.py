"""Tickets: the list, and one ticket with its progress, conversation and timeline."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, g, redirect, render_template, request, url_for

from engine import TaskInfo, TicketInfo, ValidationFailed

from .. import forms
from ..facade import desk
from .common import (
    PRIORITIES,
    TICKET_STATUSES,
    back,
    clean,
    is_staff,
    page_number,
    require_login,
)

bp = Blueprint("tickets", __name__, url_prefix="/tickets")
bp.before_request(require_login)

KINDS = [("incident", "Incidents"), ("request", "Requests")]
PER_PAGE = 20


@bp.get("")
def index():
    actor = g.user
    services = desk().services()
    filters = {
        "status": clean(request.args, "status", TICKET_STATUSES),
        "kind": clean(request.args, "kind", KINDS),
        "priority": clean(request.args, "priority", PRIORITIES),
        "service": clean(request.args, "service", [(s.key, s.name) for s in services]),
        "q": clean(request.args, "q"),
    }
    page = desk().tickets(actor, page=page_number(request.args.get("page")),
                          per_page=PER_PAGE, **filters)
    confirmations = {t.ticket: t for t in _own_tasks()}
    return render_template("tickets/index.html", page=page, filters=filters,
                           statuses=TICKET_STATUSES, kinds=KINDS, priorities=PRIORITIES,
                           services=services, confirmations=confirmations,
                           filtered=any(filters.values()))


@bp.get("/<number>")
def detail(number: str):
    return _detail(number)


@bp.post("/<number>/comments")
def comment(number: str):
    actor = g.user
    body = request.form.get("body") or ""
    internal = request.form.get("internal") == "true"
    try:
        desk().add_comment(actor, number, body, internal=internal)
    except ValidationFailed as err:
        return _detail(number, comment_body=body, comment_internal=internal,
                       comment_error=err.errors.get("body") or err.message), 422
    flash("Work note added (agents only)." if internal else "Comment added.", "success")
    return redirect(url_for("tickets.detail", number=number, _anchor="conversation"))


@bp.post("/<number>/tasks/<task_id>")
def complete(number: str, task_id: str):
    """Complete one of the ticket's tasks from its page (the requester's confirmation)."""
    actor = g.user
    task = desk().task(actor, task_id)
    if task.ticket != number:
        return redirect(url_for("tickets.detail", number=task.ticket))
    data = forms.parse(task.form, request.form)
    try:
        ticket = desk().complete(actor, task.id, data)
    except ValidationFailed as err:
        return _detail(number, task_values={task.id: request.form.to_dict()},
                       task_errors={task.id: err.errors}), 422
    flash(_completed_message(task, ticket, data), "success")
    return redirect(back(url_for("tickets.detail", number=number)))


def _completed_message(task: TaskInfo, ticket: TicketInfo, data: dict[str, Any]) -> str:
    if task.name == "confirm" and task.for_requester:
        if data.get("resolved") is False:
            return (f"{ticket.number} reopened: it goes back to whoever resolved it. "
                    "Thank you for telling us.")
        return f"{ticket.number}: thank you for confirming the resolution."
    return f"{ticket.number}: {task.title} completed."


def _own_tasks() -> list[TaskInfo]:
    """The requester's own tasks (confirmations) among the tasks the actor may act on."""
    return [t for t in desk().tasks(g.user, per_page=100).items if t.for_requester]


def _detail(number: str, comment_body: str = "", comment_internal: bool = False,
            comment_error: str = "", task_values: dict[str, dict] | None = None,
            task_errors: dict[str, dict] | None = None):
    actor = g.user
    ticket = desk().ticket(actor, number)
    task_values, task_errors = task_values or {}, task_errors or {}
    mine = actor.username == ticket.requester
    own_tasks = [t for t in ticket.tasks if t.for_requester and mine]
    task_forms = [
        (t, forms.fields(t.form, task_values.get(t.id, {}), task_errors.get(t.id, {})),
         _unplaced(task_errors.get(t.id, {}), t.form))
        for t in own_tasks
    ]
    return render_template(
        "tickets/detail.html", ticket=ticket, history=desk().history(actor, number),
        comments=desk().comments(actor, number), progress=desk().progress(actor, number),
        task_forms=task_forms, staff=is_staff(actor), mine=mine,
        staff_tasks=[t for t in ticket.tasks if not t.for_requester],
        request_fields=request_fields(ticket),
        comment_body=comment_body, comment_internal=comment_internal,
        comment_error=comment_error, service_names={s.key: s.name for s in desk().services()},
    )


def _unplaced(errors: dict[str, str], schema: dict[str, Any]) -> dict[str, str]:
    known = set(schema.get("properties", {}))
    return {k: v for k, v in errors.items() if k not in known}


def request_fields(ticket: TicketInfo) -> list[tuple[str, str]]:
    """A request's order form as (label, value) pairs, labels from the catalog item's schema."""
    entered = ticket.data.get("fields")
    if ticket.kind != "request" or not isinstance(entered, dict):
        return []
    item = next((i for i in desk().catalog() if i.key == ticket.item), None)
    shown = forms.fields(item.form, entered) if item else []
    labelled = []
    for f in shown:
        if f.name in entered:
            value = dict(f.options).get(f.value, f.value)
            labelled.append((f.label, value))
    labelled += [(k, str(v)) for k, v in entered.items() if item is None or
                 k not in item.form.get("properties", {})]
    return labelled
