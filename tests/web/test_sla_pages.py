"""Pages of the SLA issue: countdowns, the status board, notifications, the outbox and
failed steps, under the strict CSP."""

from __future__ import annotations

import pytest

from tests.conftest import QUALIFY_ESCALATE, QUALIFY_RESOLVE
from tests.web.conftest import assert_csp_ready

from .test_pages import Pages, text_of

QUALIFY_P2_ESCALATE = {**QUALIFY_ESCALATE, "impact": "medium"}


@pytest.fixture
def pages(client) -> Pages:
    return Pages(client)


def test_lists_show_the_time_left_and_overdue_tickets(pages, life, clock):
    ticket = life.report(as_="alice")
    life.complete(ticket, "qualify", as_="sam", data=QUALIFY_P2_ESCALATE)  # P2: 8 hours
    clock.advance(hours=2)
    pages.as_("nina")
    desk_page = pages.get("/desk").text
    assert "6 h 0 min left" in text_of(desk_page)
    assert 'data-due="' in desk_page
    assert_csp_ready(desk_page, "/desk")
    clock.advance(hours=7)
    assert "overdue by 1 h 0 min" in text_of(pages.get("/tickets").text)
    pages.as_("alice")
    assert "overdue by 1 h 0 min" in text_of(pages.get("/portal").text)
    detail = pages.get(f"/tickets/{ticket.number}").text
    assert "overdue by 1 h 0 min" in text_of(detail)


def test_awaiting_requester_shows_the_question_and_a_paused_clock(pages, life):
    ticket = life.report(as_="alice")
    life.complete(ticket, "qualify", as_="sam", data=QUALIFY_P2_ESCALATE)
    life.complete(ticket, "escalate", as_="nina",
                  data={"action": "ask", "question": "Which <b>client</b> version?"})
    pages.as_("alice")
    html = pages.get(f"/tickets/{ticket.number}").text
    assert "Question from the service desk" in html
    assert "Which &lt;b&gt;client&lt;/b&gt; version?" in html
    assert "clock paused" in text_of(html)
    assert "Awaiting requester" in text_of(html)
    task = life.task(ticket, "provide_info")
    r = pages.post(f"/tickets/{ticket.number}/tasks/{task.id}", {"answer": "5.2.1"},
                   form=f"/tickets/{ticket.number}")
    assert r.status_code == 302
    assert life.ticket(ticket).status == "in_progress"


def test_status_board_shows_incidents_and_agents_set_maintenance(pages, life, api):
    api.post("/events", as_="monitor", json={
        "source": "zabbix", "service": "email", "fingerprint": "mx1", "summary": "MX down",
        "severity": "critical"})
    pages.as_("bob")
    html = pages.get("/status").text
    assert_csp_ready(html, "/status")
    text = text_of(html)
    assert "1 service is not operating normally" in text
    assert "INC-000001 MX down" in text
    assert "Set the state by hand" not in text  # requesters only read
    pages.as_("sam")
    r = pages.post("/status/erp/state", {"state": "maintenance", "reason": "Upgrade <tonight>"},
                   form="/status")
    assert r.status_code == 302
    html = pages.get("/status").text
    assert "Upgrade &lt;tonight&gt;" in html
    assert "2 services are not operating normally" in text_of(html)
    bad = pages.post("/status/erp/state", {"state": "exploded"}, form="/status",
                     follow_redirects=True)
    assert "must be one of" in bad.text
    pages.as_("alice")
    refused = pages.client.post("/status/erp/state", data={
        "state": "nominal", "csrf_token": pages.token("/status")})
    assert refused.status_code == 403


def test_notifications_page_lists_and_marks_read(pages, life):
    ticket = life.report(as_="alice", title="Scanner <jammed>")
    pages.as_("sam")
    html = pages.get("/notifications").text
    assert_csp_ready(html, "/notifications")
    assert f"{ticket.number}: Qualify the incident" in html
    assert "Scanner &lt;jammed&gt;" in html
    assert '1<span class="visually-hidden"> unread</span>' in html  # the nav badge
    r = pages.post("/notifications/read", {}, form="/notifications")
    assert r.status_code == 302
    assert "No unread notifications." in pages.get("/notifications?unread=1").text
    pages.as_("bob")
    assert "No notifications yet." in pages.get("/notifications").text


def test_outbox_and_failed_steps_are_for_administrators(pages, life, monkeypatch):
    from engine import runtime
    from engine.errors import ProcessError

    ticket = life.report(as_="alice")

    def failing(*args, **kwargs):
        raise ProcessError("the process failed at set_priority: no rule matched <x>",
                           "set_priority")

    real = runtime.complete
    monkeypatch.setattr(runtime, "complete", failing)
    with pytest.raises(ProcessError):
        life.complete(ticket, "qualify", as_="sam", data=QUALIFY_RESOLVE)
    monkeypatch.setattr(runtime, "complete", real)

    pages.as_("admin")
    html = pages.get("/admin/failures").text
    assert_csp_ready(html, "/admin/failures")
    assert "no rule matched &lt;x&gt;" in html and "set_priority" in html
    r = pages.post("/admin/failures/1/retry", {}, form="/admin/failures",
                   follow_redirects=True)
    assert f"Retried: {ticket.number} moved on." in r.text
    assert "No failed steps." in r.text
    assert life.ticket(ticket).status == "resolved"
    outbox = pages.get("/admin/outbox").text
    assert_csp_ready(outbox, "/admin/outbox")
    assert f"{ticket.number}: Qualify the incident" in outbox
    assert "Pending" in pages.get("/admin/outbox?state=pending").text

    pages.as_("max")
    assert pages.get("/admin/outbox").status_code == 200
    assert pages.get("/admin/failures").status_code == 403
    pages.as_("sam")
    assert pages.get("/admin/outbox").status_code == 403
