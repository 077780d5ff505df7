"""The audit trail: append-only events, each hash-chained to the one before it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from .persistence.batch import Batch
from .persistence.models import AuditEvent, AuditHead

GENESIS = "0" * 64
# Every action the engine records (SUBJECT_PAST_TENSE_VERB); a test keeps this complete.
ACTIONS = (
    "action_refused", "comment_added", "event_received", "failure_retried",
    "process_deployed", "service_state_changed", "sign_in_refused", "sign_in_throttled",
    "step_failed",
    "task_cancelled", "task_claimed", "task_completed", "task_created", "task_released",
    "ticket_created", "ticket_migrated", "ticket_status_changed", "timer_fired",
    "user_signed_in", "work_note_added",
)


@dataclass
class Event:
    """An event to append; ``seq`` and hashes are assigned when it is written."""

    action: str
    actor: str
    at: datetime
    data: dict[str, Any]
    ticket_id: int | None = None
    ticket_number: str | None = None
    task_id: str | None = None
    task_name: str | None = None
    process_key: str | None = None
    process_version: int | None = None


def canonical(row: AuditEvent) -> bytes:
    """The bytes a hash covers: every column but the hash itself, in a fixed form."""
    return _canonical({c: getattr(row, c) for c in _COLUMNS})


def _canonical(row: dict[str, Any]) -> bytes:
    content = {
        "seq": row["seq"],
        "at": row["at"].isoformat(timespec="microseconds"),
        "actor": row["actor"],
        "action": row["action"],
        "ticket_id": row["ticket_id"],
        "ticket": row["ticket_number"],
        "task_id": row["task_id"],
        "task": row["task_name"],
        "data": json.loads(row["data"]),
        "process_key": row["process_key"],
        "process_version": row["process_version"],
        "prev": row["prev_hash"],
    }
    return json.dumps(content, sort_keys=True, separators=(",", ":")).encode()


def ensure_head(session: Session) -> None:
    if session.get(AuditHead, 1) is None:
        session.add(AuditHead(id=1, seq=0, hash=GENESIS))


def append(session: Session, events: list[Event]) -> None:
    """Write events at the end of the chain, inside the caller's transaction (after the
    session's pending changes)."""
    write(Batch(session), events)


def write(batch: Batch, events: list[Event]) -> None:
    """Send what ``batch`` holds, then the events at the end of the chain.

    The head row is locked until commit, so concurrent writers chain in order (SQLite's
    writers already hold the database's write lock). It is locked last, with the batch's
    other statements: it serialises every writer.
    """
    if not events:
        batch.send()
        return
    ((seq, prev),) = batch.send(_LOCK_HEAD)
    rows = []
    for event in events:
        seq += 1
        row = {
            "seq": seq, "at": event.at, "actor": event.actor, "action": event.action,
            "ticket_id": event.ticket_id, "ticket_number": event.ticket_number,
            "task_id": event.task_id, "task_name": event.task_name,
            "data": json.dumps(event.data, sort_keys=True, default=str),
            "process_key": event.process_key, "process_version": event.process_version,
            "prev_hash": prev,
        }
        row["hash"] = prev = hashlib.sha256(_canonical(row)).hexdigest()
        rows.append(row)
    # One statement whatever columns each event fills.
    batch.add(_INSERT_EVENTS, rows)
    batch.add(_MOVE_HEAD, {"new_seq": seq, "new_hash": prev})
    batch.send()


_COLUMNS = [c.key for c in AuditEvent.__table__.columns]
_INSERT_EVENTS = insert(AuditEvent.__table__)
_HEAD = AuditHead.__table__
# A locking read, not a no-op update: the one row every writer passes through would
# otherwise gain a dead version per write for PostgreSQL to skip and prune.
_LOCK_HEAD = select(_HEAD.c.seq, _HEAD.c.hash).where(_HEAD.c.id == 1).with_for_update()
_MOVE_HEAD = update(_HEAD).where(_HEAD.c.id == 1).values(
    seq=bindparam("new_seq"), hash=bindparam("new_hash"))


def verify(session: Session, batch: int = 5000) -> tuple[int, int | None, str | None]:
    """Check the whole chain: (events checked, first bad seq or None, reason)."""
    prev, expected_seq, count, last = GENESIS, 1, 0, 0
    while True:
        rows = session.scalars(
            select(AuditEvent).where(AuditEvent.seq > last).order_by(AuditEvent.seq).limit(batch)
        ).all()
        if not rows:
            break
        for row in rows:
            if row.seq != expected_seq:
                return count, expected_seq, f"event {expected_seq} is missing"
            if row.prev_hash != prev:
                return count, row.seq, "does not follow the event before it"
            if hashlib.sha256(canonical(row)).hexdigest() != row.hash:
                return count, row.seq, "content does not match its hash"
            prev, expected_seq, count, last = row.hash, row.seq + 1, count + 1, row.seq
    head = session.get(AuditHead, 1)
    if head is not None and (head.seq != count or head.hash != prev):
        return count, count + 1, "events after the last one were removed"
    return count, None, None
