"""The SQL conditions behind lists, inboxes and the audit search (indexed, never a scan of
workflow state)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache

from sqlalchemy import (
    Integer,
    Select,
    bindparam,
    func,
    literal,
    literal_column,
    select,
    true,
    union,
    union_all,
)
from sqlalchemy.orm import aliased

from . import access
from .dto import Actor
from .errors import Forbidden, ValidationFailed
from .persistence.models import AuditEvent, Task, Ticket, User
from .tickets import PREFIXES


def ticket_filters(status: str | None, priority: str | None, service: str | None,
                   q: str | None, kind: str | None = None) -> tuple[tuple[str, ...], dict]:
    """The ticket filters asked for: their shape (which conditions, for ``ticket_where``)
    and the values to bind, so that a statement built once per shape serves them all."""
    shape, values = [], {}
    for name, value in (("kind", kind), ("status", status), ("priority", priority),
                        ("service", service)):
        if value:
            shape.append(name)
            values[f"f_{name}"] = value
    if q and q.strip():
        how, value = _search(q.strip())
        shape.append(how)
        values[f"f_{how}"] = value
    return tuple(shape), values


_FILTERS = {
    "kind": lambda: Ticket.kind == bindparam("f_kind"),
    "status": lambda: Ticket.status == bindparam("f_status"),
    "priority": lambda: Ticket.priority == bindparam("f_priority"),
    "service": lambda: Ticket.service_key == bindparam("f_service"),
    "number": lambda: Ticket.number == bindparam("f_number"),
    "numbers": lambda: Ticket.number.in_(bindparam("f_numbers", expanding=True)),
    "title": lambda: Ticket.title.ilike(bindparam("f_title")),
}


def ticket_where(shape: tuple[str, ...]) -> list:
    """The conditions of a ``ticket_filters`` shape, with their values as parameters."""
    return [_FILTERS[name]() for name in shape]


TICKET_NUMBER = re.compile(r"^(INC|REQ)-?(\d{1,9})$", re.IGNORECASE)


def _search(q: str) -> tuple[str, str | list[str]]:
    """A ticket number (``INC-000042``, ``inc42``, ``42``) is an indexed lookup; other text
    searches titles."""
    number = TICKET_NUMBER.match(q)
    if number:
        return "number", f"{number.group(1).upper()}-{int(number.group(2)):06d}"
    if q.isdigit():
        return "numbers", [f"{prefix}-{int(q):06d}" for prefix in PREFIXES.values()]
    return "title", f"%{q}%"


# -- statements built once per shape ----------------------------------------------------
#
# Building a statement and its cache key costs SQLAlchemy more than PostgreSQL takes to run
# an indexed page. The list and inbox statements are therefore built once per *shape* (the
# caller's roles and groups, whether they have a user row, the queue, which filters) with
# every value a parameter, and kept (statements, never results).

USER = bindparam("p_user", type_=Integer)
OFFSET = bindparam("p_offset", type_=Integer)
LIMIT = bindparam("p_limit", type_=Integer)
PAGE_END = bindparam("p_end", type_=Integer)  # offset + limit: how far each branch reads


def paging(offset: int, limit: int) -> dict[str, int]:
    return {"p_offset": offset, "p_limit": limit, "p_end": offset + limit}


def _shape_actor(roles: frozenset[str], groups: frozenset[str]) -> Actor:
    """Who the statements are built for: the access rules read roles and groups only, the
    user id is a parameter."""
    return Actor(username="", roles=roles, groups=groups)


@lru_cache(maxsize=256)
def ticket_list_statements(roles: frozenset[str], has_user: bool,
                           filters: tuple[str, ...]) -> tuple[Select, Select]:
    """(page, count) of ``GET /tickets``: the page, newest first, with its requester's and
    assignee's names and the total in each row; the count alone."""
    actor = _shape_actor(roles, frozenset())
    where = [access.ticket_filter(actor, USER if has_user else None), *ticket_where(filters)]
    count = select(func.count()).select_from(Ticket).where(*where)
    requester, assignee = aliased(User), aliased(User)
    page = (select(Ticket, requester.username, assignee.username, count.scalar_subquery())
            .outerjoin(requester, requester.id == Ticket.requester_id)
            .outerjoin(assignee, assignee.id == Ticket.assignee_id)
            .where(*where).order_by(Ticket.id.desc()).offset(OFFSET).limit(LIMIT))
    return page, count


