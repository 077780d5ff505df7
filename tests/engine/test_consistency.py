"""Nothing lost: one winner among concurrent completions, restarts, crashes mid-step."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import event, select, text, update
from sqlalchemy.exc import DBAPIError

from engine import Conflict, NotFound
from engine.persistence.db import Database
from engine.persistence.models import Counter, Task, Ticket, TicketState
from tests.conftest import QUALIFY_ESCALATE, QUALIFY_RESOLVE, Lifecycle, make_desk


def test_eight_agents_completing_one_task_give_one_success(life, desk):
    ticket = life.report()
    task = life.task(ticket, "qualify")
    sam = life.user("sam")
    barrier = threading.Barrier(8)
    outcomes: list[str] = []
    lock = threading.Lock()

    def attempt() -> None:
        barrier.wait()
        try:
            desk.complete(sam, task.id, QUALIFY_RESOLVE)
            result = "ok"
        except Conflict:
            result = "conflict"
        except Exception as err:  # anything else is a bug the test must show
            result = f"error: {err!r}"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict"] * 7 + ["ok"]
    assert life.waits_on(ticket) == ["confirm"]
    history = desk.history(life.user("admin"), ticket.number)
    assert [e.action for e in history].count("task_completed") == 1
    assert desk.verify_audit()[1] is None


def test_two_tasks_of_one_ticket_completed_at_once_both_count(life, desk, clock):
    """The second step waits for the ticket lock, then works on what the first one left."""
    ticket = life.report()
    life.complete(ticket, "qualify", as_="sam", data={**QUALIFY_ESCALATE, "impact": "medium"})
    clock.advance(hours=8, seconds=1)  # P2: breached, a review for the managers
    assert desk.fire_due_timers().fired == 1
    escalate, review = life.task(ticket, "escalate"), life.task(ticket, "review_breach")
    first_holds_lock, outcomes = threading.Event(), {}

    def slow_commit(_conn) -> None:  # the first step keeps the lock a while before commit
        if threading.current_thread().name == "first":
            first_holds_lock.set()
            time.sleep(0.5)

    def run(name: str, as_: str, task_id: str, data: dict) -> None:
        try:
            desk.complete(life.user(as_), task_id, data)
            outcomes[name] = "ok"
        except Exception as err:  # the test must show anything unexpected
            outcomes[name] = repr(err)

    event.listen(desk.db.engine, "commit", slow_commit)
    try:
        first = threading.Thread(name="first", target=run, args=(
            "first", "nina", escalate.id, {"action": "resolve", "resolution": "Fixed"}))
        second = threading.Thread(name="second", target=run, args=(
            "second", "max", review.id, {"decision": "reinforce", "notes": "Watch it"}))
        first.start()
        assert first_holds_lock.wait(10)
        second.start()  # blocks on the ticket lock until the first step commits
        first.join()
        second.join()
    finally:
        event.remove(desk.db.engine, "commit", slow_commit)
    assert outcomes == {"first": "ok", "second": "ok"}
    assert life.waits_on(ticket) == ["confirm"]  # the resolution was not undone
    actions = [e.action for e in desk.history(life.user("admin"), ticket.number)]
    assert actions.count("task_completed") == 3


def test_nothing_written_in_a_read_transaction_survives(desk):
    def write_while_reading() -> None:
        with desk.db.read() as s:
            s.execute(update(Counter).values(value=Counter.value + 1000))

    if desk.db.is_sqlite:
        write_while_reading()  # rolled back at the end
    else:
        with pytest.raises(DBAPIError, match="read-only transaction"):
            write_while_reading()  # PostgreSQL reads run READ ONLY
    with desk.db.read() as s:
        assert max(s.scalars(select(Counter.value))) < 1000


def test_a_unit_that_wrote_then_failed_is_rolled_back(desk):
    with pytest.raises(Conflict), desk.db.write() as s:
        s.execute(update(Counter).values(value=Counter.value + 1000))
        raise Conflict("refused after writing")
    with desk.db.read() as s:
        assert max(s.scalars(select(Counter.value))) < 1000


def test_a_refusal_keeps_the_prepared_statements(desk, database_url):
    """A unit refused before writing (404, 403, 409, 422) ends with COMMIT on PostgreSQL, not
    ROLLBACK: psycopg answers a ROLLBACK by deallocating every prepared statement of the
    connection, and the process would parse and plan its next statements anew."""
    db = Database(database_url, pool_size=1)
    try:
        for _ in range(6):  # psycopg prepares a statement on its fifth execution
            with db.read() as s:
                s.execute(select(Counter.value)).all()
        prepared = _prepared_statements(db)
        assert db.is_sqlite or prepared > 0  # PostgreSQL: something to lose
        with pytest.raises(Conflict), db.write() as s:
            s.execute(select(Counter.value).with_for_update()).all()
            raise Conflict("this task is no longer ready")
        with pytest.raises(NotFound), db.read() as s:
            s.execute(select(Counter.value)).all()
            raise NotFound("no such ticket")
        assert _prepared_statements(db) >= prepared
    finally:
        db.dispose()


def _prepared_statements(db: Database) -> int:
    if db.is_sqlite:
        return 0
    with db.read() as s:
        return s.scalar(text("SELECT count(*) FROM pg_prepared_statements"))


def test_a_ticket_in_progress_survives_a_restart(desk, database_url, clock):
    life = Lifecycle(desk)
    ticket = life.report()
    life.complete(ticket, "qualify", as_="sam", data=QUALIFY_ESCALATE)
    desk.close()

    restarted = make_desk(database_url, clock)  # fresh process: empty caches
    life = Lifecycle(restarted)
    assert life.waits_on(ticket) == ["escalate"]
    life.complete(ticket, "escalate", as_="nina", data={"action": "resolve", "resolution": "ok"})
    life.complete(ticket, "confirm", as_="alice", data={"resolved": True})
    assert life.complete(ticket, "close", as_="sam",
                         data={"closure_code": "solved"}).status == "closed"
    restarted.close()


def test_a_crash_mid_step_leaves_the_previous_state(life, desk, monkeypatch):
    ticket = life.report()
    task = life.task(ticket, "qualify")
    before = _snapshot(desk, ticket.number)

    def crash(*_args, **_kwargs):
        raise RuntimeError("power cut while writing the audit trail")

    # The step's rows are sent by then (with the audit head's lock); its events are not.
    monkeypatch.setattr("engine.audit._canonical", crash)
    with pytest.raises(RuntimeError):
        desk.complete(life.user("sam"), task.id, QUALIFY_RESOLVE)
    monkeypatch.undo()

    assert _snapshot(desk, ticket.number) == before
    ticket = desk.complete(life.user("sam"), task.id, QUALIFY_RESOLVE)
    assert ticket.status == "resolved"


def test_claimed_task_answers_conflict_to_others_until_released(life, desk):
    ticket = life.report()
    task = life.task(ticket, "qualify")
    sam, admin = life.user("sam"), life.user("admin")
    assert desk.claim(sam, task.id).assignee == "sam"
    with pytest.raises(Conflict, match="claimed by sam"):
        desk.complete(admin, task.id, QUALIFY_RESOLVE)
    with pytest.raises(Conflict, match="already claimed by sam"):
        desk.claim(admin, task.id)
    assert desk.release(sam, task.id).assignee is None
    assert desk.complete(admin, task.id, QUALIFY_RESOLVE).status == "resolved"


def _snapshot(desk, number: str) -> tuple:
    with desk.db.read() as s:
        ticket = s.scalars(select(Ticket).where(Ticket.number == number)).one()
        tasks = s.execute(select(Task.id, Task.state).where(Task.ticket_id == ticket.id)
                          .order_by(Task.id)).all()
        state = s.get(TicketState, ticket.id).state
        return (ticket.status, ticket.lock_version, ticket.priority, tuple(tasks), state,
                desk.verify_audit())
