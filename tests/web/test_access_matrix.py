"""Every route of the app (pages and API) x every role: allowed or refused.

The routes come from ``app.url_map``: a new route without a rule in ``RULES`` fails
``test_every_route_has_a_rule``. URL parameters are filled with real demo objects (alice's
ticket, its task...); state-changing calls get a fresh object for each role, so what one
role does never decides what the next one sees.

Refused means 401/403/404 from the API (401 without a token) and 403/404 from a page, or,
for an anonymous visitor, the redirect to ``/login?next=...``. Allowed means 2xx or 3xx.
Never 5xx. The monitor account cannot sign in to pages (``test_monitor_cannot_sign_in``), so
on pages it is an anonymous visitor; on the API it has its own token.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.conftest import PROCESSES, QUALIFY_ESCALATE, QUALIFY_RESOLVE

ANON, MONITOR = "anonymous", "monitor"
ROLES = ("anonymous", "alice", "sam", "nina", "apu", "max", "olga", "aude", "admin", "monitor")
EVERYONE = frozenset(ROLES)
SIGNED_IN = EVERYONE - {ANON}  # API: a valid token; pages: signed in (the monitor cannot)
API_USERS = SIGNED_IN - {MONITOR}  # the monitor reaches the event API and its incidents only
DESK = frozenset({"sam", "nina", "apu", "max", "admin"})  # agents and managers
STAFF = DESK | {"olga", "aude"}  # see every ticket
REPORTERS = frozenset({"alice", "sam", "nina", "apu", "max", "admin"})
OWNERS = frozenset({"olga", "admin"})
AUDITORS = frozenset({"aude", "admin"})
MANAGERS = frozenset({"max", "admin"})
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
WORK_NOTE = "WORKNOTE-7f3a: the VPN concentrator password is in the safe"
PUBLIC_COMMENT = "PUBLIC-91c2: we are looking at it"


@dataclass
class World:
    """The demo objects URL parameters are filled with."""

    ticket: str  # alice's incident, waiting on qualify (group service_desk)
    task: str  # its qualify task
    title: str


@dataclass
class Call:
    """One request: the path, and the keyword arguments of the test client."""

    path: str
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class Ctx:
    """What a rule's request builder may use: the world, the role and the engine helpers."""

    world: World
    role: str
    life: Any
    client: Any

    def fresh_incident(self, title: str = "Printer jam on floor 2") -> tuple[str, str]:
        """(number, qualify task id) of a new incident of alice's."""
        ticket = self.life.report(as_="alice", title=title, service="email")
        return ticket.number, self.life.task(ticket, "qualify").id

    def csrf(self) -> str:
        r = self.client.get("/login")
        if r.status_code == 302:  # signed in: any page has the sign-out form's token
            r = self.client.get("/status")
        found = TOKEN.search(r.text)
        assert found, f"no CSRF token for {self.role}"
        return found.group(1)


@dataclass(frozen=True)
class Rule:
    """Who may call a route; ``call`` builds the request (default: parameters filled)."""

    allowed: frozenset[str]
    call: Callable[[Ctx], Call] | None = None
    own_client: bool = False  # signs in or out: use a throwaway client


PARAMS: dict[str, Callable[[World], str]] = {
    "number": lambda w: w.ticket,
    "task_id": lambda w: w.task,
    "key": lambda w: "incident",
    "version": lambda w: "1",
    "a": lambda w: "1",
    "b": lambda w: "1",
    "fmt": lambda w: "json",
    "item": lambda w: "info",
    "path": lambda w: "bpmn-js/dist/assets/bpmn-js.css",
    "filename": lambda w: "guichet.css",
    "name": lambda w: "backlog",  # a report chart
}


def fill(rule: str, world: World) -> str:
    """The rule's path with each ``<converter:name>`` replaced by a real value."""

    def value(match: re.Match) -> str:
        name = match.group(1).split(":")[-1]
        assert name in PARAMS, f"{rule}: no value for <{name}>; add one to PARAMS"
        return PARAMS[name](world)

    return re.sub(r"<([^>]+)>", value, rule)


