"""Realistic historical tickets in bulk, for scale tests (``guichet demo-data --tickets N``).

``generate(url, n)`` adds ``n`` tickets spread over the last two years: about 70 %
incidents and 30 % requests, most of them closed, about 3 % still open. It writes rows
directly (PostgreSQL ``COPY``, SQLite ``executemany``), all in one transaction:

- ``tickets`` with numbers continuing the ``counters``, priorities, services, groups,
  requesters (``user0001``..``user0200`` are created when missing, with alice's password
  hash), created/resolved/closed times and SLA due dates that agree with each other;
- ``tasks``: for a closed ticket one completed task (the one that resolved or rejected
  it, or the closing one when fulfilment was automatic); for an open ticket the tasks
  already done and its ready task, in the right inbox;
- the report columns of ``tickets``: first answer of the desk (``responded_at``),
  escalations, reopens and the incident's category, drawn from their own random stream
  for closed tickets (so the rest of a seed's history is unchanged), read off the run for
  open ones;
- ``ticket_states`` for open tickets only: each one is really run by SpiffWorkflow in
  memory (with the sandbox, its clock set to the time of each step) up to its current
  wait state, so it can be completed like any other ticket, and its pending timers (SLA
  warning and breach, auto-close) go to ``timers``; a target already breached on the way
  leaves the managers' review task ready. Closed tickets get no state row: nothing can
  run any more, and the ticket page shows them without process variables;
- ``audit_events``: a compact history per ticket (``ticket_created`` and, unless the
  ticket is new, one ``ticket_status_changed`` to its current status, both with
  ``"generated": true`` in their data), chained after the current head with
  ``engine.audit``'s hashes, so ``guichet audit verify`` passes.

On PostgreSQL, foreign-key triggers are switched off for the load when the role may do so
(``session_replication_role``; rows are consistent by construction, and SQLite, which
checks every key, runs the same code in the tests). Run ``guichet deploy`` first.
"""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing
import os
import queue
import random
import threading
import time
from bisect import bisect
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from typing import Any

from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from sqlalchemy import Engine, Table, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from . import audit, deploy, runtime, timers
from .bpmn import dump_state
from .clock import FrozenClock, after, instant, utcnow
from .definitions import DefinitionCache, LoadedDefinition
from .persistence.db import make_engine
from .persistence.models import (
    AuditEvent,
    AuditHead,
    CatalogItem,
    Counter,
    Membership,
    ProcessVersion,
    Service,
    Task,
    Ticket,
    TicketState,
    Timer,
    User,
)
from .scripting import DeskScriptEngine
from .services import SERVICE_OPERATORS
from .tickets import PREFIXES, REQUESTER

HISTORY_DAYS = 730
EXTRA_REQUESTERS = 200
CHUNK = 20_000
# Below this many open tickets they are run in this process, above in a helper process.
PARALLEL_OPEN = 2_000
# From this many tickets on, PostgreSQL builds secondary indexes after the load.
DEFER_INDEXES = 50_000
INCIDENT_SHARE = 0.70
# Status weights per kind; the rest is closed. About 3 % of tickets are open.
STATUS_WEIGHTS = {
    "incident": {"new": 0.008, "in_progress": 0.015, "resolved": 0.007},
    "request": {"new": 0.006, "pending_approval": 0.008, "in_progress": 0.010,
                "resolved": 0.006, "rejected": 0.040},
}
OPEN_STATUSES = ("new", "in_progress", "pending_approval", "resolved")
PRIORITY_WEIGHTS = {"P1": 0.02, "P2": 0.08, "P3": 0.30, "P4": 0.40, "P5": 0.20}
# (impact, urgency) pairs the priority matrix maps to each priority.
IMPACT_URGENCY = {
    "P1": [("high", "high")],
    "P2": [("high", "medium"), ("medium", "high")],
    "P3": [("high", "low"), ("medium", "medium"), ("low", "high")],
    "P4": [("medium", "low"), ("low", "medium")],
    "P5": [("low", "low")],
}
# Response and resolution targets, when sla.dmn cannot be read.
SLA = {"P1": ("PT15M", "PT4H"), "P2": ("PT30M", "PT8H"), "P3": ("PT2H", "PT24H"),
       "P4": ("PT8H", "P3D"), "P5": ("P1D", "P7D")}
CHANNELS = (("portal", 0.55), ("email", 0.25), ("phone", 0.15), ("api", 0.05))
FIRST_CONTACT_SHARE = 0.55
# service: (category, group an escalation goes to, titles)
INCIDENTS = {
    "email": ("software", "applications", [
        "Mail does not sync", "Cannot send attachments", "Outlook keeps asking for my password",
        "Shared mailbox missing", "Calendar invitations are not received",
        "Mails stuck in the outbox", "Mailbox full warning"]),
    "vpn": ("network", "network", [
        "VPN drops every hour", "Cannot connect to the VPN from home", "VPN is very slow",
        "VPN certificate expired", "No access to file shares over VPN",
        "VPN client crashes at start"]),
    "erp": ("software", "applications", [
        "ERP screen freezes when saving", "Cannot post invoices in the ERP",
        "ERP report shows wrong totals", "ERP login refused", "ERP export to Excel fails",
        "Purchase orders stuck in approval"]),
    "laptop": ("hardware", "service_desk", [
        "Laptop does not start", "Screen flickers", "Battery drains in an hour",
        "Keyboard keys stuck", "Docking station not detected", "Laptop overheats",
        "Wi-Fi adapter not found"]),
}
REQUEST_TITLES = {
    "access": ["Access to the ERP", "Access to the sales mailbox", "VPN access for a contractor",
               "Access to the finance reports"],
    "laptop": ["New laptop for a new hire", "Developer laptop", "Replacement laptop"],
    "info": ["How do I share my calendar?", "Which printer should I use?",
             "How to set up MFA on my phone?", "Where are the expense forms?"],
    "password_reset": ["Password reset", "Reset my ERP password"],
}
OPEN_ITEMS = {"new": ("access", "laptop"), "pending_approval": ("access", "laptop"),
              "in_progress": ("info", "access", "laptop"),
              "resolved": ("password_reset", "info", "laptop")}
