"""Slow tests: the real server (gunicorn, several workers) on PostgreSQL.

They need ``TEST_DATABASE_URL`` (``make test-slow`` sets it with scripts/test-postgres-url)
and never touch its database: each test creates a database of its own on the same server
(``guichet_slow_<test>_<pid>``) and drops it afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from engine import ServiceDesk
from engine.bpmn import load_state
from engine.persistence.models import Task, Ticket, TicketState
from engine.runtime import ready_user_tasks

ROOT = Path(__file__).resolve().parent.parent.parent
GUICHET = Path(sys.executable).parent / "guichet"
POSTGRES_URL = os.environ.get("TEST_DATABASE_URL")


def _admin(url: str) -> psycopg.Connection:
    server = make_url(url).set(drivername="postgresql", database="postgres")
    return psycopg.connect(server.render_as_string(hide_password=False), autocommit=True,
                           connect_timeout=10)


@pytest.fixture
def slow_database(request: pytest.FixtureRequest) -> Iterator[str]:
    """The SQLAlchemy URL of an empty database of this test's own, dropped afterwards."""
    if not POSTGRES_URL:
        pytest.skip("the slow tests run on PostgreSQL only: set TEST_DATABASE_URL "
                    "(make test-slow does)")
    name = f"guichet_slow_{request.node.name.removeprefix('test_')[:30]}_{os.getpid()}".lower()
    name = "".join(c if c.isalnum() else "_" for c in name)
    with _admin(POSTGRES_URL) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with _admin(POSTGRES_URL) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def guichet(url: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the ``guichet`` command line on the database at ``url``."""
    return subprocess.run([str(GUICHET), *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "DATABASE_URL": url}, timeout=timeout, check=False)


def prepare(url: str) -> None:
    """What a release does (Procfile), and the demo directory: upgrade, seed, deploy."""
    for args in (("db", "upgrade"), ("demo-data",), ("deploy",)):
        done = guichet(url, *args)
        assert done.returncode == 0, f"guichet {' '.join(args)}: {done.stdout}{done.stderr}"


def state_mismatches(url: str) -> list[str]:
    """Tickets whose saved workflow does not restore, or whose ready user tasks differ from
    their ready ``tasks`` rows (what inboxes show): each step must save both or neither."""
    problems = []
    desk = ServiceDesk(url)
    try:
        with desk.db.read() as s:
            ready: dict[int, set[str]] = {}
            for ticket_id, task_id in s.execute(select(Task.ticket_id, Task.id)
                                                .where(Task.state == "ready")):
                ready.setdefault(ticket_id, set()).add(task_id)
            for ticket, state in s.execute(select(Ticket, TicketState)
                                           .outerjoin(TicketState,
                                                      TicketState.ticket_id == Ticket.id)):
                rows = ready.get(ticket.id, set())
                if state is None:
                    if rows:
                        problems.append(f"{ticket.number}: ready rows {rows} but no state")
                    continue
                definition = desk.definitions.get(s, ticket.definition_id)
                try:
                    workflow = load_state(state.state, definition.spec,
                                          definition.subprocess_specs)
                except Exception as err:
                    problems.append(f"{ticket.number}: state does not load: {err!r}")
                    continue
                live = {str(t.id) for t in ready_user_tasks(workflow)}
                if live != rows:
                    problems.append(f"{ticket.number} ({ticket.status}): workflow ready "
                                    f"{sorted(live)}, tasks rows {sorted(rows)}")
    finally:
        desk.close()
    return problems
