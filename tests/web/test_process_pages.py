"""Process owners' pages through Flask's test client: the list of processes and their
versions, the modeler's validate and deploy endpoints, differences between versions,
redeploying an old version, moving waiting tickets to a new one, and who may do what."""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import PROCESSES
from web.vendor import NODE_MODULES, VENDOR_FILES

from .test_pages import TOKEN, Pages, text_of

MODELER_FILES = (
    "bpmn-js/dist/bpmn-modeler.production.min.js",
    "bpmn-js/dist/assets/bpmn-font/css/bpmn.css",
    "bpmn-js-properties-panel/dist/bpmn-js-properties-panel.umd.js",
    "@bpmn-io/properties-panel/dist/assets/properties-panel.css",
    "dmn-js/dist/dmn-modeler.production.min.js",
    "dmn-js/dist/assets/dmn-js-decision-table.css",
)


@pytest.fixture
def pages(client) -> Pages:
    return Pages(client)


def incident_xml() -> str:
    return (PROCESSES / "incident.bpmn").read_text()


def renamed(xml: str, name: str = "Qualify and prioritise") -> str:
    return xml.replace('name="Qualify the incident"', f'name="{name}"', 1)


def with_group(xml: str, group: str) -> str:
    """``qualify`` (the first user task) given another group."""
    return xml.replace('name="group" value="service_desk"', f'name="group" value="{group}"', 1)


def without_qualify(xml: str) -> str:
    """The incident process with its ``qualify`` task renamed to ``triage`` (id included)."""
    return xml.replace('"qualify"', '"triage"').replace(">qualify<", ">triage<")


class Modeler:
    """The JSON calls of the modeler page, with the CSRF token in the X-CSRFToken header."""

    def __init__(self, pages: Pages) -> None:
        self.pages = pages

    def post(self, path: str, body: dict, token: str | None = None):
        token = token if token is not None else self.pages.token("/tickets")
        return self.pages.client.post(path, json=body, headers={"X-CSRFToken": token})

    def validate(self, key: str, xml: str, forms: dict | None = None):
        return self.post(f"/processes/{key}/validate", {"xml": xml, "forms": forms or {}})

    def deploy(self, key: str, xml: str, forms: dict | None = None):
        return self.post(f"/processes/{key}/deploy", {"xml": xml, "forms": forms or {}})


@pytest.fixture
def modeler(pages) -> Modeler:
    return Modeler(pages)


def versions_of(desk, key: str) -> list[int]:
    return [v.version for v in desk.versions(key)]


def olga(life):
    return life.user("olga")


# -- the list ----------------------------------------------------------------------------


def test_the_list_shows_every_process_with_its_versions(pages, desk, life, clock):
    clock.advance(days=2)
    desk.deploy_xml("incident", renamed(incident_xml()), olga(life))
    pages.as_("olga")
    html = pages.get("/processes").text
    text = text_of(html)
    for key in ("incident", "service_request", "priority", "sla"):
        assert f'data-process="{key}"' in html
    row = re.search(r'<tr data-process="incident">.*?</tr>', html, re.S).group(0)
    assert 'data-testid="current-version">v2<' in row
    assert "by olga" in text_of(row) and "2026-01-07" in row
    assert 'href="/processes/incident/versions/1..2"' in row  # the earlier version
    assert "v1 system, 2026-01-05 09:00" in text_of(row)
    assert 'href="/processes/incident/edit"' in row
    priority = re.search(r'<tr data-process="priority">.*?</tr>', html, re.S).group(0)
    assert "Decision table" in priority and "None" in text_of(priority)
    assert 'aria-current="page">Processes</a>' in html  # the process owners' menu entry
    assert "Read only" not in text


@pytest.mark.parametrize("username", ["sam", "aude", "max"])
def test_other_staff_read_the_list_without_the_buttons(pages, username):
    pages.as_(username)
    r = pages.get("/processes")
    assert r.status_code == 200
    assert 'data-process="incident"' in r.text
    assert "/edit" not in r.text and "Read only" in text_of(r.text)
    assert ">Processes</a>" not in r.text  # no menu entry: the page is for process owners
    detail = pages.get("/processes/incident").text
    assert "Redeploy" not in detail and "Edit in the modeler" not in detail
    assert 'id="migration"' not in detail