SITES = ["Lyon, building A", "Paris HQ, 3rd floor", "Nantes office", "Lille, room 204"]
DESCRIPTION = "Generated history."


def generate(target: Any, n: int, seed: int = 1, now: datetime | None = None, *,
             mix: dict[tuple[str, str], float] | None = None,
             requesters: list[str] | None = None,
             open_age_days: float = 5.0) -> dict[str, Any]:
    """Insert ``n`` more historical tickets into the database; returns what was written.

    ``target``: a database URL, a SQLAlchemy ``Engine``, or anything with ``.db.engine``
    (a ``ServiceDesk``). Needs the demo directory and the deployed processes. Each call
    adds ``n`` tickets (numbers continue); ``seed`` makes the content repeatable.
    ``mix`` overrides the share of each (kind, status), e.g. ``{("incident", "new"): 1}``;
    ``requesters`` the usernames requesters are drawn from (default alice, bob and
    ``user0001``..``user0200``, created when missing); ``open_age_days`` the mean age of
    open tickets (at most 60 days; a small value gives a fresh backlog, within its SLA).
    """
    if n < 0:
        raise ValueError("the number of tickets cannot be negative")
    table = _mix_table(mix or DEFAULT_MIX)
    started = time.perf_counter()
    engine, owned = _engine(target)
    now = (now or utcnow()).astimezone(UTC)
    rng = random.Random(seed)
    try:
        with engine.execution_options(write=True).begin() as conn:
            session = Session(bind=conn, autoflush=False)
            ctx = _Context.load(session, now, requesters)
            writer = _writer(conn)
            plan = _plan(rng, n, now, table, open_age_days)
            counts = _write(session, ctx, rng, seed, writer, plan)
            session.flush()
            session.close()
        if engine.dialect.name == "postgresql" and n:
            began = time.perf_counter()
            # VACUUM as well as ANALYZE: the state autovacuum leaves a real database in, where
            # index-only scans (inbox counts) need not visit the freshly written table pages.
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text(
                    "VACUUM (ANALYZE) tickets, tasks, ticket_states, audit_events, users"))
            counts["analyze_seconds"] = round(time.perf_counter() - began, 2)
    finally:
        if owned:
            engine.dispose()
    counts["users_created"] = ctx.users_created
    counts["seconds"] = round(time.perf_counter() - started, 2)
    return counts


# -- set-up -------------------------------------------------------------------------------


def _engine(target: Any) -> tuple[Engine, bool]:
    if isinstance(target, str):
        return make_engine(target), True
    if isinstance(target, Engine):
        return target, False
    inner = getattr(getattr(target, "db", None), "engine", None) or getattr(target, "engine", None)
    if isinstance(inner, Engine):
        return inner, False
    raise TypeError(f"expected a database URL, an Engine or a ServiceDesk, not {target!r}")


@dataclass
class _Item:
    key: str
    needs_approval: bool
    auto_accept: bool
    auto_fulfil: bool
    fulfilment_group: str


@dataclass
class _Context:
    """Reference data read once: definitions, people, catalog, SLA targets."""

    now: datetime
    definitions: dict[str, LoadedDefinition]
    requesters: list[tuple[int, str]]
    members: dict[str, list[tuple[int, str]]]
    items: dict[str, _Item]
    services: list[str]
    sla: dict[str, tuple[timedelta, timedelta]]
    users_created: int = 0
    script_engine: DeskScriptEngine | None = None
    clock: FrozenClock | None = None  # the script engine's: set to each step's time

    @classmethod
    def load(cls, s: Session, now: datetime, usernames: list[str] | None = None) -> _Context:
        cache = DefinitionCache()
        definitions = {}
        for kind, key in (("incident", "incident"), ("request", "service_request")):
            row = deploy.current_definition(s, key)
            if row is None:
                raise LookupError(f"process {key!r} is not deployed: run 'guichet deploy' first")
            definitions[kind] = cache.get(s, row.id)
        alice = s.scalars(select(User).where(User.username == "alice")).first()
        if alice is None:
            raise LookupError("the demo directory is missing: run 'guichet demo-data' first")
        missing = []
        if usernames is None:
            wanted = [f"user{i:04d}" for i in range(1, EXTRA_REQUESTERS + 1)]
            existing = set(s.scalars(select(User.username).where(User.username.in_(wanted))))
            missing = [u for u in wanted if u not in existing]
            s.add_all(User(username=u, name=f"User {u[4:]}", email=f"{u}@guichet.example",
                           password_hash=alice.password_hash, roles="requester", active=True)
                      for u in missing)
            s.flush()
            usernames = ["alice", "bob", *wanted]
        requesters = sorted((uid, name) for uid, name in s.execute(
            select(User.id, User.username).where(User.username.in_(usernames))))
        unknown = set(usernames) - {name for _, name in requesters}
        if unknown or not requesters:
            raise LookupError(f"unknown requesters: {sorted(unknown)}")
        members: dict[str, list[tuple[int, str]]] = {}
        for group, uid, name in s.execute(
                select(Membership.group_key, User.id, User.username)
                .join(User, User.id == Membership.user_id).where(User.active.is_(True))
                .order_by(User.id)):
            members.setdefault(group, []).append((uid, name))
        items = {i.key: _Item(i.key, i.needs_approval, i.auto_accept, i.auto_fulfil,
                              i.fulfilment_group) for i in s.scalars(select(CatalogItem))}
        for key in REQUEST_TITLES:
            if key not in items:
                raise LookupError(f"catalog item {key!r} is missing: run 'guichet demo-data'")
        services = [k for k in s.scalars(select(Service.key).order_by(Service.key))
                    if k in INCIDENTS] or sorted(INCIDENTS)
        ctx = cls(now=now, definitions=definitions, requesters=requesters, members=members,
                  items=items, services=services, sla=_sla_targets(s, definitions["incident"]))
        ctx.users_created = len(missing)
        return ctx

    def agent(self, rng: random.Random, group: str | None) -> tuple[int | None, str]:
        people = self.members.get(group or "")
        if not people:
            return None, "system"
        return people[rng.randrange(len(people))]

    def requester(self, rng: random.Random) -> tuple[int, str]:
        return self.requesters[rng.randrange(len(self.requesters))]


