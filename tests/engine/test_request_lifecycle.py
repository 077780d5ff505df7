"""Service requests: filtering, approval, fulfilment (by a group or automatic), closure."""

from __future__ import annotations

ACCESS = {"application": "erp", "justification": "I join the finance team next week"}
LAPTOP = {"model": "developer", "delivery_site": "Lyon"}


def test_request_approved_then_fulfilled_and_closed(life):
    ticket = life.order("access", ACCESS, as_="alice")
    assert (ticket.number, ticket.kind, ticket.status) == ("REQ-000001", "request", "new")
    ticket = life.complete(ticket, "qualify", as_="sam", data={"action": "accept"})
    assert (ticket.status, life.waits_on(ticket)) == ("pending_approval", ["approve"])
    ticket = life.complete(ticket, "approve", as_="max", data={"approved": True})
    assert (ticket.status, ticket.group) == ("in_progress", "applications")
    ticket = life.complete(ticket, "fulfil", as_="apu", data={"notes": "Role granted"})
    assert ticket.status == "resolved"
    life.complete(ticket, "confirm", as_="alice", data={"resolved": True})
    ticket = life.complete(ticket, "close", as_="sam", data={"closure_code": "solved"})
    assert ticket.status == "closed"


def test_request_rejected_at_qualification(life):
    ticket = life.order("laptop", LAPTOP)
    ticket = life.complete(ticket, "qualify", as_="sam",
                           data={"action": "reject", "reason": "Laptops are renewed in March"})
    assert ticket.status == "rejected"
    assert ticket.tasks == []
    assert ticket.closed_at is not None


def test_request_rejected_at_approval(life):
    ticket = life.order("laptop", LAPTOP)
    life.complete(ticket, "qualify", as_="sam", data={"action": "accept"})
    ticket = life.complete(ticket, "approve", as_="max",
                           data={"approved": False, "comment": "No budget"})
    assert ticket.status == "rejected"


def test_standard_item_is_accepted_automatically(life):
    ticket = life.order("info", {"question": "How do I share my calendar?"})
    assert life.waits_on(ticket) == ["fulfil"]
    assert (ticket.status, ticket.group) == ("in_progress", "service_desk")


def test_password_reset_is_fulfilled_in_the_same_step_as_the_order(life):
    ticket = life.order("password_reset", {"account": "alice"})
    assert ticket.status == "resolved"
    assert life.waits_on(ticket) == ["confirm"]
    assert ticket.data["fulfilment"]["done"] is True
    life.complete(ticket, "confirm", as_="alice", data={"resolved": True})
    ticket = life.complete(ticket, "close", as_="sam", data={"closure_code": "solved"})
    assert ticket.status == "closed"


def test_order_form_is_validated_against_the_item_schema(life):
    import pytest

    from engine import ValidationFailed

    with pytest.raises(ValidationFailed) as err:
        life.order("access", {"application": "mainframe"})
    assert set(err.value.errors) == {"fields.application", "fields.justification"}
