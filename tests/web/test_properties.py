"""Property-based tests (hypothesis): form validation against the deployed form schemas, the
API bodies, and escaping of every user-typed text and BPMN label shown in pages.

Each test builds its database once (function-scoped fixtures) and runs hypothesis inside it,
so examples share the database; ``database=None`` keeps no example store in the work tree.
"""

from __future__ import annotations

import json
import re
from html import escape
from html.parser import HTMLParser
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from werkzeug.datastructures import MultiDict

from engine import ValidationFailed
from engine.forms import OPTIONS_KEY, validate, with_options
from tests.conftest import PROCESSES, QUALIFY_RESOLVE
from tests.web.test_access_matrix import TOKEN, page_client
from web import forms as web_forms

SETTINGS = {"deadline": None, "database": None, "derandomize": True,
            "suppress_health_check": list(HealthCheck)}
OPTIONS = {"groups": [("network", "Network"), ("applications", "Applications")],
           "services": [("vpn", "VPN"), ("email", "E-mail")]}
FORMS = {p.name: json.loads(p.read_text()) for p in sorted((PROCESSES / "forms").glob("*.json"))}
CATALOG = {i["key"]: i["form"]
           for i in json.loads((PROCESSES / "catalog.json").read_text())["items"]}
SCHEMAS = {**FORMS, **{f"catalog:{k}": v for k, v in CATALOG.items()}}
PAYLOADS = [
    "<script>alert(1)</script>", '"><script>alert(document.cookie)</script>',
    "<img src=x onerror=alert(1)>", "';alert(1)//", "</textarea><svg onload=alert(1)>",
    '<a href="javascript:alert(1)">x</a>', "{{ 7*7 }}", "<style>body{display:none}</style>",
]
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=8)


def _value(prop: Any) -> st.SearchStrategy:
    """A value that is often valid for the property, sometimes not."""
    if not isinstance(prop, dict):
        return JSON
    if "enum" in prop:
        valid = st.sampled_from(prop["enum"])
    elif prop.get("type") == "boolean":
        valid = st.booleans()
    elif prop.get("type") in ("integer", "number"):
        valid = st.integers(prop.get("minimum", -10**6), prop.get("maximum", 10**6))
    else:
        valid = st.text(min_size=prop.get("minLength", 0),
                        max_size=min(prop.get("maxLength", 40), 40) or 1)
    return valid | st.sampled_from(["", " ", "x" * 5000, None, 0, [], {}, *PAYLOADS])


def form_data(schema: dict[str, Any]) -> st.SearchStrategy:
    props = schema.get("properties", {})
    fields = st.fixed_dictionaries({}, optional={name: _value(p) for name, p in props.items()})
    extra = st.dictionaries(st.text(min_size=1, max_size=10), JSON, max_size=2)
    return st.one_of(fields, st.tuples(fields, extra).map(lambda t: {**t[1], **t[0]}), JSON)


# -- form validation -----------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_validate_agrees_with_json_schema_and_names_every_field(name):
    schema = with_options(SCHEMAS[name], OPTIONS)
    reference = Draft202012Validator(schema)
    known = set(schema.get("properties", {}))

    @settings(max_examples=60, **SETTINGS)
    @given(data=form_data(schema))
    def check(data):
        invalid = not isinstance(data, dict) or bool(set(data) - known) \
            or any(True for _ in reference.iter_errors(data))
        try:
            assert validate(schema, data) is data
        except ValidationFailed as err:
            assert invalid, (data, err.errors)
            assert err.errors and all(isinstance(k, str) and isinstance(v, str) and v.strip()
                                      for k, v in err.errors.items())
            assert set(err.errors) <= known | set(data if isinstance(data, dict) else ()) | {"_"}
            fields = ", ".join(sorted(err.errors))
            assert err.message == (f"Please correct these fields: {fields}."
                                   if isinstance(data, dict) else err.message)
            for error in reference.iter_errors(data) if isinstance(data, dict) else ():
                path = list(error.absolute_path)
                if path:
                    assert str(path[0]) in err.errors, (data, error.message)
        else:
            assert not invalid, data

    check()


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_with_options_fills_live_choices_and_leaves_the_schema_alone(name):
    schema = SCHEMAS[name]
    before = json.dumps(schema, sort_keys=True)
    sources = st.lists(st.tuples(st.text(min_size=1, max_size=8), st.text(max_size=8)),
                       max_size=5)

    @settings(max_examples=20, **SETTINGS)
    @given(groups=sources, services=sources)
    def check(groups, services):
        filled = with_options(schema, {"groups": groups, "services": services})
        assert json.dumps(schema, sort_keys=True) == before
        for key, prop in filled.get("properties", {}).items():
            source = schema["properties"][key].get(OPTIONS_KEY)
            if source:
                chosen = {"groups": groups, "services": services}[source]
                assert prop["enum"] == [v for v, _ in chosen]
                assert prop["x-enum-titles"] == [t for _, t in chosen]
            else:
                assert prop == schema["properties"][key]

    check()


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_submitted_form_strings_are_parsed_then_validated_without_surprises(name):
    schema = with_options(SCHEMAS[name], OPTIONS)
    props = schema.get("properties", {})
    text = st.one_of(st.text(max_size=30), st.sampled_from(["true", "false", "", "1", "-3.5",
                                                            *PAYLOADS]))
    posted = st.dictionaries(st.sampled_from([*props, "csrf_token", "other"]), text, max_size=6)

    @settings(max_examples=60, **SETTINGS)
    @given(form=posted)
    def check(form):
        data = web_forms.parse(schema, MultiDict(form))
        assert set(data) <= set(props)
        for key, value in data.items():
            if props[key].get("type") == "boolean" and form[key] in ("true", "false"):
                assert value is (form[key] == "true")
        try:
            validate(schema, data)
        except ValidationFailed as err:
            assert set(err.errors) <= set(props) | {"_"}

    check()


