"""Ticket units of work: start, complete, claim, and the projection of workflow state.

Every function takes the session first and runs inside the caller's transaction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from sqlalchemy import and_, bindparam, select, update
from sqlalchemy.orm import Session

from . import audit, monitoring, outbox, runtime, timers
from .bpmn import dump_state, load_state
from .clock import after, instant
from .definitions import LoadedDefinition
from .persistence.batch import Batch, detached
from .persistence.models import Counter, Membership, Task, Ticket, TicketState, User
from .sandbox import SandboxScriptEngine

PREFIXES = {"incident": "INC", "request": "REQ"}
REQUESTER = "requester"


@dataclass
class Step:
    """Everything one unit of work changes on a ticket, gathered to project and audit."""

    ticket: Ticket
    definition: LoadedDefinition
    workflow: BpmnWorkflow
    now: datetime
    state: TicketState | None = None  # the stored row, when the ticket already has one
    open_rows: list[Task] = field(default_factory=list)  # task rows ready before the step
    events: list[audit.Event] = field(default_factory=list)
    # The timers the instance waited on before the step (None: unknown, rewrite the rows).
    timers_before: list[timers.Pending] | None = field(default_factory=list)

    def event(self, action: str, actor: str, data: dict[str, Any], task: Task | None = None):
        self.events.append(audit.Event(
            action=action, actor=actor, at=self.now, data=data,
            ticket_id=self.ticket.id, ticket_number=self.ticket.number,
            task_id=task.id if task else None, task_name=task.name if task else None,
            process_key=self.definition.key, process_version=self.definition.version,
        ))


def next_number(session: Session, kind: str) -> str:
    prefix = PREFIXES[kind]
    value = session.execute(_NEXT_NUMBER, {"prefix": prefix}).scalar_one()
    return f"{prefix}-{value:06d}"


_COUNTERS = Counter.__table__
_NEXT_NUMBER = (update(_COUNTERS).where(_COUNTERS.c.name == bindparam("prefix"))
                .values(value=_COUNTERS.c.value + 1).returning(_COUNTERS.c.value))


def ensure_counters(session: Session) -> None:
    for prefix in PREFIXES.values():
        if session.get(Counter, prefix) is None:
            session.add(Counter(name=prefix, value=0))


def new_workflow(definition: LoadedDefinition, engine: SandboxScriptEngine) -> BpmnWorkflow:
    return BpmnWorkflow(definition.spec, definition.subprocess_specs, script_engine=engine)


def load_step(
    ticket: Ticket, state: TicketState, definition: LoadedDefinition,
    engine: SandboxScriptEngine, now: datetime, open_rows: list[Task],
) -> Step:
    """Restore the ticket's instance from its stored ``state``, ready for a unit of work."""
    workflow = load_state(state.state, definition.spec, definition.subprocess_specs)
    workflow.script_engine = engine  # not serialized: re-attach the sandbox every time
    return Step(ticket, definition, workflow, now, state, list(open_rows),
                timers_before=timers.pending(workflow))


def open_tasks(session: Session, ticket_id: int) -> list[Task]:
    """The ticket's ready task rows, oldest first."""
    return list(session.scalars(_OPEN_TASKS, {"ticket_id": ticket_id}))


def lock_of_task(session: Session, task_id: str, with_state: bool = False
                 ) -> tuple[Ticket | None, TicketState | None, list[Task]]:
    """Lock the ticket of ``task_id``, then read its ready task rows, oldest first (and its
    stored instance when asked): (None, None, []) when there is no such task.

    The reads come after the lock, in statements of their own (sent with it, in one round
    trip): on PostgreSQL a statement that waited for a lock still sees, in the rows it
    joins, what was there before the other transaction committed. The rows come detached
    from the session: a unit of work writes them back with ``Batch.put``.
    """
    params = {"task_id": task_id}
    locked, rows = Batch(session).read(
        (_LOCK_TICKET_OF_TASK, params),
        (_STATE_AND_OPEN_TASKS_OF_TASK if with_state else _OPEN_TASKS_OF_TASK, params))
    if not locked:
        return None, None, []
    ticket = detached(Ticket, locked[0])
    if not with_state:
        return ticket, None, [detached(Task, row) for row in rows]
    if not rows:  # closed history generated in bulk keeps no instance
        return ticket, None, []
    split = len(_STATE_COLUMNS)
    return ticket, detached(TicketState, rows[0][:split]), [
        detached(Task, row[split:]) for row in rows if row[split] is not None]


# Statements every step runs, built once (building one costs more than SQLite running it).
_OPEN_TASKS = (select(Task).where(Task.ticket_id == bindparam("ticket_id"), Task.state == "ready")
               .order_by(Task.created_at, Task.id))
_TICKET_OF_TASK = (select(Task.ticket_id).where(Task.id == bindparam("task_id"))
                   .scalar_subquery())
_STATE_COLUMNS = tuple(TicketState.__table__.columns)
_LOCK_TICKET_OF_TASK = (select(*Ticket.__table__.columns).where(Ticket.id == _TICKET_OF_TASK)
                        .with_for_update())
_OPEN_TASKS_OF_TASK = (select(*Task.__table__.columns)
                       .where(Task.ticket_id == _TICKET_OF_TASK, Task.state == "ready")
                       .order_by(Task.created_at, Task.id))
_STATE_AND_OPEN_TASKS_OF_TASK = (
    select(*_STATE_COLUMNS, *Task.__table__.columns).outerjoin(Task, and_(
        Task.ticket_id == TicketState.ticket_id, Task.state == "ready"))
    .where(TicketState.ticket_id == _TICKET_OF_TASK).order_by(Task.created_at, Task.id))


