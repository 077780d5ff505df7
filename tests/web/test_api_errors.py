"""Status codes of CONTRACT.md: 401, 403, 404, 409, 422 (and nothing changes on error)."""

from __future__ import annotations

from tests.conftest import QUALIFY_RESOLVE


def test_token_and_authentication(api, client):
    assert client.post("/api/v1/token", json={"username": "alice",
                                              "password": "nope"}).status_code == 401
    r = client.post("/api/v1/token", json={"username": "alice"})
    assert r.status_code == 422 and r.json["errors"] == {"password": "This field is required."}
    r = client.get("/api/v1/tickets")
    assert r.status_code == 401 and "Bearer" in r.json["error"]
    assert client.get("/api/v1/tickets", headers={
        "Authorization": "Bearer forged"}).status_code == 401


def test_requesters_see_only_their_own_tickets(api):
    mine = api.report(as_="alice")["number"]
    api.report(as_="bob")
    assert api.get(f"/tickets/{mine}", as_="bob").status_code == 404
    assert api.get(f"/tickets/{mine}/history", as_="bob").status_code == 404
    assert api.get("/tickets/INC-999999", as_="alice").status_code == 404
    listing = api.get("/tickets", as_="alice").json
    assert listing["total"] == 1 and listing["items"][0]["number"] == mine
    assert api.get("/tickets", as_="sam").json["total"] == 2
    assert api.get("/tickets?service=email", as_="sam").json["total"] == 2
    assert api.get("/tickets?service=vpn", as_="sam").json["total"] == 0
    assert api.get("/tickets?priority=P1", as_="sam").json["total"] == 0


def test_tasks_of_others_are_forbidden_and_confirm_is_the_requesters(api):
    number = api.report(as_="alice")["number"]
    qualify = api.task_of(number, "qualify")
    r = api.post(f"/tasks/{qualify['id']}/complete", as_="nina", json={"data": QUALIFY_RESOLVE})
    assert r.status_code == 403 and "service_desk" in r.json["error"]
    api.complete(number, "qualify", as_="sam", data=QUALIFY_RESOLVE)
    confirm = api.task_of(number, "confirm")
    assert api.post(f"/tasks/{confirm['id']}/complete", as_="sam",
                    json={"data": {"resolved": True}}).status_code == 403
    assert api.post(f"/tasks/{confirm['id']}/complete", as_="bob",
                    json={"data": {"resolved": True}}).status_code == 404
    assert api.get("/tasks", as_="bob").json["total"] == 0
    assert [t["name"] for t in api.get("/tasks", as_="alice").json["items"]] == ["confirm"]


def test_completing_a_task_twice_is_a_conflict(api):
    number = api.report()["number"]
    task = api.task_of(number, "qualify")
    ok = api.post(f"/tasks/{task['id']}/complete", as_="sam", json={"data": QUALIFY_RESOLVE})
    again = api.post(f"/tasks/{task['id']}/complete", as_="sam", json={"data": QUALIFY_RESOLVE})
    assert (ok.status_code, again.status_code) == (200, 409)
    assert "no longer ready" in again.json["error"]


def test_invalid_data_names_each_field_and_changes_nothing(api):
    number = api.report()["number"]
    task = api.task_of(number, "qualify")
    before = api.get(f"/tickets/{number}/history", as_="admin").json["total"]
    r = api.post(f"/tasks/{task['id']}/complete", as_="sam", json={"data": {
        "category": "network", "service": "tape-drive", "impact": "huge", "urgency": "low",
        "action": "escalate", "requester": "bob"}})
    assert r.status_code == 422
    assert r.json["errors"] == {
        "service": "Choose one of: email, erp, laptop, vpn.",
        "impact": "Choose one of: high, medium, low.",
        "group": "This field is required.",
        "requester": "Unknown field.",
    }
    assert api.get(f"/tickets/{number}/history", as_="admin").json["total"] == before
    assert api.get(f"/tickets/{number}", as_="admin").json["status"] == "new"


def test_malformed_bodies_get_json_errors(api):
    r = api.post("/incidents", as_="alice", data="not json", content_type="application/json")
    assert r.status_code == 422 and r.json["error"]
    r = api.post("/incidents", as_="alice", json={"title": "", "service": "nope"})
    assert r.status_code == 422 and set(r.json["errors"]) == {"title"}
    r = api.post("/incidents", as_="alice", json={"title": "x", "service": "nope"})
    assert r.status_code == 422 and set(r.json["errors"]) == {"service"}
    assert api.get("/no-such-thing", as_="alice").status_code == 404
    assert api.get("/no-such-thing", as_="alice").json["error"]
    assert api.get("/tickets?page=0", as_="alice").status_code == 422


def test_roles_without_reporting_rights_cannot_open_tickets(api):
    r = api.post("/incidents", as_="aude", json={"title": "x"})
    assert r.status_code == 403


def test_security_headers_on_pages_and_api(client, api):
    for response in (client.get("/login"), api.get("/tickets", as_="alice")):
        csp = response.headers["Content-Security-Policy"]
        assert "script-src 'self';" in csp and "frame-ancestors 'none'" in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"
