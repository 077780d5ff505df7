"""Monitoring events, service states, the status board, notifications and failures
through the JSON API."""

from __future__ import annotations

from datetime import timedelta

from tests.conftest import QUALIFY_ESCALATE

EVENT = {"source": "zabbix", "service": "vpn", "fingerprint": "vpn-gw-1/down",
         "summary": "VPN gateway 1 unreachable", "severity": "critical"}


def state_of(api, key: str) -> str:
    return {s["key"]: s["state"] for s in api.get("/services", as_="sam").json["items"]}[key]


def test_a_new_fingerprint_opens_an_incident_and_interrupts_the_service(api):
    r = api.post("/events", as_="monitor", json=EVENT)
    assert r.status_code == 201, r.json
    incident = r.json
    assert (incident["kind"], incident["service"], incident["channel"]) == (
        "incident", "vpn", "monitoring")
    assert incident["title"] == "VPN gateway 1 unreachable"
    assert incident["requester"] == "monitor"
    assert [t["name"] for t in incident["tasks"]] == ["qualify"]
    assert state_of(api, "vpn") == "interrupted"

    again = api.post("/events", as_="monitor", json={**EVENT, "summary": "still down"})
    assert again.status_code == 200
    assert again.json["number"] == incident["number"]
    assert api.get("/tickets", as_="sam").json["total"] == 1
    history = api.get(f"/tickets/{incident['number']}/history", as_="sam").json["items"]
    repeats = [e for e in history if e["action"] == "event_received"]
    assert [e["data"]["summary"] for e in repeats] == ["still down"]

    board = {s["key"]: s for s in api.get("/status", as_="alice").json["items"]}
    assert board["vpn"]["state"] == "interrupted"
    assert [i["number"] for i in board["vpn"]["incidents"]] == [incident["number"]]
    assert board["email"]["state"] == "nominal" and board["email"]["incidents"] == []


def test_the_service_returns_to_nominal_when_the_incident_is_resolved(api):
    number = api.post("/events", as_="monitor", json=EVENT).json["number"]
    other = api.post("/events", as_="monitor",
                     json={**EVENT, "fingerprint": "vpn-gw-2/slow", "severity": "minor"})
    assert other.status_code == 201
    assert state_of(api, "vpn") == "interrupted"  # the worst open one wins
    board = {s["key"]: s for s in api.get("/status", as_="alice").json["items"]}
    assert board["vpn"]["restore_at"] is None  # no target before qualification
    qualified = api.complete(number, "qualify", as_="sam",
                             data={**QUALIFY_ESCALATE, "service": "vpn"})
    board = {s["key"]: s for s in api.get("/status", as_="alice").json["items"]}
    assert board["vpn"]["restore_at"] == qualified["due_at"] is not None
    api.complete(number, "escalate", as_="nina", data={"action": "resolve",
                                                       "resolution": "Rebooted gateway 1"})
    assert state_of(api, "vpn") == "interrupted"  # gateway 2's incident is still open
    api.complete(other.json["number"], "qualify", as_="sam", data={
        "category": "network", "service": "vpn", "impact": "low", "urgency": "low",
        "action": "resolve", "resolution": "Load back to normal"})
    assert state_of(api, "vpn") == "nominal"
    # A new event with the first fingerprint opens a new incident: the old one is resolved.
    assert api.post("/events", as_="monitor", json=EVENT).status_code == 201


def test_monitoring_accounts_reach_the_event_api_and_their_incidents_only(api):
    number = api.post("/events", as_="monitor", json=EVENT).json["number"]
    mine = api.get("/tickets", as_="monitor").json
    assert [t["number"] for t in mine["items"]] == [number]
    assert api.get(f"/tickets/{number}", as_="monitor").status_code == 200
    refused = api.get("/services", as_="monitor")
    assert refused.status_code == 403 and "event API only" in refused.json["error"]
    assert api.get("/tasks", as_="monitor").status_code == 403
    assert api.post("/incidents", as_="monitor", json={"title": "x"}).status_code == 403


