"""Engines and units of work for SQLite and PostgreSQL."""

from __future__ import annotations

import select
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker


def make_engine(url: str, pool_size: int = 5) -> Engine:
    """Create the SQLAlchemy engine; SQLite gets WAL, foreign keys and explicit locking."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        _setup_sqlite(engine)
        return engine
    # connect_timeout: an unreachable server fails fast.
    engine = create_engine(url, pool_size=pool_size, max_overflow=pool_size,
                           connect_args={"connect_timeout": 5})
    _replace_closed_connections(engine)
    return engine


def _replace_closed_connections(engine: Engine) -> None:
    """A pooled connection the server closed (restart, ``pg_terminate_backend``) is replaced
    before use, so service resumes on its own.

    An idle connection's socket has nothing to read unless the server closed it (it says
    why, then hangs up): looking costs a ``poll`` instead of the round trip of
    ``pool_pre_ping``, which every request paid.
    """
    @event.listens_for(engine, "checkout")
    def _check(dbapi_conn, _record, _proxy) -> None:
        if dbapi_conn.closed:
            raise DisconnectionError("the connection is closed")
        poller = select.poll()
        poller.register(dbapi_conn.fileno(), select.POLLIN | select.POLLHUP | select.POLLERR)
        if poller.poll(0):
            raise DisconnectionError("the server closed the connection")


def _setup_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:
        # Take over transaction control from the driver so BEGIN IMMEDIATE is possible.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:
        # Writers take the write lock up front: a writer never reads a state that
        # another writer is about to replace, and never fails on lock upgrade.
        if conn.get_execution_options().get("write"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


class Database:
    """Hands out units of work: one transaction each, committed or rolled back whole."""

    def __init__(self, url: str, pool_size: int = 5, info: dict | None = None) -> None:
        """``info``: what every session carries in ``Session.info``."""
        self.url = url
        self.engine = make_engine(url, pool_size)
        self.is_sqlite = url.startswith("sqlite")
        # PostgreSQL reads run in READ ONLY transactions and end with COMMIT: a ROLLBACK
        # would make psycopg drop its prepared statements, so every request would plan
        # its queries anew.
        self._reader = sessionmaker(
            self.engine if self.is_sqlite else self.engine.execution_options(
                postgresql_readonly=True), expire_on_commit=False, info=info)
        self._writer = sessionmaker(
            self.engine.execution_options(write=True), expire_on_commit=False, info=info
        )

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A read-write transaction (``BEGIN IMMEDIATE`` on SQLite)."""
        with self._writer() as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only transaction: nothing written survives it (refused on PostgreSQL,
        rolled back on SQLite)."""
        with self._reader() as session:
            try:
                yield session
            except BaseException:
                session.rollback()
                raise
            if self.is_sqlite:
                session.rollback()
            else:
                session.commit()

    def dispose(self) -> None:
        self.engine.dispose()