# -- request builders of the state-changing routes -----------------------------------------


def form(path: str, data: dict[str, Any]) -> Callable[[Ctx], Call]:
    def build(ctx: Ctx) -> Call:
        return Call(fill(path, ctx.world), {"data": {**data, "csrf_token": ctx.csrf()}})
    return build


def model_json(ctx: Ctx) -> dict[str, Any]:
    xml = (PROCESSES / "incident.bpmn").read_text()
    return {"json": {"xml": xml, "forms": {}}, "headers": {"X-CSRFToken": ctx.csrf()}}


def login_as_self(ctx: Ctx) -> Call:
    username = "alice" if ctx.role == ANON else ctx.role
    return Call("/login", {"data": {"username": username, "password": "demo",
                                    "csrf_token": ctx.csrf()}})


def desk_complete(ctx: Ctx) -> Call:
    _, task = ctx.fresh_incident()
    return Call(f"/desk/tasks/{task}", {"data": {**QUALIFY_RESOLVE, "csrf_token": ctx.csrf()}})


def desk_claim(ctx: Ctx) -> Call:
    _, task = ctx.fresh_incident()
    return Call(f"/desk/tasks/{task}/claim", {"data": {"csrf_token": ctx.csrf()}})


def desk_release(ctx: Ctx) -> Call:
    _, task = ctx.fresh_incident()
    ctx.life.desk.claim(ctx.life.user("sam"), task)
    return Call(f"/desk/tasks/{task}/release", {"data": {"csrf_token": ctx.csrf()}})


def confirm_from_ticket_page(ctx: Ctx) -> Call:
    number, _ = ctx.fresh_incident()
    ctx.life.complete(number, "qualify", as_="sam", data=QUALIFY_RESOLVE)
    task = ctx.life.task(number, "confirm").id
    return Call(f"/tickets/{number}/tasks/{task}",
                {"data": {"resolved": "true", "csrf_token": ctx.csrf()}})


def api_network_task(ctx: Ctx, claimed_by: str | None = None) -> str:
    number, _ = ctx.fresh_incident()
    ctx.life.complete(number, "qualify", as_="sam", data=QUALIFY_ESCALATE)
    task = ctx.life.task(number, "escalate").id
    if claimed_by:
        ctx.life.desk.claim(ctx.life.user(claimed_by), task)
    return task


def api_approve(ctx: Ctx) -> Call:
    ticket = ctx.life.order("access", {"application": "erp",
                                       "justification": "Month-end closing"})
    ctx.life.complete(ticket, "qualify", as_="sam", data={"action": "accept"})
    task = ctx.life.task(ticket, "approve").id
    return Call(f"/api/v1/tasks/{task}/complete",
                {"json": {"data": {"approved": True, "comment": "ok"}}})


def step_failure(ctx: Ctx) -> int:
    """An open failure of a fresh ticket's step, as the engine records one."""
    from engine.persistence.models import StepFailure, Task

    _, task = ctx.fresh_incident()
    with ctx.life.desk.db.write() as s:
        row = StepFailure(ticket_id=s.get(Task, task).ticket_id, task_id=task,
                          operation="complete", actor="sam", data=json.dumps(QUALIFY_RESOLVE),
                          element="set_priority", error="the process failed", attempts=1,
                          at=ctx.life.desk.clock())
        s.add(row)
        s.flush()
        return row.id


EVENT = {"source": "nagios", "service": "vpn", "fingerprint": "vpn-gw-1 down",
         "summary": "VPN gateway unreachable", "severity": "major"}


def api_deploy(ctx: Ctx) -> Call:
    return Call("/api/v1/processes/incident/versions",
                {"data": (PROCESSES / "incident.bpmn").read_bytes(),
                 "content_type": "application/xml"})


