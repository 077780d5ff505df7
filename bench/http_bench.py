"""Section ``http``: N simulated agents against gunicorn workers on PostgreSQL, and the raw
PostgreSQL floor (the naive whole-blob step loop in 4 processes) for the same duration."""

from __future__ import annotations

import contextlib
import http.client
import json
import multiprocessing
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

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
PROCESSES = 4
SHARE = 0.40  # HTTP completions/s at least 40 % of the raw floor's steps/s
HANDLES = {"desk": {"qualify", "close"}, "network": {"escalate"}, "requester": {"confirm"}}
DATA = {name: data for name, _who, _group, data in lc.STEPS}


def run(section: Section, args) -> None:
    problem = pg_available()
    if problem is not None:
        section.notes.append(f"skipped: {problem}")
        return
    seconds, agents = args.http_seconds, args.agents
    url = create_database("guichet_bench_http")
    create_database("guichet_bench_http_floor")
    server = None
    try:
        desk = ready_desk(url, alembic=True)
        roles = _roles(agents)
        users = _users(desk, roles)
        tickets = max(200, int(seconds * 40))
        began = time.perf_counter()
        bulk.generate(desk, tickets, mix={("incident", "new"): 1.0},
                      requesters=[u for role, u in users if role == "requester"])
        setup = time.perf_counter() - began
        # The floor runs half before and half after the HTTP run: load that comes and
        # goes on the machine weighs on both alike.
        before = _floor(seconds / 2)
        server = Gunicorn(url)
        tokens = {u: sign_in(server.port, u) for _, u in users}
        outcome = _drive(server.port, users, tokens, seconds, cap=4 * tickets)
        server.stop()
        server = None
        after = _floor(seconds / 2)
        count, first_bad, _ = desk.verify_audit()
        desk.close()
    finally:
        if server is not None:
            server.stop()
        drop_database("guichet_bench_http")
        drop_database("guichet_bench_http_floor")
    floor_rate, exhausted = (before[0] + after[0]) / 2, before[1] or after[1]

    complete = summary_ms(outcome.latencies) if outcome.latencies else None
    inbox = summary_ms(outcome.inbox) if outcome.inbox else None
    rate = outcome.completions / outcome.elapsed
    section.table(f"{agents} agents ({roles['desk']} service desk, {roles['network']} network, "
                  f"{roles['requester']} requesters), gunicorn -w {WORKERS} (sync workers), "
                  f"PostgreSQL", [
        "run", "seconds", "completions", "per s", "p50 ms", "p95 ms", "p99 ms", "409s",
        "errors",
    ], [
        ["POST /tasks/ID/complete", outcome.elapsed, outcome.completions, rate,
         complete and complete["p50"], complete and complete["p95"],
         complete and complete["p99"], outcome.conflicts, outcome.errors],
        ["GET /tasks (inbox)", outcome.elapsed, len(outcome.inbox),
         len(outcome.inbox) / outcome.elapsed, inbox and inbox["p50"], inbox and inbox["p95"],
         inbox and inbox["p99"], None, outcome.inbox_errors],
        [f"raw floor: {PROCESSES} processes, naive whole blob (before)", seconds / 2,
         round(before[0] * seconds / 2), before[0], None, None, None, None, None],
        [f"raw floor: {PROCESSES} processes, naive whole blob (after)", seconds / 2,
         round(after[0] * seconds / 2), after[0], None, None, None, None, None],
    ])
    section.notes.append(f"{tickets} new incidents generated beforehand by engine.bulk "
                         f"({setup:.0f} s; 4 completions each at most); the run ends after "
                         f"{seconds:.0f} s or when all are closed; each agent reads its inbox "
                         f"(GET /tasks, a random page of 25 among the first 4 for the desk) "
                         f"before each completion; {outcome.idle} empty-inbox polls")
    if outcome.samples:
        section.notes.append("first errors: " + "; ".join(outcome.samples[:3]))
    if exhausted:
        section.notes.append("the floor ran out of prepared instances: its rate is a minimum")
    section.notes.append(f"audit chain after the run: {count} events, "
                         f"{'intact' if first_bad is None else f'BROKEN at {first_bad}'}")
    section.target(f"HTTP completions/s vs raw PostgreSQL {PROCESSES}-process floor",
                   rate / floor_rate if floor_rate else None, SHARE, ">=",
                   note=f"{rate:.0f} completions/s vs {floor_rate:.0f} steps/s")
    section.target("HTTP errors", float(outcome.errors + outcome.inbox_errors), 0.0, "==")
    section.data = {"completions": outcome.completions, "per_s": rate, "elapsed": outcome.elapsed,
                    "complete_ms": complete, "inbox_ms": inbox, "conflicts": outcome.conflicts,
                    "errors": outcome.errors, "inbox_errors": outcome.inbox_errors,
                    "floor_per_s": floor_rate,
                    "agents": agents, "workers": WORKERS, "tickets": tickets}


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
            except OSError:
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


def call(port: int, method: str, path: str, token: str | None = None,
         body: dict | None = None) -> tuple[int, object, float]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    payload = None
    if body is not None:
        payload = json.dumps(body)
        headers["Content-Type"] = "application/json"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        began = time.perf_counter()
        conn.request(method, path, body=payload, headers=headers)
        response = conn.getresponse()
        raw = response.read()
        seconds = time.perf_counter() - began
    finally:
        conn.close()
    try:
        data = json.loads(raw) if raw else None
    except ValueError:
        data = raw[:200]
    return response.status, data, seconds


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
                                          token)
            except (OSError, http.client.HTTPException) as err:
                mine.inbox_errors += 1
                mine.samples.append(f"GET /tasks: {err!r}")
                continue
            mine.inbox.append(took)
            if status != 200:
                mine.inbox_errors += 1
                mine.samples.append(f"GET /tasks {status}: {body}")
                continue
            tasks = [t for t in body["items"] if t["name"] in HANDLES[role]]
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
                status, body, took = call(port, "POST", f"/api/v1/tasks/{task['id']}/complete",
                                          token, {"data": DATA[task["name"]]})
            except (OSError, http.client.HTTPException) as err:
                mine.errors += 1
                mine.samples.append(f"POST complete: {err!r}")
                continue
            if status == 200:
                mine.latencies.append(took)
                mine.completed.append((task["id"], task["name"], task["ticket"]))
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
