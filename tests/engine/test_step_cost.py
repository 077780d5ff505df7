"""What a step costs the database: a bounded number of statements, whatever happened to the
ticket before; the process XML never read to start one; the state read after the lock."""

from __future__ import annotations

from contextlib import contextmanager

from sqlalchemy import event

from tests.conftest import QUALIFY_ESCALATE

# The README ("How it works") says 9 to 15 statements a step: 14 for a P1 qualified (its
# alert looks up the managers besides the group it goes to), 15 for a reopening (it looks
# up the agent it goes back to, and the answer fills the new task's form with the groups).
MAX_STEP_STATEMENTS = 15
MAX_START_STATEMENTS = 15
BOOKKEEPING = ("BEGIN", "COMMIT", "ROLLBACK")


@contextmanager
def statements(desk):
    seen: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:
        if not statement.lstrip().upper().startswith(BOOKKEEPING):
            seen.append(" ".join(statement.split()))

    event.listen(desk.db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(desk.db.engine, "before_cursor_execute", record)


def complete(life, ticket, name: str, as_: str, data: dict) -> list[str]:
    task, actor = life.task(ticket, name, as_="admin"), life.user(as_)
    with statements(life.desk) as seen:
        life.desk.complete(actor, task.id, data)
    return seen


def test_a_lifecycle_costs_a_bounded_number_of_statements_per_step(life, desk):
    life.report()  # the first start of a desk loads and parses the process version
    alice = life.user("alice")
    with statements(desk) as started:
        ticket = desk.open_incident(alice, "VPN drops every hour", "Since this morning", "vpn")
    assert len(started) <= MAX_START_STATEMENTS, started
    assert not [s for s in started if "process_versions.xml" in s]  # parsed once, cached

    steps = [
        ("qualify", "sam", QUALIFY_ESCALATE),
        ("escalate", "nina", {"action": "resolve", "resolution": "Replaced the profile"}),
        ("confirm", "alice", {"resolved": False, "comment": "Still dropping"}),  # reopened
        ("escalate", "nina", {"action": "resolve", "resolution": "Tried again"}),
        ("confirm", "alice", {"resolved": True}),
        ("close", "sam", {"closure_code": "solved"}),
    ]
    for name, who, data in steps:
        seen = complete(life, ticket, name, who, data)
        assert len(seen) <= MAX_STEP_STATEMENTS, (name, seen)
        lock = next(i for i, s in enumerate(seen) if s.startswith("SELECT tickets."))
        state = next(i for i, s in enumerate(seen) if "FROM ticket_states" in s)
        assert lock < state, (name, seen)  # read after the lock, in a statement of its own
        if not desk.db.is_sqlite:
            assert seen[lock].endswith("FOR UPDATE"), seen[lock]
    assert life.ticket(ticket).status == "closed"
