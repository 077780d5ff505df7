"""Versions: dry-run validation, differences, redeploying an old version, migrating tickets."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from engine import Forbidden
from engine.bpmn import dump_state, load_state
from engine.persistence.models import Ticket, TicketState
from tests.conftest import PROCESSES, QUALIFY_ESCALATE

INCIDENT = (PROCESSES / "incident.bpmn").read_text()
RENAMED = INCIDENT.replace('name="Investigate and resolve"', 'name="Investigate and fix"')


def test_validate_reports_errors_and_deploys_nothing(desk, life):
    olga = life.user("olga")
    assert desk.validate_xml("incident", RENAMED, olga) == []
    broken = RENAMED.replace('value="service_desk"', 'value="ghosts"', 1)
    errors = desk.validate_xml("incident", broken, olga)
    assert [e["element"] for e in errors] == ["qualify"]
    assert [v.version for v in desk.versions("incident")] == [1]
    with pytest.raises(Forbidden):
        desk.validate_xml("incident", RENAMED, life.user("sam"))


def test_a_literal_timer_must_be_iso_8601(desk, life):
    timer = ('<bpmn:boundaryEvent id="too_long" attachedToRef="escalate" cancelActivity="false">'
             '<bpmn:timerEventDefinition><bpmn:timeDuration>"four hours"</bpmn:timeDuration>'
             '</bpmn:timerEventDefinition></bpmn:boundaryEvent>')
    xml = INCIDENT.replace("</bpmn:process>", timer + "</bpmn:process>")
    errors = desk.validate_xml("incident", xml, life.user("olga"))
    assert any(e["element"] == "too_long" and "not valid ISO 8601" in e["message"]
               for e in errors), errors


def test_cycle_timers_are_refused(desk, life):
    """Guichet runs date and duration timers on its injected clock; cycles are refused."""
    timer = ('<bpmn:boundaryEvent id="every_hour" attachedToRef="escalate" '
             'cancelActivity="false"><bpmn:timerEventDefinition>'
             '<bpmn:timeCycle>"R3/PT1H"</bpmn:timeCycle>'
             '</bpmn:timerEventDefinition></bpmn:boundaryEvent>')
    xml = INCIDENT.replace("</bpmn:process>", timer + "</bpmn:process>")
    errors = desk.validate_xml("incident", xml, life.user("olga"))
    assert [e["message"] for e in errors if e["element"] == "every_hour"] == [
        "cycle timers are not supported; use a date or a duration"]


def test_diff_names_each_changed_element_and_form(desk, life):
    olga = life.user("olga")
    forms = desk.version_forms("incident", 1)
    close_form = dict(forms["close.schema.json"])
    close_form["properties"] = {**close_form["properties"],
                                "survey": {"type": "boolean", "title": "Send a survey?"}}
    desk.deploy_xml("incident", RENAMED, olga, forms={"close.schema.json": close_form})
    changes = {c.element: c for c in desk.diff("incident", 1, 2)}
    assert changes["escalate"].kind == "changed"
    assert "name: 'Investigate and resolve' → 'Investigate and fix'" in changes["escalate"].details
    assert any("field survey added" in d for d in changes["close"].details)
    assert set(changes) == {"escalate", "close"}


def test_redeploying_an_old_version_makes_it_current(desk, life):
    olga = life.user("olga")
    desk.deploy_xml("incident", RENAMED, olga)
    outcome = desk.redeploy("incident", 1, olga)
    assert (outcome.version, outcome.created) == (3, True)
    assert desk.diff("incident", 1, 3) == []
    assert life.report().process.version == 3


def test_migration_moves_eligible_tickets_and_refuses_the_others(desk, life):
    waiting_escalate = life.report(title="moves")
    life.complete(waiting_escalate, "qualify", as_="sam", data=QUALIFY_ESCALATE)
    waiting_qualify = life.report(title="stays")
    without_qualify = INCIDENT.replace('id="qualify"', 'id="triage"').replace(
        '"qualify"', '"triage"').replace(">qualify<", ">triage<")
    olga = life.user("olga")
    assert desk.deploy_xml("incident", without_qualify, olga).version == 2

    candidates = {c.ticket: c for c in desk.migration_candidates(olga, "incident")}
    assert candidates[waiting_escalate.number].movable
    assert not candidates[waiting_qualify.number].movable
    assert "qualify" in candidates[waiting_qualify.number].reason

    results = {r.ticket: r for r in desk.migrate(olga, "incident")}
    assert results[waiting_escalate.number].moved
    assert not results[waiting_qualify.number].moved
    moved = life.ticket(waiting_escalate)
    assert moved.process.version == 2
    assert life.ticket(waiting_qualify).process.version == 1
    history = desk.history(olga, moved.number)
    assert history[-1].action == "ticket_migrated" and history[-1].data == {"from": 1, "to": 2}
    life.complete(moved, "escalate", as_="nina", data={"action": "resolve", "resolution": "ok"})
    life.complete(moved, "confirm", as_="alice", data={"resolved": True})
    assert life.complete(moved, "close", as_="sam",
                         data={"closure_code": "solved"}).status == "closed"
    with pytest.raises(Forbidden):
        desk.migrate(life.user("sam"), "incident")


def test_a_task_whose_timers_changed_does_not_move(desk, life):
    """SpiffWorkflow arms boundary events when a task starts waiting: a ticket waiting on
    ``escalate`` cannot move onto a version that adds or drops a timer on it (its next step
    would fail); a ticket waiting on a task whose timers did not change moves."""
    start, end = INCIDENT.index('<bpmn:boundaryEvent id="sla_warning"'), INCIDENT.index(
        '<bpmn:boundaryEvent id="sla_breach"')
    # version 2 moves the warning timer from escalate to confirm
    without_warning = (INCIDENT[:start] + INCIDENT[start:end].replace(
        'attachedToRef="escalate"', 'attachedToRef="confirm"') + INCIDENT[end:])
    escalated = life.report(title="waits on escalate")
    life.complete(escalated, "qualify", as_="sam", data=QUALIFY_ESCALATE)
    qualifying = life.report(title="waits on qualify")
    olga = life.user("olga")
    assert desk.deploy_xml("incident", without_warning, olga).version == 2
    candidates = {c.ticket: c for c in desk.migration_candidates(olga, "incident")}
    assert not candidates[escalated.number].movable
    assert candidates[escalated.number].reason == (
        "waits on escalate, which has other boundary events (timers) there in version 2")
    assert candidates[qualifying.number].movable
    results = {r.ticket: r.moved for r in desk.migrate(olga, "incident")}
    assert results == {escalated.number: False, qualifying.number: True}
    # the one left behind still works on its own version
    life.complete(escalated, "escalate", as_="nina", data={"action": "resolve",
                                                          "resolution": "ok"})
    assert life.ticket(escalated).status == "resolved"


def test_a_ticket_moved_before_qualification_gets_its_deadlines_when_qualified(desk, life):
    """Version 1 of this test predates ``reported_at`` in the start data; the migration
    gives it from the ticket's creation time, so ``set_deadlines`` works after the move."""
    waiting = life.report(title="reported before deadlines existed")
    with desk.db.write() as s:  # as an instance started by the engine of the last version
        ticket = s.scalars(select(Ticket).where(Ticket.number == waiting.number)).one()
        state = s.get(TicketState, ticket.id)
        loaded = desk.definitions.get(s, ticket.definition_id)
        workflow = load_state(state.state, loaded.spec, loaded.subprocess_specs)
        for task in workflow.get_tasks():
            task.data.pop("reported_at", None)
        state.state = dump_state(workflow)
    olga = life.user("olga")
    desk.deploy_xml("incident", RENAMED, olga)
    assert [r.moved for r in desk.migrate(olga, "incident")] == [True]
    ticket = life.complete(waiting, "qualify", as_="sam", data=QUALIFY_ESCALATE)
    assert ticket.process.version == 2
    assert ticket.due_at == ticket.created_at + timedelta(hours=4)  # P1
