"""Plain results the facade returns: never ORM rows nor SpiffWorkflow objects."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

T = TypeVar("T")

# Who is who, by role (admins hold every right).
STAFF_ROLES = frozenset({"agent", "manager", "admin", "auditor", "process_owner"})
REPORTING_ROLES = frozenset({"requester", "agent", "manager", "admin"})
DESK_ROLES = frozenset({"agent", "manager", "admin"})


@dataclass(frozen=True)
class Actor:
    """Who is acting: a signed-in user, or ``system`` for automatic work."""

    username: str
    roles: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    name: str = ""
    email: str = ""
    user_id: int | None = None

    def has(self, role: str) -> bool:
        return role in self.roles or "admin" in self.roles

    @property
    def is_staff(self) -> bool:
        """Staff see every ticket; requesters only their own."""
        return bool(self.roles & STAFF_ROLES)

    @property
    def may_report(self) -> bool:
        """Open incidents and order items (auditors, process owners, monitors may not)."""
        return bool(self.roles & REPORTING_ROLES)

    @property
    def works_desk(self) -> bool:
        """Agents, managers and admins work queues at the desk."""
        return bool(self.roles & DESK_ROLES)


SYSTEM = Actor(username="system", roles=frozenset({"admin"}), name="Guichet")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    total: int
    page: int = 1
    per_page: int = 25


@dataclass(frozen=True)
class TaskInfo:
    id: str
    name: str
    title: str
    ticket: str
    group: str | None
    assignee: str | None
    form: dict[str, Any]
    due_at: datetime | None
    created_at: datetime
    for_requester: bool = False
    ticket_title: str = ""
    priority: str | None = None
    status: str = "ready"
    ticket_status: str = ""
    service: str | None = None


@dataclass(frozen=True)
class ProcessRef:
    key: str
    version: int


@dataclass(frozen=True)
class TicketInfo:
    number: str
    kind: str
    title: str
    description: str
    status: str
    priority: str | None
    requester: str
    service: str | None
    item: str | None
    group: str | None
    assignee: str | None
    channel: str
    created_at: datetime
    updated_at: datetime
    resolved_at: datetime | None
    closed_at: datetime | None
    response_due_at: datetime | None
    due_at: datetime | None
    process: ProcessRef
    tasks: list[TaskInfo] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    paused_at: datetime | None = None  # the resolution clock is paused (awaiting requester)


@dataclass(frozen=True)
class AuditEventInfo:
    seq: int
    at: datetime
    actor: str
    action: str
    ticket: str | None
    task: str | None
    data: dict[str, Any]
    process: ProcessRef | None
    hash: str


@dataclass(frozen=True)
class ProcessVersionInfo:
    key: str
    kind: str
    version: int
    name: str
    sha256: str
    deployed_at: datetime
    deployed_by: str


@dataclass(frozen=True)
class DeployOutcome:
    key: str
    version: int
    created: bool  # False when the content equals the current version


@dataclass(frozen=True)
class CatalogItemInfo:
    key: str
    name: str
    description: str
    needs_approval: bool
    auto_accept: bool
    auto_fulfil: bool
    fulfilment_group: str
    form: dict[str, Any]


@dataclass(frozen=True)
class ServiceInfo:
    key: str
    name: str
    state: str


@dataclass(frozen=True)
class GroupInfo:
    key: str
    name: str
    level: int


@dataclass(frozen=True)
class CommentInfo:
    id: int
    ticket: str
    author: str
    author_name: str
    body: str
    internal: bool
    created_at: datetime


@dataclass(frozen=True)
class ProgressStep:
    """One line of a requester's progress view."""

    title: str
    state: str  # done | current | next
    who: str | None
    at: datetime | None


@dataclass(frozen=True)
class TraceInfo:
    """A ticket's path through its process version, for drawing on the diagram."""

    ticket: str
    process: ProcessRef
    xml: str
    visits: dict[str, int]  # element id -> times passed
    waiting: list[str]  # element ids of the open tasks
    events: list[AuditEventInfo]
    element_events: dict[str, list[int]]  # element id -> event seqs


