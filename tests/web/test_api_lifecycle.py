"""Every path of CONTRACT.md end to end through the JSON API."""

from __future__ import annotations

from tests.conftest import QUALIFY_ESCALATE, QUALIFY_RESOLVE

TICKET_KEYS = {"number", "kind", "title", "status", "priority", "requester", "service", "group",
               "assignee", "created_at", "resolved_at", "closed_at", "due_at", "process", "tasks"}
TASK_KEYS = {"id", "name", "title", "ticket", "group", "assignee", "form", "due_at"}


def test_incident_first_contact_resolution(api):
    ticket = api.report(as_="alice")
    assert set(ticket) >= TICKET_KEYS
    assert (ticket["number"], ticket["status"], ticket["requester"]) == (
        "INC-000001", "new", "alice")
    assert ticket["process"] == {"key": "incident", "version": 1}
    assert ticket["created_at"].endswith("+00:00")

    inbox = api.get("/tasks", as_="sam").json
    assert inbox["total"] == 1
    task = inbox["items"][0]
    assert set(task) >= TASK_KEYS
    assert (task["name"], task["ticket"], task["group"]) == ("qualify", "INC-000001",
                                                            "service_desk")
    assert task["form"]["properties"]["service"]["enum"] == ["email", "erp", "laptop", "vpn"]

    after = api.post(f"/tasks/{task['id']}/complete", as_="sam",
                     json={"data": QUALIFY_RESOLVE}).json
    assert (after["status"], after["priority"]) == ("resolved", "P2")
    assert after["due_at"] is not None
    api.complete("INC-000001", "confirm", as_="alice", data={"resolved": True})
    closed = api.complete("INC-000001", "close", as_="sam", data={"closure_code": "solved"})
    assert closed["status"] == "closed" and closed["closed_at"]

    history = api.get("/tickets/INC-000001/history", as_="alice").json
    actions = [e["action"] for e in history["items"]]
    assert actions[0] == "ticket_created" and actions.count("task_completed") == 3
    assert all(e["hash"] and e["process"]["key"] == "incident" for e in history["items"])


def test_escalation_reopen_and_closure(api):
    number = api.report(as_="bob")["number"]
    api.complete(number, "qualify", as_="sam", data=QUALIFY_ESCALATE)
    api.complete(number, "escalate", as_="nina", data={"action": "escalate",
                                                      "group": "applications"})
    api.complete(number, "escalate", as_="apu", data={"action": "resolve", "resolution": "Fixed"})
    reopened = api.complete(number, "confirm", as_="bob", data={"resolved": False,
                                                               "comment": "Not fixed"})
    assert reopened["status"] == "in_progress"
    assert api.task_of(number, "escalate")["assignee"] == "apu"
    api.complete(number, "escalate", as_="apu", data={"action": "resolve", "resolution": "Now"})
    api.complete(number, "confirm", as_="bob", data={"resolved": True})
    assert api.complete(number, "close", as_="sam",
                        data={"closure_code": "solved"})["status"] == "closed"


def test_requests_approved_rejected_and_automatic(api):
    r = api.post("/requests", as_="alice", json={
        "item": "access", "fields": {"application": "erp",
                                     "justification": "Month-end closing work"}})
    assert r.status_code == 201 and r.json["number"] == "REQ-000001"
    api.complete("REQ-000001", "qualify", as_="sam", data={"action": "accept"})
    assert api.get("/tickets/REQ-000001", as_="alice").json["status"] == "pending_approval"
    api.complete("REQ-000001", "approve", as_="max", data={"approved": True})
    assert api.complete("REQ-000001", "fulfil", as_="apu",
                        data={"notes": "Granted"})["status"] == "resolved"

    rejected = api.post("/requests", as_="bob", json={
        "item": "laptop", "fields": {"model": "standard", "delivery_site": "Paris"}}).json
    done = api.complete(rejected["number"], "qualify", as_="sam",
                        data={"action": "reject", "reason": "Not eligible yet"})
    assert done["status"] == "rejected"

    auto = api.post("/requests", as_="bob", json={
        "item": "password_reset", "fields": {"account": "bob"}}).json
    assert auto["status"] == "resolved"
    assert [t["name"] for t in auto["tasks"]] == ["confirm"]


def test_request_rejected_at_approval_and_standard_item_accepted_automatically(api):
    number = api.post("/requests", as_="alice", json={
        "item": "laptop", "title": "Laptop for the new intern",
        "fields": {"model": "developer", "delivery_site": "Lyon"}}).json["number"]
    api.complete(number, "qualify", as_="sam", data={"action": "accept"})
    refused = api.complete(number, "approve", as_="max",
                           data={"approved": False, "comment": "Use a pool laptop"})
    assert (refused["status"], refused["title"]) == ("rejected", "Laptop for the new intern")

    info = api.post("/requests", as_="alice", json={
        "item": "info", "fields": {"question": "How do I book a meeting room?"}}).json
    assert (info["status"], [t["name"] for t in info["tasks"]]) == ("in_progress", ["fulfil"])
    assert info["title"] == "Information or advice"  # defaults to the item name
