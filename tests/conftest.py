"""Fixtures: a database (SQLite file, or PostgreSQL via TEST_DATABASE_URL), the engine with
the demo directory and processes deployed, the Flask app, and lifecycle helpers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlalchemy import create_engine, text

from engine import SYSTEM, Actor, FrozenClock, ServiceDesk, TaskInfo, TicketInfo
from engine.persistence.models import Base

ROOT = Path(__file__).resolve().parent.parent
PROCESSES = ROOT / "processes"
# Argon2 at its cheapest: the suite signs in hundreds of times. Production uses the defaults.
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
POSTGRES_URL = os.environ.get("TEST_DATABASE_URL")


@pytest.fixture(scope="session")
def postgres_schema() -> Iterator[str | None]:
    """On PostgreSQL: create the tables once; each test then starts from empty tables."""
    if not POSTGRES_URL:
        yield None
        return
    engine = create_engine(POSTGRES_URL)
    Base.metadata.drop_all(engine)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    Base.metadata.create_all(engine)
    engine.dispose()
    yield POSTGRES_URL


@pytest.fixture
def database_url(tmp_path: Path, postgres_schema: str | None) -> str:
    if postgres_schema is None:
        return f"sqlite:///{tmp_path / 'guichet.db'}"
    engine = create_engine(postgres_schema)
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()
    return postgres_schema


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


def make_desk(database_url: str, clock: FrozenClock) -> ServiceDesk:
    return ServiceDesk(database_url, clock=clock, hasher=FAST_HASHER)


@pytest.fixture
def desk(database_url: str, clock: FrozenClock) -> Iterator[ServiceDesk]:
    """The engine on a fresh database with the demo directory and processes deployed."""
    d = make_desk(database_url, clock)
    d.create_schema()
    d.seed_demo(PROCESSES)
    d.deploy_folder(PROCESSES, SYSTEM)
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