def test_requesters_may_not_see_the_processes(pages):
    pages.as_("alice")
    for path in ("/processes", "/processes/incident", "/processes/incident/versions/1..1"):
        assert pages.get(path).status_code == 403, path


# -- who may change what ---------------------------------------------------------------


@pytest.mark.parametrize("username", ["sam", "alice", "aude", "max"])
def test_only_process_owners_edit_deploy_redeploy_and_migrate(pages, modeler, desk, life,
                                                              username):
    desk.deploy_xml("incident", renamed(incident_xml()), olga(life))
    life.report(as_="bob")
    pages.as_(username)
    assert pages.get("/processes/incident/edit").status_code == 403
    assert pages.get("/processes/incident/versions/2/model.json").status_code == 403
    xml = renamed(incident_xml(), "Something else")
    for r in (modeler.validate("incident", xml), modeler.deploy("incident", xml)):
        assert r.status_code == 403
        if username in ("sam", "max"):
            assert r.is_json and "process owners" in r.json["error"]
    token = pages.token("/tickets")
    assert pages.client.post("/processes/incident/versions/1/redeploy",
                             data={"csrf_token": token}).status_code == 403
    assert pages.client.post("/processes/incident/migrate",
                             data={"csrf_token": token, "tickets": "INC-000001"}
                             ).status_code == 403
    assert versions_of(desk, "incident") == [2, 1]
    assert life.ticket("INC-000001").process.version == 2


def test_admins_may_open_the_modeler(pages):
    pages.as_("admin")
    assert pages.get("/processes/incident/edit").status_code == 200
    assert ">Processes</a>" in pages.get("/processes").text


# -- the modeler page and its endpoints ---------------------------------------------------


def test_edit_page_loads_bpmn_js_with_the_properties_panel(pages):
    pages.as_("olga")
    html = pages.get("/processes/incident/edit").text
    assert re.search(r'<meta name="csrf-token" content="[^"]+">', html)
    assert 'data-model-url="/processes/incident/versions/1/model.json"' in html
    assert 'data-kind="bpmn"' in html
    for path in ("bpmn-js/dist/bpmn-modeler.production.min.js",
                 "bpmn-js-properties-panel/dist/bpmn-js-properties-panel.umd.js",
                 "@bpmn-io/properties-panel/dist/assets/properties-panel.css",
                 "bpmn-js/dist/assets/bpmn-font/css/bpmn.css"):
        assert f"/vendor/{path}" in html
    assert "/static/modeler.js" in html and 'id="properties-panel"' in html
    assert "<script>" not in html  # CSP: scripts from files only
    assert "dmn-js" not in html


def test_decision_tables_open_in_dmn_js(pages):
    pages.as_("olga")
    html = pages.get("/processes/priority/edit").text
    assert 'data-kind="dmn"' in html
    assert "/vendor/dmn-js/dist/dmn-modeler.production.min.js" in html
    assert "bpmn-modeler" not in html and 'id="guichet-panel"' not in html


def test_model_json_has_the_xml_the_forms_and_the_groups(pages, desk):
    pages.as_("olga")
    r = pages.get("/processes/incident/versions/1/model.json")
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    model = r.json
    assert model["xml"] == desk.version_xml("incident", 1)
    assert model["kind"] == "bpmn" and model["version"] == model["current"] == 1
    form = model["forms"]["incident_qualify.schema.json"]
    assert form["title"] == "Qualify the incident"
    # in the order they were deployed: the order of a form's fields
    stored = desk.version_forms("incident", 1)["incident_qualify.schema.json"]
    assert list(form) == list(stored) and list(form["properties"]) == list(stored["properties"])
    assert list(form["properties"])[:2] == ["category", "service"]
    assert {"service_desk", "network"} <= {g["key"] for g in model["groups"]}
    assert model["decisions"] == ["priority", "sla"]
    assert "in_progress" in model["task_statuses"] and model["end_statuses"] == [
        "closed", "rejected"]
    dmn = pages.get("/processes/sla/versions/1/model.json").json
    assert dmn["kind"] == "dmn" and dmn["forms"] == {}
    assert pages.get("/processes/incident/versions/9/model.json").status_code == 404
    assert pages.get("/processes/nothing/edit").status_code == 404


