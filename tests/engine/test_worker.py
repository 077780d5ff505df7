"""The worker: e-mail delivery to a real local SMTP server, retries, failing tickets that
do not block the others, and several workers racing on PostgreSQL."""

from __future__ import annotations

import socket
import threading
from datetime import timedelta

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select, update

from engine import Forbidden, worker
from engine.mailer import SmtpSettings
from engine.persistence.models import AuditEvent, Notification, StepFailure, Ticket
from tests.conftest import POSTGRES_URL, QUALIFY_RESOLVE, make_desk


class Inbox:
    """An aiosmtpd handler keeping every message it receives."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], str]] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos),
                              envelope.content.decode("utf8", "replace")))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp():
    """A real SMTP server on localhost, and the settings to reach it."""
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, SmtpSettings(host="127.0.0.1", port=port, sender="desk@guichet.example")
    finally:
        controller.stop()


def outbox_states(desk) -> dict[str, int]:
    with desk.db.read() as s:
        states: dict[str, int] = {}
        for state in s.scalars(select(Notification.state)):
            states[state] = states.get(state, 0) + 1
        return states


def test_notifications_are_delivered_by_smtp_and_listed_in_the_app(life, desk, smtp):
    inbox, settings = smtp
    ticket = life.report(as_="alice", title="Printer on fire")
    # sam is in service_desk: told of the new qualify task
    assert outbox_states(desk) == {"pending": 1}
    done = worker.run(desk, settings, once=True)
    assert (done.sent, done.undelivered) == (1, 0)
    assert len(inbox.messages) == 1
    sender, recipients, content = inbox.messages[0]
    assert (sender, recipients) == ("desk@guichet.example", ["sam@guichet.example"])
    assert f"Subject: {ticket.number}: Qualify the incident" in content
    assert "Printer on fire" in content
    mine = desk.notifications(life.user("sam"))
    assert [(n.kind, n.state, n.read) for n in mine.items] == [("task", "sent", False)]
    assert desk.unread_count(life.user("sam")) == 1
    assert desk.mark_read(life.user("sam")) == 1
    assert desk.unread_count(life.user("sam")) == 0
    assert desk.notifications(life.user("alice")).total == 0  # no status change yet


def test_requester_hears_of_every_status_change(life, desk):
    ticket = life.report(as_="alice")
    life.complete(ticket, "qualify", as_="sam", data=QUALIFY_RESOLVE)
    life.complete(ticket, "confirm", as_="alice", data={"resolved": True})
    life.complete(ticket, "close", as_="sam", data={"closure_code": "solved"})
    mine = desk.notifications(life.user("alice")).items  # newest first
    assert [(n.subject, n.body.splitlines()[-1]) for n in mine] == [
        (f"{ticket.number} is now closed", "Status: closed"),
        # one message when the step both changes the status and waits on the requester
        (f"{ticket.number}: Confirm the resolution", "Status: resolved"),
    ]


def test_delivery_failures_are_retried_later_then_given_up(life, desk, clock):
    life.report(as_="alice")
    dead = SmtpSettings(host="127.0.0.1", port=9, timeout=0.5)  # nothing listens there
    assert worker.run_round(desk, dead).undelivered == 1
    with desk.db.read() as s:
        row = s.scalars(select(Notification)).one()
        assert (row.state, row.attempts) == ("pending", 1)
        assert "refused" in row.last_error.lower() or "error" in row.last_error.lower()
        retry_at = row.next_attempt_at
    assert worker.run_round(desk, dead).undelivered == 0  # not due again yet
    clock.now = retry_at
    assert worker.run_round(desk, dead).undelivered == 1
    for _ in range(10):
        clock.advance(hours=2)
        worker.run_round(desk, dead)
    assert outbox_states(desk) == {"failed": 1}


def test_a_failing_ticket_is_recorded_retried_later_and_does_not_block_others(life, desk,
                                                                              clock):
    bad, good = life.report(as_="alice"), life.report(as_="bob")
    for t in (bad, good):
        life.complete(t, "qualify", as_="sam", data=QUALIFY_RESOLVE)
    with desk.db.write() as s:  # break the bad ticket's instance (a stand-in for a bug)
        from engine.persistence.models import TicketState

        bad_id = s.scalar(select(Ticket.id).where(Ticket.number == bad.number))
        healthy = s.get(TicketState, bad_id).state
        s.execute(update(TicketState).where(TicketState.ticket_id == bad_id)
                  .values(state=b"not a workflow"))
    clock.advance(days=4)
    done = desk.fire_due_timers()
    assert (done.fired, done.failed) == (1, 1)
    assert life.ticket(good).status == "closed"
    assert life.ticket(bad).status == "resolved"  # rolled back, still consistent
    failures = desk.failures(life.user("admin"))
    assert [(f.ticket, f.operation, f.attempts) for f in failures] == [(bad.number, "timer", 1)]
    assert desk.fire_due_timers().failed == 0  # postponed: not retried at once
    clock.advance(minutes=1)
    assert desk.fire_due_timers().failed == 1
    assert desk.failures(life.user("admin"))[0].attempts == 2
    with desk.db.write() as s:  # "fixed": the next automatic retry goes through
        s.execute(update(TicketState).where(TicketState.ticket_id == bad_id)
                  .values(state=healthy))
    clock.advance(minutes=2)
    assert desk.fire_due_timers().fired == 1
    assert life.ticket(bad).status == "closed"
    assert desk.failures(life.user("admin")) == []  # closed by the retry that worked
    with pytest.raises(Forbidden):
        desk.failures(life.user("sam"))


def failed_qualification(life, monkeypatch):
    """sam qualifies alice's new incident while the process fails at ``set_priority``;
    returns the ticket, and the real ``runtime.complete`` to put back ("the fix")."""
    from engine import runtime
    from engine.errors import ProcessError

    ticket = life.report(as_="alice")
    real = runtime.complete

    def failing(*args, **kwargs):
        raise ProcessError("the process failed at set_priority: boom", "set_priority")

    monkeypatch.setattr(runtime, "complete", failing)
    with pytest.raises(ProcessError):
        life.complete(ticket, "qualify", as_="sam", data=QUALIFY_RESOLVE)
    return ticket, real


def test_step_failure_during_completion_is_recorded_then_retried(life, desk, monkeypatch):
    from engine import runtime

    ticket, real = failed_qualification(life, monkeypatch)
    task = life.task(ticket, "qualify")
    assert life.waits_on(ticket) == ["qualify"]  # rolled back
    [failure] = desk.failures(life.user("admin"))
    assert (failure.operation, failure.actor, failure.element, failure.task_id) == (
        "complete", "sam", "set_priority", task.id)
    monkeypatch.setattr(runtime, "complete", real)  # "the process was fixed"
    retried = desk.retry_failure(life.user("admin"), failure.id)
    assert retried.resolved_by == "admin"
    assert life.ticket(ticket).status == "resolved"
    assert desk.failures(life.user("admin")) == []
    history = desk.history(life.user("admin"), ticket.number)
    completed = [e for e in history if e.action == "task_completed"]
    assert [e.actor for e in completed] == ["sam"]  # replayed as its original actor
    assert {"step_failed", "failure_retried"} <= {e.action for e in history}
    alice_history = {e.action for e in desk.history(life.user("alice"), ticket.number)}
    assert "step_failed" not in alice_history


def test_a_ticket_whose_timers_another_worker_fired_is_left_alone(life, desk, clock,
                                                                  monkeypatch):
    """On PostgreSQL the query that finds a due ticket may lock it just after another
    worker fired its timers and committed: its join still saw the old timer rows. The
    ticket, read afresh once locked, has nothing due: nothing is fired, counted or written."""
    ticket = life.report(as_="alice")
    life.complete(ticket, "qualify", as_="sam", data=QUALIFY_RESOLVE)
    clock.advance(days=4)
    assert desk.fire_due_timers().fired == 1  # the other worker
    with desk.db.read() as s:
        ticket_id = s.scalar(select(Ticket.id).where(Ticket.number == ticket.number))
    head = desk.audit_head()
    stale = iter([[ticket_id]])
    monkeypatch.setattr("engine.timers.due_tickets", lambda *_args: next(stale, []))
    assert desk.fire_due_timers().fired == 0
    assert desk.audit_head() == head


@pytest.mark.skipif(not POSTGRES_URL, reason="PostgreSQL variant: set TEST_DATABASE_URL")
def test_two_workers_racing_fire_each_timer_once(life, desk, database_url, clock):
    tickets = [life.report(as_="alice", title=f"Ticket {i}") for i in range(12)]
    for t in tickets:
        life.complete(t, "qualify", as_="sam", data=QUALIFY_RESOLVE)
    clock.advance(days=4)
    desks = [make_desk(database_url, clock) for _ in range(3)]
    results: list = []
    barrier = threading.Barrier(len(desks))

    def work(d):
        barrier.wait()
        results.append(d.fire_due_timers(limit=100))

    threads = [threading.Thread(target=work, args=(d,)) for d in desks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for d in desks:
        d.close()
    assert sum(r.fired for r in results) == 12
    assert sum(r.failed for r in results) == 0
    with desk.db.read() as s:
        fired = list(s.scalars(select(AuditEvent.ticket_number)
                               .where(AuditEvent.action == "timer_fired")))
        assert sorted(fired) == sorted(t.number for t in tickets)  # each exactly once
        assert s.scalar(select(StepFailure.id)) is None
    assert {life.ticket(t).status for t in tickets} == {"closed"}
    assert desk.verify_audit()[1] is None


def test_cli_worker_once(life, desk, database_url, clock, monkeypatch):
    from click.testing import CliRunner

    from web.cli import main

    ticket = life.report(as_="alice")
    life.complete(ticket, "qualify", as_="sam", data=QUALIFY_RESOLVE)
    # the CLI runs on the wall clock: make the auto-close timer due by moving it back
    with desk.db.write() as s:
        from engine.bpmn import dump_state, load_state
        from engine.persistence.models import TicketState, Timer

        ticket_id = s.scalar(select(Ticket.id).where(Ticket.number == ticket.number))
        definition = desk.definitions.get(s, s.get(Ticket, ticket_id).definition_id)
        state = s.get(TicketState, ticket_id)
        wf = load_state(state.state, definition.spec, definition.subprocess_specs)
        past = (clock.now - timedelta(days=400)).isoformat()
        for task in wf.event_manager.tasks.values():
            task._set_internal_data(event_value=past)
        state.state = dump_state(wf)
        s.execute(update(Timer).where(Timer.ticket_id == ticket_id)
                  .values(wake_at=clock.now - timedelta(days=400)))
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.delenv("GUICHET_SMTP_HOST", raising=False)
    result = CliRunner().invoke(main, ["worker", "--once"])
    assert result.exit_code == 0, result.output
    assert "done: 1 fired, 0 failed" in result.output
    assert life.ticket(ticket).status == "closed"


def test_a_failed_completion_done_since_by_someone_else_is_closed_on_retry(life, desk,
                                                                         monkeypatch):
    from engine import Conflict, runtime

    ticket, real = failed_qualification(life, monkeypatch)
    monkeypatch.setattr(runtime, "complete", real)
    life.complete(ticket, "qualify", as_="sam", data=QUALIFY_RESOLVE)  # sam tries again
    [failure] = desk.failures(life.user("admin"))
    with pytest.raises(Conflict, match="completed since"):
        desk.retry_failure(life.user("admin"), failure.id)
    assert desk.failures(life.user("admin")) == []
    assert life.ticket(ticket).status == "resolved"
