"""Section ``http``: N simulated agents against gunicorn workers on PostgreSQL, in runs that
alternate with runs of the raw PostgreSQL floor (the naive whole-blob step loop in 4
processes)."""

from __future__ import annotations

import contextlib
import http.client
import itertools
import multiprocessing
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import orjson
from sqlalchemy import select

from engine import bulk
from engine.persistence.models import Membership, User

from . import lifecycle as lc
from .common import (
    ROOT,
    Section,
    create_database,
    drop_database,
    pg_available,
    pg_url,
    ready_desk,
    scratch,
    summary_ms,
)

WORKERS = 4
THREADS = 1  # the Procfile's shape (see README, "Running for real")
PROCESSES = 4
SHARE = 0.40  # HTTP completions/s at least 40 % of the raw floor's steps/s
HANDLES = {"desk": {"qualify", "close"}, "network": {"escalate"}, "requester": {"confirm"}}
DATA = {name: data for name, _who, _group, data in lc.STEPS}
ROUNDS = 3  # HTTP runs, each between two floor runs (at most --rounds)


def run(section: Section, args) -> None:
    problem = pg_available()
    if problem is not None:
        section.notes.append(f"skipped: {problem}")
        return
    seconds, agents, rounds = args.http_seconds, args.agents, max(1, min(args.rounds, ROUNDS))
    url = create_database("guichet_bench_http")
    create_database("guichet_bench_http_floor")
    server = None
    try:
        desk = ready_desk(url, alembic=True)
        roles = _roles(agents)
        users = _users(desk, roles)
        # Work for 80 completions/s through the warm-up and every run (four per ticket), so
        # that the last run does not find the agents idle for want of tickets.
        tickets = max(200, int(seconds * 80 * (rounds + 1)))
        began = time.perf_counter()
        # Reported minutes ago, like the floor's fresh incidents: the run compares the same
        # lifecycle, not the cost of a backlog days old breaching its targets as it moves.
        bulk.generate(desk, tickets, mix={("incident", "new"): 1.0}, open_age_days=0.01,
                      requesters=[u for role, u in users if role == "requester"])
        setup = time.perf_counter() - began
        server = Gunicorn(url, WORKERS, THREADS)
        tokens = {u: sign_in(server.port, u) for _, u in users}
        # Not measured, as long as a run: the workers' first requests load the process
        # definitions, compile and prepare statements and fill their caches, and the
        # agents' work spreads from the desk's queue to the other roles' (at first only
        # the desk has tasks; the others poll empty inboxes).
        _drive(server.port, users, tokens, seconds, cap=4 * tickets)
        # HTTP runs alternate with runs of the floor (half as long): each HTTP run is
        # compared with the floor just before and just after it, so the machine's speed,
        # which drifts by a fifth within minutes here, weighs on both alike.
        floors, outcomes = [_floor(seconds / 2)], []
        for _ in range(rounds):
            outcomes.append(_drive(server.port, users, tokens, seconds, cap=4 * tickets))
            floors.append(_floor(seconds / 2))
        server.stop()
        server = None
        count, first_bad, _ = desk.verify_audit()
        desk.close()
    finally:
        if server is not None:
            server.stop()
        drop_database("guichet_bench_http")
        drop_database("guichet_bench_http_floor")

    outcome = _merged(outcomes)
    rates = [o.completions / o.elapsed for o in outcomes]
    floor_rates = [(a[0] + b[0]) / 2 for a, b in itertools.pairwise(floors)]
    ratios = [r / f if f else 0.0 for r, f in zip(rates, floor_rates, strict=True)]
    exhausted = any(e for _, e in floors)
    complete = summary_ms(outcome.latencies) if outcome.latencies else None
    inbox = summary_ms(outcome.inbox) if outcome.inbox else None
    rate = outcome.completions / outcome.elapsed
    section.table(f"{agents} agents ({roles['desk']} service desk, {roles['network']} network, "
                  f"{roles['requester']} requesters), gunicorn -w {WORKERS} --threads {THREADS}, "
                  f"PostgreSQL; {rounds} runs of {seconds:.0f} s", [
        "request", "seconds", "count", "per s", "p50 ms", "p95 ms", "p99 ms", "409s",
        "errors",
    ], [
        ["POST /tasks/ID/complete", outcome.elapsed, outcome.completions, rate,
         complete and complete["p50"], complete and complete["p95"],
         complete and complete["p99"], outcome.conflicts, outcome.errors],
        ["GET /tasks (inbox)", outcome.elapsed, len(outcome.inbox),
         len(outcome.inbox) / outcome.elapsed, inbox and inbox["p50"], inbox and inbox["p95"],
         inbox and inbox["p99"], None, outcome.inbox_errors],
    ])
    section.table(f"each HTTP run against the raw floor ({PROCESSES} processes, naive whole "
                  f"blob) run just before and just after it, {seconds / 2:.0f} s each", [
        "run", "completions/s", "floor before, steps/s", "floor after, steps/s", "ratio",
    ], [[i + 1, rates[i], floors[i][0], floors[i + 1][0], ratios[i]] for i in range(rounds)])
    section.notes.append(f"{tickets} new incidents, reported minutes before, generated by "
                         f"engine.bulk ({setup:.0f} s; 4 completions each at most); "
                         f"{seconds:.0f} s of agents not measured first; a run "
                         f"ends after {seconds:.0f} s or when all are closed; each agent reads "
                         f"its inbox (GET /tasks, a random page of 25 among the first 4 for the "
                         f"desk) before each completion; {outcome.idle} empty-inbox polls")
    if outcome.samples:
        section.notes.append("first errors: " + "; ".join(outcome.samples[:3]))
    if exhausted:
        section.notes.append("the floor ran out of prepared instances: its rate is a minimum")
    section.notes.append(f"audit chain after the runs: {count} events, "
                         f"{'intact' if first_bad is None else f'BROKEN at {first_bad}'}")
    share = statistics.median(ratios)
    section.target(f"HTTP completions/s vs raw PostgreSQL {PROCESSES}-process floor",
                   share, SHARE, ">=",
                   note=f"median of {rounds} runs; runs {min(ratios):.2f} to {max(ratios):.2f}; "
                        f"{statistics.median(rates):.0f} completions/s vs "
                        f"{statistics.median(floor_rates):.0f} steps/s")
    section.target("HTTP errors", float(outcome.errors + outcome.inbox_errors), 0.0, "==")
    section.data = {"completions": outcome.completions, "per_s": rate, "elapsed": outcome.elapsed,
                    "complete_ms": complete, "inbox_ms": inbox, "conflicts": outcome.conflicts,
                    "errors": outcome.errors, "inbox_errors": outcome.inbox_errors,
                    "runs": [{"per_s": r, "floor_before": a[0], "floor_after": b[0], "ratio": q}
                             for r, (a, b), q in zip(rates, itertools.pairwise(floors), ratios,
                                                     strict=True)],
                    "ratio": share, "floor_per_s": statistics.median(floor_rates),
                    "agents": agents, "workers": WORKERS, "tickets": tickets}


