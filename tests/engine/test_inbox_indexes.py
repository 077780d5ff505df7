"""The partial indexes of ready tasks keep their predicate through the migrations (the
autogenerate comparison of test_migrations does not look at it), and the inbox counts are
written so that the planner can use them."""

from __future__ import annotations

from sqlalchemy import inspect, text

from engine import Actor, queries
from engine.migrate import upgrade

from .test_migrations import fresh  # noqa: F401  (the fixture: an empty SQLite / PostgreSQL)

PARTIAL = ("ix_tasks_ready_group", "ix_tasks_ready_assignee")


def test_the_ready_task_indexes_are_partial(fresh):  # noqa: F811
    upgrade(fresh)
    with fresh.connect() as conn:
        if fresh.dialect.name == "sqlite":
            found = dict(conn.execute(text(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index'")).all())
        else:
            found = dict(conn.execute(text(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'tasks'")).all())
    for name in PARTIAL:
        assert "WHERE" in found[name] and "'ready'" in found[name], found[name]
    indexes = {ix["name"]: ix for ix in inspect(fresh).get_indexes("tickets")}
    assert indexes["ix_tickets_status_priority_id"]["column_names"] == [
        "status", "priority", "id"]


def test_inbox_counts_name_ready_as_a_literal_and_no_or():
    """A partial index is only used when the query shows its predicate as written: SQLite
    never matches ``state = ?``. And an OR of the branches would read the table."""
    sam = Actor("sam", roles=frozenset({"agent"}), groups=frozenset({"service_desk", "net"}),
                user_id=3)
    sql = str(queries.inbox_counts(sam, 3, [None, "mine"], []).compile())
    assert sql.count("tasks.state = 'ready'") == 4  # requester, assignee, two groups
    assert " OR " not in sql
    assert str(queries.ready().compile()) == "tasks.state = 'ready'"
