"""Who may see and do what: the rules, in one place."""

from __future__ import annotations

from sqlalchemy import false, or_, true
from sqlalchemy.sql.elements import ColumnElement

from .dto import Actor
from .persistence.models import Task, Ticket

DEPLOY_ROLES = frozenset({"process_owner", "admin"})
NOTE_ROLES = frozenset({"agent", "manager", "admin"})
# Events a requester never sees in their ticket's history.
STAFF_ONLY_EVENTS = ("work_note_added", "event_received", "step_failed", "failure_retried")


def sees_all_tickets(actor: Actor) -> bool:
    return actor.is_staff


def ticket_filter(actor: Actor, requester_id: int | None) -> ColumnElement[bool]:
    """SQL condition selecting the tickets ``actor`` may see."""
    if sees_all_tickets(actor):
        return true()
    if requester_id is None:
        return false()
    return Ticket.requester_id == requester_id


def may_see(actor: Actor, ticket: Ticket, requester_id: int | None) -> bool:
    return sees_all_tickets(actor) or ticket.requester_id == requester_id


def may_report(actor: Actor) -> bool:
    """Open incidents and order items (auditors, process owners and monitors may not)."""
    return actor.may_report


def may_write_notes(actor: Actor) -> bool:
    return bool(actor.roles & NOTE_ROLES)


def may_deploy(actor: Actor) -> bool:
    return bool(actor.roles & DEPLOY_ROLES)


def may_work_on(actor: Actor, task: Task, ticket: Ticket, user_id: int | None) -> bool:
    """Complete (or claim) a task: its group's members, or the requester for their tasks."""
    if task.for_requester:
        return ticket.requester_id == user_id
    if "admin" in actor.roles:
        return True
    return task.group_key is not None and task.group_key in actor.groups


def inbox_branches(actor: Actor, user_id: int | None) -> list[ColumnElement[bool]]:
    """The conditions whose union is what ``actor`` may act on, one per index to use
    (requester's tasks, claimed tasks, each group's queue)."""
    branches = []
    if user_id is not None:
        branches.append(Task.requester_id == user_id)
        branches.append(Task.assignee_id == user_id)
    branches += [Task.group_key == group for group in sorted(actor.groups)]
    if "admin" in actor.roles:
        branches.append(Task.for_requester == false())
    return branches


def inbox_filter(actor: Actor, user_id: int | None) -> ColumnElement[bool]:
    """SQL condition selecting the ready tasks ``actor`` may act on."""
    branches = inbox_branches(actor, user_id)
    return or_(*branches) if branches else false()