RULES: dict[tuple[str, str], Rule] = {
    # -- pages: signing in and out, public files
    ("GET", "/"): Rule(EVERYONE),
    ("GET", "/login"): Rule(EVERYONE),
    ("POST", "/login"): Rule(EVERYONE - {MONITOR}, login_as_self, own_client=True),
    ("POST", "/logout"): Rule(EVERYONE, form("/logout", {}), own_client=True),
    ("GET", "/static/<path:filename>"): Rule(EVERYONE),
    ("GET", "/vendor/<path:path>"): Rule(EVERYONE),
    # -- portal, tickets, status
    ("GET", "/portal"): Rule(SIGNED_IN - {MONITOR}),
    ("POST", "/portal/incidents"): Rule(REPORTERS, form("/portal/incidents", {
        "title": "Screen flickers", "description": "Since Monday", "service": "laptop"})),
    ("GET", "/portal/order/<item>"): Rule(SIGNED_IN - {MONITOR}),
    ("POST", "/portal/order/<item>"): Rule(REPORTERS, form("/portal/order/<item>", {
        "ticket_title": "A question", "question": "How do I share a calendar?"})),
    ("GET", "/tickets"): Rule(SIGNED_IN - {MONITOR}),
    ("GET", "/tickets/<number>"): Rule(STAFF | {"alice"}),
    ("POST", "/tickets/<number>/comments"): Rule(
        (STAFF | {"alice"}) - {"aude"}, form("/tickets/<number>/comments", {"body": "Any news?"})),
    ("POST", "/tickets/<number>/tasks/<task_id>"): Rule(
        frozenset({"alice"}), confirm_from_ticket_page),
    ("GET", "/tickets/<number>/trace"): Rule(STAFF),
    ("GET", "/tickets/<number>/trace.json"): Rule(STAFF),
    ("GET", "/status"): Rule(SIGNED_IN - {MONITOR}),
    ("POST", "/status/<key>/state"): Rule(DESK, lambda ctx: Call("/status/vpn/state", {"data": {
        "state": "maintenance", "reason": "Upgrade", "csrf_token": ctx.csrf()}})),
    ("GET", "/notifications"): Rule(SIGNED_IN - {MONITOR}),
    ("POST", "/notifications/read"): Rule(SIGNED_IN - {MONITOR, "aude"},
                                          form("/notifications/read", {})),
    # -- reports: managers and auditors; administration
    ("GET", "/reports"): Rule(MANAGERS | AUDITORS),
    ("GET", "/reports/<name>.csv"): Rule(MANAGERS | AUDITORS),
    ("GET", "/admin/failures"): Rule(frozenset({"admin"})),
    ("POST", "/admin/failures/<int:failure_id>/retry"): Rule(frozenset({"admin"}), lambda ctx: Call(
        f"/admin/failures/{step_failure(ctx)}/retry", {"data": {"csrf_token": ctx.csrf()}})),
    ("GET", "/admin/outbox"): Rule(MANAGERS),
    # -- the desk: agents and managers; a task only for its group (service_desk here)
    ("GET", "/desk"): Rule(DESK),
    ("GET", "/desk/tasks/<task_id>"): Rule(DESK),
    ("POST", "/desk/tasks/<task_id>"): Rule(frozenset({"sam", "admin"}), desk_complete),
    ("POST", "/desk/tasks/<task_id>/claim"): Rule(frozenset({"sam", "admin"}), desk_claim),
    ("POST", "/desk/tasks/<task_id>/release"): Rule(frozenset({"sam", "admin"}), desk_release),
    # -- audit: auditors (and admins)
    ("GET", "/audit"): Rule(AUDITORS),
    ("GET", "/audit/events.<fmt>"): Rule(AUDITORS),
    ("GET", "/audit/verify"): Rule(AUDITORS),
    # -- processes: staff read, process owners change
    ("GET", "/processes"): Rule(STAFF),
    ("GET", "/processes/<key>"): Rule(STAFF),
    ("GET", "/processes/<key>/compare"): Rule(
        STAFF, lambda ctx: Call("/processes/incident/compare?a=1&b=1")),
    ("GET", "/processes/<key>/versions/<int:a>..<int:b>"): Rule(STAFF),
    ("GET", "/processes/<key>/versions/<int:version>.xml"): Rule(STAFF),
    ("GET", "/processes/<key>/edit"): Rule(OWNERS),
    ("GET", "/processes/<key>/versions/<int:version>/model.json"): Rule(OWNERS),
    ("POST", "/processes/<key>/validate"): Rule(
        OWNERS, lambda ctx: Call("/processes/incident/validate", model_json(ctx))),
    ("POST", "/processes/<key>/deploy"): Rule(
        OWNERS, lambda ctx: Call("/processes/incident/deploy", model_json(ctx))),
    ("POST", "/processes/<key>/versions/<int:version>/redeploy"): Rule(
        OWNERS, form("/processes/<key>/versions/<int:version>/redeploy", {})),
    ("POST", "/processes/<key>/migrate"): Rule(OWNERS, form("/processes/<key>/migrate", {})),
    # -- the API
    ("POST", "/api/v1/token"): Rule(EVERYONE, lambda ctx: Call("/api/v1/token", {"json": {
        "username": "alice" if ctx.role == ANON else ctx.role, "password": "demo"}})),
    ("GET", "/api/v1/openapi.json"): Rule(EVERYONE),
    ("GET", "/api/v1/catalog"): Rule(API_USERS),
    ("GET", "/api/v1/services"): Rule(API_USERS),
    ("POST", "/api/v1/incidents"): Rule(REPORTERS, lambda ctx: Call("/api/v1/incidents", {
        "json": {"title": "Cannot print", "service": "laptop"}})),
    ("POST", "/api/v1/requests"): Rule(REPORTERS, lambda ctx: Call("/api/v1/requests", {
        "json": {"item": "info", "fields": {"question": "Where is the wiki?"}}})),
    ("GET", "/api/v1/tickets"): Rule(SIGNED_IN),
    ("GET", "/api/v1/tickets/<number>"): Rule(STAFF | {"alice"}),
    ("GET", "/api/v1/tickets/<number>/history"): Rule(STAFF | {"alice"}),
    ("GET", "/api/v1/tasks"): Rule(API_USERS),
    ("GET", "/api/v1/tasks/<task_id>"): Rule(STAFF | {"alice"}),
    ("POST", "/api/v1/tasks/<task_id>/claim"): Rule(frozenset({"nina", "admin"}), lambda ctx: Call(
        f"/api/v1/tasks/{api_network_task(ctx)}/claim")),
    ("POST", "/api/v1/tasks/<task_id>/release"): Rule(
        frozenset({"nina", "admin"}),
        lambda ctx: Call(f"/api/v1/tasks/{api_network_task(ctx, claimed_by='nina')}/release")),
    ("POST", "/api/v1/tasks/<task_id>/complete"): Rule(MANAGERS, api_approve),
    ("GET", "/api/v1/processes"): Rule(API_USERS),
    ("GET", "/api/v1/processes/<key>/versions"): Rule(API_USERS),
    ("POST", "/api/v1/processes/<key>/versions"): Rule(OWNERS, api_deploy),
    ("GET", "/api/v1/processes/<key>/versions/<int:version>/xml"): Rule(API_USERS),
    ("GET", "/api/v1/audit/verify"): Rule(AUDITORS),
    ("GET", "/api/v1/audit/events"): Rule(AUDITORS),
    ("GET", "/api/v1/reports/kpis"): Rule(MANAGERS | AUDITORS),
    ("POST", "/api/v1/events"): Rule(frozenset({MONITOR, "admin"}),
                                     lambda ctx: Call("/api/v1/events", {"json": EVENT})),
    ("GET", "/api/v1/status"): Rule(API_USERS),
    ("POST", "/api/v1/services/<key>/state"): Rule(DESK, lambda ctx: Call(
        "/api/v1/services/vpn/state", {"json": {"state": "maintenance", "reason": "Upgrade"}})),
    ("GET", "/api/v1/notifications"): Rule(API_USERS),
    ("POST", "/api/v1/notifications/read"): Rule(
        API_USERS - {"aude"}, lambda ctx: Call("/api/v1/notifications/read", {"json": {}})),
    ("GET", "/api/v1/admin/failures"): Rule(frozenset({"admin"})),
    ("POST", "/api/v1/admin/failures/<int:failure_id>/retry"): Rule(
        frozenset({"admin"}),
        lambda ctx: Call(f"/api/v1/admin/failures/{step_failure(ctx)}/retry")),
    ("GET", "/api/v1/admin/outbox"): Rule(MANAGERS),
}