def test_validate_reports_errors_and_never_creates_a_version(modeler, pages, desk):
    pages.as_("olga")
    r = modeler.validate("incident", renamed(incident_xml()))
    assert r.status_code == 200 and r.json == {"ok": True, "errors": []}
    r = modeler.validate("incident", with_group(incident_xml(), "nobody"))
    assert r.status_code == 200 and r.json["ok"] is False
    assert [e["element"] for e in r.json["errors"]] == ["qualify"]
    assert versions_of(desk, "incident") == [1]


def test_deploy_with_an_error_answers_the_errors_naming_the_element(modeler, pages, desk):
    pages.as_("olga")
    r = modeler.deploy("incident", with_group(incident_xml(), "nobody"))
    assert r.status_code == 422
    errors = r.json["errors"]
    assert len(errors) == 1 and errors[0]["element"] == "qualify"
    assert "group 'nobody' is not a known group" in errors[0]["message"]
    assert versions_of(desk, "incident") == [1]

    r = modeler.deploy("incident", "<not xml")
    assert r.status_code == 422 and r.json["errors"]
    r = modeler.deploy("incident", (PROCESSES / "service_request.bpmn").read_text())
    assert r.status_code == 422  # another process's diagram under this key
    assert any(e["element"] == "service_request" for e in r.json["errors"])
    assert versions_of(desk, "incident") == [1]


def test_deploy_creates_a_version_with_the_edited_forms(modeler, pages, desk):
    pages.as_("olga")
    form = desk.version_forms("incident", 1)["incident_qualify.schema.json"]
    form["properties"]["category"]["enum"].append("security")
    form["properties"]["category"]["x-enum-titles"].append("Security")
    r = modeler.deploy("incident", renamed(incident_xml()),
                       forms={"incident_qualify.schema.json": form})
    assert r.status_code == 201
    assert r.json["version"] == 2 and r.json["created"] is True
    assert r.json["message"].startswith("Version 2 of incident deployed")
    forms = desk.version_forms("incident", 2)
    assert "security" in forms["incident_qualify.schema.json"]["properties"]["category"]["enum"]
    assert forms["close.schema.json"] == desk.version_forms("incident", 1)["close.schema.json"]
    assert desk.versions("incident")[0].deployed_by == "olga"

    same = modeler.deploy("incident", renamed(incident_xml()))  # same diagram, same forms
    assert same.status_code == 200 and same.json["created"] is False
    assert versions_of(desk, "incident") == [2, 1]


def test_a_broken_form_is_an_error_of_its_task(modeler, pages, desk):
    pages.as_("olga")
    r = modeler.deploy("incident", incident_xml(),
                       forms={"incident_qualify.schema.json": "{not json"})
    assert r.status_code == 422
    assert [e["element"] for e in r.json["errors"]] == ["qualify"]
    assert versions_of(desk, "incident") == [1]


def test_decision_tables_deploy_too(modeler, pages, desk):
    pages.as_("olga")
    xml = (PROCESSES / "priority.dmn").read_text()
    bad = xml.replace("<text>\"P5\"</text>", "<text>__import__('os')</text>")
    r = modeler.deploy("priority", bad)
    assert r.status_code == 422
    assert [e["element"] for e in r.json["errors"]] == ["priority_rule_low_low"]
    r = modeler.deploy("priority", xml.replace("<text>\"P5\"</text>", "<text>\"P4\"</text>"))
    assert r.status_code == 201 and r.json["version"] == 2


def test_modeler_endpoints_need_the_csrf_token_and_a_json_body(modeler, pages, desk):
    pages.as_("olga")
    r = modeler.post("/processes/incident/deploy", {"xml": renamed(incident_xml())}, token="")
    assert r.status_code == 400
    assert r.is_json and "CSRF" in r.json["error"]
    token = pages.token("/processes")
    r = pages.client.post("/processes/incident/deploy", data="xml",
                          headers={"X-CSRFToken": token, "Content-Type": "text/plain"})
    assert r.status_code == 400 and "JSON" in r.json["error"]
    r = modeler.post("/processes/incident/validate", {"xml": "  ", "forms": {}})
    assert r.status_code == 400 and "XML" in r.json["error"]
    r = modeler.post("/processes/incident/validate", {"xml": incident_xml(), "forms": [1]})
    assert r.status_code == 400 and "forms" in r.json["error"]
    assert versions_of(desk, "incident") == [1]