def save(session: Session, step: Step, actor: str,
         requested: list[dict[str, str]] | None = None) -> None:
    """Persist the instance, project it into tickets/tasks/timers, notify, and audit.

    ``requested`` holds the notifications the process asked for during the step. The rows
    go out in one batch (see ``Batch``), the audit events last.
    """
    variables = runtime.variables(step.workflow)
    blob = dump_state(step.workflow)
    public = json.dumps({k: v for k, v in variables.items() if k not in runtime.INTERNAL_KEYS},
                        default=str)
    if step.state is None:
        step.state = TicketState(ticket_id=step.ticket.id, state=blob, variables=public)
    else:
        step.state.state, step.state.variables = blob, public
    rows_before = list(step.open_rows)
    project(session, step, variables, actor)
    if step.ticket.fingerprint and monitoring.follow(session, step.ticket, step.now):
        step.event("service_state_changed", "system",
                   {"service": step.ticket.service_key, "state": "nominal"})
    batch = Batch(session)
    batch.put(step.ticket)
    batch.put(step.state)
    for row in rows_before + step.open_rows:  # put once each, whatever the lists share
        batch.put(row)
    waiting = [] if step.workflow.is_completed() else timers.pending(step.workflow)
    if waiting != step.timers_before:  # most steps leave the timers as they were
        timers.store(batch, step.ticket.id, waiting, step.timers_before)
    outbox.for_step(session, batch, step, requested or [])
    audit.write(batch, step.events)


def project(session: Session, step: Step, variables: dict[str, Any], actor: str) -> None:
    """Mirror the workflow into indexed rows: ready tasks, status, priority, due dates.

    ``step.open_rows`` ends up holding the ticket's ready task rows after the step.
    """
    ticket, now = step.ticket, step.now
    open_rows = {row.id: row for row in step.open_rows if row.state == "ready"}
    ready = runtime.ready_user_tasks(step.workflow)
    ready_ids = {str(t.id) for t in ready}
    for row_id, row in open_rows.items():
        if row_id not in ready_ids:
            row.state, row.completed_at = "cancelled", now
            step.event("task_cancelled", actor, {}, row)

    ticket.priority = variables.get("priority") or ticket.priority
    if variables.get("service"):
        ticket.service_key = variables["service"]
    # Processes that compute their deadlines (absolute, pushed back by pauses) say so in
    # ``response_due_at``/``due_at``; older versions only name the targets.
    ticket.response_due_at = (instant(variables.get("response_due_at"))
                              or after(ticket.created_at, variables.get("response_target")))
    ticket.due_at = (instant(variables.get("due_at"))
                     or after(ticket.created_at, variables.get("resolution_target")))
    ticket.paused_at = instant(variables.get("paused_at"))
    ticket.escalation_count = int(variables.get("escalation_count") or 0)
    ticket.reopen_count = int(variables.get("reopen_count") or 0)
    if isinstance(variables.get("category"), str):  # reports group incidents by it
        ticket.category = variables["category"][:40] or ticket.category

    work_rows, step.open_rows = [], []
    for task in ready:
        row = open_rows.get(str(task.id)) or _new_task_row(session, step, task, variables)
        title = task.task_spec.bpmn_name or row.title  # a migrated task takes the new name
        if row.title != title:
            row.title = title
        step.open_rows.append(row)
        if not row.for_requester:
            work_rows.append(row)
    # The ticket is held by its main-line work, not by side tasks such as a breach review
    # (tasks that carry a ``status`` are the main line).
    work_rows.sort(key=lambda r: not step.definition.properties(r.name).get("status"))
    if work_rows:
        ticket.group_key, ticket.assignee_id = work_rows[0].group_key, work_rows[0].assignee_id

    status = _status(step, ready)
    if status != ticket.status:
        step.event("ticket_status_changed", actor, {"from": ticket.status, "to": status})
        if status == "resolved":
            ticket.resolved_at = now
        elif status in ("new", "in_progress", "pending_approval"):
            ticket.resolved_at = None
        if status in ("closed", "rejected"):
            ticket.closed_at = now
        ticket.status = status
    ticket.updated_at = now


def _status(step: Step, ready: list) -> str:
    if step.workflow.is_completed():
        end = runtime.end_event(step.workflow)
        return step.definition.properties(end or "").get("status", "closed")
    for task in ready:
        status = step.definition.properties(task.task_spec.bpmn_id).get("status")
        if status:
            return status
    return step.ticket.status or "new"


def _new_task_row(session: Session, step: Step, task, variables: dict[str, Any]) -> Task:
    props = step.definition.properties(task.task_spec.bpmn_id)
    group = props.get("group") or variables.get(props.get("groupFrom", ""))
    for_requester = group == REQUESTER
    assignee_id = None
    hint = variables.get(props.get("assigneeFrom", "")) if props.get("assigneeFrom") else None
    if hint and not for_requester and group:
        with session.no_autoflush:  # the step's changes go out in one batch, later
            assignee_id = session.scalar(
                select(User.id).join(Membership, Membership.user_id == User.id)
                .where(User.username == str(hint), User.active.is_(True),
                       Membership.group_key == group))
    row = Task(
        id=str(task.id), ticket_id=step.ticket.id, name=task.task_spec.bpmn_id,
        title=task.task_spec.bpmn_name or task.task_spec.bpmn_id,
        group_key=None if for_requester else group, for_requester=for_requester,
        requester_id=step.ticket.requester_id if for_requester else None,
        assignee_id=assignee_id, state="ready", form=props.get("formJsonSchemaFilename"),
        created_at=step.now, due_at=None if for_requester else step.ticket.due_at,
    )
    step.event("task_created", "system", {
        "group": row.group_key, "for_requester": for_requester,
        "assignee": str(hint) if assignee_id else None,
    }, row)
    return row