@dataclass(frozen=True)
class ElementChange:
    """One difference between two versions of a process or decision table."""

    element: str
    kind: str  # added | removed | changed
    type: str
    name: str
    details: list[str]


@dataclass(frozen=True)
class MigrationCandidate:
    ticket: str
    from_version: int
    to_version: int
    movable: bool
    reason: str


@dataclass(frozen=True)
class MigrationResult:
    ticket: str
    moved: bool
    reason: str


@dataclass(frozen=True)
class NotificationInfo:
    id: int
    kind: str
    subject: str
    body: str
    ticket: str | None
    created_at: datetime
    state: str  # delivery: pending | sent | failed | no_email
    read: bool
    attempts: int = 0
    last_error: str | None = None
    user: str | None = None


@dataclass(frozen=True)
class ServiceStatus:
    """A service on the status page: its state, why, and the incidents affecting it."""

    key: str
    name: str
    state: str
    since: datetime | None
    reason: str
    incidents: list[TicketInfo]
    restore_at: datetime | None  # the latest resolution due time of its open incidents


@dataclass(frozen=True)
class FailureInfo:
    """A unit of work the engine could not finish, for administrators to retry."""

    id: int
    ticket: str
    task_id: str | None
    operation: str
    actor: str
    element: str | None
    error: str
    at: datetime
    attempts: int
    resolved_at: datetime | None
    resolved_by: str | None


@dataclass(frozen=True)
class WorkerRound:
    """What one pass of the worker did."""

    fired: int = 0
    failed: int = 0
    sent: int = 0
    undelivered: int = 0

    def __add__(self, other: WorkerRound) -> WorkerRound:
        return WorkerRound(self.fired + other.fired, self.failed + other.failed,
                           self.sent + other.sent, self.undelivered + other.undelivered)


# -- reports ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportFilters:
    """Which tickets a report covers: the period ``[since, until)`` and optional equalities.

    ``since``/``until`` left out mean the 30 days up to now; ``group`` is the ticket's
    current group (for work per group: the task's group).
    """

    since: datetime | None = None
    until: datetime | None = None
    kind: str | None = None
    service: str | None = None
    group: str | None = None
    priority: str | None = None
    process_version: int | None = None


@dataclass(frozen=True)
class KpiSummary:
    """The headline KPIs of a period; rates are fractions (None when nothing to measure),
    per-priority figures are keyed ``P1``..``P5``."""

    filters: ReportFilters  # with the period filled in
    created: int  # tickets created in the period
    resolved: int  # tickets resolved in the period
    mttr_hours: dict[str, float | None]
    median_ttr_hours: dict[str, float | None]
    mttr_hours_overall: float | None
    median_ttr_hours_overall: float | None
    fcr_rate: float | None
    escalation_rate: float | None
    escalation_depth: float | None
    reopen_rate: float | None
    sla_compliance: float | None  # resolution targets met
    sla_response_compliance: float | None
    sla_by_priority: dict[str, dict[str, float | None]]  # response|resolution -> P1..P5
    backlog: dict[str, int]  # open now, per priority
    backlog_unprioritized: int  # open now, not qualified yet
    backlog_overdue: int  # open now and past their resolution due date
    volume: dict[str, int]  # created in the period, per category


@dataclass(frozen=True)
class ReportTable:
    """The numbers behind one chart: named columns and rows (also its CSV download)."""

    name: str
    title: str
    columns: list[str]
    rows: list[list[Any]]


@dataclass(frozen=True)
class Report:
    """The KPIs and every chart's numbers for the /reports page."""

    filters: ReportFilters  # with the period filled in
    kpis: KpiSummary | None  # None when only some charts were asked for, none needing them
    bucket: str  # day | week | month: the step of the charts over time
    tables: dict[str, ReportTable]