def _merged(outcomes: list[_Outcome]) -> _Outcome:
    """The runs' outcomes as one (counts and durations added, samples pooled)."""
    total = _Outcome()
    for o in outcomes:
        for name, value in vars(o).items():
            setattr(total, name, getattr(total, name) + value)
    return total


def _roles(agents: int) -> dict[str, int]:
    desk = max(1, round(agents * 0.4))
    network = max(1, round(agents * 0.3))
    return {"desk": desk, "network": network, "requester": max(1, agents - desk - network)}


def _users(desk, roles: dict[str, int]) -> list[tuple[str, str]]:
    """Agents and requesters of their own (the demo password hash), one per thread."""
    groups = {"desk": "service_desk", "network": "network", "requester": None}
    users = []
    with desk.db.write() as s:
        password = s.scalar(select(User.password_hash).where(User.username == "alice"))
        for role, n in roles.items():
            for i in range(1, n + 1):
                username = f"bench_{role}_{i:02d}"
                user = User(username=username, name=username, email=f"{username}@bench.example",
                            password_hash=password,
                            roles="requester" if role == "requester" else "agent")
                s.add(user)
                s.flush()
                if groups[role]:
                    s.add(Membership(user_id=user.id, group_key=groups[role]))
                users.append((role, username))
    return users


