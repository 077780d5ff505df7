"""Section ``storage``: bytes stored per closed ticket (process versions and definitions,
shared by every ticket of a version, are left out)."""

from __future__ import annotations

from sqlalchemy import text

from . import lifecycle as lc
from .common import Section, create_database, drop_database, pg_available, ready_desk, scratch

TICKETS = 100


def run(section: Section, args) -> None:
    n = 40 if args.quick else TICKETS
    tmp = scratch()
    rows = []
    results = {}
    desk = ready_desk(f"sqlite:///{tmp / 'storage.db'}")
    results["sqlite"] = _measure(desk, n, postgres=False)
    desk.close()
    problem = pg_available()
    if problem is None:
        url = create_database("guichet_bench_storage")
        try:
            desk = ready_desk(url)
            results["postgres"] = _measure(desk, n, postgres=True)
            desk.close()
        finally:
            drop_database("guichet_bench_storage")
    else:
        section.notes.append(f"PostgreSQL skipped: {problem}")
    naive = _naive_blob_bytes()
    for backend, r in results.items():
        rows.append([backend, r["state"], r["variables"], r.get("tickets"), r.get("tasks"),
                     r.get("audit_events"), r.get("total")])
    section.table(f"average bytes per closed incident ({n} tickets, 4 user steps each)", [
        "database", "state blob", "variables", "tickets row", "tasks rows", "audit rows",
        "total",
    ], rows)
    section.notes.append(
        "state and variables: ticket_states columns (pg_column_size on PostgreSQL, length on "
        "SQLite); rows: pg_column_size of whole heap tuples (PostgreSQL only), indexes and "
        "page overhead not counted")
    section.notes.append(
        f"for comparison, the naive whole blob (spec included) of the same closed incident: "
        f"{naive:,} bytes of JSON")
    section.data = {**results, "naive_whole_blob": naive}


def _measure(desk, n: int, postgres: bool) -> dict:
    facade = lc.Facade(desk)
    for _ in range(n):
        ticket = facade.start()
        for name, actor, _group, data in lc.STEPS:
            ticket = facade.step(ticket, name, actor, data)
    length = "pg_column_size" if postgres else "length"
    with desk.db.engine.connect() as conn:
        closed = "SELECT id FROM tickets WHERE status = 'closed'"
        count = conn.execute(text(f"SELECT count(*) FROM ({closed}) c")).scalar_one()
        state, variables = conn.execute(text(
            f"SELECT avg({length}(state)), avg({length}(variables)) FROM ticket_states "
            f"WHERE ticket_id IN ({closed})")).one()
        out = {"tickets_measured": count, "state": float(state), "variables": float(variables)}
        if postgres:
            for table, key in (("tickets", "id"), ("tasks", "ticket_id"),
                               ("audit_events", "ticket_id")):
                size = conn.execute(text(
                    f"SELECT sum(pg_column_size(t.*)) FROM {table} t WHERE {key} IN ({closed})"
                )).scalar_one()
                out[table] = float(size) / count
            out["total"] = sum(out[k] for k in ("state", "variables", "tickets", "tasks",
                                                "audit_events"))
    return out


def _naive_blob_bytes() -> int:
    bare = lc.Bare()
    workflow = bare.start()
    for name, actor, group, data in lc.STEPS:
        bare.step(workflow, name, actor, group, data)
    return len(lc.SERIALIZER.serialize_json(workflow).encode())
