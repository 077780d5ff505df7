"""Section ``load``: what ``tests/slow/test_load.py`` runs and asserts — N agents working
against gunicorn (several threaded workers, as in the Procfile) on PostgreSQL — then the
checks: no error, every acknowledged completion exactly once in the audit trail and in
``tasks``, ticket counts, the audit chain.

It drives the server with the ``http`` section's agents (``http_bench._drive``). Unlike
that section's saturated backlog, work flows: a hundred new incidents at the start and
requesters reporting more all along, so tickets go through to closed; the rate is that
of a desk at work, not the server's ceiling.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, func, select

from engine.persistence.models import AuditEvent, Task, Ticket

from .common import Section, create_database, drop_database, pg_available, ready_desk, summary_ms
from .http_bench import THREADS, WORKERS, Gunicorn, _drive, _Outcome, _roles, _users, sign_in

REPORT = 0.3  # share of a requester's turns spent reporting a new incident
# New incidents waiting at the start: few enough that the desk, reading the first 4 pages
# of its inbox, sees the close tasks too, so tickets go through their whole lifecycle.
BACKLOG = 100
LOG_PROBLEMS = ("Traceback", "[ERROR]", "[CRITICAL]", "WORKER TIMEOUT")


@dataclass
class LoadResult:
    """Figures and integrity of one load run; ``problems()`` is empty when all is well."""

    agents: int
    roles: dict[str, int]
    workers: int
    threads: int
    generated: int
    outcome: _Outcome
    server_log: list[str] = field(default_factory=list)  # lines that tell of an error
    lost: list[str] = field(default_factory=list)  # acknowledged, not in the trail
    duplicated: list[str] = field(default_factory=list)  # completed more than once
    unacknowledged: list[str] = field(default_factory=list)  # in the trail, never a 200
    rows_mismatch: list[str] = field(default_factory=list)  # tasks rows vs trail
    tickets: int = 0
    missing_tickets: list[str] = field(default_factory=list)
    closed: int = 0
    audit_events: int = 0
    audit_first_bad: int | None = None

    @property
    def completions(self) -> int:
        return len(self.outcome.completed)

    @property
    def per_s(self) -> float:
        return self.completions / self.outcome.elapsed if self.outcome.elapsed else 0.0

    @property
    def errors(self) -> int:
        return self.outcome.errors + self.outcome.inbox_errors

    @property
    def expected_tickets(self) -> int:
        return self.generated + len(self.outcome.created)

    @property
    def expected_closed(self) -> int:
        return sum(name == "close" for _, name, _ in self.outcome.completed)

    def problems(self) -> list[str]:
        found = []
        if self.errors:
            found.append(f"{self.errors} HTTP errors: {self.outcome.samples[:5]}")
        if self.server_log:
            found.append(f"errors in the server log: {self.server_log[:5]}")
        for what, ids in (("acknowledged completions missing from the trail", self.lost),
                          ("tasks completed more than once", self.duplicated),
                          ("completions in the trail never acknowledged", self.unacknowledged),
                          ("tasks rows disagreeing with the trail", self.rows_mismatch),
                          ("acknowledged tickets missing", self.missing_tickets)):
            if ids:
                found.append(f"{len(ids)} {what}: {ids[:5]}")
        if self.tickets != self.expected_tickets:
            found.append(f"{self.tickets} tickets, expected {self.expected_tickets}")
        if self.closed != self.expected_closed:
            found.append(f"{self.closed} closed tickets, expected {self.expected_closed}")
        if self.audit_first_bad is not None:
            found.append(f"audit chain broken at event {self.audit_first_bad}")
        if not self.completions:
            found.append("no completion at all")
        return found

    def table(self) -> tuple[str, list[str], list[list[Any]]]:
        o = self.outcome
        rows = []
        for name, seconds, errors in (("POST /tasks/ID/complete", o.latencies, o.errors),
                                      ("GET /tasks (inbox)", o.inbox, o.inbox_errors),
                                      ("POST /incidents", o.reports, None)):
            ms = summary_ms(seconds) if seconds else {}
            rows.append([name, len(seconds), len(seconds) / o.elapsed if o.elapsed else None,
                         ms.get("p50"), ms.get("p95"), ms.get("p99"), errors])
        caption = (f"{self.agents} agents ({self.roles['desk']} service desk, "
                   f"{self.roles['network']} network, {self.roles['requester']} requesters) "
                   f"for {o.elapsed:.0f} s, gunicorn -w {self.workers} --threads "
                   f"{self.threads}, PostgreSQL")
        return caption, ["request", "acknowledged", "per s", "p50 ms", "p95 ms", "p99 ms",
                         "errors"], rows

    def summary(self) -> str:
        ms = summary_ms(self.outcome.latencies) if self.outcome.latencies else {}
        return (f"{self.completions} completions in {self.outcome.elapsed:.0f} s = "
                f"{self.per_s:.1f}/s, p50 {ms.get('p50', 0):.0f} ms, p95 {ms.get('p95', 0):.0f}"
                f" ms, p99 {ms.get('p99', 0):.0f} ms; {len(self.outcome.created)} incidents "
                f"reported; {self.outcome.conflicts} 409s; {self.outcome.idle} empty-inbox "
                f"polls; {self.errors} errors; "
                f"{len(self.lost)} lost, {len(self.duplicated)} duplicated; "
                f"{self.tickets} tickets ({self.closed} closed); audit chain "
                f"{self.audit_events} events, "
                + ("intact" if self.audit_first_bad is None else
                   f"BROKEN at {self.audit_first_bad}"))


def load_run(url: str, agents: int = 50, seconds: float = 60.0, workers: int = WORKERS,
             threads: int = THREADS, report: float = REPORT) -> LoadResult:
    """Prepare the empty database at ``url``, run the agents, check what was written."""
    desk = ready_desk(url, alembic=True)
    try:
        roles = _roles(agents)
        users = _users(desk, roles)
        requesters = [desk.actor(u) for role, u in users if role == "requester"]
        generated = BACKLOG
        for i in range(generated):  # reported the ordinary way, the backlog the desk starts on
            desk.open_incident(requesters[i % len(requesters)], f"VPN drops ({i})",
                               "Since this morning", "vpn")
        server = Gunicorn(url, workers, threads)
        try:
            tokens = {u: sign_in(server.port, u) for _, u in users}
            outcome = _drive(server.port, users, tokens, seconds, cap=10**9,
                             report=report)
        finally:
            server.stop()
        result = LoadResult(agents, roles, workers, threads, generated, outcome)
        result.server_log = [line for line in server.log.read_text(errors="replace").splitlines()
                             if any(p in line for p in LOG_PROBLEMS)]
        check(desk.db.engine, result)
        result.audit_events, result.audit_first_bad, _ = desk.verify_audit()
    finally:
        desk.close()
    return result


def audited_completions(engine: Engine) -> tuple[Counter[str], set[str]]:
    """Task id -> number of ``task_completed`` events, and the ids of completed ``tasks``."""
    with engine.connect() as conn:
        events = Counter({task_id: n for task_id, n in conn.execute(
            select(AuditEvent.task_id, func.count()).where(AuditEvent.action == "task_completed")
            .group_by(AuditEvent.task_id))})
        rows = set(conn.scalars(select(Task.id).where(Task.state == "completed")))
    return events, rows


def check(engine: Engine, result: LoadResult) -> None:
    """Compare what the server acknowledged with what the database holds."""
    events, rows = audited_completions(engine)
    acknowledged = Counter(task_id for task_id, _, _ in result.outcome.completed)
    result.lost = sorted(set(acknowledged) - set(events))
    result.duplicated = sorted({t for t, n in events.items() if n > 1}
                               | {t for t, n in acknowledged.items() if n > 1})
    result.unacknowledged = sorted(set(events) - set(acknowledged))
    result.rows_mismatch = sorted(rows ^ set(events))
    with engine.connect() as conn:
        numbers = set(conn.scalars(select(Ticket.number)))
        result.closed = conn.scalar(select(func.count()).select_from(Ticket)
                                    .where(Ticket.status == "closed"))
    result.tickets = len(numbers)
    result.missing_tickets = sorted(set(result.outcome.created) - numbers)


def run(section: Section, args) -> None:
    problem = pg_available()
    if problem is not None:
        section.notes.append(f"skipped: {problem}")
        return
    url = create_database("guichet_bench_load")
    try:
        result = load_run(url, args.agents, args.load_seconds)
    finally:
        drop_database("guichet_bench_load")
    section.table(*result.table())
    o = result.outcome
    section.notes.append(f"{result.generated} new incidents reported beforehand; requesters "
                         f"report a new one on {REPORT:.0%} of their turns; {o.conflicts} 409s "
                         f"(two agents racing), {o.idle} empty-inbox polls")
    section.notes.append(f"trail: {result.completions} acknowledged completions, "
                         f"{len(result.lost)} lost, {len(result.duplicated)} duplicated, "
                         f"{len(result.unacknowledged)} never acknowledged; {result.tickets} "
                         f"tickets of {result.expected_tickets} expected, {result.closed} "
                         f"closed of {result.expected_closed}; audit chain "
                         f"{result.audit_events} events, "
                         + ("intact" if result.audit_first_bad is None else
                            f"BROKEN at {result.audit_first_bad}"))
    for p in result.problems():
        section.notes.append(f"PROBLEM: {p}")
    section.target("errors (HTTP, server log)", float(result.errors + len(result.server_log)),
                   0.0, "==")
    section.target("lost or duplicated completions, ticket or closed count off",
                   float(len(result.lost) + len(result.duplicated) + len(result.unacknowledged)
                         + len(result.rows_mismatch) + len(result.missing_tickets)
                         + abs(result.tickets - result.expected_tickets)
                         + abs(result.closed - result.expected_closed)), 0.0, "==")
    ms = summary_ms(o.latencies) if o.latencies else None
    section.data = {"completions": result.completions, "per_s": result.per_s,
                    "elapsed": o.elapsed, "complete_ms": ms, "conflicts": o.conflicts,
                    "errors": result.errors, "reported": len(o.created),
                    "problems": result.problems(), "agents": result.agents,
                    "workers": result.workers, "threads": result.threads}
