"""Process owners in Chromium: bpmn-js opens the incident diagram, a renamed task is
deployed as version 2, a deployment error is listed and marked on its element, forms and
decision tables are edited, waiting tickets move to the new version."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from .conftest import screenshot

pytestmark = pytest.mark.browser

ERROR_MARKER = re.compile(r"(^|\s)error-marker(\s|$)")
SELECTED = re.compile(r"(^|\s)selected(\s|$)")


def shape(page: Page, element: str):
    return page.locator(f'.djs-element[data-element-id="{element}"]')


def open_modeler(page: Page, key: str = "incident") -> None:
    page.goto(f"/processes/{key}/edit")
    if key in ("priority", "sla"):
        expect(page.locator(".modeler-canvas .tjs-table")).to_be_visible()
    else:
        expect(shape(page, "qualify")).to_be_visible()
    expect(page.get_by_role("button", name="Deploy")).to_be_enabled()
    expect(page.locator("[data-modeler-message]")).to_be_hidden()


def expect_deployed(page: Page, key: str, version: int) -> None:
    expect(page.locator("#modeler-status")).to_have_text(
        re.compile(rf"^Version {version} of {key} deployed: new tickets start on it\."))


def versions(desk, key: str) -> list[int]:
    return [v.version for v in desk.versions(key)]


def test_a_renamed_task_is_deployed_as_version_2(sign_in, desk):
    olga = sign_in("olga")
    expect(olga).to_have_url(re.compile(r"/processes$"))  # where process owners start
    expect(olga.locator('nav.sidenav a[aria-current="page"]')).to_have_text("Processes")
    row = olga.locator('tr[data-process="incident"]')
    expect(row.get_by_test_id("current-version")).to_have_text("v1")
    row.get_by_role("link", name="Edit").click()

    # the modeler: the diagram drawn, its palette, the properties panel, the bpmn.io mark
    expect(olga).to_have_url(re.compile(r"/processes/incident/edit$"))
    expect(shape(olga, "qualify")).to_be_visible()
    expect(olga.locator(".djs-palette")).to_be_visible()
    expect(olga.locator(".bjs-powered-by")).to_be_visible()
    expect(olga.locator("#properties-panel .bio-properties-panel")).to_be_visible()
    shape(olga, "qualify").click()
    panel = olga.locator("#guichet-panel")
    expect(panel).to_contain_text("User task")
    expect(panel.get_by_label("Name")).to_have_value("Qualify the incident")
    expect(panel.get_by_label("Group", exact=True)).to_have_value("service_desk")
    expect(panel.get_by_label("Ticket status while waiting here")).to_have_value("new")
    expect(panel.get_by_label("Form file")).to_have_value("incident_qualify.schema.json")
    expect(olga.locator("#gp-form-json")).to_have_value(re.compile(r'"title": "Qualify'))
    expect(olga.locator("#properties-panel")).to_contain_text("Qualify the incident")
    screenshot(olga, "modeler")

    # a new label, typed on the diagram itself
    shape(olga, "qualify").dblclick()
    editing = olga.locator(".djs-direct-editing-parent")
    expect(editing).to_be_visible()
    olga.keyboard.press("Control+A")
    olga.keyboard.type("Qualify and prioritise")
    olga.keyboard.press("Enter")
    expect(shape(olga, "qualify")).to_contain_text("Qualify and prioritise")
    expect(panel.get_by_label("Name")).to_have_value("Qualify and prioritise")

    olga.get_by_role("button", name="Deploy").click()
    status = olga.locator("#modeler-status")
    expect(status).to_have_text(re.compile(r"^Version 2 of incident deployed"))
    expect(olga.locator("[data-opened-version]")).to_have_text("2")
    expect(olga.locator("#model-errors")).to_be_hidden()
    assert versions(desk, "incident") == [2, 1]
    assert desk.versions("incident")[0].deployed_by == "olga"

    # the list shows it, the earlier version leads to the differences
    status.get_by_role("link", name="See the versions").click()
    expect(olga.locator('tr[data-version="2"]')).to_contain_text("olga")
    olga.get_by_role("link", name="Processes", exact=True).first.click()
    expect(row.get_by_test_id("current-version")).to_have_text("v2")
    expect(row).to_contain_text("by olga")
    expect(row.get_by_role("link", name="v1")).to_be_visible()
    screenshot(olga, "processes")
    row.get_by_role("link", name="v1").click()
    expect(olga).to_have_url(re.compile(r"/processes/incident/versions/1\.\.2$"))
    change = olga.locator('tr[data-element="qualify"]')
    expect(change).to_contain_text("Changed")
    expect(change).to_contain_text("'Qualify the incident' → 'Qualify and prioritise'")
    screenshot(olga, "process-changes")


def test_a_deployment_error_is_listed_and_marked_on_its_element(sign_in, desk):
    olga = sign_in("olga")
    open_modeler(olga)
    shape(olga, "qualify").click()
    group = olga.locator("#guichet-panel").get_by_label("Group", exact=True)
    group.fill("nobody")
    olga.get_by_role("button", name="Deploy").click()

    errors = olga.locator("#model-errors")
    expect(errors).to_be_visible()
    expect(errors).to_contain_text("Not deployed: 1 problem to fix")
    expect(errors.locator("li")).to_have_count(1)
    expect(errors.locator("li")).to_contain_text("group 'nobody' is not a known group")
    expect(shape(olga, "qualify")).to_have_class(ERROR_MARKER)
    expect(shape(olga, "start")).not_to_have_class(ERROR_MARKER)
    assert versions(desk, "incident") == [1]
    screenshot(olga, "modeler-error")

    # the error leads to its element
    shape(olga, "start").click()
    expect(shape(olga, "qualify")).not_to_have_class(SELECTED)
    errors.get_by_role("button", name="Qualify the incident").click()
    expect(shape(olga, "qualify")).to_have_class(SELECTED)
    expect(group).to_have_value("nobody")

    # fixed, then validated: the marker goes, nothing is deployed by validating
    group.fill("network")
    olga.get_by_role("button", name="Validate").click()
    expect(olga.locator("#modeler-status")).to_have_text(
        "No problem found: this diagram can be deployed.")
    expect(errors).to_be_hidden()
    expect(shape(olga, "qualify")).not_to_have_class(ERROR_MARKER)
    assert versions(desk, "incident") == [1]


def test_spiff_properties_scripts_conditions_and_forms_round_trip(sign_in, desk):
    olga = sign_in("olga")
    open_modeler(olga)
    panel = olga.locator("#guichet-panel")

    shape(olga, "qualify").click()
    panel.get_by_label("Assignee from variable").fill("assignee_hint")
    panel.get_by_label("Ticket status while waiting here").select_option("in_progress")
    form = olga.locator("#gp-form-json")
    form.fill(form.input_value().replace('"title": "Qualify the incident"',
                                         '"title": "Qualify the incident (v2)"'))
    olga.get_by_role("button", name="Whole diagram").click()
    shape(olga, "record_resolution").click()
    expect(panel.get_by_label("Script (Python, run in the sandbox)")).to_have_value(
        re.compile(r"^resolved_by = last_actor"))
    panel.get_by_label("Script (Python, run in the sandbox)").fill(
        "resolved_by = last_actor\nresolved_group = last_group\nresolution_count = 1")
    line = shape(olga, "flow_qualify_resolve").locator(".djs-visual > path").bounding_box()
    assert line is not None
    olga.mouse.click(line["x"] + line["width"] / 2, line["y"] + line["height"] / 2)
    expect(panel).to_contain_text("flow_qualify_resolve")
    condition = panel.get_by_label("Condition (Python expression)")
    expect(condition).to_have_value('action == "resolve"')
    condition.fill('action == "resolve" and impact != "high"')
    olga.get_by_role("button", name="Deploy").click()
    expect_deployed(olga, "incident", 2)

    xml = desk.version_xml("incident", 2)
    assert '<spiffworkflow:property name="assigneeFrom" value="assignee_hint"' in xml
    assert '<spiffworkflow:property name="status" value="in_progress"' in xml
    assert "resolution_count = 1" in xml
    assert 'action == "resolve" and impact != "high"' in xml
    assert "<spiffworkflow:calledDecisionId>priority</spiffworkflow:calledDecisionId>" in xml
    # what the panel does not edit survives the round trip: operators, timers, data objects
    assert '<spiffworkflow:serviceTaskOperator id="notify" resultVariable="major_alert">' in xml
    assert ">due_at</bpmn:timeDate>" in xml and '>"P3D"</bpmn:timeDuration>' in xml
    assert 'dataObjectRef="sla_breached"' in xml
    forms = desk.version_forms("incident", 2)
    assert forms["incident_qualify.schema.json"]["title"] == "Qualify the incident (v2)"
    before = desk.version_forms("incident", 1)["incident_qualify.schema.json"]
    assert list(forms["incident_qualify.schema.json"]["properties"]) == list(
        before["properties"])  # the fields keep their order
    changes = {c.element: c for c in desk.diff("incident", 1, 2)}
    assert set(changes) == {"qualify", "record_resolution", "flow_qualify_resolve"}


def test_service_request_round_trips_unchanged(sign_in, desk):
    """Everything the engine reads survives the modeler: deploying without a change is no
    new version for the engine's element table (layout aside)."""
    olga = sign_in("olga")
    open_modeler(olga, "service_request")
    olga.get_by_role("button", name="Validate").click()
    expect(olga.locator("#modeler-status")).to_have_text(
        "No problem found: this diagram can be deployed.")
    olga.get_by_role("button", name="Deploy").click()
    expect(olga.locator("#modeler-status")).to_have_text(re.compile(
        r"Version \d of service_request deployed|Nothing changed"))
    latest = desk.versions("service_request")[0].version
    xml = desk.version_xml("service_request", latest)
    assert '<spiffworkflow:serviceTaskOperator id="fulfil_item" resultVariable="fulfilment">' \
        in xml
    assert '<spiffworkflow:parameter id="item" type="str" value="item"' in xml
    assert desk.diff("service_request", 1, latest) == []