@lru_cache(maxsize=256)
def inbox_statements(roles: frozenset[str], groups: frozenset[str], has_user: bool,
                     queue: str | None, filters: tuple[str, ...]
                     ) -> tuple[Select, Select] | None:
    """(page, count) of an inbox: its ready tasks oldest first with their tickets, their
    assignee's name and the total in each row; the count alone. None when no task can
    reach such an actor."""
    actor, user = _shape_actor(roles, groups), USER if has_user else None
    where = ticket_where(filters)
    ids = inbox_page_ids(actor, user, queue, where, OFFSET, LIMIT, PAGE_END)
    if ids is None:
        return None
    count = inbox_counts(actor, user, [queue], where)
    assignee = aliased(User)
    # Columns, not entities: an inbox shows these, and rows cost far less to build than
    # ORM objects (and no ticket description travels).
    page = (select(*INBOX_COLUMNS, assignee.username.label("assignee"), count.scalar_subquery())
            .join(Ticket, Task.ticket_id == Ticket.id)
            .outerjoin(assignee, assignee.id == Task.assignee_id)
            .where(Task.id.in_(ids)).order_by(*INBOX_ORDER))
    return page, count


@lru_cache(maxsize=256)
def queue_counts_statement(roles: frozenset[str], groups: frozenset[str], has_user: bool,
                           queues: tuple[str | None, ...]) -> Select:
    return inbox_counts(_shape_actor(roles, groups), USER if has_user else None, queues, [])


INBOX_ORDER = (Task.created_at, Task.ticket_id, Task.id)
INBOX_COLUMNS = (
    Task.id, Task.name, Task.title, Task.group_key, Task.assignee_id, Task.due_at,
    Task.created_at, Task.for_requester, Task.state, Ticket.number,
    Ticket.title.label("ticket_title"), Ticket.priority, Ticket.status.label("ticket_status"),
    Ticket.service_key, Ticket.definition_id)


def ready():
    """``tasks.state = 'ready'`` with the value written out: the partial indexes of ready
    tasks are only chosen when the planner sees their predicate (SQLite never matches a
    bound parameter against it, PostgreSQL not in a generic plan)."""
    return Task.state == literal_column("'ready'")


def inbox_branches(actor: Actor, user_id, queue: str | None,
                   ticket_where: list) -> list:
    """One query per way a task reaches the actor (as requester, as assignee, through each
    group), each served by its own index in inbox order."""
    def branch(condition):
        query = select(Task.id, *INBOX_ORDER[:2]).where(
            ready(), condition, queue_condition(queue, actor, user_id))
        if ticket_where:
            query = query.join(Ticket, Task.ticket_id == Ticket.id).where(*ticket_where)
        return query

    return [branch(c) for c in access.inbox_branches(actor, user_id)]


def inbox_counts(actor: Actor, user_id, queues: Sequence[str | None],
                 ticket_where: list) -> Select:
    """One row: how many ready tasks the actor may act on in each of ``queues`` (columns
    named after them, ``all`` for None).

    No OR over the ways a task reaches the actor: branch *i* counts the tasks it selects
    that no earlier branch selected (``IS NOT TRUE``: a NULL column is no match), so the
    branches' counts add up to the union's and each one reads a single index. For the
    requester, assignee and group branches that index is a partial index of ready tasks
    holding every column the conditions name: the count never visits the table, whatever
    the history behind it. All queues are counted in the same pass (``FILTER``).
    """
    branches = access.inbox_branches(actor, user_id)
    names = [queue or "all" for queue in queues]
    if not branches:
        return select(*[literal(0).label(name) for name in names])
    parts = []
    for i, condition in enumerate(branches):
        earlier = [b.is_not(true()) for b in branches[:i]]
        part = select(*[func.count().filter(queue_condition(queue, actor, user_id)).label(name)
                        for queue, name in zip(queues, names, strict=True)]
                      ).select_from(Task).where(ready(), condition, *earlier)
        if ticket_where:
            part = part.join(Ticket, Task.ticket_id == Ticket.id).where(*ticket_where)
        parts.append(part)
    counted = union_all(*parts).subquery() if len(parts) > 1 else parts[0].subquery()
    return select(*[func.coalesce(func.sum(counted.c[name]), 0).label(name) for name in names])


def inbox_page_ids(actor: Actor, user_id, queue: str | None, ticket_where: list,
                   offset, limit, end=None) -> Select | None:
    """The task ids of one inbox page, oldest first (None when nothing can reach the actor).

    Each branch is limited to the page's end before the branches are merged: a page
    costs the same whatever the backlog behind it.
    """
    branches = inbox_branches(actor, user_id, queue, ticket_where)
    if not branches:
        return None
    end = offset + limit if end is None else end
    pieces = [b.order_by(*INBOX_ORDER).limit(end).subquery().select() for b in branches]
    merged = union(*pieces).subquery() if len(pieces) > 1 else pieces[0].subquery()
    return (select(merged.c.id)
            .order_by(merged.c.created_at, merged.c.ticket_id, merged.c.id)
            .offset(offset).limit(limit))


def queue_condition(queue: str | None, actor: Actor, user_id):
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
