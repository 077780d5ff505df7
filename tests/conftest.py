"""Fixtures: a database (SQLite file, or PostgreSQL via TEST_DATABASE_URL), the engine with
the demo directory and processes deployed, the Flask app, and lifecycle helpers."""

from __future__ import annotations

import inspect
import os
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlalchemy import create_engine, text

from engine import SYSTEM, Actor, FrozenClock, ServiceDesk, TaskInfo, TicketInfo, directory
from engine.persistence.models import Base

ROOT = Path(__file__).resolve().parent.parent
PROCESSES = ROOT / "processes"
# Argon2 at its cheapest: the suite signs in hundreds of times. Production uses the defaults.
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
POSTGRES_URL = os.environ.get("TEST_DATABASE_URL")
DATABASE_FIXTURES = {"database_url", "postgres_schema"}  # the test database, either backend


def _reads_postgres_url(path: Path, cache: dict[Path, bool]) -> bool:
    if path not in cache:
        source = path.read_text() if path.suffix == ".py" and path.exists() else "?"
        cache[path] = source == "?" or "TEST_DATABASE_URL" in source or "POSTGRES_URL" in source
    return cache[path]


def _may_reach_postgres(item: pytest.Item, cache: dict[Path, bool]) -> bool:
    """Whether the test's module, or the module of one of its fixtures, reads the PostgreSQL
    URL (this conftest aside: its fixtures reach it only through database_url)."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return True
    paths = {Path(item.path)}
    for name in item.fixturenames:
        for fixturedef in info.name2fixturedefs.get(name, ()):
            paths.add(Path(inspect.getfile(fixturedef.func)))
    paths.discard(Path(__file__))
    return any(_reads_postgres_url(path, cache) for path in paths)


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark ``db_agnostic`` the tests whose outcome cannot depend on the test database; the
    PostgreSQL half of ``make test`` deselects them (the SQLite half runs them).

    A test is db_agnostic when it says so (``pytestmark = pytest.mark.db_agnostic``), or when
    it does not use the ``database_url`` fixture (nor desk, app, client, api, life..., which
    all rest on it), carries no ``postgresql`` parameter, and either carries a ``sqlite``
    parameter (a SQLite-only variant: the same in both halves) or neither its module nor
    those of its fixtures read TEST_DATABASE_URL / POSTGRES_URL. Browser and slow tests keep
    their own markers. When in doubt a test is not marked: it then runs in both halves.
    """
    cache: dict[Path, bool] = {}
    for item in items:
        uses_database = bool(DATABASE_FIXTURES & set(getattr(item, "fixturenames", ())))
        if item.get_closest_marker("db_agnostic"):
            if uses_database:
                raise pytest.UsageError(f"{item.nodeid} is marked db_agnostic but uses the "
                                        "test database (database_url)")
            continue
        if uses_database or item.get_closest_marker("browser") or item.get_closest_marker(
                "slow"):
            continue
        params = getattr(getattr(item, "callspec", None), "params", {})
        values = {v for v in params.values() if isinstance(v, str)}
        if "postgresql" in values:
            continue
        if "sqlite" in values or not _may_reach_postgres(item, cache):
            item.add_marker(pytest.mark.db_agnostic)


