"""BPMN timers on an injected clock, and the indexed table the worker reads them from.

SpiffWorkflow 3.2.0 reads the wall clock inside its timer event definitions. Guichet
swaps them, once per parsed process, for subclasses that ask the workflow's script
engine for the time: tests and the worker move one clock and the engine sees it.

After every unit of work the ticket's pending timer events are written to ``timers``
(one row each, with the time it fires); the worker picks due rows by index and never
loads workflow state to find them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from SpiffWorkflow.bpmn.specs.event_definitions.timer import (
    DurationTimerEventDefinition,
    TimeDateEventDefinition,
    TimerEventDefinition,
)
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from sqlalchemy import bindparam, delete, insert, select
from sqlalchemy.orm import Session

from .persistence.batch import Batch
from .persistence.models import Ticket, Timer


def _now(my_task) -> datetime:
    clock = getattr(my_task.workflow.script_engine, "clock", None)
    return clock() if clock else datetime.now(UTC)


class ClockedTimeDate(TimeDateEventDefinition):
    """A timer on a date (``timeDate``), compared with the engine's clock."""

    def has_fired(self, my_task) -> bool:
        value = my_task._get_internal_data("event_value")
        if value is None:
            value = my_task.workflow.script_engine.evaluate(my_task, self.expression)
            value = value.isoformat() if isinstance(value, datetime) else str(value)
            my_task._set_internal_data(event_value=value)
        if TimerEventDefinition.parse_time_or_duration(value) <= _now(my_task):
            my_task._set_internal_data(event_fired=True)
        return my_task._get_internal_data("event_fired", False)


class ClockedDuration(DurationTimerEventDefinition):
    """A timer after a duration (``timeDuration``), started and compared on the engine's clock."""

    def has_fired(self, my_task) -> bool:
        value = my_task._get_internal_data("event_value")
        if value is None:
            expression = my_task.workflow.script_engine.evaluate(my_task, self.expression)
            start = _now(my_task)
            parsed = TimerEventDefinition.parse_iso_duration(expression)
            value = (start + TimerEventDefinition.get_timedelta_from_start(parsed, start))
            my_task._set_internal_data(event_value=value.isoformat())
            value = value.isoformat()
        if TimerEventDefinition.get_datetime(value) <= _now(my_task):
            my_task._set_internal_data(event_fired=True)
        return my_task._get_internal_data("event_fired", False)


_CLOCKED = {TimeDateEventDefinition: ClockedTimeDate, DurationTimerEventDefinition: ClockedDuration}


def use_engine_clock(specs: Iterable) -> None:
    """Make every date and duration timer of these process specs read the engine's clock.

    Cycle timers are refused at deploy time, so they never reach here.
    """
    for spec in specs:
        for task_spec in spec.task_specs.values():
            definition = getattr(task_spec, "event_definition", None)
            clocked = _CLOCKED.get(type(definition))
            if clocked is not None:
                task_spec.event_definition = clocked(
                    definition.name, definition.expression, description=definition.description)


@dataclass(frozen=True)
class Pending:
    """A timer event an instance waits on."""

    name: str  # BPMN id of the timer event
    fire_at: datetime


def pending(workflow: BpmnWorkflow) -> list[Pending]:
    """The instance's waiting timer events with the time each fires, soonest first."""
    found = []
    for task in workflow.event_manager.tasks.values():
        if not isinstance(task.task_spec.event_definition, TimerEventDefinition):
            continue
        value = task._get_internal_data("event_value")
        if isinstance(value, str):
            at = TimerEventDefinition.get_datetime(value)
            found.append(Pending(task.task_spec.bpmn_id, at))
    return sorted(found, key=lambda p: (p.fire_at, p.name))


def store(batch: Batch, ticket_id: int, timers: list[Pending],
          before: list[Pending] | None = None) -> None:
    """Make the ticket's timer rows the ones it waits on now.

    ``before``: the timers the rows were written from (the instance as it was loaded);
    rows of timers still waited on are kept, with their attempts and error. ``None``
    rewrites every row.
    """
    if before is None:
        batch.add(_DELETE_ALL, {"ticket_id": ticket_id})
        gone, new = [], timers
    else:
        gone = [t for t in before if t not in timers]
        new = [t for t in timers if t not in before]
    if gone:
        batch.add(_DELETE_ONE, [
            {"ticket_id": ticket_id, "name": t.name, "fire_at": t.fire_at} for t in gone])
    if new:
        batch.add(_INSERT, [
            {"ticket_id": ticket_id, "name": t.name, "fire_at": t.fire_at,
             "wake_at": t.fire_at, "attempts": 0} for t in new])


_ROWS = Timer.__table__
_INSERT = insert(_ROWS)
_DELETE_ALL = delete(_ROWS).where(_ROWS.c.ticket_id == bindparam("ticket_id"))
_DELETE_ONE = delete(_ROWS).where(
    _ROWS.c.ticket_id == bindparam("ticket_id"), _ROWS.c.name == bindparam("name"),
    _ROWS.c.fire_at == bindparam("fire_at"))


def due_tickets(session: Session, now: datetime, limit: int) -> list[int]:
    """Ids of tickets with a timer due, locked for this transaction.

    On PostgreSQL the ticket rows are taken ``FOR UPDATE SKIP LOCKED``: several workers
    share the due tickets without ever firing one twice, and a ticket an agent is
    completing right now is left for the next round. (The ticket row, not the timer
    row, is locked so that workers and web requests lock in the same order.)
    """
    query = (
        select(Ticket.id).join(Timer, Timer.ticket_id == Ticket.id)
        .where(Timer.wake_at <= now).order_by(Timer.wake_at).limit(limit)
    )
    if session.bind.dialect.name == "postgresql":
        query = query.with_for_update(of=Ticket, skip_locked=True)
    seen: list[int] = []
    for ticket_id in session.scalars(query):
        if ticket_id not in seen:
            seen.append(ticket_id)
    return seen


def rows_due(session: Session, ticket_id: int, now: datetime) -> bool:
    """Whether the ticket has a timer row due at ``now`` (read afresh)."""
    return session.scalar(select(Timer.id).where(Timer.ticket_id == ticket_id,
                                                 Timer.wake_at <= now).limit(1)) is not None


def postpone(session: Session, ticket_id: int, now: datetime, error: str) -> int:
    """Record a failed attempt on the ticket's due timers and retry later (back-off)."""
    rows = list(session.scalars(
        select(Timer).where(Timer.ticket_id == ticket_id, Timer.wake_at <= now)))
    attempts = 0
    for row in rows:
        row.attempts += 1
        row.last_error = error[:2000]
        row.wake_at = now + timedelta(seconds=min(3600, 30 * 2 ** min(row.attempts - 1, 7)))
        attempts = max(attempts, row.attempts)
    return attempts

