"""Batch: a unit of work's writes sent together (a psycopg pipeline on PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import bindparam, inspect, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from engine import tickets
from engine.errors import Conflict
from engine.persistence.batch import Batch
from engine.persistence.models import Counter, Task, Ticket
from tests.conftest import QUALIFY_RESOLVE
from tests.engine.test_step_cost import statements

_BUMP = update(Counter).where(Counter.name == bindparam("prefix")).values(
    value=Counter.value + bindparam("by"))


def _ticket(desk, life) -> Ticket:
    number = life.report().number
    with desk.db.read() as s:
        ticket = s.scalars(select(Ticket).where(Ticket.number == number)).one()
        s.expunge(ticket)  # loaded, as a step holds it
        return ticket


def test_queued_statements_run_in_order_and_a_query_answers_after_them(desk):
    with desk.db.write() as s:
        batch = Batch(s)
        batch.add(_BUMP, {"prefix": "INC", "by": 5})
        batch.add(_BUMP, [{"prefix": "INC", "by": 2}, {"prefix": "REQ", "by": 3}])
        rows = batch.send(select(Counter.name, Counter.value).order_by(Counter.name))
    assert [tuple(r) for r in rows] == [("INC", 7), ("REQ", 3)]


def test_put_writes_a_changed_row_whole_and_moves_its_version(desk, life):
    ticket = _ticket(desk, life)
    version = ticket.lock_version
    with desk.db.write() as s:
        s.add(ticket)
        ticket.title, ticket.due_at = "Renamed", datetime(2027, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
        batch = Batch(s)
        batch.put(ticket)
        batch.put(ticket)  # written once: unchanged since
        batch.send()
        assert ticket not in s  # the ORM does not write it again at commit
    with desk.db.write() as s:
        ticket.title = "Renamed again"
        batch = Batch(s)
        batch.put(ticket)
        batch.send()
    with desk.db.read() as s:
        stored = s.get(Ticket, ticket.id)
        assert (stored.title, stored.due_at) == ("Renamed again", ticket.due_at)
        assert stored.lock_version == ticket.lock_version == version + 2


def test_put_of_a_row_changed_meanwhile_is_refused(desk, life):
    ticket = _ticket(desk, life)
    with desk.db.write() as s:  # someone else's write moves the version
        s.get(Ticket, ticket.id).title = "Theirs"
    with pytest.raises(StaleDataError), desk.db.write() as s:
        ticket.title = "Mine"
        batch = Batch(s)
        batch.put(ticket)
        batch.send()
    with desk.db.read() as s:
        assert s.get(Ticket, ticket.id).title == "Theirs"


def test_the_facade_answers_conflict_when_the_ticket_changed_meanwhile(desk, life,
                                                                     monkeypatch):
    number = life.report().number
    task = life.task(number, "qualify")
    real_put = Batch.put

    def someone_else_first(self, row):
        if isinstance(row, Ticket):  # as if the row had not been locked by the step
            with self.session.no_autoflush:
                self.session.execute(update(Ticket).where(Ticket.id == row.id)
                                     .values(lock_version=Ticket.lock_version + 1)
                                     .execution_options(synchronize_session=False))
        real_put(self, row)

    monkeypatch.setattr(Batch, "put", someone_else_first)
    with pytest.raises(Conflict, match="changed while you worked"):
        desk.complete(life.user("sam"), task.id, QUALIFY_RESOLVE)
    monkeypatch.undo()
    assert life.waits_on(number) == ["qualify"]


def test_a_new_row_is_inserted_once(desk, life):
    ticket = _ticket(desk, life)
    now = datetime.now(UTC)
    row = Task(id="t-batch", ticket_id=ticket.id, name="qualify", title="Qualify",
               group_key="service_desk", for_requester=False, state="ready", created_at=now)
    with desk.db.write() as s:
        batch = Batch(s)
        batch.put(row)
        batch.put(row)  # stored: an unchanged row is not written again
        batch.send()
    assert (row.for_requester, row.completed_at) == (False, None)  # defaults, loaded
    with desk.db.read() as s:
        stored = s.get(Task, "t-batch")
        assert (stored.created_at, stored.for_requester) == (now, False)


def test_a_failing_statement_raises_as_sqlalchemy_would_and_the_unit_is_rolled_back(desk):
    with pytest.raises(IntegrityError), desk.db.write() as s:
        batch = Batch(s)
        batch.add(_BUMP, {"prefix": "INC", "by": 1000})
        batch.add(update(Counter).values(name=None), {})  # NOT NULL
        batch.send()
    with desk.db.read() as s:
        assert max(s.scalars(select(Counter.value))) < 1000


def test_a_unit_that_wrote_through_a_batch_then_failed_is_rolled_back(desk):
    """On PostgreSQL the batch bypasses the statement events that note writes: it must say
    so itself, or the failed unit would end with COMMIT (see Database._end_failed)."""
    with pytest.raises(Conflict), desk.db.write() as s:
        batch = Batch(s)
        batch.add(_BUMP, {"prefix": "INC", "by": 1000})
        batch.send()
        raise Conflict("refused after writing")
    with desk.db.read() as s:
        assert max(s.scalars(select(Counter.value))) < 1000


def test_a_statement_expanding_a_list_is_refused_on_postgresql(desk):
    statement = update(Counter).where(Counter.name.in_(bindparam("names", expanding=True)))
    with desk.db.write() as s:
        batch = Batch(s)
        batch.add(statement.values(value=0), {"names": ["INC"]})
        if desk.db.is_sqlite:
            batch.send()  # SQLAlchemy Core runs it
        else:
            with pytest.raises(ValueError, match="expand a list"):
                batch.send()


def test_a_ticket_is_locked_then_its_tasks_read_detached_and_typed(desk, life):
    number = life.report().number
    task = life.task(number, "qualify")
    with desk.db.write() as s:
        ticket, state, rows = tickets.lock_of_task(s, task.id, with_state=True)
        assert ticket.number == number and ticket.created_at.tzinfo is not None
        assert state.ticket_id == ticket.id and isinstance(state.state, bytes)
        assert [r.id for r in rows] == [task.id] and rows[0].created_at.tzinfo is not None
        assert all(row not in s for row in (ticket, state, *rows))
        assert not inspect(ticket).modified  # as read: put() leaves it alone
        assert tickets.lock_of_task(s, "no-such-task") == (None, None, [])


def test_an_unchanged_row_read_is_not_written_and_a_changed_one_is(desk, life):
    number = life.report().number
    task = life.task(number, "qualify")
    with desk.db.write() as s, statements(desk) as seen:
        ticket, _, rows = tickets.lock_of_task(s, task.id)
        seen.clear()
        batch = Batch(s)
        batch.put(ticket)
        batch.put(rows[0])
        batch.send()
        assert seen == []
        rows[0].title = "Qualify it"
        batch = Batch(s)
        batch.put(rows[0])
        batch.send()
        assert [q.split(" SET")[0] for q in seen] == ["UPDATE tasks"]
    assert life.task(number, "qualify").title == "Qualify it"
