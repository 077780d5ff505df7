"""The SQL conditions behind lists, inboxes and the audit search (indexed, never a scan of
workflow state)."""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import func, select, true, union
from sqlalchemy.orm import Session

from . import access
from .dto import Actor
from .errors import Forbidden, ValidationFailed
from .persistence.models import AuditEvent, Task, Ticket
from .tickets import PREFIXES


def ticket_conditions(status: str | None, priority: str | None, service: str | None,
                       q: str | None) -> list:
    where = []
    if status:
        where.append(Ticket.status == status)
    if priority:
        where.append(Ticket.priority == priority)
    if service:
        where.append(Ticket.service_key == service)
    if q and q.strip():
        where.append(search(q.strip()))
    return where


TICKET_NUMBER = re.compile(r"^(INC|REQ)-?(\d{1,9})$", re.IGNORECASE)


def search(q: str):
    """A ticket number (``INC-000042``, ``inc42``, ``42``) is an indexed lookup; other text
    searches titles."""
    number = TICKET_NUMBER.match(q)
    if number:
        return Ticket.number == f"{number.group(1).upper()}-{int(number.group(2)):06d}"
    if q.isdigit():
        return Ticket.number.in_([f"{prefix}-{int(q):06d}" for prefix in PREFIXES.values()])
    return Ticket.title.ilike(f"%{q}%")


INBOX_ORDER = (Task.created_at, Task.ticket_id, Task.id)


def inbox_branches(actor: Actor, user_id: int | None, queue: str | None,
                    ticket_where: list) -> list:
    """One query per way a task reaches the actor (as requester, as assignee, through each
    group), each served by its own index in inbox order."""
    def branch(condition):
        query = select(Task.id, *INBOX_ORDER[:2]).where(
            Task.state == "ready", condition, queue_condition(queue, actor, user_id))
        if ticket_where:
            query = query.join(Ticket, Task.ticket_id == Ticket.id).where(*ticket_where)
        return query

    return [branch(c) for c in access.inbox_branches(actor, user_id)]


def inbox_count(s: Session, actor: Actor, user_id: int | None, queue: str | None,
                 ticket_where: list) -> int:
    query = select(func.count()).select_from(Task).where(
        Task.state == "ready", access.inbox_filter(actor, user_id),
        queue_condition(queue, actor, user_id))
    if ticket_where:
        query = query.join(Ticket, Task.ticket_id == Ticket.id).where(*ticket_where)
    return s.scalar(query)


def inbox_page(s: Session, actor: Actor, user_id: int | None, queue: str | None,
                ticket_where: list, offset: int, limit: int) -> tuple[list[str], int]:
    """Task ids of one inbox page, oldest first, and the total.

    Each branch is limited to the page's end before the branches are merged: a page
    costs the same whatever the backlog behind it.
    """
    branches = inbox_branches(actor, user_id, queue, ticket_where)
    if not branches:
        return [], 0
    pieces = [b.order_by(*INBOX_ORDER).limit(offset + limit).subquery().select()
              for b in branches]
    merged = union(*pieces).subquery()
    ids = list(s.scalars(select(merged.c.id).order_by(merged.c.created_at, merged.c.ticket_id,
                                                      merged.c.id).offset(offset).limit(limit)))
    return ids, inbox_count(s, actor, user_id, queue, ticket_where)


def queue_condition(queue: str | None, actor: Actor, user_id: int | None):
    if queue is None or queue == "all":
        return true()
    if queue == "mine":
        return Task.assignee_id == user_id
    if queue == "group":
        return Task.group_key.in_(sorted(actor.groups))
    if queue == "unassigned":
        return Task.assignee_id.is_(None)
    raise ValidationFailed("unknown queue", {"queue": "Choose mine, group or unassigned."})


def audit_conditions(actor: Actor, ticket: str | None = None, actor_name: str | None = None,
                      action: str | None = None, process: str | None = None,
                      version: int | None = None, since: datetime | None = None,
                      until: datetime | None = None) -> list:
    if not actor.roles & {"auditor", "admin"}:
        raise Forbidden("only auditors may search the audit trail")
    for name, value in (("since", since), ("until", until)):
        if value is not None and (not isinstance(value, datetime) or value.tzinfo is None):
            raise ValidationFailed(f"{name} must be a date and time with a UTC offset",
                                   {name: "Use ISO 8601 with an offset, e.g. 2026-01-05T09:00Z."})
    where = []
    for column, value in ((AuditEvent.ticket_number, ticket), (AuditEvent.actor, actor_name),
                          (AuditEvent.action, action), (AuditEvent.process_key, process)):
        if value:
            where.append(column == value)
    if version is not None:
        where.append(AuditEvent.process_version == version)
    if since is not None:
        where.append(AuditEvent.at >= since)
    if until is not None:
        where.append(AuditEvent.at < until)
    return where