# -- versions, differences and redeploying ----------------------------------------------


def test_the_differences_between_two_versions(pages, desk, life):
    desk.deploy_xml("incident", with_group(renamed(incident_xml()), "network"), olga(life))
    pages.as_("olga")
    html = pages.get("/processes/incident/versions/1..2").text
    text = text_of(html)
    assert "Changes from version 1 to version 2" in text
    assert "0 added 0 removed 1 changed" in text
    row = re.search(r'<tr data-element="qualify".*?</tr>', html, re.S).group(0)
    assert "User task" in text_of(row) and "Changed" in text_of(row)
    assert "name: 'Qualify the incident' → 'Qualify and prioritise'" in text_of(row)
    assert "service_desk" in text_of(row) and "network" in text_of(row)
    assert "Redeploy v1" in text and "Redeploy v2" not in text  # v2 is current

    html = pages.get("/processes/incident/versions/1..1").text
    assert "This is the same version." in text_of(html)
    assert pages.get("/processes/incident/versions/1..7").status_code == 404
    r = pages.get("/processes/incident/compare?a=2&b=1")
    assert r.status_code == 302 and r.location.endswith("/processes/incident/versions/2..1")
    assert pages.get("/processes/incident/compare?a=2&b=x").status_code == 404


def test_removed_and_added_elements(pages, desk, life):
    desk.deploy_xml("incident", without_qualify(incident_xml()), olga(life))
    pages.as_("aude")  # auditors read the differences too
    html = pages.get("/processes/incident/versions/1..2").text
    added = re.search(r'<tr data-element="triage" class="diff-added">.*?</tr>', html, re.S)
    removed = re.search(r'<tr data-element="qualify" class="diff-removed">.*?</tr>', html, re.S)
    assert added and "Added" in text_of(added.group(0))
    assert removed and "Removed" in text_of(removed.group(0))
    assert "Redeploy" not in html


def test_the_detail_page_lists_every_version(pages, desk, life):
    desk.deploy_xml("incident", renamed(incident_xml()), olga(life))
    pages.as_("olga")
    html = pages.get("/processes/incident").text
    assert re.findall(r'<tr data-version="(\d+)"', html) == ["2", "1"]
    v1 = re.search(r'<tr data-version="1">.*?</tr>', html, re.S).group(0)
    assert "Redeploy v1" in v1 and 'href="/processes/incident/edit?version=1"' in v1
    assert 'href="/processes/incident/versions/2..2"' not in html
    assert 'href="/processes/incident/versions/1..2"' in html
    r = pages.get("/processes/incident/versions/1.xml")
    assert r.status_code == 200 and r.mimetype == "application/xml"
    assert r.get_data(as_text=True) == desk.version_xml("incident", 1)
    assert "incident-v1.bpmn" in r.headers["Content-Disposition"]
    edit = pages.get("/processes/incident/edit?version=1").text
    assert 'data-model-url="/processes/incident/versions/1/model.json"' in edit
    assert "the current version is 2" in text_of(edit)


def test_redeploying_an_old_version_makes_it_current_again(pages, desk, life):
    desk.deploy_xml("incident", renamed(incident_xml()), olga(life))
    pages.as_("olga")
    r = pages.post("/processes/incident/versions/1/redeploy", {}, form="/processes/incident")
    assert r.status_code == 302 and r.location.endswith("/processes/incident")
    assert versions_of(desk, "incident") == [3, 2, 1]
    v1, v3 = desk.versions("incident")[2], desk.versions("incident")[0]
    assert v3.sha256 == v1.sha256 and v3.deployed_by == "olga"
    html = pages.get("/processes/incident").text
    assert "Version 1 of incident deployed again as version 3" in html
    # the current content once more: no new version
    pages.post("/processes/incident/versions/3/redeploy", {}, form="/processes/incident")
    assert versions_of(desk, "incident") == [3, 2, 1]
    assert pages.post("/processes/incident/versions/8/redeploy", {},
                      form="/processes/incident").status_code == 404


# -- moving waiting tickets ---------------------------------------------------------------