def _sla_targets(s: Session, definition: LoadedDefinition) -> dict[str, tuple[timedelta, ...]]:
    """Response and resolution targets per priority, from the deployed ``sla`` table."""
    targets = dict(SLA)
    row = s.scalars(select(ProcessVersion).where(
        ProcessVersion.key == "sla",
        ProcessVersion.version == definition.decisions.get("sla"))).first()
    if row is not None:
        table = json.loads(row.elements).get("sla", {})
        names = [o.get("name") for o in table.get("outputs", [])]
        for rule in table.get("rules", []):
            cells = [c.strip().strip('"') for c in rule.get("inputs", [])]
            values = dict(zip(names, (c.strip().strip('"') for c in rule.get("outputs", [])),
                              strict=False))
            if cells and cells[0] in targets and values.get("resolution_target"):
                targets[cells[0]] = (values.get("response_target") or targets[cells[0]][0],
                                     values["resolution_target"])
    origin = datetime(2024, 1, 1, tzinfo=UTC)  # the targets are hours and days: fixed lengths
    return {p: tuple((after(origin, iso) or origin + timedelta(days=1)) - origin for iso in pair)
            for p, pair in targets.items()}


# -- what to generate ---------------------------------------------------------------------


def _weighted(pairs) -> tuple[list[Any], list[float]]:
    pairs = list(pairs)
    return [v for v, _ in pairs], list(accumulate(w for _, w in pairs))


def _pick(rng: random.Random, table: tuple[list[Any], list[float]]) -> Any:
    values, cumulative = table
    return values[min(bisect(cumulative, rng.random() * cumulative[-1]), len(values) - 1)]


DEFAULT_MIX = {
    (kind, status): share * weight
    for kind, share in (("incident", INCIDENT_SHARE), ("request", 1 - INCIDENT_SHARE))
    for status, weight in [*STATUS_WEIGHTS[kind].items(),
                           ("closed", 1.0 - sum(STATUS_WEIGHTS[kind].values()))]
}
STATUSES = {"incident": {*OPEN_STATUSES, "closed"} - {"pending_approval"},
            "request": {*OPEN_STATUSES, "closed", "rejected"}}


def _mix_table(mix: dict[tuple[str, str], float]) -> tuple[list[Any], list[float]]:
    for key, weight in mix.items():
        kind, status = key
        if status not in STATUSES.get(kind, ()) or weight < 0:
            raise ValueError(f"cannot generate {key!r} tickets with weight {weight!r}")
    if not sum(mix.values()):
        raise ValueError("the mix has no positive weight")
    return _weighted(sorted(mix.items()))
_PRIORITIES = _weighted(PRIORITY_WEIGHTS.items())
_CHANNELS = _weighted(CHANNELS)


def _plan(rng: random.Random, n: int, now: datetime, mix: tuple[list[Any], list[float]],
          open_age_days: float) -> list[tuple[float, str, str]]:
    """(created timestamp, kind, status) per ticket, oldest first (numbers follow time)."""
    end = now.timestamp()
    span = HISTORY_DAYS * 86400.0
    plan = []
    for _ in range(n):
        kind, status = _pick(rng, mix)
        if status in OPEN_STATUSES:
            # Open tickets are recent: a few days old on average, at most 60 days.
            mean = max(open_age_days * 86400.0, 1.0)
            age = min(rng.expovariate(1 / mean), 60 * 86400.0) + min(600.0, mean)
        else:
            age = 86400.0 + rng.random() * (span - 86400.0)
        plan.append((end - age, kind, status))
    plan.sort()
    return plan


# -- rows ---------------------------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1)
_TICKET_COLUMNS = (
    "id", "number", "kind", "title", "description", "status", "priority", "requester_id",
    "service_key", "item_key", "group_key", "assignee_id", "channel", "created_at",
    "updated_at", "resolved_at", "closed_at", "response_due_at", "due_at", "definition_id",
    "process_key", "process_version", "lock_version",
    # report columns: first answer of the desk, escalations, reopens, category
    "responded_at", "escalation_count", "reopen_count", "category", "paused_at", "fingerprint",
)
_TASK_COLUMNS = (
    "id", "ticket_id", "name", "title", "group_key", "for_requester", "requester_id",
    "assignee_id", "state", "form", "created_at", "completed_at", "completed_by_id", "due_at",
)
_STATE_COLUMNS = ("ticket_id", "state", "variables")
_TIMER_COLUMNS = ("ticket_id", "name", "fire_at", "wake_at", "attempts", "last_error")
_AUDIT_COLUMNS = (
    "seq", "at", "actor", "action", "ticket_id", "ticket_number", "task_id", "task_name",
    "data", "process_key", "process_version", "prev_hash", "hash",
)


def _ts(value: float) -> datetime:
    """A naive UTC datetime (what the columns store) from a POSIX timestamp."""
    return _EPOCH + timedelta(microseconds=round(value * 1e6))


def _task_id(pool: list[bytes]) -> str:
    """A random (version 4) UUID as text, cheaper than ``str(uuid.uuid4())``."""
    if not pool:
        raw = os.urandom(16 * 4096)
        pool.extend(raw[i:i + 16] for i in range(0, len(raw), 16))
    h = pool.pop().hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


