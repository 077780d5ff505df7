"""Deployment: validation naming elements, versions by content, tickets keep their version."""

from __future__ import annotations

import json

import pytest

from engine import SYSTEM, DeployFailed, Forbidden, Upload
from tests.conftest import PROCESSES, QUALIFY_RESOLVE

FORMS = {p.name: json.loads(p.read_text()) for p in (PROCESSES / "forms").glob("*.json")}
INCIDENT = (PROCESSES / "incident.bpmn").read_text()


def deploy_incident(desk, xml: str, forms: dict | None = None):
    return desk.deploy([Upload("incident.bpmn", xml, FORMS if forms is None else forms)], SYSTEM)


def test_redeploying_identical_content_keeps_the_version(desk):
    outcomes = desk.deploy_folder(PROCESSES, SYSTEM)
    assert {(o.key, o.version, o.created) for o in outcomes} == {
        ("incident", 1, False), ("service_request", 1, False),
        ("priority", 1, False), ("sla", 1, False)}


def test_running_tickets_keep_the_version_they_started_on(desk, life):
    old = life.report()
    renamed = INCIDENT.replace('name="Qualify the incident"', 'name="Triage the incident"')
    assert deploy_incident(desk, renamed)[0].version == 2
    new = life.report()
    assert (old.process.version, new.process.version) == (1, 2)
    assert life.task(old, "qualify").title == "Qualify the incident"
    assert life.task(new, "qualify").title == "Triage the incident"
    assert life.complete(old, "qualify", as_="sam", data=QUALIFY_RESOLVE).status == "resolved"


@pytest.mark.parametrize(("change", "element", "message"), [
    (('<spiffworkflow:property name="group" value="service_desk"/>',
      '<spiffworkflow:property name="group" value="nobody"/>'),
     "qualify", "group 'nobody' is not a known group"),
    (('value="incident_qualify.schema.json"', 'value="missing.schema.json"'),
     "qualify", "form 'missing.schema.json' not found"),
    (('>action == "resolve"<', ">__import__('os')<"),
     "flow_qualify_resolve", "condition refused"),
    (("<spiffworkflow:calledDecisionId>priority<", "<spiffworkflow:calledDecisionId>nope<"),
     "set_priority", "calls decision 'nope'"),
])
def test_invalid_processes_are_refused_naming_the_element(desk, change, element, message):
    old, new = change
    assert old in INCIDENT, f"fixture text not found: {old}"
    with pytest.raises(DeployFailed) as err:
        deploy_incident(desk, INCIDENT.replace(old, new, 1))
    assert any(e["element"] == element and message in e["message"] for e in err.value.errors), \
        err.value.errors
    assert [v.version for v in desk.versions("incident")] == [1]


@pytest.mark.parametrize(("xml", "message"), [
    ("<not-closed", "not well formed"),
    ('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>',
     "DOCTYPE and ENTITY declarations are not allowed"),
    ("<x/>", "not a BPMN or DMN document"),
])
def test_unsafe_or_broken_xml_is_refused(desk, xml, message):
    with pytest.raises(DeployFailed) as err:
        deploy_incident(desk, xml)
    assert message in err.value.errors[0]["message"]


def test_an_invalid_form_schema_is_refused(desk):
    forms = {**FORMS, "close.schema.json": {"type": "object", "properties": {"x": {"type": 7}}}}
    with pytest.raises(DeployFailed) as err:
        deploy_incident(desk, INCIDENT.replace("Close the incident", "Close it"), forms)
    assert any(e["element"] == "close" and "invalid JSON Schema" in e["message"]
               for e in err.value.errors)


def test_only_process_owners_deploy(desk, life):
    with pytest.raises(Forbidden):
        desk.deploy([Upload("incident.bpmn", INCIDENT, FORMS)], life.user("sam"))
    assert desk.deploy([Upload("incident.bpmn", INCIDENT, FORMS)], life.user("olga"))
