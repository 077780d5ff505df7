"""SLA timers in the BPMN, fired by the worker on an injected clock: warning, breach,
major incident, auto-close, and the clock paused while awaiting the requester."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from engine.persistence.models import Notification, Timer, User
from tests.conftest import QUALIFY_ESCALATE, QUALIFY_RESOLVE

# medium impact x high urgency = P2: respond within 30 minutes, resolve within 8 hours
QUALIFY_P2_ESCALATE = {**QUALIFY_ESCALATE, "impact": "medium"}


def notified(desk, username: str, kind: str | None = None) -> list[str]:
    with desk.db.read() as s:
        query = (select(Notification.subject).join(User, User.id == Notification.user_id)
                 .where(User.username == username).order_by(Notification.id))
        if kind:
            query = query.where(Notification.kind == kind)
        return list(s.scalars(query))


def timer_rows(desk, number: str) -> list[tuple[str, object]]:
    with desk.db.read() as s:
        from engine.persistence.models import Ticket

        ticket_id = s.scalar(select(Ticket.id).where(Ticket.number == number))
        return [(t.name, t.fire_at) for t in s.scalars(
            select(Timer).where(Timer.ticket_id == ticket_id).order_by(Timer.fire_at))]


def escalated_p2(life):
    ticket = life.report(as_="alice")
    return life.complete(ticket, "qualify", as_="sam", data=QUALIFY_P2_ESCALATE)


def test_escalated_ticket_waits_on_warning_and_breach_timers(life, desk):
    ticket = escalated_p2(life)
    assert ticket.priority == "P2"
    assert ticket.due_at == ticket.created_at + timedelta(hours=8)
    assert timer_rows(desk, ticket.number) == [
        ("sla_warning", ticket.created_at + timedelta(hours=6)),
        ("sla_breach", ticket.created_at + timedelta(hours=8)),
    ]
    assert desk.fire_due_timers().fired == 0  # nothing is due yet


def test_warning_at_75_percent_notifies_the_assignee_once(life, desk, clock):
    ticket = escalated_p2(life)
    life.desk.claim(life.user("nina"), life.task(ticket, "escalate").id)
    clock.advance(hours=6, seconds=1)
    assert desk.fire_due_timers().fired == 1
    assert [s for s in notified(desk, "nina", "sla_warning")] == [
        f"{ticket.number}: 75 % of the resolution target used; due "
        f"{(ticket.created_at + timedelta(hours=8)).isoformat()}"]
    assert life.waits_on(ticket) == ["escalate"]  # a warning creates no task
    assert [name for name, _ in timer_rows(desk, ticket.number)] == ["sla_breach"]
    # Escalating further re-arms the timers (the past-due warning fires within the step)
    # but the warning is not sent twice.
    life.complete(ticket, "escalate", as_="nina",
                  data={"action": "escalate", "group": "applications"})
    desk.fire_due_timers()
    assert [name for name, _ in timer_rows(desk, ticket.number)] == ["sla_breach"]
    assert len(notified(desk, "nina", "sla_warning")) == 1
    assert notified(desk, "apu", "sla_warning") == []


def test_breach_creates_review_breach_for_managers_while_work_stays_open(life, desk, clock):
    ticket = escalated_p2(life)
    clock.advance(hours=8, seconds=1)
    round_ = desk.fire_due_timers()
    assert (round_.fired, round_.failed) == (1, 0)  # warning and breach in one step
    ticket = life.ticket(ticket)
    assert sorted(life.waits_on(ticket)) == ["escalate", "review_breach"]
    assert ticket.group == "network"  # the ticket stays with the support group
    assert ticket.status == "in_progress"
    assert life.task(ticket, "review_breach").group == "managers"
    assert notified(desk, "max", "breach") == [f"{ticket.number}: Review the breached target"]
    history = [e.action for e in desk.history(life.user("admin"), ticket.number)]
    assert "timer_fired" in history

    # The group re-escalates: the breach timer is due again but no second review appears.
    life.complete(ticket, "escalate", as_="nina",
                  data={"action": "escalate", "group": "applications"})
    desk.fire_due_timers()
    assert sorted(life.waits_on(ticket)) == ["escalate", "review_breach"]

    life.complete(ticket, "review_breach", as_="max",
                  data={"decision": "reinforce", "notes": "Asked apu's lead to help"})
    assert life.waits_on(ticket) == ["escalate"]
    ticket = life.complete(ticket, "escalate", as_="apu",
                           data={"action": "resolve", "resolution": "Fixed"})
    assert ticket.status == "resolved"


def test_closing_the_ticket_cancels_an_open_breach_review(life, desk, clock):
    ticket = escalated_p2(life)
    clock.advance(hours=9)
    desk.fire_due_timers()
    life.complete(ticket, "escalate", as_="nina", data={"action": "resolve", "resolution": "ok"})
    life.complete(ticket, "confirm", as_="alice", data={"resolved": True})
    ticket = life.complete(ticket, "close", as_="sam", data={"closure_code": "solved"})
    assert (ticket.status, ticket.tasks) == ("closed", [])
    assert timer_rows(desk, ticket.number) == []


def test_p1_incident_alerts_every_manager_at_once(life, desk):
    ticket = life.report(as_="bob", title="ERP down for everyone", service="erp")
    ticket = life.complete(ticket, "qualify", as_="sam", data=QUALIFY_ESCALATE)
    assert ticket.priority == "P1"
    assert notified(desk, "max", "major_incident") == [
        f"{ticket.number}: Major incident (P1): ERP down for everyone"]


def test_unanswered_resolution_closes_by_itself_after_three_days(life, desk, clock):
    ticket = life.report(as_="alice")
    ticket = life.complete(ticket, "qualify", as_="sam", data=QUALIFY_RESOLVE)
    assert life.waits_on(ticket) == ["confirm"]
    clock.advance(days=2, hours=23)
    assert desk.fire_due_timers().fired == 0
    clock.advance(hours=1, seconds=1)
    assert desk.fire_due_timers().fired == 1
    ticket = life.ticket(ticket)
    assert (ticket.status, ticket.tasks, ticket.closed_at) == ("closed", [], clock.now)
    assert ticket.data["auto_closed"] is True
    assert notified(desk, "alice", "status")[-1] == f"{ticket.number} is now closed"


def test_a_request_closes_by_itself_too(life, desk, clock):
    ticket = life.order("password_reset", {"account": "alice"})
    assert life.waits_on(ticket) == ["confirm"]
    clock.advance(days=3, seconds=1)
    desk.fire_due_timers()
    assert life.ticket(ticket).status == "closed"


def test_awaiting_requester_pauses_the_resolution_clock(life, desk, clock):
    ticket = escalated_p2(life)
    due = ticket.due_at
    clock.advance(hours=1)
    ticket = life.complete(ticket, "escalate", as_="nina",
                           data={"action": "ask", "question": "Which VPN client version?"})
    assert ticket.status == "awaiting_requester"
    assert ticket.paused_at == clock.now
    assert life.waits_on(ticket) == ["provide_info"]
    assert timer_rows(desk, ticket.number) == []  # nothing runs while paused
    assert notified(desk, "alice", "question") == [
        f"{ticket.number}: Answer the agent's question"]
    alice_view = desk.ticket(life.user("alice"), ticket.number)
    assert alice_view.data["question"] == "Which VPN client version?"

    clock.advance(hours=10)  # longer than the whole target: no breach while paused
    assert desk.fire_due_timers().fired == 0
    ticket = life.complete(ticket, "provide_info", as_="alice", data={"answer": "5.2.1"})
    assert ticket.status == "in_progress"
    assert ticket.paused_at is None
    assert ticket.due_at == due + timedelta(hours=10)
    assert life.task(ticket, "escalate").assignee == "nina"  # back to the agent who asked
    assert timer_rows(desk, ticket.number)[-1] == ("sla_breach", due + timedelta(hours=10))


def test_a_worker_started_late_fires_missed_timers(life, desk, clock):
    tickets = [life.report(as_="alice") for _ in range(3)]
    for t in tickets:
        life.complete(t, "qualify", as_="sam", data=QUALIFY_RESOLVE)
    clock.advance(days=30)  # no worker ran for a month
    assert desk.fire_due_timers().fired == 3
    assert {life.ticket(t).status for t in tickets} == {"closed"}
