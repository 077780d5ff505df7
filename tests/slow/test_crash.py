"""Crash tests on PostgreSQL.

The server: SIGKILL the whole of gunicorn (master and workers at once) while clients
complete tasks through the JSON API, restart it, and check that every acknowledged
completion is there exactly once, that completions whose answer never came were done once
or not at all (a retry after the restart tells which), that every ticket loads and its
saved workflow agrees with its tasks, that the audit chain verifies, and that work goes on.

The worker: SIGKILL two ``guichet worker`` processes while they fire hundreds of due
timers, twice, restart them, and check that each due timer fired exactly once.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import random
import signal
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select, text

from bench.http_bench import Gunicorn, call, sign_in
from bench.load_bench import LOG_PROBLEMS, audited_completions
from engine import FrozenClock, ServiceDesk
from engine.persistence.models import AuditEvent, StepFailure, Ticket, Timer
from tests.conftest import QUALIFY_ESCALATE, QUALIFY_RESOLVE

from .conftest import GUICHET, ROOT, guichet, prepare, state_mismatches

pytestmark = pytest.mark.slow

CYCLES = int(os.environ.get("GUICHET_CRASH_CYCLES", "6"))
WORKERS, THREADS = 3, 2
# Completions acknowledged in a cycle before the kill; the kill then waits for this many
# completions to be in flight (sent, no answer yet), and up to 50 ms more.
ACKED_BEFORE_KILL, IN_FLIGHT_AT_KILL = 20, 3
CLIENTS = [("sam", "desk"), ("sam", "desk"), ("sam", "desk"), ("nina", "network"),
           ("nina", "network"), ("alice", "requester"), ("bob", "requester")]
HANDLES = {"desk": {"qualify", "close"}, "network": {"escalate"}, "requester": {"confirm"}}
BACKLOG = 30  # incidents reported before the first cycle


def _data(name: str, rng: random.Random) -> dict[str, Any]:
    if name == "qualify":
        return QUALIFY_ESCALATE if rng.random() < 0.6 else QUALIFY_RESOLVE
    if name == "escalate":
        return {"action": "resolve", "resolution": "Replaced the VPN profile"}
    if name == "confirm":
        return ({"resolved": True} if rng.random() < 0.8
                else {"resolved": False, "comment": "Still dropping"})
    return {"closure_code": "solved"}


@dataclass
class Journal:
    """What the clients sent and what the server answered."""

    acked: dict[str, str] = field(default_factory=dict)  # task id -> ticket, each 200
    twice: list[str] = field(default_factory=list)  # task ids acknowledged twice
    # (client, task id) -> (user, data) of each completion sent and not answered (yet)
    unknown: dict[tuple[int, str], tuple[str, dict]] = field(default_factory=dict)
    created: set[str] = field(default_factory=set)  # 201 incidents
    unanswered_reports: int = 0
    in_flight: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)  # 5xx and other unexpected answers
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answered(self, task: dict, status: int, body: object) -> None:
        with self.lock:
            self.statuses[status] += 1
            if status == 200:
                if task["id"] in self.acked:
                    self.twice.append(task["id"])
                self.acked[task["id"]] = task["ticket"]
            elif status != 409:  # 409: another client (or the retried original) was first
                self.errors.append(f"complete {task['name']} {task['id']}: {status} {body}")


def _client(port: int, user: str, token: str, role: str, seed: int, journal: Journal,
            stop: threading.Event) -> None:
    """Work until told to stop, or until the server is gone."""
    rng = random.Random(seed)
    try:
        while not stop.is_set():
            if role == "requester" and rng.random() < 0.3:
                _report(port, user, token, journal)
                continue
            status, body, _ = call(port, "GET", "/api/v1/tasks?per_page=25", token)
            if status != 200:
                with journal.lock:
                    journal.errors.append(f"GET /tasks as {user}: {status} {body}")
                continue
            tasks = [t for t in body["items"] if t["name"] in HANDLES[role]]
            if not tasks:
                time.sleep(0.05)
                continue
            task = rng.choice(tasks)
            data = _data(task["name"], rng)
            key = (seed, task["id"])
            with journal.lock:
                journal.unknown[key] = (user, data)
                journal.in_flight += 1
            try:
                status, body, _ = call(port, "POST", f"/api/v1/tasks/{task['id']}/complete",
                                       token, {"data": data})
            finally:
                with journal.lock:
                    journal.in_flight -= 1
            with journal.lock:
                del journal.unknown[key]
            journal.answered(task, status, body)
    except (OSError, http.client.HTTPException):
        return  # killed: what was in flight stays in journal.unknown


def _report(port: int, user: str, token: str, journal: Journal) -> None:
    body = {"title": f"VPN drops ({user})", "description": "Since this morning",
            "service": "vpn"}
    try:
        status, answer, _ = call(port, "POST", "/api/v1/incidents", token, body)
    except (OSError, http.client.HTTPException):
        with journal.lock:
            journal.unanswered_reports += 1
        raise
    with journal.lock:
        if status == 201:
            journal.created.add(answer["number"])
        else:
            journal.errors.append(f"POST /incidents as {user}: {status} {answer}")


def _start(port: int, tokens: dict[str, str], journal: Journal, cycle: int
           ) -> tuple[list[threading.Thread], threading.Event]:
    stop = threading.Event()
    threads = [threading.Thread(target=_client, daemon=True, name=f"client-{user}-{i}",
                                args=(port, user, tokens[user], role, cycle * 100 + i, journal,
                                      stop))
               for i, (user, role) in enumerate(CLIENTS)]
    for t in threads:
        t.start()
    return threads, stop


def _join(threads: list[threading.Thread]) -> None:
    for t in threads:
        t.join(timeout=150)
    assert not [t.name for t in threads if t.is_alive()], "clients still running"


def _retry_unknown(port: int, tokens: dict[str, str], journal: Journal) -> tuple[int, int]:
    """Send again each completion whose answer the kill swallowed: 200 means it had not
    been committed, 409 that it had. Returns (redone, already done)."""
    redone, already = set(), set()
    for key, (user, data) in list(journal.unknown.items()):
        task_id = key[1]
        status, body, _ = call(port, "POST", f"/api/v1/tasks/{task_id}/complete",
                               tokens[user], {"data": data})
        del journal.unknown[key]
        if status == 200:
            redone.add(task_id)
            journal.answered({"id": task_id, "ticket": body["number"], "name": "?"}, 200, body)
        elif status == 409:
            if task_id not in redone:
                already.add(task_id)
        else:
            journal.errors.append(f"retry of {task_id} as {user}: {status} {body}")
    return len(redone), len(already)


def _check(url: str, port: int, admin: str, journal: Journal, retried: set[str]) -> int:
    """Everything the server acknowledged is there once; returns the number of tickets."""
    assert not journal.errors, journal.errors[:5]
    assert not journal.twice, f"completions acknowledged twice: {journal.twice}"
    engine = create_engine(url)
    try:
        events, rows = audited_completions(engine)
        with engine.connect() as conn:
            numbers = set(conn.scalars(select(Ticket.number)))
            created = Counter(dict(conn.execute(
                select(AuditEvent.ticket_number, func.count())
                .where(AuditEvent.action == "ticket_created")
                .group_by(AuditEvent.ticket_number)).all()))
    finally:
        engine.dispose()
    lost = set(journal.acked) - set(events)
    assert not lost, f"acknowledged completions missing from the audit trail: {sorted(lost)}"
    duplicated = sorted(t for t, n in events.items() if n > 1)
    assert not duplicated, f"tasks completed more than once: {duplicated}"
    assert rows == set(events), (f"completed tasks rows {len(rows)} vs audit "
                                 f"{len(events)}: {sorted(rows ^ set(events))[:5]}")
    missing = retried - set(events)
    assert not missing, f"completions sent before the kill, done neither then nor after: {missing}"
    assert journal.created <= numbers, f"reported, missing: {journal.created - numbers}"
    assert len(numbers) - len(journal.created) <= journal.unanswered_reports
    assert set(created) == numbers and max(created.values()) == 1, "ticket_created events"
    for number in sorted(numbers):
        status, body, _ = call(port, "GET", f"/api/v1/tickets/{number}", admin)
        assert status == 200, f"GET /tickets/{number}: {status} {body}"
    assert state_mismatches(url) == []
    done = guichet(url, "audit", "verify")
    assert done.returncode == 0, done.stdout + done.stderr
    return len(numbers)


def test_sigkill_during_completions_loses_and_repeats_nothing(slow_database: str,
                                                            capsys: pytest.CaptureFixture):
    url = slow_database
    began = time.perf_counter()
    prepare(url)
    journal = Journal()
    server = Gunicorn(url, WORKERS, THREADS)
    logs, lines = [server.log], []
    try:
        tokens = {user: sign_in(server.port, user) for user in {u for u, _ in CLIENTS}}
        admin = sign_in(server.port, "admin")
        for i in range(BACKLOG):
            user = ("alice", "bob")[i % 2]
            _report(server.port, user, tokens[user], journal)
        retried: set[str] = set()
        unanswered = 0
        for cycle in range(1, CYCLES + 1):
            acked_before = len(journal.acked)
            threads, stop = _start(server.port, tokens, journal, cycle)
            deadline = time.monotonic() + 180
            while not (len(journal.acked) - acked_before >= ACKED_BEFORE_KILL
                       and journal.in_flight >= IN_FLIGHT_AT_KILL):
                assert time.monotonic() < deadline, f"cycle {cycle}: no work going on"
                assert not journal.errors, journal.errors[:5]
                time.sleep(0.005)
            time.sleep(random.random() * 0.05)
            with journal.lock:
                in_flight = journal.in_flight
            server.kill()
            killed_at = time.perf_counter()
            _join(threads)
            stop.set()
            unknown = {task_id for _, task_id in journal.unknown}
            unanswered += len(unknown)
            server = Gunicorn(url, WORKERS, THREADS)
            logs.append(server.log)
            restart = time.perf_counter() - killed_at
            retried |= unknown
            redone, already = _retry_unknown(server.port, tokens, journal)
            tickets = _check(url, server.port, admin, journal, retried)
            lines.append(f"cycle {cycle}: killed with {in_flight} completions in flight "
                         f"({len(unknown)} without an answer: {already} had been committed, "
                         f"{redone} had not and were done by the retry); back in "
                         f"{restart:.1f} s; {len(journal.acked)} acknowledged completions, "
                         f"{tickets} tickets, all checked")
        # Work goes on after the last restart, and is as sound.
        acked_before = len(journal.acked)
        threads, stop = _start(server.port, tokens, journal, CYCLES + 1)
        deadline = time.monotonic() + 180
        while len(journal.acked) - acked_before < ACKED_BEFORE_KILL:
            assert time.monotonic() < deadline, "no work after the restart"
            time.sleep(0.05)
        stop.set()
        _join(threads)
        tickets = _check(url, server.port, admin, journal, retried)
    finally:
        server.stop()
    lines.append(f"after the last restart: {len(journal.acked) - acked_before} more "
                 f"completions; in all {len(journal.acked)} acknowledged, {len(journal.created)}"
                 f" incidents reported, {tickets} tickets, answers {dict(journal.statuses)}; "
                 f"{time.perf_counter() - began:.0f} s")
    with capsys.disabled():
        print("\ncrash test:\n  " + "\n  ".join(lines))
    logged = [line for log in logs for line in log.read_text(errors="replace").splitlines()
              if any(p in line for p in LOG_PROBLEMS)]
    assert not logged, f"errors in the server logs: {logged[:5]}"
    assert unanswered, "no kill caught a completion before its answer: the test proved little"


# -- the worker ---------------------------------------------------------------------------

WORKER_TICKETS = int(os.environ.get("GUICHET_WORKER_TICKETS", "200"))
WORKER_PROCESSES = 2  # the contract: several workers may run at once


class _Workers:
    """``guichet worker`` processes, each in a process group of its own."""

    def __init__(self, url: str, folder: Path, n: int = WORKER_PROCESSES) -> None:
        self.logs = [folder / f"worker-{time.monotonic_ns()}-{i}.log" for i in range(n)]
        env = {**os.environ, "DATABASE_URL": url}
        env.pop("GUICHET_SMTP_HOST", None)
        self.processes = []
        for log in self.logs:
            with log.open("wb") as out:
                self.processes.append(subprocess.Popen(
                    [str(GUICHET), "worker", "--interval", "0.2", "--batch", "10"],
                    cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                    start_new_session=True))

    def kill(self) -> None:
        for p in self.processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
        for p in self.processes:
            p.wait()

    def stop(self) -> list[int]:
        """SIGTERM: each finishes its round and exits; their exit codes."""
        for p in self.processes:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        codes = []
        for p in self.processes:
            try:
                codes.append(p.wait(60))
            except subprocess.TimeoutExpired:
                self.kill()
                codes.append(-9)
        return codes


def _past_tickets(url: str, n: int) -> None:
    """``n`` incidents reported 30 days ago, so that their timers are all due now: half
    escalated to network (SLA warning and breach), half resolved awaiting confirmation
    (auto-close after 3 days)."""
    clock = FrozenClock(datetime.now(UTC) - timedelta(days=30))
    desk = ServiceDesk(url, clock=clock)
    try:
        alice, sam = desk.actor("alice"), desk.actor("sam")
        for i in range(n):
            ticket = desk.open_incident(alice, f"VPN drops ({i})", "Since this morning", "vpn")
            qualify = next(t for t in ticket.tasks if t.name == "qualify")
            desk.complete(sam, qualify.id, QUALIFY_ESCALATE if i % 2 else QUALIFY_RESOLVE)
            clock.advance(minutes=1)
    finally:
        desk.close()


def _fired(engine) -> Counter[tuple[str, str, datetime]]:
    """(ticket, timer, due) of each ``timer_fired`` event, counted."""
    with engine.connect() as conn:
        rows = conn.execute(select(AuditEvent.ticket_number, AuditEvent.data)
                            .where(AuditEvent.action == "timer_fired")).all()
    fired: Counter[tuple[str, str, datetime]] = Counter()
    for number, data in rows:
        event = json.loads(data)
        fired[(number, event["timer"], datetime.fromisoformat(event["due"]))] += 1
    return fired


def _in_transaction(engine) -> int:
    """Other connections to this database inside a transaction right now."""
    with engine.connect() as conn:
        return conn.scalar(text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND xact_start IS NOT NULL"))


def _due(engine) -> set[tuple[str, str, datetime]]:
    now = datetime.now(UTC)
    with engine.connect() as conn:
        return {(number, name, fire_at) for number, name, fire_at in conn.execute(
            select(Ticket.number, Timer.name, Timer.fire_at)
            .join(Ticket, Ticket.id == Timer.ticket_id).where(Timer.wake_at <= now))}


def test_sigkill_of_workers_fires_each_timer_once(slow_database: str, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture):
    url = slow_database
    began = time.perf_counter()
    prepare(url)
    _past_tickets(url, WORKER_TICKETS)
    engine = create_engine(url)
    workers = None
    lines = []
    try:
        expected = _due(engine)
        assert len(expected) >= WORKER_TICKETS, f"only {len(expected)} due timers"
        lines.append(f"{WORKER_TICKETS} tickets made 30 days ago: {len(expected)} timers due; "
                     f"{time.perf_counter() - began:.0f} s to prepare")
        logs = []
        for cycle, share in enumerate((1 / 3, 2 / 3), 1):
            workers = _Workers(url, tmp_path)
            logs += workers.logs
            deadline = time.monotonic() + 180
            while sum(_fired(engine).values()) < share * len(expected):
                assert time.monotonic() < deadline, f"cycle {cycle}: the workers fire nothing"
                assert all(p.poll() is None for p in workers.processes), "a worker exited"
                time.sleep(0.02)
            busy = _in_transaction(engine)
            workers.kill()
            fired = _fired(engine)
            assert sum(fired.values()) < len(expected), "all fired before the kill"
            lines.append(f"cycle {cycle}: {WORKER_PROCESSES} workers killed after "
                         f"{sum(fired.values())} of {len(expected)} timers fired, "
                         f"{busy} of their connections in a transaction")
        workers = _Workers(url, tmp_path)
        logs += workers.logs
        deadline = time.monotonic() + 300
        while _due(engine):
            assert time.monotonic() < deadline, f"{len(_due(engine))} timers still due"
            time.sleep(0.2)
        codes = workers.stop()
        workers = None
        assert codes == [0] * WORKER_PROCESSES, f"exit codes after SIGTERM: {codes}"
        once = guichet(url, "worker", "--once")
        assert once.returncode == 0 and "done: 0 fired, 0 failed" in once.stdout, once.stdout
        fired = _fired(engine)
        with engine.connect() as conn:
            failures = conn.scalar(select(func.count()).select_from(StepFailure))
            statuses = Counter(dict(conn.execute(select(Ticket.status, func.count())
                                                 .group_by(Ticket.status)).all()))
    finally:
        if workers is not None:
            workers.kill()
        engine.dispose()
    twice = sorted(k for k, n in fired.items() if n > 1)
    assert not twice, f"timers fired more than once: {twice[:5]}"
    missing = expected - set(fired)
    assert not missing, f"due timers never fired: {sorted(missing)[:5]}"
    assert failures == 0, f"{failures} step failures recorded"
    assert statuses["closed"] == (WORKER_TICKETS + 1) // 2, statuses  # auto-closed
    assert state_mismatches(url) == []
    done = guichet(url, "audit", "verify")
    assert done.returncode == 0, done.stdout + done.stderr
    logged = [line for log in logs for line in log.read_text(errors="replace").splitlines()
              if any(p in line for p in (*LOG_PROBLEMS, "Error"))]
    assert not logged, f"errors in the worker logs: {logged[:5]}"
    lines.append(f"restarted: every due timer fired once ({len(fired)} in all, "
                 f"{len(fired) - len(expected)} more that came due while firing), tickets "
                 f"{dict(statuses)}; {time.perf_counter() - began:.0f} s")
    with capsys.disabled():
        print("\nworker crash test:\n  " + "\n  ".join(lines))