# -- API bodies ----------------------------------------------------------------------------


def _json_error(r) -> None:
    assert r.is_json and isinstance(r.json.get("error"), str) and r.json["error"].strip(), r.data


def test_incident_bodies_are_created_or_refused_field_by_field(api, desk, life):
    alice = life.user("alice")
    body = st.one_of(JSON, st.fixed_dictionaries({}, optional={
        "title": _value({"type": "string", "maxLength": 300}),
        "description": _value({"type": "string"}),
        "service": st.sampled_from(["vpn", "email", "nope", None, 3, *PAYLOADS]),
        "priority": st.just("P1")}))

    @settings(max_examples=60, **SETTINGS)
    @given(payload=body)
    def check(payload):
        before = desk.tickets(alice).total
        r = api.post("/incidents", as_="alice", json=payload)
        assert r.status_code in (201, 422), (payload, r.status_code, r.data)
        if r.status_code == 201:
            assert r.json["title"] == payload["title"] and r.json["requester"] == "alice"
            assert desk.tickets(alice).total == before + 1
        else:
            _json_error(r)
            assert desk.tickets(alice).total == before

    check()


def test_order_bodies_are_created_or_refused_field_by_field(api, desk, life):
    alice = life.user("alice")
    body = st.one_of(JSON, st.fixed_dictionaries({"item": st.sampled_from([*CATALOG, "nope"])},
                                                 optional={"title": st.text(max_size=30),
                                                           "fields": st.one_of(*(
                                                               form_data(f) for f in
                                                               CATALOG.values()))}))

    @settings(max_examples=60, **SETTINGS)
    @given(payload=body)
    def check(payload):
        before = desk.tickets(alice).total
        r = api.post("/requests", as_="alice", json=payload)
        assert r.status_code in (201, 404, 422), (payload, r.status_code, r.data)
        assert desk.tickets(alice).total == before + (r.status_code == 201)
        if r.status_code != 201:
            _json_error(r)

    check()


def test_task_data_completes_the_task_or_changes_nothing(api, desk, life):
    schema = with_options(FORMS["incident_qualify.schema.json"], OPTIONS)
    current = {"task": life.task(life.report(), "qualify").id}
    api.token("sam")  # signing in is audited: before the first example

    @settings(max_examples=60, **SETTINGS)
    @given(data=form_data(schema))
    def check(data):
        task = current["task"]
        history = desk.audit_head()
        r = api.post(f"/tasks/{task}/complete", as_="sam", json={"data": data})
        assert r.status_code in (200, 422), (data, r.status_code, r.data)
        if r.status_code == 200:
            current["task"] = life.task(life.report(), "qualify").id
        else:
            _json_error(r)
            assert isinstance(r.json.get("errors"), dict)
            assert desk.audit_head() == history  # nothing written, not even half

    check()


# -- escaping ------------------------------------------------------------------------------


