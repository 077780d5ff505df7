"""Nothing lost: one winner among concurrent completions, restarts, crashes mid-step."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from engine import Conflict
from engine.persistence.models import Task, Ticket, TicketState
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

    monkeypatch.setattr("engine.audit.append", crash)
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