# -- helpers ---------------------------------------------------------------------------------


def routes(app) -> list[tuple[str, str]]:
    """Every (method, rule) the app answers, HEAD and OPTIONS aside."""
    return sorted({(method, rule.rule) for rule in app.url_map.iter_rules()
                   for method in rule.methods - {"HEAD", "OPTIONS"}})


def sign_in(client, username: str):
    token = TOKEN.search(client.get("/login").text).group(1)
    return client.post("/login", data={"username": username, "password": "demo",
                                       "csrf_token": token})


def page_client(app, role: str):
    """A client signed in as ``role`` (anonymous, and the monitor who cannot sign in)."""
    client = app.test_client()
    if role not in (ANON, MONITOR):
        assert sign_in(client, role).status_code == 302, role
    return client


def api_token(app, role: str) -> str | None:
    if role == ANON:
        return None
    r = app.test_client().post("/api/v1/token", json={"username": role, "password": "demo"})
    assert r.status_code == 200, r.json
    return r.json["token"]


def is_login_redirect(response) -> bool:
    if response.status_code != 302:
        return False
    target = urlsplit(response.location)
    return target.path == "/login" and "next" in parse_qs(target.query)


def verdict(response, api: bool, role: str) -> str:
    """``allowed``, ``refused``, or what is wrong with the answer."""
    status = response.status_code
    if status >= 500:
        return f"server error {status}"
    if api:
        if role == ANON and status in (401, 403, 404):
            return "refused" if status == 401 else f"refused with {status} instead of 401"
        if status in (401, 403, 404):
            return "refused"
    else:
        if is_login_redirect(response):
            return "refused" if role in (ANON, MONITOR) else "sent to sign in while signed in"
        if status == 401 and response.request.path == "/login":
            return "refused"  # wrong credentials, or an account that cannot sign in here
        if status in (403, 404):
            return "refused" if role not in (ANON, MONITOR) else f"{status} instead of sign-in"
    if status < 400:
        return "allowed"
    return f"unexpected {status}"


