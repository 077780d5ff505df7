"""The audit trail: one event per action, hash-chained, tampering detected."""

from __future__ import annotations

from sqlalchemy import delete, update

from engine.persistence.models import AuditEvent
from tests.conftest import QUALIFY_RESOLVE


def test_each_action_writes_its_events_with_actor_data_and_version(life, desk):
    ticket = life.report(as_="alice")
    life.complete(ticket, "qualify", as_="sam", data=QUALIFY_RESOLVE)
    events = desk.history(life.user("alice"), ticket.number)
    assert [(e.action, e.actor, e.task) for e in events] == [
        ("ticket_created", "alice", None),
        ("task_created", "system", "qualify"),
        ("task_completed", "sam", "qualify"),
        ("task_created", "system", "confirm"),
        ("ticket_status_changed", "sam", None),
    ]
    completed = events[2]
    assert completed.data["entered"] == QUALIFY_RESOLVE
    assert completed.data["changed"]["priority"] == "P2"
    assert completed.data["path"][:4] == ["set_priority", "set_targets", "set_deadlines",
                                          "major_incident"]
    assert completed.process.key == "incident" and completed.process.version == 1
    assert events[4].data == {"from": "new", "to": "resolved"}


def test_verify_names_the_first_changed_or_deleted_event(life, desk):
    ticket = life.report()
    life.complete(ticket, "qualify", as_="sam", data=QUALIFY_RESOLVE)
    count, bad, _ = desk.verify_audit()
    assert bad is None and count >= 5

    with desk.db.write() as s:
        s.execute(update(AuditEvent).where(AuditEvent.seq == 3).values(actor="mallory"))
    assert desk.verify_audit()[1] == 3

    with desk.db.write() as s:
        s.execute(delete(AuditEvent).where(AuditEvent.seq == 3))
    count, bad, reason = desk.verify_audit()
    assert (bad, reason) == (3, "event 3 is missing")
