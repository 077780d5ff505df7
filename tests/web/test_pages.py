"""The browser pages through Flask's test client, with CSRF protection switched on."""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.conftest import QUALIFY_ESCALATE, QUALIFY_RESOLVE
from tests.web.conftest import assert_csp_ready

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
XSS = "<script>alert(1)</script>"


class Pages:
    """``pages.login("alice")``, ``pages.post(path, data, form="/portal")``: tokens taken
    from the page that holds the form, as a browser would."""

    def __init__(self, client) -> None:
        self.client = client

    def token(self, page: str) -> str:
        r = self.client.get(page)
        assert r.status_code in (200, 401, 422), (page, r.status_code)
        found = TOKEN.search(r.text)
        assert found, f"no CSRF token on {page}"
        return found.group(1)

    def login(self, username: str, password: str = "demo", next: str | None = None):
        data = {"username": username, "password": password, "csrf_token": self.token("/login")}
        if next is not None:
            data["next"] = next
        return self.client.post("/login", data=data)

    def as_(self, username: str) -> Pages:
        self.client.delete_cookie("session")
        r = self.login(username)
        assert r.status_code == 302, r.text
        return self

    def post(self, path: str, data: dict, form: str, **kw):
        return self.client.post(path, data={**data, "csrf_token": self.token(form)}, **kw)

    def get(self, path: str, **kw):
        return self.client.get(path, **kw)


@pytest.fixture
def pages(client) -> Pages:
    return Pages(client)