class _Writer:
    """Rows to a table in column order; columns added later get their scalar default."""

    def __init__(self, conn) -> None:
        self.conn = conn
        self.dbapi = conn.connection.driver_connection
        self.rows = {"tickets": 0, "tasks": 0, "ticket_states": 0, "audit_events": 0,
                     "timers": 0}
        self.seconds: dict[str, float] = {}
        self.notes: list[str] = []
        # Columns this module does not know (added since): filled with their default.
        self.defaulted: set[str] = set()

    def columns(self, table: Table, mine: tuple[str, ...]) -> tuple[tuple[str, ...], tuple]:
        names, values = list(mine), []
        for column in table.columns:
            if column.name in mine or column is table.autoincrement_column:
                continue  # given, or numbered by the database
            default = column.default.arg if column.default is not None else None
            if callable(default) or (default is None and not column.nullable
                                     and column.server_default is None):
                raise RuntimeError(f"engine.bulk does not know how to fill "
                                   f"{table.name}.{column.name}: teach it")
            self.defaulted.add(f"{table.name}.{column.name}")
            if default is None and column.server_default is not None:
                continue  # the database fills it
            names.append(column.name)
            values.append(default)
        return tuple(names), tuple(values)

    def start(self, n: int) -> None:
        """Called once before the first row."""

    def finish(self) -> None:
        """Called once after the last row (rows are all written when it returns)."""

    def abort(self) -> None:
        """Called instead of ``finish`` when the load fails."""

    def write(self, table: Table, mine: tuple[str, ...], rows: list[tuple]) -> None:
        if not rows:
            return
        names, extra = self.columns(table, mine)
        if extra:
            rows = [r + extra for r in rows]
        self.rows[table.name] += len(rows)
        self._timed(table.name, names, rows)

    def _timed(self, table: str, names: tuple[str, ...], rows: list[tuple]) -> None:
        began = time.perf_counter()
        self._write(table, names, rows)
        self.seconds[table] = self.seconds.get(table, 0.0) + time.perf_counter() - began

    def _write(self, table: str, names: tuple[str, ...], rows: list[tuple]) -> None:
        raise NotImplementedError

    def ticket_ids(self, n: int) -> list[int]:
        raise NotImplementedError


