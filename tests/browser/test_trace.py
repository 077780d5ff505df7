"""Auditors in Chromium: the trail search, its export and verification, and the trace of a
reopened incident drawn by bpmn-js."""

from __future__ import annotations

import csv
import io
import re

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import QUALIFY_ESCALATE
from web.vendor import NODE_MODULES

from .conftest import screenshot

pytestmark = pytest.mark.browser

VISITED = re.compile(r"(^|\s)visited(\s|$)")
WAITING = re.compile(r"(^|\s)waiting(\s|$)")


def reopened_incident(life, clock) -> str:
    """INC-000001: sam escalates, nina resolves, alice reopens: nina has it again."""
    ticket = life.report(as_="alice")
    clock.advance(minutes=10)
    life.complete(ticket, "qualify", as_="sam", data=QUALIFY_ESCALATE)
    clock.advance(minutes=50)
    life.complete(ticket, "escalate", as_="nina",
                  data={"action": "resolve", "resolution": "Replaced the VPN profile"})
    clock.advance(hours=3)
    life.complete(ticket, "confirm", as_="alice",
                  data={"resolved": False, "comment": "Still drops at noon"})
    return ticket.number


def shape(page: Page, element: str):
    return page.locator(f'.djs-element[data-element-id="{element}"]')


def visible_events(page: Page):
    return page.locator("#trace-events > li:visible")


def test_trace_of_a_reopened_incident(life, clock, sign_in):
    if not (NODE_MODULES / "bpmn-js").is_dir():
        pytest.fail("node_modules/bpmn-js is missing: run 'make node_modules'")
    number = reopened_incident(life, clock)
    aude = sign_in("aude")
    aude.goto(f"/tickets/{number}/trace")

    # the path taken, the task it waits on, and the loop counted
    expect(shape(aude, "escalate")).to_have_class(VISITED)
    expect(shape(aude, "escalate")).to_have_class(WAITING)
    for element in ("start", "qualify", "set_priority", "qualify_action", "confirm", "reopen"):
        expect(shape(aude, element)).to_have_class(VISITED)
        expect(shape(aude, element)).not_to_have_class(WAITING)
    for element in ("close", "closed"):
        expect(shape(aude, element)).not_to_have_class(VISITED)
    count = aude.locator('.djs-overlays[data-container-id="escalate"] .visit-count')
    expect(count).to_have_text("2")
    expect(aude.locator('.djs-overlays[data-container-id="qualify"] .visit-count')
           ).to_have_count(0)
    expect(aude.locator(".bjs-powered-by")).to_be_visible()  # the bpmn.io licence mark
    expect(aude.locator("[data-trace-message]")).to_be_hidden()
    all_events = aude.locator("#trace-events > li").count()
    expect(visible_events(aude)).to_have_count(all_events)
    screenshot(aude, "trace")

    # clicking an element lists its events only
    shape(aude, "qualify").click()
    expect(aude.locator("#trace-filter")).to_contain_text("Events on Qualify the incident: 2")
    expect(visible_events(aude)).to_have_count(2)
    expect(visible_events(aude).first).to_contain_text("Task created")
    expect(aude).to_have_url(re.compile(r"\?element=qualify$"))
    expect(aude.locator('tr[data-element-row="qualify"]')).to_have_class(
        re.compile("is-selected"))
    shape(aude, "escalate").click()
    expect(visible_events(aude)).to_have_count(3)
    for item in visible_events(aude).all():
        assert "escalate" in (item.get_attribute("data-element") or "").split()
    shape(aude, "close").click()  # never reached
    expect(visible_events(aude)).to_have_count(0)
    expect(aude.locator("[data-none]")).to_be_visible()
    aude.get_by_role("link", name="Show all").click()
    expect(visible_events(aude)).to_have_count(all_events)
    expect(aude).to_have_url(re.compile(rf"/tickets/{number}/trace$"))

    # the table of elements filters the same way, without leaving the page
    aude.locator('[data-element-link="reopen"]').click()
    expect(visible_events(aude)).to_have_count(1)
    expect(visible_events(aude)).to_contain_text("by alice")
    expect(shape(aude, "reopen")).to_have_class(re.compile("trace-selected"))


def test_trace_without_javascript_still_lists_and_filters_events(life, clock, sign_in):
    number = reopened_incident(life, clock)
    aude = sign_in("aude", javascript=False)
    aude.goto(f"/tickets/{number}/trace")
    expect(aude.locator("[data-trace-message]")).to_contain_text("needs JavaScript")
    row = aude.locator('tr[data-element-row="escalate"]')
    expect(row).to_contain_text("Investigate and resolve")
    expect(row).to_contain_text("Waiting here")
    total = aude.locator("#trace-events > li").count()
    expect(visible_events(aude)).to_have_count(total)
    row.get_by_role("link", name="Investigate and resolve").click()
    expect(aude).to_have_url(re.compile(r"\?element=escalate$"))
    expect(visible_events(aude)).to_have_count(3)


def test_auditor_searches_exports_and_verifies_the_trail(life, clock, sign_in):
    number = reopened_incident(life, clock)
    life.report(as_="bob", title="Printer jam")
    aude = sign_in("aude")
    aude.get_by_role("link", name="Audit trail").click()
    expect(aude.get_by_role("heading", level=1)).to_have_text("Audit trail")

    aude.get_by_label("Ticket").fill(number)
    aude.get_by_label("Action").select_option("task_completed")
    aude.get_by_role("button", name="Search").click()
    expect(aude).to_have_url(re.compile(r"/audit\?ticket=INC-000001&.*action=task_completed"))
    rows = aude.locator("tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.first).to_contain_text("alice")  # newest first: the reopening
    rows.first.locator("summary").click()
    expect(rows.first).to_contain_text("Still drops at noon")
    screenshot(aude, "audit")

    with aude.expect_download() as download:
        aude.get_by_role("link", name="CSV").click()
    assert download.value.suggested_filename == f"audit-{number}.csv"
    exported = list(csv.DictReader(io.StringIO(
        download.value.path().read_text(encoding="utf-8"), newline="")))
    assert [r["actor"] for r in exported] == ["sam", "nina", "alice"]
    assert {r["ticket"] for r in exported} == {number}

    aude.get_by_label("From (UTC)").fill("last week")
    aude.get_by_role("button", name="Search").click()
    expect(aude.locator('[data-error-for="since"]')).to_contain_text("Not a date")
    expect(aude.get_by_label("From (UTC)")).to_have_value("last week")

    aude.get_by_role("button", name="Verify the trail").click()
    expect(aude.get_by_role("heading", level=2)).to_have_text("The trail is intact")
    expect(aude.locator("[data-testid=verified-count]")).to_have_text(
        re.compile(r"^[1-9]\d*$"))
    screenshot(aude, "audit-verify")

    aude.goto("/audit")
    aude.locator("tbody tr").filter(has_text="Ticket created").first.get_by_role(
        "link", name="Trace").click()
    expect(aude.get_by_role("heading", level=1)).to_have_text("Process trace")