def excerpt(response) -> str:
    if response.status_code in (301, 302, 303):
        return f"-> {response.location}"
    text = response.get_data(as_text=True)
    if response.is_json:
        return text[:160]
    found = re.search(r'<p class="[^"]*message[^"]*">(.*?)</p>', text, re.S)
    return (found.group(1) if found else re.sub(r"\s+", " ", text))[:160]


@pytest.fixture
def world(desk, life) -> World:
    ticket = life.report(as_="alice", title="VPN drops every hour")
    task = life.task(ticket, "qualify").id
    desk.add_comment(life.user("sam"), ticket.number, WORK_NOTE, internal=True)
    desk.add_comment(life.user("sam"), ticket.number, PUBLIC_COMMENT)
    return World(ticket.number, task, ticket.title)


# -- the tests ---------------------------------------------------------------------------------


def test_every_route_has_a_rule(app):
    missing = [f"{m} {r}" for m, r in routes(app) if (m, r) not in RULES]
    stale = [f"{m} {r}" for m, r in RULES if (m, r) not in set(routes(app))]
    assert not missing, "routes without an access rule in RULES: " + ", ".join(missing)
    assert not stale, "rules of routes that no longer exist: " + ", ".join(stale)


@pytest.mark.parametrize("role", ROLES)
def test_route_role_matrix(app, life, world, role):
    pages, token = page_client(app, role), api_token(app, role)
    problems = []
    for method, rule in routes(app):
        spec = RULES.get((method, rule))
        if spec is None:
            continue  # test_every_route_has_a_rule names it
        api = rule.startswith("/api/")
        client = page_client(app, role) if spec.own_client else pages
        ctx = Ctx(world, role, life, client)
        call = spec.call(ctx) if spec.call else Call(fill(rule, world))
        headers = dict(call.kwargs.pop("headers", {}))
        if api and token and rule != "/api/v1/token":
            headers["Authorization"] = f"Bearer {token}"
        with client.open(call.path, method=method, headers=headers, **call.kwargs) as response:
            expected = "allowed" if role in spec.allowed else "refused"
            got = verdict(response, api, role)
            if got != expected:
                problems.append(f"{method} {call.path}: expected {expected}, got {got} "
                                f"({response.status_code} {excerpt(response)})")
    assert not problems, f"as {role}:\n" + "\n".join(problems)


