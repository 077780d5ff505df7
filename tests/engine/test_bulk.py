"""engine.bulk: generated history is consistent, and its open tickets are real ones."""

from __future__ import annotations

from collections import Counter as Tally
from types import SimpleNamespace

from sqlalchemy import func, select

from engine import bulk
from engine.persistence.models import Counter, Task, Ticket, TicketState, User

from ..conftest import QUALIFY_ESCALATE

OPEN = {"new", "in_progress", "pending_approval", "resolved"}
EXPECTED_TASK = {("incident", "new"): "qualify", ("incident", "in_progress"): "escalate",
                 ("incident", "resolved"): "confirm", ("request", "new"): "qualify",
                 ("request", "pending_approval"): "approve",
                 ("request", "in_progress"): "fulfil", ("request", "resolved"): "confirm"}


def _plain(row) -> SimpleNamespace:
    """The row's columns, usable after its session is gone."""
    return SimpleNamespace(**{c.key: getattr(row, c.key) for c in row.__table__.columns})


def _numbers(tickets, prefix: str) -> list[int]:
    return sorted(int(t.number.split("-")[1]) for t in tickets if t.number.startswith(prefix))


def test_generated_tickets_are_consistent_and_numbers_continue(desk, life, clock):
    life.report()  # a ticket made the normal way: generated numbers come after it
    done = bulk.generate(desk.db.engine, 500, now=clock())
    assert (done["tickets"], done["incidents"] + done["requests"]) == (500, 500)
    assert done["users_created"] == bulk.EXTRA_REQUESTERS
    # A column engine.bulk does not know gets its default: teach bulk about it instead.
    assert done["defaulted_columns"] == []

    with desk.db.read() as s:
        tickets = [_plain(t) for t in s.scalars(select(Ticket))]
        counters = {c.name: c.value for c in s.scalars(select(Counter))}
        tasks = [_plain(t) for t in s.scalars(select(Task))]
        states = set(s.scalars(select(TicketState.ticket_id)))
        extra_users = s.scalar(select(func.count()).select_from(User)
                               .where(User.username.like("user%")))
        alice_hash = s.scalar(select(User.password_hash).where(User.username == "alice"))
        user_hash = s.scalar(select(User.password_hash).where(User.username == "user0001"))
    assert len(tickets) == 501 and len({t.number for t in tickets}) == 501
    assert _numbers(tickets, "INC-") == list(range(1, counters["INC"] + 1))
    assert _numbers(tickets, "REQ-") == list(range(1, counters["REQ"] + 1))
    assert (extra_users, user_hash) == (bulk.EXTRA_REQUESTERS, alice_hash)

    generated = [t for t in tickets if t.number != "INC-000001"]
    kinds = Tally(t.kind for t in generated)
    assert 0.6 < kinds["incident"] / 500 < 0.8
    statuses = Tally(t.status for t in generated)
    assert statuses["closed"] > 400
    assert 3 <= sum(statuses[s] for s in OPEN) <= 40
    assert {t.priority for t in generated} <= {"P1", "P2", "P3", "P4", "P5", None}
    by_ticket: dict[int, list[Task]] = {}
    for task in tasks:
        by_ticket.setdefault(task.ticket_id, []).append(task)
    oldest = clock() - bulk.timedelta(days=bulk.HISTORY_DAYS + 1)
    for t in generated:
        assert oldest < t.created_at <= t.updated_at <= clock(), t.number
        assert t.process_key == ("incident" if t.kind == "incident" else "service_request")
        own = by_ticket[t.id]
        if t.status in ("closed", "rejected"):
            assert t.closed_at == t.updated_at and t.closed_at > t.created_at
            assert t.id not in states
            assert own and all(x.state == "completed" for x in own)
            if t.status == "closed":
                assert t.created_at < t.resolved_at < t.closed_at
        else:
            assert t.closed_at is None and t.id in states
            # Beside its work, a ticket past its target may wait on the breach review.
            ready = [x for x in own if x.state == "ready" and x.name != "review_breach"]
            assert [x.name for x in ready] == [EXPECTED_TASK[t.kind, t.status]], t.number
            assert ready[0].for_requester == (t.status == "resolved")
            assert (t.resolved_at is not None) == (t.status == "resolved")
        if t.priority and t.status != "new":
            assert t.due_at > t.created_at
        # The report columns: first answer, escalations, reopens, category.
        if t.status in ("closed", "rejected") or (t.kind, t.status) == ("incident",
                                                                         "in_progress"):
            assert t.responded_at is not None and t.created_at <= t.responded_at, t.number
        if t.resolved_at is not None:
            assert t.responded_at <= max(t.resolved_at, t.closed_at or t.resolved_at)
        assert t.escalation_count >= 0 and t.reopen_count >= 0
        if t.kind == "request":
            assert t.escalation_count == 0 and t.category is None
    incidents = [t for t in generated if t.kind == "incident" and t.status == "closed"]
    assert {t.category for t in incidents} >= {"network", "software", "hardware"}
    assert 0.3 < sum(t.escalation_count == 0 for t in incidents) / len(incidents) < 0.9
    assert any(t.reopen_count for t in generated)

    # Each call adds more, numbers still continuing.
    again = bulk.generate(desk.db.engine, 20, seed=2, now=clock())
    assert again["users_created"] == 0
    with desk.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Ticket)) == 521
        numbers = s.scalars(select(Ticket.number)).all()
    assert len(set(numbers)) == 521
    assert desk.verify_audit()[1] is None


