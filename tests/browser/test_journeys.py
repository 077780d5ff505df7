"""Whole journeys through the pages in Chromium: nothing here calls the engine to move on."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from .conftest import screenshot

pytestmark = pytest.mark.browser


def open_task(page: Page, ticket: str, title: str) -> None:
    """From the desk, open the task ``title`` of ``ticket``."""
    page.goto("/desk")
    row = page.locator(f'tr[data-ticket="{ticket}"]').filter(has_text=title)
    row.get_by_role("link", name=title, exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(title)


def complete(page: Page, title: str, ticket: str) -> None:
    page.get_by_role("button", name=f"Complete: {title}").click()
    expect(page).to_have_url(re.compile(r"/desk(\?.*)?$"))
    expect(page.locator(".flash-success")).to_have_text(f"{ticket}: {title} completed.")


def test_incident_from_report_to_closure(page, sign_in, clock):
    # alice signs in: the first field has the focus, a visible outline when tabbing
    page.goto("/portal")
    expect(page).to_have_url(re.compile(r"/login\?next=(%2F|/)portal$"))
    expect(page.get_by_label("User name")).to_be_focused()
    screenshot(page, "login")
    page.get_by_label("User name").fill("alice")
    page.get_by_label("Password").fill("demo")
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/portal$"))
    expect(page.locator("header")).to_contain_text("Alice Martin")
    expect(page.locator("header")).to_contain_text("Requester")
    alice = page

    # alice reports
    alice.get_by_label("Service affected").select_option("vpn")
    alice.get_by_label("What is wrong?").fill("VPN drops every hour")
    alice.get_by_label("Details").fill("Since this morning, on the office Wi-Fi")
    screenshot(alice, "portal")
    alice.get_by_role("button", name="Report the incident").click()
    expect(alice).to_have_url(re.compile(r"/tickets/INC-000001$"))
    expect(alice.locator(".flash-success")).to_contain_text("INC-000001 recorded")
    expect(alice.locator(".step-current")).to_contain_text("Qualify the incident")
    expect(alice.locator(".step-current")).to_contain_text("Service desk")
    clock.advance(minutes=12)  # the engine's clock: times on the pages, and their order

    # sam qualifies and escalates to network
    sam = sign_in("sam")
    expect(sam).to_have_url(re.compile(r"/desk$"))
    expect(sam.locator('[data-queue="group"] .count')).to_have_text("1")
    screenshot(sam, "desk")
    open_task(sam, "INC-000001", "Qualify the incident")
    sam.get_by_label("Category").select_option("network")
    sam.get_by_label("Affected service").select_option("vpn")
    sam.get_by_label("Impact").select_option("medium")
    sam.get_by_label("Urgency").select_option("high")
    sam.get_by_label("Next step").select_option("escalate")
    expect(sam.get_by_label("Resolution")).to_be_hidden()  # guichet.js: not needed now
    sam.get_by_label("Support group").select_option("network")
    screenshot(sam, "task-form")
    complete(sam, "Qualify the incident", "INC-000001")
    clock.advance(minutes=47)

    # nina resolves
    nina = sign_in("nina")
    open_task(nina, "INC-000001", "Investigate and resolve")
    nina.get_by_label("Next step").select_option("resolve")
    expect(nina.get_by_label("Support group")).to_be_hidden()
    nina.get_by_label("Resolution").fill("Replaced the VPN profile")
    complete(nina, "Investigate and resolve", "INC-000001")
    clock.advance(hours=2)

    # alice sees the resolution in her tickets, and confirms from there
    alice.goto("/tickets")
    row = alice.locator('tr[data-ticket="INC-000001"]')
    expect(row).to_contain_text("Resolved")
    expect(row).to_contain_text("P2")
    screenshot(alice, "my-tickets")
    alice.get_by_role("button", name="Yes, it works").click()
    expect(alice.locator(".flash-success")).to_contain_text("thank you for confirming")
    expect(alice.get_by_role("button", name="Yes, it works")).to_have_count(0)
    clock.advance(minutes=5)

    # sam closes
    open_task(sam, "INC-000001", "Close the incident")
    sam.get_by_label("Closure code").select_option("solved")
    complete(sam, "Close the incident", "INC-000001")
    expect(sam.locator('[data-queue="all"] .count')).to_have_text("0")

    # alice reads the whole story
    alice.goto("/tickets/INC-000001")
    expect(alice.locator(".ticket-head")).to_contain_text("Closed")
    timeline = alice.locator(".timeline")
    for who in ("by alice", "by sam", "by nina"):
        expect(timeline).to_contain_text(who)
    expect(alice.locator(".steps")).to_contain_text("Done by Nina Petit")
    expect(alice.locator(".quote")).to_contain_text("Replaced the VPN profile")
    screenshot(alice, "ticket")

    alice.get_by_role("link", name="Service status").click()
    expect(alice.get_by_role("heading", level=1)).to_have_text("Service status")
    expect(alice.locator(".service-card")).to_have_count(4)
    screenshot(alice, "status")

    alice.get_by_role("button", name="Sign out").click()
    expect(alice).to_have_url(re.compile(r"/login$"))
    expect(alice.locator(".flash-success")).to_have_text("You are signed out.")


def test_request_with_manager_approval(sign_in, clock):
    alice = sign_in("alice")
    alice.get_by_role("link", name="Order: Access to an application").click()
    expect(alice).to_have_url(re.compile(r"/portal/order/access$"))
    expect(alice.get_by_label("Application")).to_be_focused()
    alice.get_by_label("Application").select_option("erp")
    alice.get_by_label("Justification").fill("Month-end closing work")
    screenshot(alice, "order-form")
    alice.get_by_role("button", name="Place the order").click()
    expect(alice).to_have_url(re.compile(r"/tickets/REQ-000001$"))
    expect(alice.locator(".ticket-head")).to_contain_text("New")
    clock.advance(minutes=30)

    sam = sign_in("sam")
    open_task(sam, "REQ-000001", "Qualify the request")
    sam.get_by_label("Decision").select_option("accept")
    complete(sam, "Qualify the request", "REQ-000001")
    clock.advance(minutes=30)

    alice.reload()
    expect(alice.locator(".ticket-head")).to_contain_text("Pending approval")

    max_ = sign_in("max")
    open_task(max_, "REQ-000001", "Approve the request")
    expect(max_.locator(".col-side")).to_contain_text("Month-end closing work")
    max_.get_by_label("Yes").check()
    max_.get_by_label("Comment").fill("OK for the closing period")
    complete(max_, "Approve the request", "REQ-000001")
    clock.advance(minutes=30)

    apu = sign_in("apu")
    open_task(apu, "REQ-000001", "Fulfil the request")
    apu.get_by_label("What was done").fill("ERP role granted")
    complete(apu, "Fulfil the request", "REQ-000001")
    clock.advance(minutes=30)

    alice.reload()
    expect(alice.locator(".ticket-head")).to_contain_text("Resolved")
    answer = alice.locator("#your-answer")
    expect(answer).to_contain_text("Confirm the resolution")
    answer.get_by_label("Yes").check()
    answer.get_by_role("button", name="Send my answer").click()
    expect(alice.locator(".flash-success")).to_contain_text("thank you for confirming")
    expect(alice.locator("#your-answer")).to_have_count(0)


def test_invalid_forms_show_inline_errors_and_keep_what_was_typed(sign_in):
    alice = sign_in("alice")
    alice.goto("/portal/order/access")
    alice.get_by_label("Application").select_option("vpn")
    alice.get_by_label("Justification").fill("short")
    alice.get_by_label("Title of your request").fill("VPN for travel")
    alice.get_by_role("button", name="Place the order").click()

    error = alice.locator('[data-field="justification"] .error')
    expect(error).to_have_text("Must be at least 10 characters.")
    expect(alice.get_by_label("Justification")).to_have_value("short")
    expect(alice.get_by_label("Justification")).to_be_focused()
    expect(alice.get_by_label("Justification")).to_have_attribute("aria-invalid", "true")
    expect(alice.get_by_label("Application")).to_have_value("vpn")
    expect(alice.get_by_label("Title of your request")).to_have_value("VPN for travel")
    expect(alice.locator('[data-field="application"] .error')).to_have_count(0)

    alice.get_by_label("Justification").fill("Travelling to the Lyon site next week")
    alice.get_by_role("button", name="Place the order").click()
    expect(alice).to_have_url(re.compile(r"/tickets/REQ-000001$"))
    expect(alice.get_by_role("heading", level=1)).to_have_text("VPN for travel")


def test_task_form_error_without_javascript(life, sign_in):
    """Pages work without JavaScript: every field shows, the server says what is missing."""
    life.report(as_="alice")
    sam = sign_in("sam", javascript=False)
    open_task(sam, "INC-000001", "Qualify the incident")
    expect(sam.get_by_label("Resolution")).to_be_visible()
    expect(sam.get_by_label("Support group")).to_be_visible()
    sam.get_by_label("Category").select_option("access")
    sam.get_by_label("Next step").select_option("resolve")
    sam.get_by_role("button", name="Complete: Qualify the incident").click()
    for name in ("service", "impact", "urgency", "resolution"):
        expect(sam.locator(f'[data-field="{name}"] .error')).to_have_text(
            "This field is required.")
    expect(sam.get_by_label("Category")).to_have_value("access")
    expect(sam.get_by_label("Next step")).to_have_value("resolve")
    expect(sam.locator('[data-field="category"] .error')).to_have_count(0)


def test_bob_cannot_open_alices_ticket(life, sign_in):
    life.report(as_="alice", title="Alice's private problem")
    bob = sign_in("bob")
    response = bob.goto("/tickets/INC-000001")
    assert response is not None and response.status == 404
    expect(bob.get_by_role("heading", level=1)).to_have_text("Page not found")
    expect(bob.locator("body")).not_to_contain_text("Alice's private problem")
    bob.goto("/tickets")
    expect(bob.locator(".empty")).to_contain_text("No tickets yet — report an incident")


def test_comments_both_ways_and_work_notes_for_agents_only(life, sign_in):
    life.report(as_="alice")
    alice = sign_in("alice")
    alice.goto("/tickets/INC-000001")
    expect(alice.get_by_label("Internal work note")).to_have_count(0)
    alice.get_by_label("Your comment").fill("It only fails on the office Wi-Fi")
    alice.get_by_role("button", name="Add comment").click()
    expect(alice.locator(".flash-success")).to_have_text("Comment added.")

    sam = sign_in("sam")
    sam.goto("/tickets/INC-000001")
    expect(sam.locator(".comments")).to_contain_text("It only fails on the office Wi-Fi")
    sam.get_by_label("Comment or work note").fill("Captive portal blocks the tunnel")
    sam.get_by_label("Internal work note").check()
    sam.get_by_role("button", name="Add comment").click()
    expect(sam.locator(".flash-success")).to_have_text("Work note added (agents only).")
    sam.get_by_label("Comment or work note").fill("Could you try from home tonight?")
    sam.get_by_role("button", name="Add comment").click()
    expect(sam.locator(".comment-internal")).to_contain_text("Captive portal blocks the tunnel")
    expect(sam.locator(".comment")).to_have_count(3)

    alice.reload()
    expect(alice.locator(".comments")).to_contain_text("Could you try from home tonight?")
    expect(alice.locator(".comment")).to_have_count(2)
    expect(alice.locator("body")).not_to_contain_text("Captive portal")
