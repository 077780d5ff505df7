"""The trail answers auditors: sign-ins, refusals, search, export order, the path taken."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from engine import Forbidden, ValidationFailed
from engine.persistence.models import AuditEvent
from tests.conftest import QUALIFY_ESCALATE


def test_sign_ins_and_refused_sign_ins_are_audited(desk, life):
    assert desk.authenticate("sam", "demo") is not None
    assert desk.authenticate("sam", "wrong") is None
    assert desk.authenticate("nobody", "demo", channel="api") is None
    aude = life.user("aude")
    events = desk.audit_events(aude, action="sign_in_refused").items
    assert [(e.actor, e.data) for e in events] == [
        ("nobody", {"channel": "api"}), ("sam", {"channel": "web"})]
    assert desk.audit_events(aude, action="user_signed_in", actor_name="sam").total == 1


def test_refused_actions_are_audited(desk, life):
    desk.record_refusal(life.user("alice"), "POST /api/v1/processes/incident/versions",
                        "only process owners and administrators may deploy")
    event = desk.audit_events(life.user("aude"), action="action_refused").items[0]
    assert event.actor == "alice"
    assert event.data["what"] == "POST /api/v1/processes/incident/versions"


def test_search_filters_and_paging(desk, life, clock):
    first = life.report(as_="alice")
    clock.advance(days=2)
    life.report(as_="bob")
    aude = life.user("aude")
    assert {e.ticket for e in desk.audit_events(aude, ticket=first.number).items} == {
        first.number}
    assert desk.audit_events(aude, actor_name="bob").total == 1
    since = clock.now - timedelta(days=1)
    assert {e.ticket for e in desk.audit_events(aude, since=since).items} == {"INC-000002"}
    assert desk.audit_events(aude, process="incident", version=1).total >= 4
    page = desk.audit_events(aude, per_page=2, page=2)
    assert len(page.items) == 2 and page.items[0].seq > page.items[1].seq
    assert [e.seq for e in desk.audit_export(aude, batch=3)] == sorted(
        e.seq for e in desk.audit_events(aude, per_page=100).items)
    with pytest.raises(Forbidden):
        desk.audit_events(life.user("sam"))
    with pytest.raises(ValidationFailed):
        desk.audit_events(aude, since=since.replace(tzinfo=None))


def test_trace_counts_loops_and_marks_the_waiting_task(desk, life):
    ticket = life.report()
    life.complete(ticket, "qualify", as_="sam", data=QUALIFY_ESCALATE)
    life.complete(ticket, "escalate", as_="nina", data={"action": "resolve", "resolution": "x"})
    life.complete(ticket, "confirm", as_="alice", data={"resolved": False})
    trace = desk.trace(life.user("aude"), ticket.number)
    assert trace.process.key == "incident" and 'id="escalate"' in trace.xml
    assert trace.visits["escalate"] == 2
    assert trace.visits["qualify"] == 1 and trace.visits["reopen"] == 1
    assert trace.waiting == ["escalate"]
    assert "set_priority" in trace.visits and "close" not in trace.visits
    seqs = {e.seq for e in trace.events}
    assert set(trace.element_events["escalate"]) <= seqs


def test_reordering_two_events_breaks_the_chain(desk, life):
    life.report()
    with desk.db.write() as s:
        s.execute(update(AuditEvent).where(AuditEvent.seq == 2).values(seq=-2))
        s.execute(update(AuditEvent).where(AuditEvent.seq == 3).values(seq=2))
        s.execute(update(AuditEvent).where(AuditEvent.seq == -2).values(seq=3))
    assert desk.verify_audit()[1] == 2


def test_every_recorded_action_is_in_the_vocabulary(desk, life):
    from sqlalchemy import select

    from engine.audit import ACTIONS

    ticket = life.report()
    sam = life.user("sam")
    task = life.task(ticket, "qualify")
    desk.claim(sam, task.id)
    desk.release(sam, task.id)
    desk.add_comment(sam, ticket.number, "hello")
    desk.add_comment(sam, ticket.number, "note", internal=True)
    desk.authenticate("sam", "bad")
    life.complete(ticket, "qualify", as_="sam", data=QUALIFY_ESCALATE)
    with desk.db.read() as s:
        recorded = set(s.scalars(select(AuditEvent.action).distinct()))
    assert recorded <= set(ACTIONS), recorded - set(ACTIONS)
    assert len(recorded) >= 9