class Gunicorn:
    """``gunicorn 'web:create_app()'`` on a free port, in a process group of its own."""

    def __init__(self, url: str, workers: int = WORKERS, threads: int = 1) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.log = scratch() / "gunicorn.log"
        env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": "guichet-bench",
               "GUICHET_INSECURE_COOKIES": "1"}
        gunicorn = Path(sys.executable).parent / "gunicorn"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [str(gunicorn), "-w", str(workers), "--threads", str(threads),
                 "-b", f"127.0.0.1:{self.port}", "--timeout", "120", "--log-level", "warning",
                 "web:create_app()"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {self.log.read_text()[-2000:]}")
            try:
                status, _, _ = call(self.port, "GET", "/api/v1/openapi.json")
                if status == 200:
                    return
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("gunicorn did not answer within 60 s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        """SIGKILL the master and every worker at once, as a power cut would."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


class InboxTask(msgspec.Struct):
    """What an agent reads of a task in its inbox (the form and the rest are skipped)."""

    id: str
    name: str
    ticket: str


class Inbox(msgspec.Struct):
    items: list[InboxTask]


# The agents share the 2 cores with the server they measure: building every form of a
# 64 KB inbox page as Python objects cost them 0.35 ms a page, reading these three fields
# 0.04 ms.
read_inbox = msgspec.json.Decoder(Inbox).decode


def call(port: int, method: str, path: str, token: str | None = None,
         body: dict | None = None, decode: Callable[[bytes], Any] | None = orjson.loads
         ) -> tuple[int, object, float]:
    """One request on a connection of its own (gunicorn's sync workers close it anyway).

    A 2xx answer is read by ``decode`` (None: not read), any other as JSON.

    Written on a bare socket: the simulated agents share the 2 cores with the server, and
    ``http.client`` (whose header parsing goes through the ``email`` package) cost them a
    third more CPU per completion (2.4 vs 1.8 ms, measured) — CPU the server then lacked.
    """
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    payload = b""
    if body is not None:
        payload = orjson.dumps(body)
        lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
    elif method != "GET":
        lines.append("Content-Length: 0")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode() + payload
    began = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(262144):
            chunks.append(chunk)
    seconds = time.perf_counter() - began
    status, raw = _response(b"".join(chunks))
    if 200 <= status < 300:
        return status, decode(raw) if decode and raw else None, seconds
    try:
        return status, orjson.loads(raw) if raw else None, seconds
    except ValueError:
        return status, raw[:200], seconds


def _response(answer: bytes) -> tuple[int, bytes]:
    """Status and body of an HTTP/1.1 answer read to the end of the connection."""
    if not answer:  # as http.client says it: the server closed without a word
        raise http.client.RemoteDisconnected("the server closed the connection without answering")
    head, sep, raw = answer.partition(b"\r\n\r\n")
    parts = head.split(b" ", 2)
    if not sep or len(parts) < 2 or not parts[1].isdigit():
        raise http.client.BadStatusLine(repr(head[:100]))
    headers = head.lower()
    if b"\r\ntransfer-encoding: chunked" in headers:
        raise http.client.HTTPException("chunked answers are not expected from gunicorn here")
    at = headers.find(b"\r\ncontent-length:")
    if at >= 0:
        length = int(headers[at + 17:].split(b"\r\n", 1)[0])
        if len(raw) < length:  # the server went away mid-answer
            raise http.client.IncompleteRead(raw, length - len(raw))
    return int(parts[1]), raw


def sign_in(port: int, username: str) -> str:
    status, data, _ = call(port, "POST", "/api/v1/token",
                           body={"username": username, "password": "demo"})
    if status != 200:
        raise RuntimeError(f"cannot sign in as {username}: {status} {data}")
    return data["token"]


@dataclass
class _Outcome:
    completions: int = 0
    conflicts: int = 0
    errors: int = 0
    inbox_errors: int = 0
    idle: int = 0
    latencies: list[float] = field(default_factory=list)
    inbox: list[float] = field(default_factory=list)
    samples: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    # What the server acknowledged: (task id, task name, ticket number) of each 200
    # completion, and the numbers of the incidents reported (201).
    completed: list[tuple[str, str, str]] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    reports: list[float] = field(default_factory=list)  # seconds per POST /incidents


def _drive(port: int, users: list[tuple[str, str]], tokens: dict[str, str], seconds: float,
           cap: int, report: float = 0.0) -> _Outcome:
    """Agents until ``seconds`` pass or ``cap`` completions; before each inbox read a
    requester reports a new incident with probability ``report``."""
    outcome = _Outcome()
    lock = threading.Lock()
    stop = threading.Event()
    deadline = time.perf_counter() + seconds

    def agent(index: int, role: str, username: str) -> None:
        try:
            work(index, role, username)
        except Exception as err:  # counted as an error, not lost with a dying thread
            with lock:
                outcome.errors += 1
                outcome.samples.append(f"{username}: {type(err).__name__}: {err}")

    def work(index: int, role: str, username: str) -> None:
        rng = random.Random(index)
        token, page = tokens[username], 1
        mine = _Outcome()
        while not stop.is_set() and time.perf_counter() < deadline:
            if role == "requester" and report and rng.random() < report:
                _report(port, token, index, mine)
                continue
            try:
                status, body, took = call(port, "GET", f"/api/v1/tasks?per_page=25&page={page}",
                                          token, decode=read_inbox)
            except (OSError, http.client.HTTPException, msgspec.DecodeError) as err:
                mine.inbox_errors += 1
                mine.samples.append(f"GET /tasks: {err!r}")
                continue
            mine.inbox.append(took)
            if status != 200:
                mine.inbox_errors += 1
                mine.samples.append(f"GET /tasks {status}: {body}")
                continue
            tasks = [t for t in body.items if t.name in HANDLES[role]]
            if not tasks:
                if page == 1:
                    mine.idle += 1
                    time.sleep(0.05)
                page = 1
                continue
            # Spread the desk over the first pages of the queue, as people do.
            page = rng.randint(1, 4) if role == "desk" else 1
            task = rng.choice(tasks)
            try:
                status, body, took = call(port, "POST", f"/api/v1/tasks/{task.id}/complete",
                                          token, {"data": DATA[task.name]}, decode=None)
            except (OSError, http.client.HTTPException) as err:
                mine.errors += 1
                mine.samples.append(f"POST complete: {err!r}")
                continue
            if status == 200:
                mine.latencies.append(took)
                mine.completed.append((task.id, task.name, task.ticket))
                with lock:
                    outcome.completions += 1
                    if outcome.completions >= cap:
                        stop.set()
            elif status == 409:
                mine.conflicts += 1
            else:
                mine.errors += 1
                mine.samples.append(f"POST complete {status}: {body}")
        with lock:
            outcome.conflicts += mine.conflicts
            outcome.errors += mine.errors
            outcome.inbox_errors += mine.inbox_errors
            outcome.idle += mine.idle
            outcome.latencies += mine.latencies
            outcome.inbox += mine.inbox
            outcome.samples += mine.samples[:5]
            outcome.completed += mine.completed
            outcome.created += mine.created
            outcome.reports += mine.reports

    threads = [threading.Thread(target=agent, args=(i, role, username), daemon=True)
               for i, (role, username) in enumerate(users)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    outcome.elapsed = time.perf_counter() - began
    return outcome


def _report(port: int, token: str, index: int, mine: _Outcome) -> None:
    """A requester reports an incident: 201 is an acknowledged ticket."""
    body = {"title": f"Load test incident from agent {index}",
            "description": "Reported during the load run", "service": "vpn"}
    try:
        status, answer, took = call(port, "POST", "/api/v1/incidents", token, body)
    except (OSError, http.client.HTTPException) as err:
        mine.errors += 1
        mine.samples.append(f"POST /incidents: {err!r}")
        return
    if status == 201:
        mine.reports.append(took)
        mine.created.append(answer["number"])
    else:
        mine.errors += 1
        mine.samples.append(f"POST /incidents {status}: {answer}")


def _floor(seconds: float) -> tuple[float, bool]:
    """Steps per second of PROCESSES processes running the naive step loop together."""
    url = pg_url("guichet_bench_http_floor", sqlalchemy=False)
    lc.PostgresStore(lc.Bare(), url).close()  # creates the table
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(PROCESSES), ctx.Queue()
    prepared = max(100, int(seconds * 30))
    processes = [ctx.Process(target=lc.floor_worker, args=(url, seconds, prepared, barrier,
                                                          results)) for _ in range(PROCESSES)]
    for p in processes:
        p.start()
    outcomes = [results.get(timeout=seconds + 600) for _ in processes]
    for p in processes:
        p.join()
    return sum(n / took for n, _, took in outcomes), any(e for _, e, _ in outcomes)
