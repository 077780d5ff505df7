"""Inbox and ticket list at scale: a bounded number of SQL statements per request whatever
the backlog, totals exact however a task reaches its agent, no workflow state read."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import event, select, update

from engine import bulk
from engine.persistence.models import Task, Ticket, User

INBOX = "/tasks"
LIST = "/tickets?status=in_progress&priority=P2"
# Per request: the token's user and their groups (2), the page with its total (1), the
# forms' live options (1).
MAX_STATEMENTS = {INBOX: 4, LIST: 3}
# A backlog: open tickets waiting in the inboxes, and closed history behind them.
MIX = {("incident", "in_progress"): 0.25, ("incident", "new"): 0.15,
       ("request", "in_progress"): 0.1, ("incident", "closed"): 0.5}


@contextmanager
def statements(desk) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:
        if statement.split(None, 1)[0].upper() not in ("BEGIN", "COMMIT", "ROLLBACK"):
            seen.append(statement)

    event.listen(desk.db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(desk.db.engine, "before_cursor_execute", record)


def _get(api, desk, path: str) -> tuple[dict, list[str]]:
    api.get(path, as_="sam")  # signs in, and parses the definitions met (once per process)
    with statements(desk) as seen:
        r = api.get(path, as_="sam")
    assert r.status_code == 200, r.json
    return r.json, seen


def test_inbox_and_list_issue_the_same_few_statements_whatever_the_backlog(api, desk, clock):
    bulk.generate(desk.db.engine, 80, seed=11, now=clock(), mix=MIX)
    small = {path: _get(api, desk, path) for path in MAX_STATEMENTS}
    bulk.generate(desk.db.engine, 320, seed=12, now=clock(), mix=MIX)
    large = {path: _get(api, desk, path) for path in MAX_STATEMENTS}
    for path, limit in MAX_STATEMENTS.items():
        (before, few), (after, many) = small[path], large[path]
        assert after["total"] > before["total"], path  # the backlog did grow
        assert len(many) == len(few) <= limit, (path, many)
        assert not any("ticket_states" in s for s in many), path  # never workflow state
    inbox = large[INBOX][0]
    assert len(inbox["items"]) == 25 and all(t["form"] for t in inbox["items"])


def _visible(ready: list[Task], user_id: int, groups: set[str], admin: bool) -> list[Task]:
    return [t for t in ready
            if t.requester_id == user_id or t.assignee_id == user_id
            or t.group_key in groups or (admin and not t.for_requester)]


QUEUES = {
    "mine": lambda t, uid, groups: t.assignee_id == uid,
    "group": lambda t, uid, groups: t.group_key in groups,
    "unassigned": lambda t, uid, groups: t.assignee_id is None,
    None: lambda t, uid, groups: True,
}


def test_totals_and_pages_count_each_task_once_however_it_reaches_the_actor(desk, clock):
    """Every way a task reaches an agent at once (their group, claimed by them, claimed by
    them outside their groups, their own tasks as requester): totals, queue counts and the
    pages agree with a count done by hand."""
    bulk.generate(desk.db.engine, 200, seed=5, now=clock(),
                  mix={**MIX, ("incident", "resolved"): 0.1})
    with desk.db.write() as s:
        ids = {u.username: u.id for u in s.scalars(select(User))}
        ready = list(s.scalars(select(Task).where(Task.state == "ready").order_by(Task.id)))
        desk_tasks = [t for t in ready if t.group_key == "service_desk"]
        others = [t for t in ready if t.group_key not in (None, "service_desk")]
        requester_tasks = [t for t in ready if t.for_requester]
        assert len(desk_tasks) > 6 and len(others) > 3 and requester_tasks
        claimed = [t.id for t in desk_tasks[:3]] + [t.id for t in others[:2]]
        s.execute(update(Task).where(Task.id.in_(claimed)).values(assignee_id=ids["sam"]))
        own = requester_tasks[0]  # sam is the requester of one ticket waiting on him
        s.execute(update(Task).where(Task.id == own.id).values(requester_id=ids["sam"]))
        s.execute(update(Ticket).where(Ticket.id == own.ticket_id)
                  .values(requester_id=ids["sam"]))
        ready = list(s.scalars(select(Task).where(Task.state == "ready")))
    for username in ("sam", "nina", "max", "admin", "alice"):
        actor = desk.actor(username)
        uid, groups = ids[username], set(actor.groups)
        mine = _visible(ready, uid, groups, "admin" in actor.roles)
        expected = {(queue or "all"): sum(1 for t in mine if keep(t, uid, groups))
                    for queue, keep in QUEUES.items()}
        assert desk.queue_counts(actor) == expected, username
        for queue, keep in QUEUES.items():
            wanted = sorted((t for t in mine if keep(t, uid, groups)),
                            key=lambda t: (t.created_at, t.ticket_id, t.id))
            got, page = [], 1
            while True:
                listing = desk.tasks(actor, page=page, per_page=7, queue=queue)
                assert listing.total == len(wanted), (username, queue)
                got += [t.id for t in listing.items]
                if len(listing.items) < 7:
                    break
                page += 1
            assert got == [t.id for t in wanted], (username, queue)
    assert desk.tasks(desk.actor("sam"), page=500).total == expected_total_for_sam(ready, ids)


def expected_total_for_sam(ready: list[Task], ids: dict[str, int]) -> int:
    """Past the last page the total is still given (counted apart)."""
    return len(_visible(ready, ids["sam"], {"service_desk"}, admin=False))


@pytest.mark.parametrize("query", [
    {"status": "in_progress"}, {"status": "in_progress", "priority": "P2"},
    {"kind": "request", "status": "new"}, {"priority": "P3", "service": "vpn"}, {}])
def test_ticket_list_pages_and_totals_match_the_filters(desk, clock, query):
    bulk.generate(desk.db.engine, 300, seed=8, now=clock())
    with desk.db.read() as s:
        rows = s.execute(select(Ticket.id, Ticket.number, Ticket.kind, Ticket.status,
                                Ticket.priority, Ticket.service_key, Ticket.requester_id,
                                Ticket.assignee_id)).all()
    with desk.db.read() as s:
        names = dict(s.execute(select(User.id, User.username)).all())
    for username in ("sam", "alice"):
        actor = desk.actor(username)
        uid = next(i for i, n in names.items() if n == username)
        wanted = sorted((t for t in rows if (actor.is_staff or t.requester_id == uid)
                         and all(getattr(t, _COLUMN[k]) == v for k, v in query.items())),
                        key=lambda t: -t.id)
        first = desk.tickets(actor, per_page=10, **query)
        assert first.total == len(wanted), (username, query)
        assert [t.number for t in first.items] == [t.number for t in wanted[:10]]
        assert [(t.requester, t.assignee) for t in first.items] == [
            (names[t.requester_id], names.get(t.assignee_id)) for t in wanted[:10]]
        beyond = desk.tickets(actor, page=1000, per_page=10, **query)
        assert (beyond.items, beyond.total) == ([], len(wanted))


_COLUMN = {"status": "status", "priority": "priority", "kind": "kind", "service": "service_key"}