def test_events_are_for_monitoring_accounts_and_validated(api):
    assert api.post("/events", as_="sam", json=EVENT).status_code == 403
    assert api.post("/events", as_=None, json=EVENT).status_code == 401
    bad = api.post("/events", as_="monitor", json={**EVENT, "severity": "apocalyptic"})
    assert bad.status_code == 422 and "severity" in bad.json["errors"]
    unknown = api.post("/events", as_="monitor", json={**EVENT, "service": "coffee"})
    assert unknown.status_code == 422 and "service" in unknown.json["errors"]
    assert api.get("/tickets", as_="sam").json["total"] == 0


def test_agents_set_planned_maintenance_which_incidents_do_not_undo(api):
    r = api.post("/services/erp/state", as_="sam",
                 json={"state": "maintenance", "reason": "Upgrade until 18:00"})
    assert r.status_code == 200 and r.json["state"] == "maintenance"
    board = {s["key"]: s for s in api.get("/status", as_="bob").json["items"]}
    assert (board["erp"]["state"], board["erp"]["reason"]) == ("maintenance",
                                                              "Upgrade until 18:00")
    api.post("/events", as_="monitor", json={**EVENT, "service": "erp", "fingerprint": "erp"})
    assert state_of(api, "erp") == "maintenance"
    assert api.post("/services/erp/state", as_="alice",
                    json={"state": "nominal"}).status_code == 403
    bad = api.post("/services/erp/state", as_="sam", json={"state": "on fire"})
    assert bad.status_code == 422
    assert api.post("/services/nope/state", as_="sam",
                    json={"state": "nominal"}).status_code == 404


def test_notifications_are_listed_and_marked_read(api):
    number = api.report(as_="alice")["number"]
    mine = api.get("/notifications", as_="sam").json
    assert mine["total"] == 1
    note = mine["items"][0]
    assert (note["kind"], note["ticket"], note["read"], note["state"]) == (
        "task", number, False, "pending")
    assert api.get("/notifications?unread=1", as_="sam").json["total"] == 1
    assert api.post("/notifications/read", as_="sam", json={}).json == {"marked": 1}
    assert api.get("/notifications?unread=1", as_="sam").json["total"] == 0
    assert api.get("/notifications", as_="alice").json["total"] == 0  # only one's own
    outbox = api.get("/admin/outbox", as_="admin").json
    assert outbox["total"] == 1 and outbox["items"][0]["user"] == "sam"
    assert api.get("/admin/outbox", as_="sam").status_code == 403


def test_failures_are_for_administrators(api):
    assert api.get("/admin/failures", as_="admin").json == {"items": [], "total": 0}
    assert api.get("/admin/failures", as_="sam").status_code == 403
    assert api.post("/admin/failures/1/retry", as_="admin").status_code == 404


def test_a_two_minute_p2_target_set_by_the_process_owner_breaches_two_minutes_later(
        api, desk, clock):
    """The walk-through of the SLA issue: olga sets the P2 resolution target to two
    minutes, sam escalates a P2 incident, and two minutes later max has a breach task
    and an e-mail waiting in the outbox."""
    from engine import worker
    from tests.conftest import PROCESSES

    dmn = (PROCESSES / "sla.dmn").read_text()
    p2_rule = dmn.index('id="sla_rule_p2"')
    p2_target = dmn.index('"PT8H"', p2_rule)
    dmn = dmn[:p2_target] + '"PT2M"' + dmn[p2_target + len('"PT8H"'):]
    r = api.post("/processes/sla/versions", as_="olga", data=dmn,
                 headers={"Content-Type": "application/xml"})
    assert r.status_code == 201, r.json
    number = api.report(as_="alice")["number"]
    ticket = api.complete(number, "qualify", as_="sam", data={
        **QUALIFY_ESCALATE, "impact": "medium"})
    assert ticket["priority"] == "P2"
    assert ticket["due_at"] == (clock.now + timedelta(minutes=2)).isoformat()
    clock.advance(minutes=2, seconds=1)
    assert worker.run_round(desk, None).fired == 1
    inbox = api.get("/tasks", as_="max").json["items"]
    assert [(t["name"], t["ticket"]) for t in inbox] == [("review_breach", number)]
    outbox = api.get("/admin/outbox", as_="admin").json["items"]
    breach = [n for n in outbox if n["kind"] == "breach"]
    assert [(n["user"], n["state"]) for n in breach] == [("max", "pending")]