class _Tags(HTMLParser):
    """Every tag and attribute as a browser would read them."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, dict(attrs)))


def assert_escaped(html: str, payload: str, where: str) -> None:
    """No script, handler, style or javascript: link came through; the payload, where it
    shows, shows as text."""
    if "<" in payload:
        assert payload not in html, where
    parser = _Tags()
    parser.feed(html)
    for tag, attrs in parser.found:
        assert not any(name.startswith("on") for name in attrs), (where, tag, attrs)
        assert tag not in ("style", "svg", "iframe", "object", "embed"), (where, tag)
        assert "style" not in attrs, (where, tag, attrs)
        if tag == "script":
            assert (attrs.get("src") or "").startswith("/"), (where, attrs)
        for name in ("href", "src", "action", "formaction"):
            assert not (attrs.get(name) or "").strip().lower().startswith("javascript:"), where
        if tag == "img":
            assert (attrs.get("src") or "").startswith(("/", "data:")), (where, attrs)


def _csrf(client) -> str:
    return TOKEN.search(client.get("/status").text).group(1)


def test_user_text_is_escaped_in_every_page_that_shows_it(app, desk, life):
    alice, sam, aude = (page_client(app, u) for u in ("alice", "sam", "aude"))
    text = st.tuples(st.sampled_from(PAYLOADS), st.text(max_size=10)).map(lambda t: t[0] + t[1])

    @settings(max_examples=6, **SETTINGS)
    @given(payload=text)
    def check(payload):
        r = alice.post("/portal/incidents", data={
            "title": payload[:200], "description": payload, "service": "vpn",
            "csrf_token": _csrf(alice)})
        assert r.status_code == 302, r.status_code
        number = r.location.rsplit("/", 1)[-1]
        task = life.task(number, "qualify").id
        for internal in ("false", "true"):
            sam.post(f"/tickets/{number}/comments", data={
                "body": payload, "internal": internal, "csrf_token": _csrf(sam)})
        refused = sam.post(f"/desk/tasks/{task}", data={
            "resolution": payload, "action": "resolve", "csrf_token": _csrf(sam)})
        assert refused.status_code == 422  # values kept and shown again next to the errors
        assert_escaped(refused.text, payload, "task form with errors")
        invalid = alice.post("/portal/incidents", data={
            "title": payload, "description": payload, "service": payload,
            "csrf_token": _csrf(alice)})
        assert invalid.status_code == 422
        assert_escaped(invalid.text, payload, "portal form with errors")
        life.complete(number, "qualify", as_="sam", data={**QUALIFY_RESOLVE,
                                                          "resolution": payload})
        pages = {alice: [f"/tickets/{number}", "/tickets", "/portal"],
                 sam: [f"/tickets/{number}", "/tickets", "/desk", f"/tickets/{number}/trace",
                       f"/tickets?q={payload[:20]}"],
                 aude: [f"/audit?ticket={number}", f"/tickets/{number}"]}
        for client, paths in pages.items():
            for path in paths:
                page = client.get(path)
                assert page.status_code == 200, path
                assert_escaped(page.text, payload, path)

    check()


@pytest.mark.parametrize("payload", PAYLOADS[:4])
def test_bpmn_labels_are_escaped_in_pages(app, desk, life, payload):
    """A process owner names a task and the process with markup: every page shows text."""
    xml = (PROCESSES / "incident.bpmn").read_text()
    label = escape(payload, quote=True)
    changed = re.sub(r'(<bpmn:userTask id="qualify" name=")[^"]*"', rf'\g<1>{label}"', xml,
                     count=1)
    changed = re.sub(r'(<bpmn:process id="incident"[^>]* name=")[^"]*"', rf'\g<1>{label}"',
                     changed, count=1)
    assert changed != xml
    assert desk.deploy_xml("incident", changed, life.user("olga")).version == 2
    ticket = life.report(as_="alice")
    task = life.task(ticket, "qualify")
    assert task.title == payload  # the label as written, shown as text
    pages = {"sam": ["/desk", f"/desk/tasks/{task.id}", f"/tickets/{ticket.number}",
                     f"/tickets/{ticket.number}/trace", "/processes", "/processes/incident",
                     "/processes/incident/versions/1..2"],
             "alice": [f"/tickets/{ticket.number}", "/tickets"]}
    for user, paths in pages.items():
        client = page_client(app, user)
        for path in paths:
            page = client.get(path)
            assert page.status_code == 200, path
            assert_escaped(page.text, payload, path)
