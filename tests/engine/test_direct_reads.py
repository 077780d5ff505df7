"""Database.rows: one SELECT on the driver's cursor, outside any transaction on PostgreSQL."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import bindparam, select, text, update
from sqlalchemy.exc import ProgrammingError

from engine.persistence.db import Database
from engine.persistence.models import Counter, Ticket

_TICKETS = select(Ticket.number, Ticket.created_at).where(Ticket.number == bindparam("n"))
_COUNTERS = select(Counter.name, Counter.value).order_by(Counter.name)


def test_rows_come_typed_as_sqlalchemy_gives_them(desk, life):
    number = life.report().number
    with desk.db.read() as s:
        expected = s.execute(_TICKETS, {"n": number}).one()
        assert s.get(Ticket, 1).created_at.tzinfo is not None
    with desk.db.read() as s:
        ((got_number, created_at),) = desk.db.rows(s, _TICKETS, {"n": number})
    assert (got_number, created_at) == tuple(expected)
    assert isinstance(created_at, datetime) and created_at.tzinfo is not None  # UTCDateTime


def test_inside_a_transaction_rows_see_its_own_writes(desk):
    with desk.db.write() as s:
        s.execute(update(Counter).where(Counter.name == "INC").values(value=41))
        assert ("INC", 41) in [tuple(r) for r in desk.db.rows(s, _COUNTERS, {})]
        s.rollback()


def test_a_read_outside_a_transaction_leaves_the_connection_as_it_was(desk, database_url):
    db = Database(database_url, pool_size=1)
    try:
        with db.read() as s:
            assert len(db.rows(s, _COUNTERS, {})) == 2
        if not db.is_sqlite:
            with db.engine.connect() as connection:
                driver = connection.connection.dbapi_connection
                assert driver.autocommit is False  # transactions as before for everyone else
        with db.write() as s:  # and a unit of work on it commits as usual
            s.execute(update(Counter).values(value=Counter.value + 1))
        with db.read() as s:
            assert all(v >= 1 for _, v in db.rows(s, _COUNTERS, {}))
    finally:
        db.dispose()


def test_a_failing_read_raises_as_sqlalchemy_would(desk):
    broken = select(text("no_such_column")).select_from(Counter)
    with pytest.raises(Exception) as caught, desk.db.read() as s:
        desk.db.rows(s, broken, {})
    if not desk.db.is_sqlite:
        assert isinstance(caught.value, ProgrammingError)  # sqlalchemy.exc, not psycopg's


def test_the_compiled_statements_kept_are_bounded(desk, monkeypatch):
    """Inboxes build a statement per shape of actor and filters; a long-running process
    must not keep every statement it ever compiled."""
    from engine.persistence import compiled

    monkeypatch.setattr(compiled, "_CACHE", {})
    monkeypatch.setattr(compiled, "_CACHE_SIZE", 2)
    dialect = desk.db.engine.dialect
    statements = [select(Counter.value).where(Counter.name == bindparam("n")).limit(i)
                  for i in range(1, 6)]
    for statement in statements:
        made = compiled.compile_for(statement, dialect, {"n": "INC"})
        assert made.statement is statement and "LIMIT" in made.sql
        assert len(compiled._CACHE) <= 2
    assert compiled.compile_for(statements[-1], dialect, {"n": "INC"}) is made  # still kept