def test_open_generated_tickets_are_in_the_inboxes_and_can_be_completed(desk, life, clock):
    bulk.generate(desk.db.engine, 500, seed=3, now=clock())
    with desk.db.read() as s:
        ready = [(_plain(t), _plain(k)) for t, k in s.execute(
            select(Task, Ticket).join(Ticket, Task.ticket_id == Ticket.id)
            .where(Task.state == "ready"))]
    sam_ready = {t.id for t, _ in ready if t.group_key == "service_desk"}
    sam_inbox = desk.tasks(life.user("sam"), per_page=100)
    assert sam_inbox.total == len(sam_ready)
    assert {t.id for t in sam_inbox.items} <= sam_ready
    nina_ready = {t.id for t, _ in ready if t.group_key == "network"}
    assert desk.tasks(life.user("nina"), per_page=100).total == len(nina_ready)
    confirm, confirm_ticket = next((t, k) for t, k in ready if t.for_requester)
    with desk.db.read() as s:
        username = s.scalar(select(User.username).where(User.id == confirm_ticket.requester_id))
    assert confirm.id in {t.id for t in desk.tasks(life.user(username), per_page=100).items}

    # A new generated incident goes all the way through the facade.
    new = next(k for t, k in ready if k.kind == "incident" and k.status == "new")
    with desk.db.read() as s:
        owner = s.scalar(select(User.username).where(User.id == new.requester_id))
    life.complete(new.number, "qualify", as_="sam", data=QUALIFY_ESCALATE)
    life.complete(new.number, "escalate", as_="nina",
                  data={"action": "resolve", "resolution": "Restarted the router"})
    life.complete(new.number, "confirm", as_=owner, data={"resolved": True})
    closed = life.complete(new.number, "close", as_="sam", data={"closure_code": "solved"})
    assert closed.status == "closed"
    assert life.ticket(new.number).data["ticket"] == new.number

    # So does an in-progress generated request (waiting on its fulfilment group).
    request = next(k for t, k in ready if k.kind == "request" and k.status == "in_progress")
    task = life.task(request.number, "fulfil")
    member = {"service_desk": "sam", "applications": "apu"}[task.group]
    ticket = life.complete(request.number, "fulfil", as_=member, data={"notes": "Done"})
    assert ticket.status == "resolved"
    assert desk.verify_audit()[1] is None


def test_a_chosen_mix_and_requesters(desk, life, clock):
    done = bulk.generate(desk, 12, mix={("incident", "new"): 1.0}, requesters=["bob"],
                         now=clock())
    assert (done["by_status"], done["users_created"]) == ({"new": 12}, 0)
    inbox = desk.tasks(life.user("sam"), per_page=100)
    assert inbox.total == 12 and {t.name for t in inbox.items} == {"qualify"}
    with desk.db.read() as s:
        requesters = set(s.scalars(select(User.username).join(
            Ticket, Ticket.requester_id == User.id)))
    assert requesters == {"bob"}