def test_a_decision_table_edited_in_dmn_js(sign_in, desk):
    olga = sign_in("olga")
    open_modeler(olga, "priority")
    expect(olga.locator(".modeler-canvas")).to_contain_text("Impact")
    cell = olga.locator('td[data-row-id="priority_rule_low_low"]'
                        '[data-col-id="priority_output_priority"]')
    expect(cell).to_have_text('"P5"')
    cell.click()
    olga.keyboard.press("Control+A")
    olga.keyboard.type('"P4"')
    olga.locator('td[data-row-id="priority_rule_low_low"].rule-index').click()
    olga.get_by_role("button", name="Deploy").click()
    expect_deployed(olga, "priority", 2)
    assert versions(desk, "priority") == [2, 1]
    changed = desk.diff("priority", 1, 2)
    assert [c.element for c in changed] == ["priority"]
    screenshot(olga, "decision-table")


def test_waiting_tickets_move_to_the_new_version(sign_in, desk, life):
    life.report(as_="alice")
    olga = sign_in("olga")
    open_modeler(olga)
    shape(olga, "qualify").click()
    olga.locator("#guichet-panel").get_by_label("Name").fill("Qualify and prioritise")
    olga.get_by_role("button", name="Deploy").click()
    expect_deployed(olga, "incident", 2)

    olga.goto("/processes/incident")
    row = olga.locator('#migration tr[data-ticket="INC-000001"]')
    expect(row).to_contain_text("v1")
    expect(row.get_by_label("Move INC-000001")).to_be_checked()
    screenshot(olga, "process-versions")
    olga.get_by_role("button", name="Move the selected tickets to v2").click()
    expect(olga.locator(".flash-success")).to_have_text("Moved to version 2: INC-000001.")
    expect(olga.locator('[data-testid="no-migration"]')).to_be_visible()
    assert life.ticket("INC-000001").process.version == 2
    assert life.task("INC-000001", "qualify").title == "Qualify and prioritise"


def test_agents_read_the_processes_but_may_not_edit(sign_in):
    sam = sign_in("sam")
    expect(sam.locator("nav.sidenav")).not_to_contain_text("Processes")
    sam.goto("/processes")
    expect(sam.locator('tr[data-process="incident"]')).to_be_visible()
    expect(sam.get_by_role("link", name="Edit")).to_have_count(0)
    response = sam.goto("/processes/incident/edit")
    assert response is not None and response.status == 403
    expect(sam.get_by_role("heading", level=1)).to_have_text("You may not open this page")
