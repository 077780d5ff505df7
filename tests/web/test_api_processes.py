"""Processes over the API, the audit verification, and the OpenAPI document."""

from __future__ import annotations

from openapi_spec_validator import validate

from tests.conftest import PROCESSES


def test_processes_and_versions(api):
    current = api.get("/processes", as_="sam").json
    assert {p["key"]: p["version"] for p in current["items"]} == {
        "incident": 1, "service_request": 1, "priority": 1, "sla": 1}
    assert current["items"][0]["deployed_by"] == "system"
    xml = api.get("/processes/incident/versions/1/xml", as_="sam")
    assert xml.status_code == 200 and b'id="qualify"' in xml.data
    assert api.get("/processes/nothing/versions", as_="sam").status_code == 404


def test_deploying_through_the_api(api):
    xml = (PROCESSES / "incident.bpmn").read_text()
    headers = {"Content-Type": "application/xml"}
    assert api.post("/processes/incident/versions", as_="sam", data=xml,
                    headers=headers).status_code == 403
    same = api.post("/processes/incident/versions", as_="olga", data=xml, headers=headers)
    assert same.status_code == 200 and same.json == {"version": 1, "created": False}
    renamed = xml.replace("Close the incident", "Close and survey")
    r = api.post("/processes/incident/versions", as_="olga", data=renamed, headers=headers)
    assert r.status_code == 201 and r.json["version"] == 2
    wrong_key = api.post("/processes/service_request/versions", as_="olga", data=renamed,
                         headers=headers)
    assert wrong_key.status_code == 422
    assert wrong_key.json["errors"][0]["element"] == "incident"
    broken = renamed.replace('value="service_desk"', 'value="ghosts"', 1)
    r = api.post("/processes/incident/versions", as_="olga", data=broken, headers=headers)
    assert r.status_code == 422 and r.json["errors"][0]["element"] == "qualify"
    assert [v["version"] for v in api.get("/processes/incident/versions",
                                          as_="olga").json["items"]] == [2, 1]


def test_audit_verification_is_for_auditors(api):
    api.report()
    assert api.get("/audit/verify", as_="alice").status_code == 403
    r = api.get("/audit/verify", as_="aude")
    assert r.status_code == 200 and r.json["ok"] is True and r.json["events"] > 0


def test_openapi_document_is_valid_and_covers_every_route(api, app):
    doc = api.get("/openapi.json", as_=None).json
    validate(doc)
    documented = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    served = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1"):
            continue
        path = rule.rule.removeprefix("/api/v1")
        for arg in rule.arguments:
            path = path.replace(f"<int:{arg}>", f"{{{arg}}}").replace(f"<{arg}>", f"{{{arg}}}")
        served |= {(path, m.lower()) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert served == documented
