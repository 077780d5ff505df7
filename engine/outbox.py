"""Notifications: written in the same transaction as the step that causes them.

Who hears what:

- the requester, on every status change of their ticket and on every task waiting on
  them (a question from an agent, a resolution to confirm);
- the assignee of a new task, or else every active member of its group (so managers
  hear of ``review_breach`` tasks: a breach);
- whoever a process names through the ``notify`` service operator (the SLA warning
  names the assignee, the major-incident alert the managers).

Each notification is listed in the app and, when the user has an address, delivered by
e-mail from this outbox by ``guichet worker`` (see ``engine/mailer.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Integer,
    String,
    Text,
    bindparam,
    case,
    func,
    insert,
    literal,
    null,
    select,
)
from sqlalchemy.orm import Session

from . import directory
from .persistence.batch import Batch
from .persistence.models import Membership, Notification, Task, Ticket, User, UTCDateTime

if TYPE_CHECKING:
    from .tickets import Step

AUDIENCES = ("requester", "assignee", "managers")
_requested: ContextVar[list[dict[str, str]] | None] = ContextVar("notify_requests", default=None)


def notify(context: dict[str, Any], audience: str, subject: str, kind: str = "alert") -> dict:
    """Service operator: ask for a notification to ``audience`` (requester|assignee|managers)."""
    if audience not in AUDIENCES:
        raise ValueError(f"audience must be one of {', '.join(AUDIENCES)}, not {audience!r}")
    requests = _requested.get()
    if requests is not None:
        requests.append({"audience": audience, "subject": str(subject)[:200], "kind": kind})
    return {"audience": audience}


@contextmanager
def collecting() -> Iterator[list[dict[str, str]]]:
    """Collect what the processes ask to notify during one unit of work."""
    requests: list[dict[str, str]] = []
    token = _requested.set(requests)
    try:
        yield requests
    finally:
        _requested.reset(token)


@dataclass
class _Message:
    user_id: int
    kind: str
    subject: str
    body: str


def for_step(session: Session, batch: Batch, step: Step,
             requested: list[dict[str, str]]) -> int:
    """Turn one step's audit events and the processes' requests into outbox rows."""
    ticket = step.ticket
    rows = {row.id: row for row in step.open_rows}
    messages: list[_Message] = []
    label = f"{ticket.number} {ticket.title}"
    status = None
    for event in step.events:
        if event.action == "ticket_status_changed":
            status = str(event.data.get("to", "")).replace("_", " ")
        elif event.action == "task_created" and event.task_id in rows:
            messages += _task_messages(session, ticket, rows[event.task_id], label)
    if status:
        asked = [m for m in messages if m.user_id == ticket.requester_id]
        if asked:  # one message to the requester: the task that waits on them, and why
            asked[0].body += f"\nStatus: {status}"
        else:
            messages.append(_Message(ticket.requester_id, "status",
                                     f"{ticket.number} is now {status}",
                                     f"{label}\nStatus: {status}"))
    for request in requested:
        for user_id in _audience(session, ticket, request["audience"]):
            messages.append(_Message(user_id, request["kind"],
                                     f"{ticket.number}: {request['subject']}", label))
    return _write(batch, step, messages)


def _task_messages(session: Session, ticket: Ticket, row: Task, label: str) -> list[_Message]:
    if row.for_requester:
        kind = "question" if row.name == "provide_info" else "action"
        return [_Message(ticket.requester_id, kind, f"{ticket.number}: {row.title}",
                         f"{label}\nWaiting on you: {row.title}")]
    kind = "breach" if row.name == "review_breach" else "task"
    body = f"{label}\nNew task: {row.title} (priority {ticket.priority or 'not set'})"
    if row.assignee_id:
        return [_Message(row.assignee_id, kind, f"{ticket.number}: {row.title}", body)]
    return [_Message(uid, kind, f"{ticket.number}: {row.title}", body)
            for uid in _members(session, row.group_key)]


def _audience(session: Session, ticket: Ticket, audience: str) -> list[int]:
    if audience == "requester":
        return [ticket.requester_id]
    if audience == "managers":
        return _members(session, "managers")
    if ticket.assignee_id:
        return [ticket.assignee_id]
    return _members(session, ticket.group_key)


def _members(session: Session, group: str | None) -> list[int]:
    """The group's active members (as read at most the directory's time-to-live ago)."""
    if not group:
        return []
    return directory.cached(session, ("members", group),
                            lambda: list(session.scalars(_MEMBERS, {"group": group})))


_MEMBERS = (select(User.id).join(Membership, Membership.user_id == User.id)
            .where(Membership.group_key == bindparam("group"), User.active.is_(True))
            .order_by(User.id))


def _write(batch: Batch, step: Step, messages: list[_Message]) -> int:
    """Insert the step's notifications: one statement per distinct message (a new task in a
    group notifies every member with the same words), each user at most once per message."""
    recipients: dict[tuple[str, str, str], list[int]] = {}
    seen: set[tuple[int, str, str]] = set()
    for m in messages:
        key = (m.user_id, m.kind, m.subject)
        if key in seen:
            continue
        seen.add(key)
        recipients.setdefault((m.kind, m.subject[:250], m.body), []).append(m.user_id)
    for (kind, subject, body), user_ids in recipients.items():
        batch.add(_INSERT_NOTIFICATIONS, [
            {"user_id": user_id, "ticket_id": step.ticket.id, "kind": kind,
             "subject": subject, "body": body, "now": step.now} for user_id in sorted(user_ids)])
    return len(seen)


def _insert_notifications():
    """A notification for ``user_id``, its address read from the user row by the insert
    itself (compiled once; run once per recipient)."""
    users = User.__table__
    email = func.coalesce(users.c.email, "")
    now = bindparam("now", type_=UTCDateTime())
    return insert(Notification.__table__).from_select(
        ["user_id", "ticket_id", "kind", "subject", "body", "email", "state", "attempts",
         "next_attempt_at", "created_at"],
        select(
            users.c.id, bindparam("ticket_id", type_=Integer()),
            bindparam("kind", type_=String()), bindparam("subject", type_=String()),
            bindparam("body", type_=Text()), email,
            case((email != "", "pending"), else_="no_email"), literal(0),
            case((email != "", now), else_=null()), now,
        ).where(users.c.id == bindparam("user_id", type_=Integer())),
    )


_INSERT_NOTIFICATIONS = _insert_notifications()
