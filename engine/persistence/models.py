"""Every SQLAlchemy model of Guichet, in one place.

Workflow state lives in ``ticket_states`` as compressed JSON bytes (never ``jsonb``:
SpiffWorkflow's task-data deltas depend on key order). Everything a list or an inbox
needs is projected into ``tickets`` and ``tasks`` so that no query reads workflow state.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes on every backend (SQLite keeps no offset)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use aware UTC")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None else None


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(String(200))
    roles: Mapped[str] = mapped_column(String(200), default="requester")  # space separated
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Group(Base):
    __tablename__ = "groups"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    level: Mapped[int] = mapped_column(Integer, default=1)


class Membership(Base):
    __tablename__ = "memberships"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    group_key: Mapped[str] = mapped_column(ForeignKey("groups.key"), primary_key=True)


class Service(Base):
    __tablename__ = "services"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(20), default="nominal")


class CatalogItem(Base):
    __tablename__ = "catalog_items"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    needs_approval: Mapped[bool] = mapped_column(Boolean, default=False)
    auto_accept: Mapped[bool] = mapped_column(Boolean, default=False)
    auto_fulfil: Mapped[bool] = mapped_column(Boolean, default=False)
    fulfilment_group: Mapped[str] = mapped_column(ForeignKey("groups.key"))
    form: Mapped[str] = mapped_column(Text, default="{}")  # JSON Schema
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class ProcessVersion(Base):
    """One deployed version of a BPMN process or a DMN decision table."""

    __tablename__ = "process_versions"
    __table_args__ = (UniqueConstraint("key", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(8))  # bpmn | dmn
    version: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200), default="")
    sha256: Mapped[str] = mapped_column(String(64))
    xml: Mapped[str] = mapped_column(Text)
    forms: Mapped[str] = mapped_column(Text, default="{}")  # {filename: schema}
    elements: Mapped[str] = mapped_column(Text, default="{}")  # {id: metadata}
    deployed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    deployed_by: Mapped[str] = mapped_column(String(64))


class Definition(Base):
    """What a ticket runs: one process version with the decision versions it was started with."""

    __tablename__ = "definitions"

    id: Mapped[int] = mapped_column(primary_key=True)
    process_version_id: Mapped[int] = mapped_column(ForeignKey("process_versions.id"))
    decisions: Mapped[str] = mapped_column(Text)  # JSON {"priority": 2, "sla": 1}
    sha256: Mapped[str] = mapped_column(String(64), unique=True)


class Ticket(Base):
    __tablename__ = "tickets"
    __table_args__ = (
        Index("ix_tickets_requester_created", "requester_id", "id"),
        Index("ix_tickets_status_id", "status", "id"),
        # Lists filtered by status and priority: the page and its count read only this index.
        Index("ix_tickets_status_priority_id", "status", "priority", "id"),
        Index("ix_tickets_kind_id", "kind", "id"),
        Index("ix_tickets_group_status", "group_key", "status"),
        Index("ix_tickets_fingerprint", "fingerprint"),
        # Reports: periods are ranges of these times.
        Index("ix_tickets_category", "category"),
        Index("ix_tickets_created_at", "created_at"),
        Index("ix_tickets_resolved_at", "resolved_at"),
        Index("ix_tickets_closed_at", "closed_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(20), unique=True)
    kind: Mapped[str] = mapped_column(String(10))  # incident | request
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(20))
    priority: Mapped[str | None] = mapped_column(String(2))
    requester_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    service_key: Mapped[str | None] = mapped_column(ForeignKey("services.key"))
    item_key: Mapped[str | None] = mapped_column(ForeignKey("catalog_items.key"))
    group_key: Mapped[str | None] = mapped_column(String(64))
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    channel: Mapped[str] = mapped_column(String(20), default="portal")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    response_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    definition_id: Mapped[int] = mapped_column(ForeignKey("definitions.id"))
    process_key: Mapped[str] = mapped_column(String(64))
    process_version: Mapped[int] = mapped_column(Integer)
    # Projected from the process variables and the trail, for reports without workflow state:
    responded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # first task done by staff
    escalation_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    reopen_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # awaiting the requester
    fingerprint: Mapped[str | None] = mapped_column(String(200))  # monitoring events
    category: Mapped[str | None] = mapped_column(String(40))  # the incident's, from qualify
    lock_version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": lock_version}


class TicketState(Base):
    """The serialized SpiffWorkflow instance of a ticket (zlib-compressed JSON)."""

    __tablename__ = "ticket_states"

    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), primary_key=True)
    state: Mapped[bytes] = mapped_column(LargeBinary)
    variables: Mapped[str] = mapped_column(Text, default="{}")  # process data at the wait state


READY = "state = 'ready'"  # the predicate of the partial indexes of ready tasks


class Task(Base):
    """A user task of a ticket: ready ones form the inboxes, done ones the work history."""

    __tablename__ = "tasks"
    __table_args__ = (
        Index("ix_tasks_state_group", "state", "group_key", "created_at"),
        Index("ix_tasks_state_assignee", "state", "assignee_id", "created_at"),
        Index("ix_tasks_ticket_state", "ticket_id", "state"),
        Index("ix_tasks_state_requester", "state", "requester_id", "created_at"),
        Index("ix_tasks_completed_at", "completed_at"),  # reports: work done in a period
        # Inbox and queue counts: ready tasks only, with every column an inbox condition
        # names, so that counting a backlog never reads the table (engine/queries.py).
        Index("ix_tasks_ready_group", "group_key", "assignee_id", "requester_id",
              "for_requester", postgresql_where=text(READY), sqlite_where=text(READY)),
        Index("ix_tasks_ready_assignee", "assignee_id", "requester_id", "group_key",
              "for_requester", postgresql_where=text(READY), sqlite_where=text(READY)),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # SpiffWorkflow task id
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    name: Mapped[str] = mapped_column(String(64))  # BPMN id
    title: Mapped[str] = mapped_column(String(200))
    group_key: Mapped[str | None] = mapped_column(String(64))
    for_requester: Mapped[bool] = mapped_column(Boolean, default=False)
    # The ticket's requester, on the tasks only they may do (their inbox needs no join).
    requester_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    state: Mapped[str] = mapped_column(String(12))  # ready | completed | cancelled
    form: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    completed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Comment(Base):
    """A public comment (requester and agents) or an internal work note (agents only)."""

    __tablename__ = "comments"
    __table_args__ = (Index("ix_comments_ticket_id", "ticket_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    body: Mapped[str] = mapped_column(Text)
    internal: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Counter(Base):
    """Per-kind ticket number sequences (INC-000001, REQ-000001)."""

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(20), primary_key=True)
    value: Mapped[int] = mapped_column(Integer, default=0)


class AuditEvent(Base):
    """Append-only; each event chains the hash of the one before it."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_ticket_seq", "ticket_id", "seq"),
        Index("ix_audit_actor_at", "actor", "at"),
        Index("ix_audit_action_at", "action", "at"),
        Index("ix_audit_at", "at"),
        Index("ix_audit_ticket_number_seq", "ticket_number", "seq"),
        Index("ix_audit_process_seq", "process_key", "process_version", "seq"),
    )

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(40))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    ticket_number: Mapped[str | None] = mapped_column(String(20))
    task_id: Mapped[str | None] = mapped_column(String(36))
    task_name: Mapped[str | None] = mapped_column(String(64))
    data: Mapped[str] = mapped_column(Text, default="{}")
    process_key: Mapped[str | None] = mapped_column(String(64))
    process_version: Mapped[int | None] = mapped_column(Integer)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """One row: the last sequence number and hash, locked to append in order."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, default=0)
    hash: Mapped[str] = mapped_column(String(64))


class Timer(Base):
    """A timer event a ticket's instance waits on: the worker finds due ones by index.

    Rewritten from ``workflow.waiting_events()`` at every save of the ticket. ``wake_at``
    is ``fire_at``, or later after a failed attempt (retried with a back-off).
    """

    __tablename__ = "timers"
    __table_args__ = (Index("ix_timers_wake_at", "wake_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))  # BPMN id of the timer event
    fire_at: Mapped[datetime] = mapped_column(UTCDateTime())
    wake_at: Mapped[datetime] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)


class Notification(Base):
    """One message to one user: listed in the app, delivered by e-mail from this outbox."""

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_user_id", "user_id", "id"),
        Index("ix_notifications_delivery", "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    kind: Mapped[str] = mapped_column(String(30))
    subject: Mapped[str] = mapped_column(String(250))
    body: Mapped[str] = mapped_column(Text, default="")
    email: Mapped[str] = mapped_column(String(200), default="")
    state: Mapped[str] = mapped_column(String(12), default="pending")  # sent|failed|no_email
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ServiceStateChange(Base):
    """Why a service is in its state: set by hand, or by an incident from monitoring."""

    __tablename__ = "service_state_changes"
    __table_args__ = (Index("ix_service_state_changes_service", "service_key", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    service_key: Mapped[str] = mapped_column(ForeignKey("services.key"))
    state: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text, default="")
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    actor: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class StepFailure(Base):
    """A unit of work the engine could not finish (a script or expression failed).

    The step itself was rolled back; this row keeps what was attempted so that an
    administrator sees the error and retries it once the process is fixed.
    """

    __tablename__ = "step_failures"
    __table_args__ = (Index("ix_step_failures_open", "resolved_at", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    task_id: Mapped[str | None] = mapped_column(String(36))
    operation: Mapped[str] = mapped_column(String(20))  # complete | timer
    actor: Mapped[str] = mapped_column(String(64))
    data: Mapped[str] = mapped_column(Text, default="{}")  # the data submitted, to retry with
    element: Mapped[str | None] = mapped_column(String(64))  # BPMN id that failed
    error: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    resolved_by: Mapped[str | None] = mapped_column(String(64))
