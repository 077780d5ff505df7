"""Comments both ways, work notes for agents only, queues and the requester's progress view."""

from __future__ import annotations

import pytest

from engine import Forbidden, NotFound, ValidationFailed
from tests.conftest import QUALIFY_ESCALATE


def test_comments_both_ways_and_work_notes_never_reach_the_requester(life, desk):
    ticket = life.report(as_="alice")
    alice, sam, bob = life.user("alice"), life.user("sam"), life.user("bob")
    desk.add_comment(alice, ticket.number, "It fails on the office Wi-Fi only")
    desk.add_comment(sam, ticket.number, "Can you try from home?")
    desk.add_comment(sam, ticket.number, "Probably the captive portal", internal=True)

    assert [c.body for c in desk.comments(sam, ticket.number)] == [
        "It fails on the office Wi-Fi only", "Can you try from home?",
        "Probably the captive portal"]
    assert [c.body for c in desk.comments(alice, ticket.number)] == [
        "It fails on the office Wi-Fi only", "Can you try from home?"]
    history = desk.history(alice, ticket.number)
    assert "work_note_added" not in [e.action for e in history]
    assert "Probably the captive portal" not in repr(history)
    assert "work_note_added" in [e.action for e in desk.history(sam, ticket.number)]

    with pytest.raises(Forbidden):
        desk.add_comment(alice, ticket.number, "sneaky", internal=True)
    with pytest.raises(NotFound):
        desk.comments(bob, ticket.number)
    with pytest.raises(NotFound):
        desk.add_comment(bob, ticket.number, "hello")
    with pytest.raises(ValidationFailed) as err:
        desk.add_comment(alice, ticket.number, "   ")
    assert err.value.errors == {"body": "This field is required."}


def test_queues_and_filters(life, desk):
    first = life.report(title="Mail down", service="email")
    second = life.report(title="VPN slow", service="vpn")
    sam = life.user("sam")
    assert desk.queue_counts(sam) == {"mine": 0, "group": 2, "unassigned": 2, "all": 2}
    desk.claim(sam, life.task(first, "qualify").id)
    assert desk.queue_counts(sam) == {"mine": 1, "group": 2, "unassigned": 1, "all": 2}
    assert [t.ticket for t in desk.tasks(sam, queue="mine").items] == [first.number]
    assert [t.ticket for t in desk.tasks(sam, queue="unassigned").items] == [second.number]
    assert [t.ticket for t in desk.tasks(sam, q="vpn").items] == [second.number]
    assert [t.ticket for t in desk.tasks(sam, service="email").items] == [first.number]
    assert desk.tasks(sam, per_page=1, page=2).items[0].ticket == second.number
    assert desk.tickets(sam, q=second.number).total == 1


def test_progress_shows_done_current_and_next(life, desk):
    ticket = life.report(as_="alice")
    steps = desk.progress(life.user("alice"), ticket.number)
    assert [(s.title, s.state, s.who) for s in steps] == [
        ("Qualify the incident", "current", "Service desk"),
        ("Confirm the resolution", "next", None),
        ("Investigate and resolve", "next", None),
    ]
    life.complete(ticket, "qualify", as_="sam", data=QUALIFY_ESCALATE)
    steps = desk.progress(life.user("alice"), ticket.number)
    assert [(s.title, s.state, s.who) for s in steps][:2] == [
        ("Qualify the incident", "done", "Sam Leroy"),
        ("Investigate and resolve", "current", "Network"),
    ]
