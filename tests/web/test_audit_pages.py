"""Auditors: the /audit search and its exports (pages and API), the verification page,
the trace page without JavaScript, and the rule that auditors change nothing."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import timedelta
from pathlib import Path
from urllib.parse import unquote

import pytest
from sqlalchemy import update

from engine.persistence.models import AuditEvent
from tests.conftest import PROCESSES, QUALIFY_ESCALATE, QUALIFY_RESOLVE
from tests.web.conftest import assert_csp_ready
from web.vendor import NODE_MODULES, VENDOR_FILES

from .test_pages import Pages, text_of


@pytest.fixture
def pages(client) -> Pages:
    return Pages(client)


def reopened_incident(life):
    """INC-000001: escalated to network, resolved, reopened by alice: nina has it again."""
    ticket = life.report(as_="alice")
    life.complete(ticket, "qualify", as_="sam", data=QUALIFY_ESCALATE)
    life.complete(ticket, "escalate", as_="nina",
                  data={"action": "resolve", "resolution": "Replaced the VPN profile"})
    life.complete(ticket, "confirm", as_="alice",
                  data={"resolved": False, "comment": "Still drops at noon"})
    return ticket


def rows_of(html: str) -> list[int]:
    return [int(s) for s in re.findall(r'<tr data-seq="(\d+)"', html)]


# -- search ----------------------------------------------------------------------------


def test_audit_page_lists_the_trail_newest_first_with_filters(pages, life):
    reopened_incident(life)
    life.report(as_="bob", title="Printer jam")
    pages.as_("aude")
    html = pages.get("/audit").text
    seqs = rows_of(html)
    assert seqs == sorted(seqs, reverse=True) and len(seqs) > 10
    text = text_of(html)
    assert "Verify the trail" in text and "Audit trail" in text
    assert 'aria-current="page">Audit trail</a>' in html  # the auditors' menu entry
    for column in ("When", "Actor", "Action", "Ticket", "Process", "Data", "Hash"):
        assert column in text

    one = pages.get("/audit?ticket=INC-000002").text
    assert set(re.findall(r'href="/audit\?ticket=(INC-\d+)"', one)) == {"INC-000002"}
    by_nina = pages.get("/audit?actor=nina&action=task_completed").text
    assert len(rows_of(by_nina)) == 1 and "Task completed" in text_of(by_nina)
    assert '<option value="task_completed" selected>' in by_nina
    assert 'value="nina"' in by_nina
    versioned = pages.get("/audit?process=incident&version=1").text
    assert rows_of(versioned) and "incident v1" in versioned
    assert rows_of(pages.get("/audit?process=incident&version=2").text) == []
    empty = pages.get("/audit?actor=nobody").text
    assert "No event matches this search." in empty


def test_audit_page_date_range_and_paging(pages, life, clock):
    for _ in range(30):  # two events each
        life.report(as_="alice")
    start = clock()
    clock.advance(days=3)
    life.report(as_="bob", title="Later")
    pages.as_("aude")
    later = (start + timedelta(days=1)).date().isoformat()
    html = pages.get(f"/audit?since={later}").text
    assert {t for t in re.findall(r'href="/audit\?[^"]*ticket=(INC-\d+)"', html)} == {
        "INC-000031"}
    until = pages.get(f"/audit?until={start.date().isoformat()}&ticket=INC-000031").text
    assert "No event matches this search." in until  # a date alone: up to its end
    exact = pages.get("/audit?since=" + (start + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M")
                      + "&ticket=INC-000031").text
    assert rows_of(exact)

    first = pages.get("/audit").text
    assert "Page 1 of 2" in text_of(first) and len(rows_of(first)) == 50
    second = pages.get("/audit?page=2").text
    assert set(rows_of(second)).isdisjoint(rows_of(first))
    assert rel_next(first) == "/audit?page=2"


def rel_next(html: str) -> str:
    found = re.search(r'rel="next" href="([^"]+)"', html)
    assert found
    return found.group(1).replace("&amp;", "&")


@pytest.mark.parametrize(("query", "field"), [
    ("since=yesterday", "since"), ("until=2026-13-40", "until"), ("version=two", "version"),
    ("since=2026-02-01&until=2026-01-01", "until"), ("until=9999-12-31", "until"),
    ("version=%C2%B2", "version"),
])
def test_bad_filters_are_shown_next_to_their_field(pages, query, field):
    pages.as_("aude")
    r = pages.get(f"/audit?{query}")
    assert r.status_code == 422
    error = re.search(rf'data-error-for="{field}">([^<]+)<', r.text)
    assert error, r.text[:2000]
    assert re.search(rf'id="a-{field}"[^>]*aria-invalid="true"', r.text)
    typed = unquote(dict(p.split("=") for p in query.split("&"))[field])
    assert f'value="{typed}"' in r.text
    assert 'download>CSV' not in r.text


# -- exports ---------------------------------------------------------------------------


def parse_csv(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"), newline="")))


def as_csv_fields(event: dict) -> dict[str, str]:
    """A JSON export item as the CSV writes it."""
    process = event["process"] or {}
    return {
        "seq": str(event["seq"]), "at": event["at"], "actor": event["actor"],
        "action": event["action"], "ticket": event["ticket"] or "", "task": event["task"] or "",
        "process_key": process.get("key", ""), "process_version": str(process.get("version", "")),
        "data": json.dumps(event["data"], ensure_ascii=False, sort_keys=True,
                           separators=(",", ":")),
        "hash": event["hash"],
    }


@pytest.mark.parametrize("query", [
    "", "ticket=INC-000001", "actor=nina", "action=task_completed&process=incident&version=1",
    "ticket=INC-999999",
])
def test_csv_export_parses_back_to_the_rows_of_the_json_export(api, life, query):
    reopened_incident(life)
    life.desk.add_comment(life.user("alice"), "INC-000001",
                          'Quotes " and, commas\nand a new line — été')
    as_json = api.get(f"/audit/events?{query}&format=json", as_="aude", buffered=True)
    as_csv = api.get(f"/audit/events?{query}&format=csv", as_="aude", buffered=True)
    assert as_json.status_code == as_csv.status_code == 200
    assert as_csv.mimetype == "text/csv" and as_json.mimetype == "application/json"
    assert "attachment" in as_csv.headers["Content-Disposition"]
    items = json.loads(as_json.data)["items"]
    assert json.loads(as_json.data)["total"] == len(items)
    rows = parse_csv(as_csv.data)
    assert rows == [as_csv_fields(e) for e in items]
    assert [e["seq"] for e in items] == sorted(e["seq"] for e in items)  # oldest first
    for row in rows:
        json.loads(row["data"])
    if query == "":
        assert any("été" in r["data"] for r in rows)
    if query == "ticket=INC-999999":
        assert items == [] and as_csv.data.decode().splitlines() == [
            "seq,at,actor,action,ticket,task,process_key,process_version,data,hash"]


def test_page_exports_are_the_api_exports_of_the_current_search(pages, api, life):
    reopened_incident(life)
    pages.as_("aude")
    html = pages.get("/audit?ticket=INC-000001&actor=alice").text
    links = re.findall(r'href="(/audit/events\.(?:csv|json)\?[^"]+)"', html)
    assert len(links) == 2
    for link in links:
        link = link.replace("&amp;", "&")
        assert "ticket=INC-000001" in link and "actor=alice" in link
        fmt = link.split("?")[0].rsplit(".", 1)[1]
        page_export = pages.get(link, buffered=True)
        assert page_export.status_code == 200
        assert page_export.headers["Content-Disposition"] == (
            f'attachment; filename="audit-INC-000001.{fmt}"')
        api_export = api.get(f"/audit/events?ticket=INC-000001&actor=alice&format={fmt}",
                             as_="aude", buffered=True)
        assert page_export.data == api_export.data
    assert pages.get("/audit/events.csv?since=soon").status_code == 422
    assert pages.get("/audit/events.xml").status_code == 404


def test_api_search_pages_and_validates(api, life):
    reopened_incident(life)
    page = api.get("/audit/events?per_page=5", as_="aude").json
    assert len(page["items"]) == 5 and page["page"] == 1 and page["per_page"] == 5
    assert page["total"] > 5
    seqs = [e["seq"] for e in page["items"]]
    assert seqs == sorted(seqs, reverse=True)
    assert set(page["items"][0]) == {"seq", "at", "actor", "action", "ticket", "task", "data",
                                     "process", "hash"}
    since = api.get("/audit/events?since=2000-01-01T00:00:00%2B02:00&ticket=INC-000001",
                    as_="aude").json
    assert since["total"] > 0 and {e["ticket"] for e in since["items"]} == {"INC-000001"}
    bad = api.get("/audit/events?since=tomorrow&version=x&format=xml", as_="aude")
    assert bad.status_code == 422 and set(bad.json["errors"]) == {"since", "version", "format"}
    assert api.get("/audit/events", as_="admin").status_code == 200


@pytest.mark.parametrize("user", ["alice", "sam", "max", "olga"])
def test_only_auditors_search_the_trail(pages, api, life, user):
    life.report(as_="alice")
    for query in ("", "?format=json", "?format=csv"):
        r = api.get(f"/audit/events{query}", as_=user, buffered=True)
        assert r.status_code == 403 and r.is_json, (user, query)
    pages.as_(user)
    for path in ("/audit", "/audit/verify", "/audit/events.csv", "/audit/events.json",
                 "/audit?ticket=INC-000001"):
        r = pages.get(path)
        assert r.status_code == 403, (user, path)
        assert "This page is for auditors." in r.text
    assert 'href="/audit"' not in pages.get("/status").text


def test_anonymous_visitors_sign_in_first(client, api):
    for path in ("/audit", "/audit/verify", "/tickets/INC-000001/trace"):
        r = client.get(path)
        assert r.status_code == 302 and r.location.startswith("/login?next=")
    assert api.get("/audit/events", as_=None).status_code == 401


# -- verification ----------------------------------------------------------------------


def test_verify_page_shows_the_count_then_the_first_altered_event(pages, desk, life):
    reopened_incident(life)
    pages.as_("aude")
    audit = pages.get("/audit").text
    assert 'action="/audit/verify"' in audit and 'method="get"' in audit
    html = pages.get("/audit/verify").text
    count = desk.verify_audit()[0]
    assert "The trail is intact" in html
    assert f'data-testid="verified-count">{count}<' in html

    with desk.db.write() as s:
        s.execute(update(AuditEvent).where(AuditEvent.seq == 7).values(actor="mallory"))
    html = pages.get("/audit/verify").text
    assert "The trail was altered" in html
    assert 'data-testid="first-bad">#7<' in html
    assert "content does not match its hash" in html
    assert "6 events checked before it" in text_of(html)


# -- auditors change nothing -----------------------------------------------------------

SESSION_ROUTES = {"/login", "/logout", "/api/v1/token"}  # signing in and out is no change


def write_routes(app) -> list[tuple[str, str]]:
    """(method, rule) of every route that changes something, pages and API alike."""
    found = []
    for rule in app.url_map.iter_rules():
        for method in sorted(rule.methods - {"GET", "HEAD", "OPTIONS"}):
            if rule.rule not in SESSION_ROUTES:
                found.append((method, rule.rule))
    return sorted(found)


def fill(rule: str, values: dict[str, str]) -> str:
    return re.sub(r"<(?:\w+:)?(\w+)>", lambda m: values[m.group(1)], rule)


def test_the_write_route_list_is_built_from_the_url_map(app):
    routes = write_routes(app)
    for expected in [("POST", "/api/v1/tasks/<task_id>/claim"),
                     ("POST", "/api/v1/tasks/<task_id>/release"),
                     ("POST", "/api/v1/tasks/<task_id>/complete"),
                     ("POST", "/api/v1/incidents"), ("POST", "/api/v1/requests"),
                     ("POST", "/api/v1/processes/<key>/versions"),
                     ("POST", "/desk/tasks/<task_id>/claim"),
                     ("POST", "/desk/tasks/<task_id>/release"), ("POST", "/desk/tasks/<task_id>"),
                     ("POST", "/tickets/<number>/comments"),
                     ("POST", "/tickets/<number>/tasks/<task_id>"),
                     ("POST", "/portal/incidents"), ("POST", "/portal/order/<item>")]:
        assert expected in routes
    assert not [r for r in routes if r[1] in SESSION_ROUTES]


def test_auditors_get_403_on_every_write_of_the_api_and_the_pages(app, api, pages, desk, life):
    ticket = life.report(as_="alice")
    life.complete(ticket, "qualify", as_="sam", data=QUALIFY_RESOLVE)
    confirm = life.task(ticket, "confirm")
    life.report(as_="bob", title="Second")
    qualify = life.task("INC-000002", "qualify")
    values = {"number": ticket.number, "task_id": qualify.id, "key": "incident",
              "item": "access", "version": "1", "failure_id": "1"}
    xml = (PROCESSES / "incident.bpmn").read_text().replace("Close the incident", "Close it")
    bodies = {
        "/api/v1/incidents": {"json": {"title": "Auditor's incident"}},
        "/api/v1/requests": {"json": {"item": "access", "fields": {
            "application": "erp", "justification": "Month-end closing work"}}},
        "/api/v1/tasks/<task_id>/complete": {"json": {"data": QUALIFY_RESOLVE}},
        "/api/v1/processes/<key>/versions": {"data": xml,
                                             "headers": {"Content-Type": "application/xml"}},
    }
    forms = {
        "/tickets/<number>/comments": {"body": "An auditor's remark"},
        "/portal/incidents": {"title": "Auditor's incident", "service": "vpn"},
        "/portal/order/<item>": {"application": "erp",
                                 "justification": "Month-end closing work"},
        "/desk/tasks/<task_id>": QUALIFY_RESOLVE,
    }
    before = desk.audit_events(life.user("admin"), per_page=1).total
    pages.as_("aude")
    token = pages.token("/audit")
    checked = []
    for method, rule in write_routes(app):
        url = fill(rule, values)
        if rule == "/tickets/<number>/tasks/<task_id>":
            url = fill(rule, {**values, "task_id": confirm.id})
        if rule.startswith("/api/"):
            r = api.client.open(url, method=method, headers={
                "Authorization": f"Bearer {api.token('aude')}",
                **bodies.get(rule, {}).get("headers", {})},
                **{k: v for k, v in bodies.get(rule, {"json": {}}).items() if k != "headers"})
            assert r.status_code == 403 and r.is_json, (method, url, r.status_code, r.data[:200])
        else:
            r = pages.client.open(url, method=method,
                                  data={**forms.get(rule, {}), "csrf_token": token})
            assert r.status_code == 403, (method, url, r.status_code)
            assert "change nothing" in r.text, (method, url)  # refused for being an auditor
            if r.mimetype == "text/html":
                assert "You may not open this page" in r.text
        checked.append(rule)
    assert len(checked) >= 13
    # nothing happened but the sign-ins and the refusals, each audited under aude's name
    after = desk.audit_events(life.user("admin"), per_page=100)
    new = after.items[:after.total - before]
    refused = [e for e in new if e.action == "action_refused"]
    assert {e.action for e in new} == {"action_refused", "user_signed_in"}
    assert {e.actor for e in new} == {"aude"} and len(refused) == len(checked)
    assert [v.version for v in desk.versions("incident")] == [1]
    assert life.waits_on("INC-000002") == ["qualify"]
    assert not desk.comments(life.user("admin"), ticket.number)
    assert pages.post("/logout", {}, form="/audit").status_code == 302  # may still sign out


def test_auditors_see_no_write_forms(pages, life):
    ticket = life.report(as_="alice")
    pages.as_("aude")
    for path in (f"/tickets/{ticket.number}", "/tickets", "/portal", "/audit",
                 f"/tickets/{ticket.number}/trace"):
        html = pages.get(path).text
        forms = re.findall(r'<form[^>]*method="post"[^>]*action="([^"]+)"', html)
        assert forms == ["/logout"], (path, forms)
    assert "Auditors read the conversation" in pages.get(f"/tickets/{ticket.number}").text


# -- trace -----------------------------------------------------------------------------


def test_trace_page_without_javascript_lists_elements_and_events(pages, life):
    ticket = reopened_incident(life)
    pages.as_("aude")
    html = pages.get(f"/tickets/{ticket.number}/trace").text
    assert 'data-trace-url="/tickets/INC-000001/trace.json"' in html
    assert "/vendor/bpmn-js/dist/bpmn-navigated-viewer.production.min.js" in html
    assert "/static/trace.js" in html
    assert "The diagram needs JavaScript" in html
    row = re.search(r'<tr data-element-row="escalate".*?</tr>', html, re.S).group(0)
    assert "Investigate and resolve" in row and "<td>2</td>" in row and "Waiting here" in row
    for element in ("start", "qualify", "set_priority", "route_escalation", "confirm", "reopen"):
        assert f'data-element-row="{element}"' in html
    assert 'data-element-row="close"' not in html  # never reached
    items = re.findall(r'<li class="event[^"]*" data-seq="(\d+)" data-element="([^"]*)"( hidden)?',
                       html)
    assert len(items) >= 10 and not any(hidden for *_, hidden in items)
    on_escalate = {int(seq) for seq, elements, _ in items if "escalate" in elements.split()}
    assert len(on_escalate) == 3  # created, completed, created again

    only = pages.get(f"/tickets/{ticket.number}/trace?element=escalate").text
    items = re.findall(r'data-seq="(\d+)" data-element="([^"]*)"( hidden)?', only)
    assert {int(seq) for seq, _, hidden in items if not hidden} == on_escalate
    assert "Events on <strong>Investigate and resolve</strong>: 3" in only
    assert "Through Set priority → Set SLA targets" in text_of(html)


def test_trace_json_has_the_diagram_and_the_path(pages, life):
    ticket = reopened_incident(life)
    pages.as_("sam")  # agents may read traces too
    r = pages.get(f"/tickets/{ticket.number}/trace.json")
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    trace = r.json
    assert trace["process"] == {"key": "incident", "version": 1}
    assert 'id="escalate"' in trace["xml"]
    assert trace["visits"]["escalate"] == 2 and trace["visits"]["qualify"] == 1
    assert trace["waiting"] == ["escalate"]
    assert trace["names"]["escalate"] == "Investigate and resolve"
    assert len(trace["element_events"]["escalate"]) == 3


def test_trace_of_a_ticket_on_an_old_version_draws_that_version(pages, desk, life):
    ticket = life.report(as_="alice")
    xml = (PROCESSES / "incident.bpmn").read_text().replace("Close the incident",
                                                            "Close and survey")
    assert desk.deploy_xml("incident", xml, life.user("olga")).version == 2
    pages.as_("aude")
    html = pages.get(f"/tickets/{ticket.number}/trace").text
    assert 'data-testid="process-version">incident v1<' in html
    assert "the current version is 2" in text_of(html)
    trace = pages.get(f"/tickets/{ticket.number}/trace.json").json
    assert "Close the incident" in trace["xml"] and "Close and survey" not in trace["xml"]
    newer = life.report(as_="alice", title="On v2")
    assert pages.get(f"/tickets/{newer.number}/trace.json").json["process"]["version"] == 2
    assert "the current version" not in pages.get(f"/tickets/{newer.number}/trace").text


def test_trace_is_for_staff_and_visible_tickets(pages, life):
    ticket = life.report(as_="alice")
    pages.as_("alice")
    assert pages.get(f"/tickets/{ticket.number}/trace").status_code == 403
    assert pages.get(f"/tickets/{ticket.number}/trace.json").status_code == 403
    assert 'href="/tickets/INC-000001/trace"' not in pages.get("/tickets/INC-000001").text
    pages.as_("max")
    assert pages.get(f"/tickets/{ticket.number}/trace").status_code == 200
    assert 'href="/tickets/INC-000001/trace"' in pages.get("/tickets/INC-000001").text
    missing = pages.get("/tickets/INC-999999/trace")
    assert missing.status_code == 404 and "Page not found" in missing.text


def test_audit_markup_is_csp_ready_with_unique_ids_and_bound_labels(pages, life):
    ticket = reopened_incident(life)
    pages.as_("aude")
    for path in ("/audit", "/audit?since=bad", "/audit/verify", f"/tickets/{ticket.number}/trace",
                 f"/tickets/{ticket.number}/trace?element=escalate", "/audit?actor=nobody"):
        assert_csp_ready(pages.get(path).text, path)


# -- front-end files -------------------------------------------------------------------


def test_vendor_serves_the_allow_listed_files_only(client):
    if not (NODE_MODULES / "bpmn-js").is_dir():
        pytest.fail("node_modules/bpmn-js is missing: run 'make node_modules'")
    assert "bpmn-js/dist/bpmn-navigated-viewer.production.min.js" in VENDOR_FILES
    for path in sorted(VENDOR_FILES):
        r = client.get(f"/vendor/{path}", buffered=True)
        assert r.status_code == 200, path
        assert r.data == (NODE_MODULES / path).read_bytes()
        if path.endswith(".js"):
            assert r.mimetype in ("text/javascript", "application/javascript"), path
        elif path.endswith(".css"):
            assert r.mimetype == "text/css", path
    for path in ("bpmn-js/package.json", "bpmn-js/dist/bpmn-viewer.development.js",
                 "bpmn-js/dist/assets/../../package.json", "../package.json",
                 "..%2Fpyproject.toml", "bpmn-js/lib/Viewer.js", ".package-lock.json", ""):
        assert path not in VENDOR_FILES
        assert client.get(f"/vendor/{path}").status_code == 404, path


def test_package_json_pins_bpmn_js_exactly():
    root = Path(__file__).resolve().parent.parent.parent
    package = json.loads((root / "package.json").read_text())
    version = package["dependencies"]["bpmn-js"]
    assert re.fullmatch(r"1[78]\.\d+\.\d+", version)
    lock = json.loads((root / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/bpmn-js"]["version"] == version