def test_monitor_cannot_sign_in_to_pages(app):
    client = app.test_client()
    r = sign_in(client, "monitor")
    assert r.status_code == 401 and "event API only" in r.text
    assert is_login_redirect(client.get("/portal"))


def _get_routes_with_objects(app) -> list[str]:
    return [rule for method, rule in routes(app)
            if method == "GET" and ("<number>" in rule or "<task_id>" in rule)]


def test_requesters_never_reach_another_requesters_ticket(app, api, life, world):
    """bob, by guessing numbers and ids, on every route that takes a ticket or a task."""
    bob_pages, bob = page_client(app, "bob"), api_token(app, "bob")
    own = life.report(as_="bob", title="Bob's own ticket").number
    for rule in _get_routes_with_objects(app):
        path = fill(rule, world)
        headers = {"Authorization": f"Bearer {bob}"} if rule.startswith("/api/") else {}
        with bob_pages.get(path, headers=headers) as r:
            assert r.status_code in (403, 404), (path, r.status_code)
            assert world.title not in r.get_data(as_text=True), path
    for number in [f"INC-{n:06d}" for n in range(1, 8)] + [f"REQ-{n:06d}" for n in range(1, 4)]:
        page = bob_pages.get(f"/tickets/{number}").status_code
        answer = api.get(f"/tickets/{number}", as_="bob").status_code
        assert (page, answer) == ((200, 200) if number == own else (404, 404)), number
    assert api.get("/tickets", as_="bob").json["total"] == 1
    token = TOKEN.search(bob_pages.get("/status").text).group(1)
    r = bob_pages.post(f"/tickets/{world.ticket}/comments",
                       data={"body": "hello", "csrf_token": token})
    assert r.status_code == 404
    r = bob_pages.post(f"/tickets/{world.ticket}/tasks/{world.task}",
                       data={"resolved": "true", "csrf_token": token})
    assert r.status_code == 404
    for action in ("claim", "release"):
        assert api.post(f"/tasks/{world.task}/{action}", as_="bob").status_code == 404
    r = api.post(f"/tasks/{world.task}/complete", as_="bob", json={"data": QUALIFY_RESOLVE})
    assert r.status_code == 404
    assert PUBLIC_COMMENT not in bob_pages.get(f"/tickets/{own}").text


def test_work_notes_never_reach_the_requester(app, api, life, world):
    """Every GET route, pages and API, filled with alice's ticket: the work note is never
    in what alice receives; staff do see it (so the check can fail)."""
    assert WORK_NOTE in page_client(app, "sam").get(f"/tickets/{world.ticket}").text
    history = api.get(f"/tickets/{world.ticket}/history", as_="sam").get_data(as_text=True)
    assert WORK_NOTE in history
    life.complete(world.ticket, "qualify", as_="sam", data=QUALIFY_RESOLVE)
    alice_pages, alice = page_client(app, "alice"), api_token(app, "alice")
    world.task = life.task(world.ticket, "confirm").id
    seen_public = False
    for method, rule in routes(app):
        if method != "GET":
            continue
        path = fill(rule, world)
        headers = {"Authorization": f"Bearer {alice}"} if rule.startswith("/api/") else {}
        with alice_pages.get(path, headers=headers) as r:
            body = r.get_data(as_text=True)
        assert WORK_NOTE not in body and "WORKNOTE-7f3a" not in body, path
        seen_public = seen_public or PUBLIC_COMMENT in body
    assert seen_public
    listing = api.get("/tickets", as_="alice").get_data(as_text=True)
    assert "WORKNOTE" not in listing