class _PostgresWriter(_Writer):
    """COPY from a second thread (the rows of the next chunk are built meanwhile).

    A large load into small tables drops their secondary indexes first and builds them
    again at the end (faster than updating them row by row); the tables are locked
    meanwhile, which only matters to a live database.
    """

    TABLES = ("tickets", "tasks", "audit_events")

    def __init__(self, conn) -> None:
        super().__init__(conn)
        self.queue: queue.Queue = queue.Queue(maxsize=8)
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.indexes: list[tuple[str, str]] = []

    def start(self, n: int) -> None:
        try:
            with self.conn.begin_nested():
                self.conn.execute(text("SET LOCAL session_replication_role = replica"))
            self.notes.append("foreign-key triggers off during the load")
        except DBAPIError:
            self.notes.append("foreign keys checked row by row (role may not switch them off)")
        self._defer_indexes(n)
        self.thread = threading.Thread(target=self._run, name="bulk-copy", daemon=True)
        self.thread.start()

    def _defer_indexes(self, n: int) -> None:
        if n < DEFER_INDEXES:
            return
        sizes = dict(self.conn.execute(text(
            "SELECT relname, greatest(reltuples, 0) FROM pg_class "
            "WHERE relkind = 'r' AND relname IN ('tickets', 'tasks', 'audit_events') "
            "AND relnamespace = 'public'::regnamespace")).all())
        if any(sizes.get(t, 0) > n for t in self.TABLES):
            return
        self.indexes = [(name, ddl) for name, ddl in self.conn.execute(text(
            "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) "
            "FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
            "WHERE c.relname IN ('tickets', 'tasks', 'audit_events') "
            "AND c.relnamespace = 'public'::regnamespace "
            "AND NOT i.indisprimary AND NOT i.indisunique"))]
        for name, _ in self.indexes:
            self.conn.execute(text(f"DROP INDEX {name}"))
        if self.indexes:
            self.notes.append(f"{len(self.indexes)} secondary indexes built after the load")

    def _run(self) -> None:
        while True:
            job = self.queue.get()
            if job is None:
                return
            if self.error is None:
                try:
                    self._timed(*job)
                except BaseException as err:  # handed to the main thread
                    self.error = err

    def write(self, table: Table, mine: tuple[str, ...], rows: list[tuple]) -> None:
        if self.thread is None:
            super().write(table, mine, rows)
            return
        if self.error is not None:
            raise self.error
        if rows:
            names, extra = self.columns(table, mine)
            self.rows[table.name] += len(rows)
            self.queue.put((table.name, names, [r + extra for r in rows] if extra else rows))

    def finish(self) -> None:
        if self.thread is not None:
            self.queue.put(None)
            self.thread.join()
            self.thread = None
        if self.error is not None:
            raise self.error
        if self.indexes:
            began = time.perf_counter()
            self.conn.execute(text("SET LOCAL maintenance_work_mem = '256MB'"))
            for _, ddl in self.indexes:
                self.conn.execute(text(ddl))
            self.seconds["indexes"] = time.perf_counter() - began

    def abort(self) -> None:
        if self.thread is not None:
            self.error = self.error or RuntimeError("aborted")
            self.queue.put(None)
            self.thread.join()
            self.thread = None

    def _write(self, table: str, names: tuple[str, ...], rows: list[tuple]) -> None:
        with self.dbapi.cursor() as cur, cur.copy(
                f"COPY {table} ({', '.join(names)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def ticket_ids(self, n: int) -> list[int]:
        with self.dbapi.cursor() as cur:
            cur.execute("SELECT nextval(pg_get_serial_sequence('tickets', 'id')) "
                        "FROM generate_series(1, %s)", (n,))
            return sorted(r[0] for r in cur.fetchall())


class _SqliteWriter(_Writer):
    def _write(self, table: str, names: tuple[str, ...], rows: list[tuple]) -> None:
        marks = ", ".join("?" for _ in names)
        cur = self.dbapi.cursor()
        try:
            cur.executemany(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({marks})",
                            [tuple(map(_sqlite_value, r)) for r in rows])
        finally:
            cur.close()

    def ticket_ids(self, n: int) -> list[int]:
        # The write lock is held (BEGIN IMMEDIATE): nobody else can take these ids.
        start = self.conn.execute(text("SELECT coalesce(max(id), 0) FROM tickets")).scalar_one()
        return list(range(start + 1, start + n + 1))


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")  # SQLAlchemy's SQLite DATETIME format
    if isinstance(value, bool):
        return int(value)
    return value


def _writer(conn) -> _Writer:
    if conn.dialect.name == "postgresql":
        return _PostgresWriter(conn)
    if conn.dialect.name == "sqlite":
        return _SqliteWriter(conn)
    raise NotImplementedError(f"bulk generation does not support {conn.dialect.name}")


class _Chain:
    """Appends audit events after the current head, hashed exactly like ``engine.audit``.

    ``audit.canonical`` would parse each event's data back from JSON; here the JSON of
    each distinct data (few: they repeat) is computed once, and the first event built
    from each is checked against ``audit.canonical`` byte for byte.
    """

    def __init__(self, session: Session) -> None:
        self.head = session.execute(
            select(AuditHead).where(AuditHead.id == 1).with_for_update()).scalar_one()
        self.seq, self.hash = self.head.seq, self.head.hash
        self.rows: list[tuple] = []
        self._data: dict[Any, tuple[str, str, bool]] = {}
        self._strings: dict[Any, str] = {}

    def _json(self, value: Any) -> str:
        found = self._strings.get(value)
        if found is None:
            found = self._strings[value] = json.dumps(value)
        return found

    def add(self, at: datetime, actor: str, action: str, ticket_id: int, number: str,
            data: dict[str, Any], key: str, version: int, memo: Any = None) -> None:
        """Append one event; ``memo`` is a hashable stand-in for ``data`` (same memo, same
        data), or None."""
        cached = self._data.get(memo) if memo is not None else None
        if cached is None:
            cached = (json.dumps(data, sort_keys=True, default=str),
                      json.dumps(data, sort_keys=True, separators=(",", ":")), False)
            if memo is not None:
                self._data[memo] = cached
        text_data, compact, checked = cached
        seq = self.seq + 1
        canonical = (
            f'{{"action":{self._json(action)},"actor":{self._json(actor)},'
            f'"at":"{at.isoformat(timespec="microseconds")}+00:00","data":{compact},'
            f'"prev":"{self.hash}","process_key":{self._json(key)},'
            f'"process_version":{self._json(version)},"seq":{seq},"task":null,'
            f'"task_id":null,"ticket":{self._json(number)},"ticket_id":{ticket_id}}}'
        ).encode()
        if not checked:
            row = AuditEvent(seq=seq, at=at.replace(tzinfo=UTC), actor=actor, action=action,
                             ticket_id=ticket_id, ticket_number=number, task_id=None,
                             task_name=None, data=text_data, process_key=key,
                             process_version=version, prev_hash=self.hash)
            if audit.canonical(row) != canonical:
                raise RuntimeError("engine.audit.canonical changed: update engine.bulk._Chain")
            if memo is not None:
                self._data[memo] = (text_data, compact, True)
        digest = hashlib.sha256(canonical).hexdigest()
        self.rows.append((seq, at, actor, action, ticket_id, number, None, None, text_data, key,
                          version, self.hash, digest))
        self.seq, self.hash = seq, digest

    def take(self) -> list[tuple]:
        rows, self.rows = self.rows, []
        return rows

    def close(self) -> None:
        self.head.seq, self.head.hash = self.seq, self.hash


def _reserve_numbers(session: Session, plan: list[tuple[float, str, str]]) -> dict[str, int]:
    """Take the next numbers of each kind from ``counters``; returns the first of each."""
    wanted = {kind: sum(1 for _, k, _ in plan if k == kind) for kind in PREFIXES}
    rows = {c.name: c.value for c in session.scalars(select(Counter).with_for_update())}
    first = {}
    for kind, prefix in PREFIXES.items():
        if prefix not in rows:
            session.add(Counter(name=prefix, value=0))
            session.flush()
        current = rows.get(prefix, 0)
        first[kind] = current + 1
        session.execute(update(Counter).where(Counter.name == prefix)
                        .values(value=current + wanted[kind]))
    return first


def _write(session: Session, ctx: _Context, rng: random.Random, seed: int, writer: _Writer,
           plan: list[tuple[float, str, str]]) -> dict[str, Any]:
    next_number = _reserve_numbers(session, plan)
    first_numbers = {k: f"{PREFIXES[k]}-{v:06d}" for k, v in next_number.items()}
    ids = writer.ticket_ids(len(plan)) if plan else []
    numbers = []
    for _, kind, _ in plan:
        numbers.append(f"{PREFIXES[kind]}-{next_number[kind]:06d}")
        next_number[kind] += 1
    jobs = [(i, ids[i], numbers[i], kind, status, created, seed)
            for i, (created, kind, status) in enumerate(plan) if status in OPEN_STATUSES]
    opened, pool = _open_tickets(ctx, jobs)
    chain = _Chain(session)
    extra = random.Random(f"{seed}:reports")  # the report columns: the rest stays as it was
    by_status: dict[str, int] = {}
    uuids: list[bytes] = []
    build = wait = 0.0
    writer.start(len(plan))
    try:
        for start in range(0, len(plan), CHUNK):
            began = time.perf_counter()
            tickets, tasks, states, waiting = [], [], [], []
            for i in range(start, min(start + CHUNK, len(plan))):
                created, kind, status = plan[i]
                by_status[status] = by_status.get(status, 0) + 1
                if status in OPEN_STATUSES:
                    waited = time.perf_counter()
                    ticket, task_rows, state, events, timer_rows = next(opened)
                    wait += time.perf_counter() - waited
                    tickets.append(ticket)
                    tasks.extend(task_rows)
                    states.append(state)
                    waiting.extend(timer_rows)
                    for at, actor, action, data in events:
                        chain.add(at, actor, action, ticket[0], ticket[1], data,
                                  ticket[20], ticket[21])
                else:
                    _closed_ticket(ctx, rng, chain, uuids, ids[i], numbers[i], kind, status,
                                   created, tickets, tasks, extra)
            build += time.perf_counter() - began
            writer.write(Ticket.__table__, _TICKET_COLUMNS, tickets)
            writer.write(Task.__table__, _TASK_COLUMNS, tasks)
            writer.write(TicketState.__table__, _STATE_COLUMNS, states)
            writer.write(Timer.__table__, _TIMER_COLUMNS, waiting)
            writer.write(AuditEvent.__table__, _AUDIT_COLUMNS, chain.take())
        writer.finish()
    except BaseException:
        writer.abort()
        raise
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
    chain.close()
    incidents = sum(1 for _, k, _ in plan if k == "incident")
    return {
        "tickets": len(plan), "incidents": incidents, "requests": len(plan) - incidents,
        "open": len(jobs), "by_status": dict(sorted(by_status.items())),
        "first_numbers": first_numbers if plan else {},
        "last_numbers": {k: f"{PREFIXES[k]}-{v - 1:06d}" for k, v in next_number.items()
                         if v - 1 >= int(first_numbers[k][4:])} if plan else {},
        "rows": dict(writer.rows), "audit": "compact: ticket_created + ticket_status_changed",
        "notes": writer.notes, "defaulted_columns": sorted(writer.defaulted),
        "build_seconds": round(build, 2), "open_wait_seconds": round(wait, 2),
        "write_seconds": {k: round(v, 2) for k, v in writer.seconds.items()},
    }


# -- closed tickets: rows only ------------------------------------------------------------


def _closed_ticket(ctx: _Context, rng: random.Random, chain: _Chain, uuids: list[bytes],
                   ticket_id: int, number: str, kind: str, status: str, created: float,
                   tickets: list, tasks: list, extra: random.Random) -> None:
    """A finished ticket: rows only. ``extra`` draws the report columns (first answer,
    escalations, reopens, category) so that the rest is what it was before they existed."""
    requester_id, requester = ctx.requester(rng)
    definition = ctx.definitions[kind]
    category = None
    if kind == "incident":
        service = ctx.services[rng.randrange(len(ctx.services))]
        category, escalation_group, titles = INCIDENTS[service]
        title = titles[rng.randrange(len(titles))]
        priority, item, fields = _pick(rng, _PRIORITIES), None, None
        channel = _pick(rng, _CHANNELS)
        first_contact = escalation_group == "service_desk" or rng.random() < FIRST_CONTACT_SHARE
        work_task = "qualify" if first_contact else "escalate"
        group = "service_desk" if first_contact else escalation_group
    else:
        item = ("access", "laptop", "info", "password_reset")[rng.randrange(4)]
        titles = REQUEST_TITLES[item]
        title, service, priority, channel = titles[rng.randrange(len(titles))], None, "P4", "portal"
        fields = _fields(rng, item, requester)
        group = ctx.items[item].fulfilment_group
        work_task = None if ctx.items[item].auto_fulfil else "fulfil"
    response_target, resolution_target = ctx.sla[priority]
    created_dt = _ts(created)
    due_at, response_due_at = created_dt + resolution_target, created_dt + response_target
    room = max(ctx.now.timestamp() - created - 60.0, 120.0)
    # The first answer of the desk: usually within the response target.
    answer = response_target.total_seconds() * math.exp(extra.gauss(-0.9, 0.8)) + 30.0
    escalations = reopens = 0
    if kind == "incident":
        if extra.random() < 0.15:
            category = ("access", "other")[extra.randrange(2)]
        if not first_contact:
            escalations = 1 if extra.random() < 0.8 else 2 if extra.random() < 0.8 else 3
        reopens = (extra.random() < 0.06) + (extra.random() < 0.1 * 0.06)
    elif status != "rejected":
        reopens = int(extra.random() < 0.03)
    if status == "rejected":
        at_approval = ctx.items[item].needs_approval and rng.random() < 0.5
        work_task, group = ("approve", "managers") if at_approval else ("qualify", "service_desk")
        assignee_id, last_actor = ctx.agent(rng, group)
        closed_dt = _ts(created + min(rng.expovariate(1 / 7200.0) + 300.0, room))
        resolved_dt = None
        responded_dt = closed_dt if work_task == "qualify" else min(
            _ts(created + answer), created_dt + (closed_dt - created_dt) / 2)
        tasks.append(_done_task(definition, _task_id(uuids), ticket_id, work_task, group,
                                assignee_id, created_dt, closed_dt, due_at))
    else:
        resolve = resolution_target.total_seconds() * math.exp(rng.gauss(-1.05, 0.9)) + 300.0
        confirm = rng.expovariate(1 / 36000.0) + 60.0
        close = rng.expovariate(1 / 14400.0) + 60.0
        if kind == "incident" and first_contact:  # resolved at once, while qualifying
            resolve = min(resolve, answer * math.exp(extra.gauss(0.5, 0.6)) + 60.0)
        total = resolve + confirm + close
        if total > room:
            resolve, confirm, close = (x * room / total for x in (resolve, confirm, close))
        resolved_dt = _ts(created + resolve)
        closed_dt = _ts(created + resolve + confirm + close)
        closer_id, last_actor = ctx.agent(rng, "service_desk")
        if (kind == "incident" and first_contact) or (item and ctx.items[item].auto_accept):
            responded_dt = resolved_dt  # qualified and resolved at once, or fulfilled
        else:
            responded_dt = min(_ts(created + answer), _ts(created + resolve / 2))
        if item and ctx.items[item].auto_fulfil:
            responded_dt = closed_dt  # no human step before the closing one
        if work_task:
            assignee_id, _ = ctx.agent(rng, group)
            tasks.append(_done_task(definition, _task_id(uuids), ticket_id, work_task, group,
                                    assignee_id, created_dt, resolved_dt, due_at))
        else:  # fulfilled automatically: the closing task is the only human one
            assignee_id = None
            tasks.append(_done_task(definition, _task_id(uuids), ticket_id, "close",
                                    "service_desk", closer_id, _ts(created + resolve + confirm),
                                    closed_dt, due_at))
    tickets.append((
        ticket_id, number, kind, title, DESCRIPTION, status, priority, requester_id, service,
        item, group, assignee_id, channel, created_dt, closed_dt, resolved_dt, closed_dt,
        response_due_at, due_at, definition.id, definition.key, definition.version, 1,
        responded_dt, escalations, reopens, category, None, None,
    ))
    chain.add(created_dt, requester, "ticket_created", ticket_id, number,
              {"kind": kind, "title": title, "description": DESCRIPTION, "service": service,
               "item": item, "fields": fields, "channel": channel, "generated": True},
              definition.key, definition.version,
              memo=(kind, title, service, item, channel, fields and tuple(fields.items())))
    chain.add(closed_dt, last_actor, "ticket_status_changed", ticket_id, number,
              {"from": "new", "to": status, "generated": True}, definition.key,
              definition.version, memo=status)


def _done_task(definition: LoadedDefinition, task_id: str, ticket_id: int, name: str,
               group: str | None, agent_id: int | None, created: datetime, completed: datetime,
               due_at: datetime | None, requester_id: int | None = None) -> tuple:
    """A completed task row; ``requester_id`` only for the requester's own tasks."""
    element = definition.elements.get(name, {})
    mine = requester_id is not None
    return (task_id, ticket_id, name, element.get("name") or name, None if mine else group,
            mine, requester_id, None, "completed",
            element.get("properties", {}).get("formJsonSchemaFilename"), created, completed,
            agent_id, None if mine else due_at)


def _fields(rng: random.Random, item: str, requester: str) -> dict[str, Any]:
    if item == "access":
        return {"application": ("erp", "email", "vpn")[rng.randrange(3)],
                "justification": "Needed for my new role in the team"}
    if item == "laptop":
        return {"model": ("standard", "developer")[rng.randrange(2)],
                "delivery_site": SITES[rng.randrange(len(SITES))]}
    if item == "info":
        return {"question": "Could you tell me how this works?"}
    return {"account": requester}


# -- open tickets: really run by the engine -----------------------------------------------

_WORKER_CONTEXT: _Context | None = None


def _open_tickets(ctx: _Context, jobs: list[tuple]):
    """An iterator over the open tickets' rows, in job order, and the pool computing them.

    Many open tickets are run in a helper process (forked, so it shares the loaded
    definitions) while this one builds the closed tickets and writes.
    """
    global _WORKER_CONTEXT
    if len(jobs) < PARALLEL_OPEN or "fork" not in multiprocessing.get_all_start_methods():
        return (_open_ticket(ctx, *job) for job in jobs), None
    _WORKER_CONTEXT = ctx
    try:
        pool = multiprocessing.get_context("fork").Pool(1)
    finally:
        _WORKER_CONTEXT = None
    return pool.imap(_open_ticket_in_worker, jobs, chunksize=64), pool


def _open_ticket_in_worker(job: tuple):
    return _open_ticket(_WORKER_CONTEXT, *job)


Step = tuple[str, dict[str, Any], int | None, str, str | None]


def _open_ticket(ctx: _Context, index: int, ticket_id: int, number: str, kind: str, status: str,
                 created: float, seed: int):
    """Run one ticket up to its status; returns its ticket row, task rows, state, events."""
    rng = random.Random(f"{seed}:{index}")
    if ctx.script_engine is None:
        ctx.clock = FrozenClock()
        ctx.script_engine = DeskScriptEngine(SERVICE_OPERATORS, ctx.clock)
    requester_id, requester = ctx.requester(rng)
    definition = ctx.definitions[kind]
    ctx.clock.now = _ts(created).replace(tzinfo=UTC)
    common = {"requester": requester, "ticket": number, "assignee_hint": None,
              "reopen_count": 0, "escalation_count": 0, "resolved_by": None,
              "resolved_group": None, "reported_at": ctx.clock.now.isoformat()}
    if kind == "incident":
        service = ctx.services[rng.randrange(len(ctx.services))]
        category, group, titles = INCIDENTS[service]
        title, channel, item, fields = titles[rng.randrange(len(titles))], _pick(
            rng, _CHANNELS), None, None
        data = {"title": title, "description": "Generated open ticket.", "service": service,
                "channel": channel, **common}
        steps = _incident_steps(ctx, rng, status, service, category, group)
    else:
        choices = OPEN_ITEMS[status]
        item = choices[rng.randrange(len(choices))]
        row = ctx.items[item]
        titles = REQUEST_TITLES[item]
        title, service, channel = titles[rng.randrange(len(titles))], None, "portal"
        fields = _fields(rng, item, requester)
        data = {"title": title, "description": "", "service": None, "channel": channel,
                "item": item, "fields": fields, "auto_accept": row.auto_accept,
                "needs_approval": row.needs_approval, "fulfilment_group": row.fulfilment_group,
                "auto_fulfil": row.auto_fulfil, "priority": "P4", "impact": "low",
                "urgency": "medium", **common}
        steps = _request_steps(ctx, rng, status, row)

    age = ctx.now.timestamp() - created
    times = sorted(created + age * rng.uniform(0.05, 0.95) for _ in steps)
    workflow = BpmnWorkflow(definition.spec, definition.subprocess_specs,
                            script_engine=ctx.script_engine)
    runtime.start(workflow, data)
    created_dt = previous = _ts(created)
    done, resolver_id = [], None
    for (name, form, actor_id, actor, group), at in zip(steps, times, strict=True):
        ready = [t for t in runtime.ready_user_tasks(workflow) if t.task_spec.bpmn_id == name]
        if not ready:
            waiting = [t.task_spec.bpmn_id for t in runtime.ready_user_tasks(workflow)]
            raise RuntimeError(f"{number}: expected task {name!r}, the process waits on {waiting}")
        task_id = str(ready[0].id)
        ctx.clock.now = _ts(at).replace(tzinfo=UTC)
        runtime.complete(workflow, task_id, form, actor, group)
        done.append((task_id, name, group, actor_id, actor, previous, _ts(at)))
        previous = _ts(at)
        resolver_id = actor_id
    ready = runtime.ready_user_tasks(workflow)
    # The main-line task carries a status; a side task (the review of a target breached
    # while the ticket waited) may be ready beside it.
    main = [t for t in ready if definition.properties(t.task_spec.bpmn_id).get("status")]
    if len(main) != 1:
        raise RuntimeError(f"{number}: expected one main ready task, found {len(main)}")
    task = main[0]
    variables = runtime.variables(workflow)
    props = definition.properties(task.task_spec.bpmn_id)
    if props.get("status", status) != status:
        raise RuntimeError(f"{number}: {task.task_spec.bpmn_id} means status "
                           f"{props.get('status')!r}, not {status!r}")

    aware = created_dt.replace(tzinfo=UTC)
    response_due_at, due_at = (
        None if value is None else value.astimezone(UTC).replace(tzinfo=None)
        for value in (instant(variables.get("response_due_at"))
                      or after(aware, variables.get("response_target")),
                      instant(variables.get("due_at"))
                      or after(aware, variables.get("resolution_target"))))
    group = props.get("group") or variables.get(props.get("groupFrom", ""))
    for_requester = group == REQUESTER
    members = ctx.members.get(group or "", [])
    assignee_id = None
    hint = variables.get(props.get("assigneeFrom", "")) if props.get("assigneeFrom") else None
    if hint and not for_requester:
        assignee_id = next((uid for uid, name in members if name == hint), None)
    elif not for_requester and status == "in_progress" and members and rng.random() < 0.4:
        assignee_id = members[rng.randrange(len(members))][0]  # claimed by an agent
    task_rows = [_done_task(definition, task_id, ticket_id, name, step_group, actor_id, began,
                            ended, due_at,
                            requester_id=requester_id if step_group == REQUESTER else None)
                 for task_id, name, step_group, actor_id, _, began, ended in done]
    spec = task.task_spec
    task_rows.append((
        str(task.id), ticket_id, spec.bpmn_id, spec.bpmn_name or spec.bpmn_id,
        None if for_requester else group, for_requester,
        requester_id if for_requester else None, assignee_id, "ready",
        props.get("formJsonSchemaFilename"), previous, None, None,
        None if for_requester else due_at,
    ))
    for side in (t for t in ready if t is not task):
        side_props = definition.properties(side.task_spec.bpmn_id)
        task_rows.append((
            str(side.id), ticket_id, side.task_spec.bpmn_id,
            side.task_spec.bpmn_name or side.task_spec.bpmn_id,
            side_props.get("group") or variables.get(side_props.get("groupFrom", "")), False,
            None, None, "ready", side_props.get("formJsonSchemaFilename"), previous, None, None,
            due_at))
    if for_requester:
        ticket_group = variables.get("resolved_group") or variables.get("group")
        ticket_assignee = resolver_id
    else:
        ticket_group, ticket_assignee = group, assignee_id
    ticket = (
        ticket_id, number, kind, title, data["description"], status, variables.get("priority"),
        requester_id, variables.get("service") or service, item, ticket_group, ticket_assignee,
        channel, created_dt, previous, previous if status == "resolved" else None, None,
        response_due_at, due_at, definition.id, definition.key, definition.version, 1,
        next((ended for _, _, step_group, _, _, _, ended in done if step_group != REQUESTER),
             None), int(variables.get("escalation_count") or 0),
        int(variables.get("reopen_count") or 0),
        (variables.get("category") or None) if kind == "incident" else None, None, None,
    )
    public = {k: v for k, v in variables.items() if k not in runtime.INTERNAL_KEYS}
    state = (ticket_id, dump_state(workflow), json.dumps(public, default=str))
    events = [(created_dt, requester, "ticket_created",
               {"kind": kind, "title": title, "description": data["description"],
                "service": service, "item": item, "fields": fields, "channel": channel,
                "generated": True})]
    if status != "new":
        events.append((previous, done[-1][4] if done else "system", "ticket_status_changed",
                       {"from": "new", "to": status, "generated": True}))
    waiting = [(ticket_id, t.name, t.fire_at.astimezone(UTC).replace(tzinfo=None),
                t.fire_at.astimezone(UTC).replace(tzinfo=None), 0, None)
               for t in ([] if workflow.is_completed() else timers.pending(workflow))]
    return ticket, task_rows, state, events, waiting


def _incident_steps(ctx: _Context, rng: random.Random, status: str, service: str,
                    category: str, group: str) -> list[Step]:
    priority = _pick(rng, _PRIORITIES)
    choices = IMPACT_URGENCY[priority]
    impact, urgency = choices[rng.randrange(len(choices))]
    sd_id, sd = ctx.agent(rng, "service_desk")
    qualify = {"category": category, "service": service, "impact": impact, "urgency": urgency}
    if status == "new":
        return []
    if status == "in_progress":
        target = group if group != "service_desk" else ("network", "applications")[
            rng.randrange(2)]
        return [("qualify", {**qualify, "action": "escalate", "group": target}, sd_id, sd,
                 "service_desk")]
    # resolved: waits on the requester's confirmation
    if group == "service_desk" or rng.random() < FIRST_CONTACT_SHARE:
        return [("qualify", {**qualify, "action": "resolve",
                             "resolution": "Fixed on the phone with the user"}, sd_id, sd,
                 "service_desk")]
    agent_id, agent = ctx.agent(rng, group)
    return [
        ("qualify", {**qualify, "action": "escalate", "group": group}, sd_id, sd,
         "service_desk"),
        ("escalate", {"action": "resolve", "resolution": "Restored the service"}, agent_id,
         agent, group),
    ]


def _request_steps(ctx: _Context, rng: random.Random, status: str, item: _Item) -> list[Step]:
    steps: list[Step] = []
    if status == "new":
        return steps
    if not item.auto_accept:
        sd_id, sd = ctx.agent(rng, "service_desk")
        steps.append(("qualify", {"action": "accept"}, sd_id, sd, "service_desk"))
    if status == "pending_approval":
        return steps
    if item.needs_approval:
        mgr_id, mgr = ctx.agent(rng, "managers")
        steps.append(("approve", {"approved": True}, mgr_id, mgr, "managers"))
    if status == "in_progress" or item.auto_fulfil:
        return steps
    agent_id, agent = ctx.agent(rng, item.fulfilment_group)
    steps.append(("fulfil", {"notes": "Done as asked"}, agent_id, agent, item.fulfilment_group))
    return steps