@pytest.fixture(scope="session", autouse=True)
def cheap_dummy_hash() -> Iterator[None]:
    """Unknown user names are checked against a dummy hash (so timing does not tell); made
    with the production Argon2 costs it takes ~0.3 s per check, and the throttling, fuzzing
    and access tests try hundreds of unknown names. Like the demo users' hashes
    (FAST_HASHER), the suite's dummy is a cheap one: the same code path, one verification."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(directory, "_DUMMY_HASH", FAST_HASHER.hash("guichet-dummy"))
        yield


def build_demo(database_url: str) -> None:
    """Create the tables, seed the demo directory and deploy processes/, as of FrozenClock()."""
    d = make_desk(database_url, FrozenClock())
    try:
        d.create_schema()
        d.seed_demo(PROCESSES)
        d.deploy_folder(PROCESSES, SYSTEM)
    finally:
        d.close()


class PostgresSnapshot:
    """The demo database on PostgreSQL, built once per session and kept as COPY text.

    ``reset()`` empties every table and restarts every sequence, as TRUNCATE ... RESTART
    IDENTITY did (DELETE is ~50 times cheaper than TRUNCATE on tables this small);
    ``reset(load=True)`` then puts back the rows and sequence positions that ``build_demo``
    left, so each test starts from exactly the state a fresh build gives (same FrozenClock
    start as the ``clock`` fixture), without seeding and deploying the processes again.
    """

    def __init__(self, url: str) -> None:
        self.engine = create_engine(url, pool_size=1, pool_pre_ping=True)
        self.quote = self.engine.dialect.identifier_preparer.quote
        self.tables = [t.name for t in Base.metadata.sorted_tables]
        Base.metadata.drop_all(self.engine)
        with self.engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
        Base.metadata.create_all(self.engine)
        with self.engine.connect() as conn:
            self.sequences = list(conn.execute(text(
                "SELECT c.relname FROM pg_class c WHERE c.relkind = 'S' "
                "AND c.relnamespace = current_schema()::regnamespace")).scalars())
        build_demo(url)
        self.rows: dict[str, bytes] = {}
        with self.engine.connect() as conn, self._cursor(conn) as cur:
            for table in self.tables:
                with cur.copy(f"COPY {self.quote(table)} TO STDOUT") as copy:
                    data = b"".join(bytes(block) for block in copy)
                if data:
                    self.rows[table] = data
            self.positions = [tuple(cur.execute(
                f"SELECT last_value, is_called FROM {self.quote(seq)}").fetchone())
                for seq in self.sequences]
            conn.rollback()

    @staticmethod
    def _cursor(conn):
        return conn.connection.driver_connection.cursor()

    def reset(self, load: bool = False) -> None:
        with self.engine.begin() as conn, self._cursor(conn) as cur:
            cur.execute("SET LOCAL synchronous_commit = off")  # a test database: no fsync wait
            for table in reversed(self.tables):
                cur.execute(f"DELETE FROM {self.quote(table)}")
            for seq, (value, called) in zip(self.sequences, self.positions, strict=True):
                if not load:
                    value, called = 1, False  # as ALTER SEQUENCE ... RESTART
                cur.execute("SELECT setval(%s, %s, %s)", (self.quote(seq), value, called))
            if load:
                for table, data in self.rows.items():
                    with cur.copy(f"COPY {self.quote(table)} FROM STDIN") as copy:
                        copy.write(data)

    def close(self) -> None:
        self.engine.dispose()


@pytest.fixture(scope="session")
def postgres_schema() -> Iterator[PostgresSnapshot | None]:
    """On PostgreSQL: create the tables and the demo snapshot once per session."""
    if not POSTGRES_URL:
        yield None
        return
    snapshot = PostgresSnapshot(POSTGRES_URL)
    yield snapshot
    snapshot.close()


@pytest.fixture(scope="session")
def sqlite_demo(tmp_path_factory: pytest.TempPathFactory) -> Path | None:
    """On SQLite: the demo database built once per session; each ``desk`` gets a copy."""
    if POSTGRES_URL:
        return None
    path = tmp_path_factory.mktemp("demo") / "guichet.db"
    build_demo(f"sqlite:///{path}")
    with closing(sqlite3.connect(path)) as conn:  # everything in the one file: no -wal left
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


@pytest.fixture
def database_url(tmp_path: Path, postgres_schema: PostgresSnapshot | None) -> str:
    """An empty database (tables created on PostgreSQL, no file yet on SQLite)."""
    if postgres_schema is None:
        return f"sqlite:///{tmp_path / 'guichet.db'}"
    postgres_schema.reset()
    return POSTGRES_URL


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


def make_desk(database_url: str, clock: FrozenClock) -> ServiceDesk:
    return ServiceDesk(database_url, clock=clock, hasher=FAST_HASHER)


@pytest.fixture
def desk(database_url: str, clock: FrozenClock, postgres_schema: PostgresSnapshot | None,
         sqlite_demo: Path | None) -> Iterator[ServiceDesk]:
    """The engine on a fresh database with the demo directory and processes deployed: a copy
    of the session's demo database (SQLite) or its snapshot loaded (PostgreSQL)."""
    if postgres_schema is not None:
        postgres_schema.reset(load=True)
    else:
        path = Path(database_url.removeprefix("sqlite:///"))
        assert sqlite_demo is not None and not path.exists(), path
        shutil.copyfile(sqlite_demo, path)
    d = make_desk(database_url, clock)
    yield d
    d.close()


class Lifecycle:
    """Drives tickets the way people do: ``complete(ticket, "qualify", as_="sam", data=...)``."""

    def __init__(self, desk: ServiceDesk) -> None:
        self.desk = desk

    def user(self, username: str) -> Actor:
        actor = self.desk.actor(username)
        assert actor is not None, f"no demo user {username}"
        return actor

    def report(self, as_: str = "alice", title: str = "VPN drops every hour",
               description: str = "Since this morning", service: str | None = "vpn"
               ) -> TicketInfo:
        return self.desk.open_incident(self.user(as_), title, description, service)

    def order(self, item: str, fields: dict[str, Any], as_: str = "alice",
              title: str | None = None) -> TicketInfo:
        return self.desk.order(self.user(as_), item, title, fields)

    def task(self, ticket: TicketInfo | str, name: str, as_: str = "admin") -> TaskInfo:
        number = ticket if isinstance(ticket, str) else ticket.number
        current = self.desk.ticket(self.user(as_), number)
        found = [t for t in current.tasks if t.name == name]
        assert found, f"{number} waits on {[t.name for t in current.tasks]}, not {name}"
        return found[0]

    def complete(self, ticket: TicketInfo | str, name: str, as_: str,
                 data: dict[str, Any]) -> TicketInfo:
        task = self.task(ticket, name, as_="admin")
        return self.desk.complete(self.user(as_), task.id, data)

    def ticket(self, ticket: TicketInfo | str) -> TicketInfo:
        """The ticket as staff see it (with every process variable)."""
        number = ticket if isinstance(ticket, str) else ticket.number
        return self.desk.ticket(self.user("admin"), number)

    def waits_on(self, ticket: TicketInfo | str) -> list[str]:
        number = ticket if isinstance(ticket, str) else ticket.number
        return [t.name for t in self.desk.ticket(self.user("admin"), number).tasks]


@pytest.fixture
def life(desk: ServiceDesk) -> Lifecycle:
    return Lifecycle(desk)


QUALIFY_RESOLVE = {"category": "network", "service": "vpn", "impact": "medium",
                   "urgency": "high", "action": "resolve", "resolution": "Reset the VPN profile"}
QUALIFY_ESCALATE = {"category": "network", "service": "vpn", "impact": "high",
                    "urgency": "high", "action": "escalate", "group": "network"}
