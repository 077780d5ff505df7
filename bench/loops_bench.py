"""Section ``loops``: one ticket reopened again and again (SQLite, through the facade); the
cost of a reopen + resolve pair after 0, 10, 50, 200 and 1,000 loops.

At each checkpoint the pairs of the looping ticket alternate with the first pair of fresh
tickets, timed in the same seconds: the ratio compares like with like even when the
machine's load changes during the run."""

from __future__ import annotations

import time

from sqlalchemy import select

from engine.persistence.models import Ticket, TicketState

from . import lifecycle as lc
from .common import Section, median, ready_desk, scratch

CHECKPOINTS = (0, 10, 50, 200, 1000)
LIMIT = 1.5  # after 200 loops at most 1.5x a fresh ticket


def run(section: Section, args) -> None:
    pairs = 11 if args.quick else 21
    tmp = scratch()
    desk = ready_desk(f"sqlite:///{tmp / 'loops.db'}")
    facade = lc.Facade(desk)
    ticket = _resolved(facade)
    loops, rows, ratios, measured = 0, [], {}, {}
    total_began = time.perf_counter()
    for checkpoint in CHECKPOINTS:
        while loops < checkpoint:
            ticket = _pair(facade, ticket)[0]
            loops += 1
        looped, fresh = [], []
        for _ in range(pairs):
            ticket, seconds = _pair(facade, ticket)
            looped.append(seconds)
            loops += 1
            fresh.append(_pair(facade, _resolved(facade))[1])
        measured[checkpoint] = median(looped) * 1000
        ratios[checkpoint] = median(looped) / median(fresh)
        rows.append([checkpoint, measured[checkpoint], median(fresh) * 1000, ratios[checkpoint],
                     _state_bytes(desk, ticket.number)])
    for name, actor, _group, data in lc.STEPS[2:]:  # confirm (yes), close
        ticket = facade.step(ticket, name, actor, data)
    reopened = facade.desk.ticket(facade.actors["sam"], ticket.number).data.get("reopen_count")
    works = ticket.status == "closed" and reopened == loops
    desk.close()
    section.table(f"median of {pairs} reopen + resolve pairs (2 user steps), alternating with "
                  f"the first pair of fresh tickets", [
                      "loops before", "ms per pair", "fresh ms per pair", "x fresh",
                      "state bytes"], rows)
    section.notes.append(f"{loops} loops in all ({time.perf_counter() - total_began:.0f} s), "
                         f"then confirmed and closed: status {ticket.status}, "
                         f"reopen_count {reopened}")
    section.target("pair cost after 200 loops vs fresh", ratios[200], LIMIT, "<=", "x")
    section.target("1,000 loops still work (closed, reopen_count right)", float(works), 1.0,
                   "==", note="1 = yes")
    section.data = {"ms_per_pair": measured, "x_fresh": ratios, "loops": loops,
                    "closed": works}


def _resolved(facade: lc.Facade):
    """A new incident, qualified (escalated) and resolved: it waits on its confirmation."""
    ticket = facade.start()
    for name, actor, _group, data in lc.STEPS[:2]:
        ticket = facade.step(ticket, name, actor, data)
    return ticket


def _pair(facade: lc.Facade, ticket):
    began = time.perf_counter()
    for name, actor, _group, data in (lc.REOPEN, lc.RESOLVE):
        ticket = facade.step(ticket, name, actor, data)
    return ticket, time.perf_counter() - began


def _state_bytes(desk, number: str) -> int:
    with desk.db.read() as s:
        ticket_id = s.scalar(select(Ticket.id).where(Ticket.number == number))
        return len(s.get(TicketState, ticket_id).state)