def test_waiting_tickets_move_to_the_new_version(pages, desk, life):
    life.report(as_="alice")                       # INC-000001 waits on qualify
    life.report(as_="bob", title="Printer jam")    # INC-000002 too
    desk.deploy_xml("incident", renamed(incident_xml()), olga(life))
    pages.as_("olga")
    html = pages.get("/processes/incident").text
    section = re.search(r'<section class="card" id="migration".*?</section>', html, re.S)
    assert section
    for number in ("INC-000001", "INC-000002"):
        row = re.search(rf'<tr data-ticket="{number}">.*?</tr>', section.group(0), re.S).group(0)
        assert "v1" in row and "Yes" in text_of(row) and 'name="tickets"' in row
    assert "Move the selected tickets to v2" in section.group(0)

    r = pages.post("/processes/incident/migrate",
                   {"to_version": "2", "tickets": "INC-000001"}, form="/processes/incident")
    assert r.status_code == 302 and r.location.endswith("/processes/incident#migration")
    assert life.ticket("INC-000001").process.version == 2
    assert life.ticket("INC-000002").process.version == 1
    html = pages.get("/processes/incident").text
    assert "Moved to version 2: INC-000001." in html
    assert 'data-ticket="INC-000001"' not in html and 'data-ticket="INC-000002"' in html
    # the moved ticket goes on along version 2
    assert life.waits_on("INC-000001") == ["qualify"]
    assert life.task("INC-000001", "qualify").title == "Qualify and prioritise"

    pages.post("/processes/incident/migrate", {"to_version": "2"}, form="/processes/incident")
    assert "Choose the tickets to move first." in pages.get("/processes/incident").text


def test_tickets_waiting_on_a_removed_task_cannot_move(pages, desk, life):
    life.report(as_="alice")
    desk.deploy_xml("incident", without_qualify(incident_xml()), olga(life))
    pages.as_("olga")
    html = pages.get("/processes/incident").text
    row = re.search(r'<tr data-ticket="INC-000001">.*?</tr>', html, re.S).group(0)
    assert "No" in text_of(row) and 'name="tickets"' not in row
    assert "qualify" in text_of(row)
    assert "None of them can move to v2." in text_of(html)
    pages.post("/processes/incident/migrate", {"to_version": "2", "tickets": "INC-000001"},
               form="/processes/incident")
    assert "INC-000001 not moved" in pages.get("/processes/incident").text
    assert life.ticket("INC-000001").process.version == 1


def test_no_migration_section_for_decision_tables_and_none_when_all_are_current(pages, life):
    life.report(as_="alice")
    pages.as_("olga")
    html = pages.get("/processes/incident").text
    assert 'data-testid="no-migration"' in html
    assert 'id="migration"' not in pages.get("/processes/priority").text


# -- front-end files ---------------------------------------------------------------------


def test_vendor_serves_the_modeler_files(client):
    if not (NODE_MODULES / "bpmn-js-properties-panel").is_dir():
        pytest.fail("node_modules/bpmn-js-properties-panel is missing: run 'make node_modules'")
    for path in MODELER_FILES:
        assert path in VENDOR_FILES
        r = client.get(f"/vendor/{path}", buffered=True)
        assert r.status_code == 200, path
        assert r.data == (NODE_MODULES / path).read_bytes()
    for path in sorted(VENDOR_FILES):
        assert (NODE_MODULES / path).is_file(), path
    for path in ("bpmn-js-properties-panel/package.json", "dmn-js/dist/dmn-viewer.development.js"):
        assert client.get(f"/vendor/{path}").status_code == 404


def test_package_json_pins_the_modeler_packages_exactly():
    root = NODE_MODULES.parent
    package = json.loads((root / "package.json").read_text())
    lock = json.loads((root / "package-lock.json").read_text())
    for name in ("bpmn-js", "bpmn-js-properties-panel", "@bpmn-io/properties-panel", "dmn-js"):
        version = package["dependencies"][name]
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), name
        assert lock["packages"][f"node_modules/{name}"]["version"] == version


def test_no_inline_scripts_on_the_process_pages(pages, desk, life):
    desk.deploy_xml("incident", renamed(incident_xml()), olga(life))
    pages.as_("olga")
    for path in ("/processes", "/processes/incident", "/processes/incident/edit",
                 "/processes/priority/edit", "/processes/incident/versions/1..2"):
        html = pages.get(path).text
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), path
        assert not re.search(r"\son[a-z]+=", html), path
        assert TOKEN.search(html), path  # the sign-out form at least
