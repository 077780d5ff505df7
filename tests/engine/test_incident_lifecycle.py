"""The incident lifecycle of CONTRACT.md, through the engine facade."""

from __future__ import annotations

from datetime import timedelta

from tests.conftest import QUALIFY_ESCALATE, QUALIFY_RESOLVE


def test_first_contact_resolution_then_closure(life, clock):
    ticket = life.report(as_="alice")
    assert ticket.number == "INC-000001"
    assert (ticket.status, ticket.kind, ticket.requester) == ("new", "incident", "alice")
    assert life.waits_on(ticket) == ["qualify"]

    ticket = life.complete(ticket, "qualify", as_="sam", data=QUALIFY_RESOLVE)
    assert ticket.status == "resolved"
    assert ticket.priority == "P2"  # medium impact x high urgency
    assert ticket.due_at == ticket.created_at + timedelta(hours=8)
    assert ticket.response_due_at == ticket.created_at + timedelta(minutes=30)
    assert ticket.resolved_at == clock.now
    assert life.waits_on(ticket) == ["confirm"]

    ticket = life.complete(ticket, "confirm", as_="alice", data={"resolved": True})
    assert (ticket.status, life.waits_on(ticket)) == ("resolved", ["close"])
    clock.advance(minutes=5)
    ticket = life.complete(ticket, "close", as_="sam", data={"closure_code": "solved"})
    assert ticket.status == "closed"
    assert ticket.closed_at == clock.now
    assert ticket.tasks == []


def test_functional_escalation_l1_l2_l3(life):
    ticket = life.report(as_="bob", service="erp")
    ticket = life.complete(ticket, "qualify", as_="sam", data=QUALIFY_ESCALATE)
    assert (ticket.status, ticket.priority, ticket.group) == ("in_progress", "P1", "network")
    ticket = life.complete(ticket, "escalate", as_="nina",
                           data={"action": "escalate", "group": "applications"})
    assert ticket.group == "applications"
    assert life.task(ticket, "escalate").group == "applications"
    ticket = life.complete(ticket, "escalate", as_="apu",
                           data={"action": "resolve", "resolution": "Patched the ERP client"})
    assert ticket.status == "resolved"
    assert ticket.data["resolved_by"] == "apu"
    assert ticket.data["escalation_count"] == 2
    life.complete(ticket, "confirm", as_="bob", data={"resolved": True})
    ticket = life.complete(ticket, "close", as_="sam", data={"closure_code": "solved"})
    assert ticket.status == "closed"


def test_reopen_goes_back_to_whoever_resolved_it(life):
    ticket = life.report()
    life.complete(ticket, "qualify", as_="sam", data=QUALIFY_ESCALATE)
    life.complete(ticket, "escalate", as_="nina", data={"action": "resolve", "resolution": "x"})
    ticket = life.complete(ticket, "confirm", as_="alice",
                           data={"resolved": False, "comment": "Still dropping"})
    assert ticket.status == "in_progress"
    assert ticket.resolved_at is None
    task = life.task(ticket, "escalate")
    assert (task.group, task.assignee) == ("network", "nina")
    assert life.ticket(ticket).data["reopen_count"] == 1
    life.complete(ticket, "escalate", as_="nina", data={"action": "resolve", "resolution": "y"})
    life.complete(ticket, "confirm", as_="alice", data={"resolved": True})
    ticket = life.complete(ticket, "close", as_="sam", data={"closure_code": "workaround"})
    assert ticket.status == "closed"


def test_reopen_after_first_contact_resolution_returns_to_the_service_desk(life):
    ticket = life.report()
    life.complete(ticket, "qualify", as_="sam", data=QUALIFY_RESOLVE)
    ticket = life.complete(ticket, "confirm", as_="alice", data={"resolved": False})
    task = life.task(ticket, "escalate")
    assert (task.group, task.assignee) == ("service_desk", "sam")


def test_a_ticket_reopened_300_times_still_completes(life, desk):
    ticket = life.report()
    life.complete(ticket, "qualify", as_="sam", data=QUALIFY_ESCALATE)
    life.complete(ticket, "escalate", as_="nina", data={"action": "resolve", "resolution": "0"})
    sizes = []
    for i in range(300):
        life.complete(ticket, "confirm", as_="alice", data={"resolved": False})
        life.complete(ticket, "escalate", as_="nina",
                      data={"action": "resolve", "resolution": f"attempt {i}"})
        if i in (0, 299):
            sizes.append(_state_size(desk, ticket.number))
    assert sizes[1] < sizes[0] * 1.5, f"live state grew with history: {sizes}"
    life.complete(ticket, "confirm", as_="alice", data={"resolved": True})
    ticket = life.complete(ticket, "close", as_="sam", data={"closure_code": "solved"})
    assert ticket.status == "closed"
    assert ticket.data["reopen_count"] == 300
    assert desk.verify_audit()[1] is None


def _state_size(desk, number: str) -> int:
    from sqlalchemy import select

    from engine.persistence.models import Ticket, TicketState

    with desk.db.read() as s:
        ticket_id = s.scalar(select(Ticket.id).where(Ticket.number == number))
        return len(s.get(TicketState, ticket_id).state)