def text_of(html: str) -> str:
    """The visible text, tags removed and whitespace collapsed (for readable assertions)."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def field_error(html: str, name: str) -> str | None:
    found = re.search(rf'data-error-for="{re.escape(name)}">([^<]*)<', html)
    return unescape(found.group(1)) if found else None


def task_id(html: str, ticket: str) -> str:
    found = re.search(rf'data-task="([^"]+)" data-ticket="{ticket}"', html)
    assert found, f"no task of {ticket} on the page"
    return found.group(1)


# -- signing in and out ----------------------------------------------------------------


@pytest.mark.parametrize("path", ["/portal", "/desk", "/tickets", "/tickets/INC-000001",
                                  "/status", "/portal/order/access", "/desk/tasks/x"])
def test_anonymous_visitors_are_sent_to_the_sign_in_page(client, path):
    r = client.get(path)
    assert r.status_code == 302
    target = urlsplit(r.location)
    assert target.path == "/login"
    assert parse_qs(target.query)["next"] == [path]


def test_anonymous_root_and_query_strings_are_kept_in_next(client):
    assert urlsplit(client.get("/").location).path == "/login"
    r = client.get("/tickets?status=new&page=2")
    assert parse_qs(urlsplit(r.location).query)["next"] == ["/tickets?status=new&page=2"]


def test_login_page_has_bound_labels_and_autofocus(client):
    html = client.get("/login").text
    assert '<label class="label" for="username">' in html and 'id="username"' in html
    assert '<label class="label" for="password">' in html and 'id="password"' in html
    assert re.search(r'id="username"[^>]*autofocus', html)
    assert "style=" not in html and "<script>" not in html


@pytest.mark.parametrize(("user", "home"), [
    ("alice", "/portal"), ("bob", "/portal"), ("sam", "/desk"), ("nina", "/desk"),
    ("max", "/desk"), ("admin", "/desk"), ("aude", "/audit"), ("olga", "/processes"),
])
def test_sign_in_sends_each_role_home(pages, user, home):
    r = pages.login(user)
    assert r.status_code == 302 and r.location == home
    assert pages.get(home).status_code == 200


def test_sign_in_keeps_only_the_user_name_in_the_session(pages, client):
    pages.login("alice")
    with client.session_transaction() as session:
        assert session["user"] == "alice"
        assert set(session) <= {"user", "csrf_token", "_flashes"}
    html = pages.get("/portal").text
    assert "Alice Martin" in html and "Requester" in html


def test_header_shows_name_roles_and_groups(pages):
    pages.login("sam")
    header = text_of(pages.get("/desk").text.split("</header>")[0])
    assert "Sam Leroy" in header and "Agent" in header and "Service desk" in header


def test_wrong_password_is_refused_and_the_user_name_kept(pages):
    r = pages.login("alice", password="wrong")
    assert r.status_code == 401
    assert "Unknown user name or wrong password." in r.text
    assert 'value="alice"' in r.text
    assert pages.get("/portal").status_code == 302


def test_service_account_cannot_sign_in(pages):
    r = pages.login("monitor")
    assert r.status_code == 401 and "event API only" in r.text


def test_next_is_followed_only_within_the_site(pages, client):
    assert pages.login("sam", next="/status").location == "/status"
    client.delete_cookie("session")
    assert pages.login("sam", next="//evil.example/x").location == "/desk"
    client.delete_cookie("session")
    assert pages.login("sam", next="https://evil.example/").location == "/desk"


def test_logout_needs_a_post_with_csrf_and_ends_the_session(pages, client):
    pages.login("alice")
    assert client.get("/logout").status_code == 405
    assert client.post("/logout").status_code == 400  # no CSRF token
    assert pages.get("/portal").status_code == 200
    r = pages.post("/logout", {}, form="/portal")
    assert r.status_code == 302 and r.location == "/login"
    assert pages.get("/portal").status_code == 302
    with client.session_transaction() as session:
        assert "user" not in session


def test_a_post_without_csrf_token_is_refused(pages, client, desk, life):
    pages.login("alice")
    r = client.post("/portal/incidents", data={"title": "No token", "service": "vpn"})
    assert r.status_code == 400
    assert "CSRF" in r.text and "<html" in r.text
    assert desk.tickets(life.user("admin")).total == 0
    r = client.post("/portal/incidents", data={"title": "Bad", "csrf_token": "forged"})
    assert r.status_code == 400


def test_every_post_form_carries_a_csrf_token(pages, life):
    ticket = life.report(as_="alice")
    life.complete(ticket, "qualify", as_="sam", data=QUALIFY_RESOLVE)
    for user, paths in {
        "alice": ["/portal", "/tickets", f"/tickets/{ticket.number}", "/portal/order/laptop"],
        "sam": ["/desk", f"/tickets/{ticket.number}"],
    }.items():
        pages.as_(user)
        for path in paths:
            html = pages.get(path).text
            forms = re.findall(r"<form[^>]*method=\"post\".*?</form>", html, re.S)
            assert forms, path
            for form in forms:
                assert 'name="csrf_token"' in form, (path, form[:120])


# -- pages per role --------------------------------------------------------------------


@pytest.mark.parametrize(("user", "path", "status"), [
    ("alice", "/portal", 200), ("alice", "/tickets", 200), ("alice", "/status", 200),
    ("alice", "/portal/order/access", 200), ("alice", "/desk", 403),
    ("sam", "/desk", 200), ("sam", "/tickets", 200), ("sam", "/status", 200),
    ("sam", "/portal", 200), ("max", "/desk", 200), ("nina", "/desk?queue=mine", 200),
    ("aude", "/desk", 403), ("aude", "/tickets", 200), ("aude", "/portal", 200),
    ("olga", "/status", 200),
])
def test_pages_render_for_the_right_roles(pages, user, path, status):
    pages.login(user)
    r = pages.get(path)
    assert r.status_code == status, r.text[:500]
    assert r.content_type.startswith("text/html")


def test_403_and_404_pages_share_the_look(pages):
    pages.login("alice")
    forbidden = pages.get("/desk")
    assert forbidden.status_code == 403
    assert "You may not open this page" in forbidden.text
    assert "guichet.css" in forbidden.text and "Alice Martin" in forbidden.text
    missing = pages.get("/tickets/INC-999999")
    assert missing.status_code == 404
    assert "Page not found" in missing.text and "guichet.css" in missing.text
    unknown = pages.get("/no/such/page")
    assert unknown.status_code == 404 and "Page not found" in unknown.text


def test_api_errors_stay_json(client):
    r = client.get("/api/v1/nothing-here")
    assert r.status_code == 404 and r.is_json


def test_unexpected_errors_show_a_500_page_without_details(pages, desk, monkeypatch):
    pages.login("alice")

    def broken():
        raise RuntimeError("database password is hunter2")

    monkeypatch.setattr(desk, "status_board", broken)
    r = pages.get("/status")
    assert r.status_code == 500
    assert "Something went wrong on our side" in r.text
    assert "hunter2" not in r.text and "Traceback" not in r.text


def test_portal_for_a_role_that_cannot_report(pages):
    pages.login("aude")
    html = pages.get("/portal").text
    assert "Your role cannot open tickets" in html
    assert 'action="/portal/incidents"' not in html
    r = pages.post("/portal/incidents", {"title": "x"}, form="/status")
    assert r.status_code == 403 and "You may not open this page" in r.text


# -- portal ----------------------------------------------------------------------------


def test_report_an_incident(pages, desk, life):
    pages.login("alice")
    html = pages.get("/portal").text
    assert re.search(r'<option value="vpn"\s*>VPN</option>', html)
    assert re.search(r'id="incident-title"[^>]*autofocus', html)
    r = pages.post("/portal/incidents", {"title": "VPN drops", "description": "Since 9",
                                         "service": "vpn"}, form="/portal")
    assert r.status_code == 302 and r.location == "/tickets/INC-000001"
    ticket = desk.ticket(life.user("alice"), "INC-000001")
    assert (ticket.title, ticket.service, ticket.channel) == ("VPN drops", "vpn", "portal")
    page = pages.get(r.location).text
    assert "INC-000001 recorded" in page and "VPN drops" in page


def test_report_errors_are_shown_next_to_the_field_and_input_kept(pages, desk, life):
    pages.login("alice")
    r = pages.post("/portal/incidents", {"title": "  ", "description": "Typed details",
                                         "service": "email"}, form="/portal")
    assert r.status_code == 422
    assert field_error(r.text, "title") == "This field is required."
    assert "Typed details</textarea>" in r.text
    assert re.search(r'<option value="email"\s+selected>', r.text)
    assert re.search(r'id="incident-title"[^>]*aria-invalid="true"', r.text)
    assert desk.tickets(life.user("admin")).total == 0


def test_catalog_order_form_from_its_schema(pages):
    pages.login("alice")
    portal = pages.get("/portal").text
    assert 'href="/portal/order/access"' in portal and "Needs approval" in portal
    html = pages.get("/portal/order/access").text
    assert '<label class="label" for="field-application">Application' in html
    assert re.search(r'<option value="erp"\s*>ERP</option>', html)
    assert re.search(r'<textarea id="field-justification" name="justification"', html)
    assert "Why you need this access" in html
    assert re.search(r'id="field-application"[^>]*autofocus', html)
    assert pages.get("/portal/order/nothing").status_code == 404


def test_order_errors_next_to_fields_with_values_kept(pages, desk, life):
    pages.login("alice")
    r = pages.post("/portal/order/access", {"application": "erp", "justification": "short",
                                            "ticket_title": "My ERP access"},
                   form="/portal/order/access")
    assert r.status_code == 422
    assert field_error(r.text, "justification") == "Must be at least 10 characters."
    assert field_error(r.text, "application") is None
    assert re.search(r'<option value="erp"\s+selected>', r.text)
    assert ">short</textarea>" in r.text and 'value="My ERP access"' in r.text
    assert desk.tickets(life.user("admin")).total == 0

    r = pages.post("/portal/order/access", {"application": "erp",
                                            "justification": "Month-end closing work"},
                   form="/portal/order/access")
    assert r.status_code == 302 and r.location == "/tickets/REQ-000001"
    ticket = desk.ticket(life.user("admin"), "REQ-000001")
    assert ticket.title == "Access to an application"
    assert ticket.data["fields"] == {"application": "erp",
                                     "justification": "Month-end closing work"}
    page = pages.get("/tickets/REQ-000001").text
    assert "Month-end closing work" in page and "ERP" in page


def test_my_tickets_empty_state(pages):
    pages.login("bob")
    html = pages.get("/tickets").text
    assert "No tickets yet — report an incident" in html
    assert "No tickets yet — report an incident" in pages.get("/portal").text


def test_my_tickets_lists_only_mine_with_status_priority_due_and_pages(pages, life):
    for i in range(22):
        life.report(as_="alice", title=f"Alice problem {i:02d}")
    life.report(as_="bob", title="Bob problem")
    life.complete("INC-000001", "qualify", as_="sam", data=QUALIFY_ESCALATE)
    pages.login("alice")
    first = pages.get("/tickets").text
    assert "Page 1 of 2" in first and "22 in all" in first
    assert "Bob problem" not in first
    assert "Alice problem 21" in first and "Alice problem 01" not in first
    second = pages.get("/tickets?page=2").text
    assert "Alice problem 01" in second and "Alice problem 00" in second
    assert "Alice problem 21" not in second
    row = re.search(r'data-ticket="INC-000001">(.*?)</tr>', second, re.S).group(1)
    assert "In progress" in row and "prio-p1" in row and "2026-" in row
    assert "Not set yet" in pages.get("/tickets?page=2").text
    assert pages.get("/tickets?page=zero").status_code == 200
    only = pages.get("/tickets?q=problem+05").text
    assert "Alice problem 05" in only and "Alice problem 06" not in only


def test_confirm_or_reopen_from_my_tickets(pages, life, desk):
    fixed = life.report(as_="alice", title="Fixed one")
    broken = life.report(as_="alice", title="Still broken")
    for t in (fixed, broken):
        life.complete(t, "qualify", as_="sam", data=QUALIFY_RESOLVE)
    pages.login("alice")
    html = pages.get("/tickets").text
    assert html.count("is everything working again?") == 2
    confirm = life.task(fixed, "confirm", as_="alice")
    r = pages.post(f"/tickets/{fixed.number}/tasks/{confirm.id}",
                   {"resolved": "true", "comment": "", "next": "/tickets"}, form="/tickets")
    assert r.status_code == 302 and r.location == "/tickets"
    assert life.waits_on(fixed) == ["close"]
    assert "thank you for confirming" in pages.get("/tickets").text

    reopen = life.task(broken, "confirm", as_="alice")
    r = pages.post(f"/tickets/{broken.number}/tasks/{reopen.id}",
                   {"resolved": "false", "comment": "Still drops", "next": "/tickets"},
                   form="/tickets")
    assert r.status_code == 302
    assert life.ticket(broken).status == "in_progress"
    assert "reopened" in pages.get("/tickets").text
    assert "is everything working again?" not in pages.get("/tickets").text


def test_confirm_form_on_the_ticket_page_validates(pages, life):
    ticket = life.report(as_="alice")
    life.complete(ticket, "qualify", as_="sam", data=QUALIFY_RESOLVE)
    pages.login("alice")
    html = pages.get(f"/tickets/{ticket.number}").text
    assert "Reset the VPN profile" in html  # the resolution, to judge it
    assert 'type="radio" id="field-resolved-true" name="resolved" value="true"' in html
    task = life.task(ticket, "confirm", as_="alice")
    r = pages.post(f"/tickets/{ticket.number}/tasks/{task.id}", {"comment": "Typed"},
                   form=f"/tickets/{ticket.number}")
    assert r.status_code == 422
    assert field_error(r.text, "resolved") == "This field is required."
    assert ">Typed</textarea>" in r.text
    assert life.waits_on(ticket) == ["confirm"]


def test_requester_cannot_complete_staff_tasks_from_the_ticket_page(pages, life):
    ticket = life.report(as_="alice")
    qualify = life.task(ticket, "qualify")
    pages.login("alice")
    r = pages.post(f"/tickets/{ticket.number}/tasks/{qualify.id}", {"action": "resolve"},
                   form=f"/tickets/{ticket.number}")
    assert r.status_code == 403
    assert life.waits_on(ticket) == ["qualify"]


# -- tickets ---------------------------------------------------------------------------


def test_ticket_page_details_progress_and_timeline(pages, life):
    ticket = life.report(as_="alice", title="Mail is down", description="Outlook says offline")
    pages.login("alice")
    html = pages.get(f"/tickets/{ticket.number}").text
    text = text_of(html)
    assert "Mail is down" in text and "Outlook says offline" in text
    assert "Qualify the incident Now — with Service desk" in text
    assert "Confirm the resolution Next" in text
    assert re.search(r"#\d+ Ticket created by alice 2026-01-05 09:00 UTC", text)
    assert 'aria-current="step"' in html

    life.complete(ticket, "qualify", as_="sam", data=QUALIFY_ESCALATE)
    text = text_of(pages.get(f"/tickets/{ticket.number}").text)
    assert "Qualify the incident Done by Sam Leroy" in text
    assert "Investigate and resolve Now — with Network" in text
    assert "Task completed Qualify by sam" in text
    assert "P1" in text


def test_bob_cannot_open_alices_ticket(pages, life):
    ticket = life.report(as_="alice", title="Private matter")
    pages.login("bob")
    for path in (f"/tickets/{ticket.number}", f"/tickets/{ticket.number}/comments"):
        r = pages.get(path) if path.endswith(ticket.number) else pages.post(
            path, {"body": "hi"}, form="/tickets")
        assert r.status_code == 404, path
        assert "Private matter" not in r.text


def test_titles_are_escaped_everywhere(pages, life):
    ticket = life.report(as_="alice", title=XSS, description=XSS)
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    for user, paths in {"alice": [f"/tickets/{ticket.number}", "/tickets", "/portal"],
                        "sam": ["/desk", f"/tickets/{ticket.number}", "/tickets"]}.items():
        pages.as_(user)
        for path in paths:
            html = pages.get(path).text
            assert XSS not in html, path
            assert escaped in html, path


def test_comments_both_ways_and_work_notes_hidden_from_the_requester(pages, life, desk):
    ticket = life.report(as_="alice")
    path = f"/tickets/{ticket.number}"
    pages.as_("alice")
    r = pages.post(f"{path}/comments", {"body": "It fails on Wi-Fi only"}, form=path)
    assert r.status_code == 302 and r.location == f"{path}#conversation"
    assert 'name="internal"' not in pages.get(path).text  # no work notes for requesters

    pages.as_("sam")
    html = pages.get(path).text
    assert "It fails on Wi-Fi only" in html
    pages.post(f"{path}/comments", {"body": "Can you try from home?"}, form=path)
    pages.post(f"{path}/comments", {"body": "Captive portal again", "internal": "true"},
               form=path)
    html = pages.get(path).text
    assert "Captive portal again" in html and "Work note · agents only" in html

    pages.as_("alice")
    html = pages.get(path).text
    assert "Can you try from home?" in html
    assert "Captive portal again" not in html and "Work note" not in html
    r = pages.post(f"{path}/comments", {"body": "sneaky", "internal": "true"}, form=path)
    assert r.status_code == 403
    assert [c.body for c in desk.comments(life.user("sam"), ticket.number)] == [
        "It fails on Wi-Fi only", "Can you try from home?", "Captive portal again"]


def test_empty_comment_shows_the_error_next_to_the_field(pages, life):
    ticket = life.report(as_="alice")
    path = f"/tickets/{ticket.number}"
    pages.login("alice")
    r = pages.post(f"{path}/comments", {"body": "   "}, form=path)
    assert r.status_code == 422
    assert field_error(r.text, "body") == "This field is required."


def test_staff_ticket_list_filters(pages, life):
    life.report(as_="alice", title="Mail down", service="email")
    life.report(as_="bob", title="VPN slow", service="vpn")
    pages.login("sam")
    html = pages.get("/tickets").text
    assert "Mail down" in html and "VPN slow" in html
    html = pages.get("/tickets?service=vpn").text
    assert "VPN slow" in html and "Mail down" not in html
    html = pages.get("/tickets?status=closed").text
    assert "No ticket matches these filters." in html


# -- desk ------------------------------------------------------------------------------


def test_desk_queues_counts_claim_and_release(pages, life):
    first = life.report(title="Mail down", service="email")
    second = life.report(title="VPN slow", service="vpn")
    pages.login("sam")
    html = pages.get("/desk").text
    counts = dict(re.findall(r'data-queue="(\w+)">\s*[^<]+<span class="count"[^>]*>(\d+)<', html))
    assert counts == {"mine": "0", "group": "2", "unassigned": "2", "all": "2"}
    assert "Mail down" in html and "VPN slow" in html
    assert "No task" not in html

    task = task_id(html, first.number)
    r = pages.post(f"/desk/tasks/{task}/claim", {"next": "/desk?queue=mine"}, form="/desk")
    assert r.status_code == 302 and r.location == "/desk?queue=mine"
    mine = pages.get("/desk?queue=mine").text
    assert "Mail down" in mine and "VPN slow" not in mine
    assert "is now assigned to you" in mine
    assert "Release" in mine
    unassigned = pages.get("/desk?queue=unassigned").text
    assert "VPN slow" in unassigned and "Mail down" not in unassigned

    pages.post(f"/desk/tasks/{task}/release", {"next": "/desk"}, form="/desk")
    assert life.task(first, "qualify").assignee is None
    assert "Nothing waiting here." in pages.get("/desk?queue=mine").text
    assert second.number in pages.get("/desk?queue=group").text


def test_claim_conflict_is_a_message_not_an_error_page(pages, life, desk):
    ticket = life.report()
    task = life.task(ticket, "qualify")
    desk.claim(life.user("admin"), task.id)
    pages.login("sam")
    r = pages.post(f"/desk/tasks/{task.id}/claim", {"next": "/desk"}, form="/desk")
    assert r.status_code == 302 and r.location == "/desk"
    assert "Already claimed by admin" in pages.get("/desk").text


def test_desk_filters_search_and_pages(pages, life, clock):
    for i in range(23):
        life.report(title=f"Printer {i:02d}", service="laptop" if i % 2 else "email")
        clock.advance(minutes=1)  # the desk lists oldest first
    life.report(title="Escalated", service="vpn")
    life.complete("INC-000024", "qualify", as_="sam", data={**QUALIFY_ESCALATE,
                                                            "group": "service_desk"})
    pages.login("sam")
    first = pages.get("/desk").text
    assert "Page 1 of 2" in first and "24 in all" in first
    assert "Printer 22" not in first
    assert "Printer 22" in pages.get("/desk?page=2").text
    assert "Printer 04" in pages.get("/desk?q=INC-000005").text
    assert "Printer 05" not in pages.get("/desk?q=INC-000005").text
    html = pages.get("/desk?service=laptop").text
    assert "Printer 01" in html and "Printer 02" not in html
    html = pages.get("/desk?priority=P1").text
    assert "Escalated" in html and "Printer" not in html
    html = pages.get("/desk?status=in_progress").text
    assert "Escalated" in html and "Printer" not in html
    html = pages.get("/desk?status=resolved").text
    assert "No task matches these filters." in html
    # the queue tabs keep the filters
    assert 'href="/desk?service=laptop&amp;queue=mine"' in pages.get("/desk?service=laptop").text


def test_task_form_renders_the_schema(pages, life):
    ticket = life.report(title="VPN drops", description="Since 9")
    pages.login("sam")
    task = task_id(pages.get("/desk").text, ticket.number)
    html = pages.get(f"/desk/tasks/{task}?next=/desk").text
    names = re.findall(r'data-field="(\w+)"', html)
    assert names == ["category", "service", "impact", "urgency", "action", "resolution", "group"]
    assert re.search(r'<option value="medium"\s*>Medium: a department</option>', html)
    assert re.search(r'<textarea id="field-resolution" name="resolution"', html)
    assert "Required when Next step is Resolve." in html
    assert re.search(r'for="field-category">Category <span class="req"', html)
    assert re.search(r'id="field-category"[^>]*autofocus', html)
    assert "How many users or how much of the business is hit" in html
    assert "Since 9" in html


def test_task_form_errors_next_to_fields_values_kept_then_completed(pages, life, desk):
    ticket = life.report(title="VPN drops")
    pages.login("sam")
    task = task_id(pages.get("/desk").text, ticket.number)
    path = f"/desk/tasks/{task}"
    data = {"category": "network", "service": "vpn", "impact": "medium", "urgency": "high",
            "action": "resolve", "resolution": "", "next": "/desk?queue=group"}
    r = pages.post(path, data, form=path)
    assert r.status_code == 422
    assert field_error(r.text, "resolution") == "This field is required."
    assert field_error(r.text, "category") is None
    assert re.search(r'<option value="network"\s+selected>', r.text)
    assert re.search(r'<option value="resolve"\s+selected>', r.text)
    assert re.search(r'id="field-resolution"[^>]*autofocus', r.text)
    assert life.waits_on(ticket) == ["qualify"]

    r = pages.post(path, {**data, "resolution": "Reset the profile"}, form=path)
    assert r.status_code == 302 and r.location == "/desk?queue=group"
    assert "INC-000001: Qualify the incident completed." in pages.get(r.location).text
    after = life.ticket(ticket)
    assert (after.status, after.priority) == ("resolved", "P2")
    assert after.data["resolution"] == "Reset the profile"


def test_completing_a_task_someone_else_completed(pages, life):
    ticket = life.report()
    task = life.task(ticket, "qualify")
    pages.login("sam")
    form = pages.get(f"/desk/tasks/{task.id}").text
    assert 'name="category"' in form
    life.complete(ticket, "qualify", as_="sam", data=QUALIFY_RESOLVE)
    r = pages.post(f"/desk/tasks/{task.id}", {**QUALIFY_RESOLVE, "next": "/desk"},
                   form="/desk")
    assert r.status_code == 302 and r.location == "/desk"
    assert "no longer ready" in pages.get("/desk").text
    done = pages.get(f"/desk/tasks/{task.id}").text
    assert "nothing left to do" in done and 'name="category"' not in done


def test_agents_of_other_groups_see_the_task_but_no_form(pages, life):
    ticket = life.report()
    task = life.task(ticket, "qualify")
    pages.login("nina")
    html = pages.get(f"/desk/tasks/{task.id}").text
    assert "you can read it but not complete it" in html
    r = pages.post(f"/desk/tasks/{task.id}", QUALIFY_RESOLVE, form="/desk")
    assert r.status_code == 403


def test_boolean_task_form_for_approval(pages, life):
    life.order("access", {"application": "erp", "justification": "Month-end closing work"})
    life.complete("REQ-000001", "qualify", as_="sam", data={"action": "accept"})
    pages.login("max")
    task = task_id(pages.get("/desk").text, "REQ-000001")
    html = pages.get(f"/desk/tasks/{task}").text
    assert "Month-end closing work" in html  # what is being approved
    assert '<legend class="label">Do you approve this request?' in html
    assert 'value="true"' in html and 'value="false"' in html
    r = pages.post(f"/desk/tasks/{task}", {"approved": "true", "comment": ""},
                   form=f"/desk/tasks/{task}")
    assert r.status_code == 302
    assert life.waits_on("REQ-000001") == ["fulfil"]


def test_status_page(pages, desk):
    pages.login("bob")
    html = pages.get("/status").text
    text = text_of(html)
    for name in ("E-mail", "VPN", "ERP", "Laptops and workstations"):
        assert name in text
    assert "All services are operating normally." in text
    assert text.count("Operational") >= 4


def test_markup_is_csp_ready_with_unique_ids_and_bound_labels(pages, life):
    """No inline style or script (a strict Content-Security-Policy will come), every label
    points at a field that exists, and no id is used twice."""
    ticket = life.report(as_="alice")
    life.complete(ticket, "qualify", as_="sam", data=QUALIFY_RESOLVE)
    life.report(as_="alice", title="Second")
    second = life.task("INC-000002", "qualify")
    for user, paths in {
        "alice": ["/portal", "/portal/order/access", "/portal/order/laptop", "/tickets",
                  f"/tickets/{ticket.number}", "/status", "/desk", "/tickets/INC-999999"],
        "sam": ["/desk", f"/desk/tasks/{second.id}", f"/tickets/{ticket.number}", "/tickets"],
    }.items():
        pages.as_(user)
        for path in paths:
            assert_csp_ready(pages.get(path).text, path)


def test_csrf_refusal_page_keeps_the_signed_in_header(pages, client):
    pages.login("alice")
    r = client.post("/tickets/INC-000001/comments", data={"body": "no token"})
    assert r.status_code == 400
    assert "Alice Martin" in r.text and "The CSRF token is missing." in r.text


def test_filters_keep_their_selection(pages, life):
    life.report()
    pages.login("sam")
    for path, expected in [
        ("/desk?status=new&service=vpn&priority=P2", ["new", "P2", "vpn"]),
        ("/tickets?status=new&kind=incident&priority=P2&service=vpn",
         ["new", "incident", "P2", "vpn"]),
    ]:
        html = pages.get(path).get_data(as_text=True)
        assert re.findall(r'<option value="([^"]+)" selected>', html) == expected
        assert '<option value="email">E-mail</option>' in html
