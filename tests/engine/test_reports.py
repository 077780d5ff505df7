"""engine.reports: every KPI against numbers worked out by hand on a small crafted history,
then against tickets that really went through their lifecycles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from engine import Forbidden, ValidationFailed
from engine.deploy import current_definition
from engine.dto import ReportFilters
from engine.persistence.models import Task, Ticket, User
from engine.reports import OLDEST_AGE, parse_filters, unknown_arguments
from tests.conftest import QUALIFY_ESCALATE, QUALIFY_RESOLVE

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)  # the FrozenClock's start
PERIOD = ReportFilters(since=datetime(2026, 1, 1, tzinfo=UTC),
                       until=datetime(2026, 1, 5, tzinfo=UTC))


def at(day: int, hour: float = 0, month: int = 1, year: int = 2026) -> datetime:
    return datetime(year, month, day, tzinfo=UTC) + timedelta(hours=hour)


class History:
    """Rows written straight into ``tickets`` and ``tasks``, with explicit times."""

    def __init__(self, desk) -> None:
        self.desk = desk
        with desk.db.write() as s:
            self.definitions = {key: (d.id, d.process_version_id) for key in
                                ("incident", "service_request")
                                if (d := current_definition(s, key)) is not None}
            self.requester = s.scalar(select(User.id).where(User.username == "alice"))
        self.count = 0

    def ticket(self, kind: str = "incident", status: str = "closed", created: datetime = NOW,
               **columns: Any) -> int:
        self.count += 1
        key = "incident" if kind == "incident" else "service_request"
        definition_id, _ = self.definitions[key]
        row = Ticket(number=f"{'INC' if kind == 'incident' else 'REQ'}-9{self.count:05d}",
                     kind=kind, title=f"crafted {self.count}", status=status,
                     requester_id=self.requester, created_at=created,
                     updated_at=columns.get("resolved_at") or created,
                     definition_id=definition_id, process_key=key,
                     process_version=columns.pop("version", 1), **columns)
        if status in ("closed", "rejected") and row.closed_at is None:
            row.closed_at = (row.resolved_at or created) + timedelta(hours=1)
        with self.desk.db.write() as s:
            s.add(row)
            s.flush()
            return row.id

    def task(self, ticket_id: int, name: str, group: str | None, created: datetime,
             completed: datetime | None = None, for_requester: bool = False) -> None:
        self.count += 1
        with self.desk.db.write() as s:
            s.add(Task(id=f"crafted-{self.count}", ticket_id=ticket_id, name=name, title=name,
                       group_key=group, for_requester=for_requester,
                       state="completed" if completed else "ready", created_at=created,
                       completed_at=completed))


@pytest.fixture
def history(desk) -> History:
    return crafted_history(desk)


def crafted_history(desk) -> History:
    """Thirteen tickets around the period [Jan 1, Jan 5) of 2026, now being Jan 5 09:00.

    Resolved in the period: A, B, C (P1: 2, 6 and 10 hours), D (P3, created before the
    period, 78 hours), R1 (access, 24 hours), R3 (password reset, resolved at once).
    Left out of the outcomes: G (resolved after the period), H (resolved before it), R2
    (rejected). Open now: E (P3), F (not qualified), I (P2, reopened), R4 (P4).
    """
    h = History(desk)
    sd, net, apps, mgr = "service_desk", "network", "applications", "managers"
    a = h.ticket(priority="P1", created=at(1), resolved_at=at(1, 2), due_at=at(1, 4),
                 response_due_at=at(1, 0.25), responded_at=at(1, 2), category="network",
                 service_key="vpn", channel="phone", group_key=sd)
    h.task(a, "qualify", sd, at(1), at(1, 2))
    b = h.ticket(priority="P1", created=at(1, 6), resolved_at=at(1, 12), due_at=at(1, 10),
                 response_due_at=at(1, 6.25), responded_at=at(1, 6.5), escalation_count=1,
                 category="network", service_key="vpn", group_key=net)
    h.task(b, "qualify", sd, at(1, 6), at(1, 6.5))
    h.task(b, "escalate", net, at(1, 6.5), at(1, 12))
    # C: escalated twice, reopened once, its clock paused: due pushed from 04:00 to 12:00.
    c = h.ticket(priority="P1", status="resolved", created=at(2), resolved_at=at(2, 10),
                 due_at=at(2, 12), response_due_at=at(2, 0.25), responded_at=at(2, 0.1),
                 escalation_count=2, reopen_count=1, category="software", service_key="erp",
                 group_key=apps, version=2)
    h.task(c, "confirm", None, at(2, 10), at(2, 11), for_requester=True)
    h.ticket(priority="P3", created=at(31, month=12, year=2025), resolved_at=at(3, 6),
             due_at=at(1), response_due_at=at(31, 2, 12, 2025),
             responded_at=at(31, 1, 12, 2025), category="hardware", service_key="laptop",
             channel="email", group_key=sd)
    e = h.ticket(priority="P3", status="in_progress", created=at(3), due_at=at(4),
                 response_due_at=at(3, 2), responded_at=at(3, 1), escalation_count=1,
                 category="network", service_key="vpn", group_key=net)
    h.task(e, "qualify", sd, at(3), at(3, 1))
    h.task(e, "escalate", net, at(3, 1))
    f = h.ticket(status="new", created=at(4, 12), service_key="email", channel="email",
                 group_key=sd)
    h.task(f, "qualify", sd, at(4, 12))
    h.ticket(priority="P2", status="resolved", created=at(4, 20), resolved_at=at(5, 1),
             due_at=at(5, 4), response_due_at=at(4, 20.5), responded_at=at(4, 20.3),
             category="software", service_key="email", group_key=sd, version=2)
    h_ = h.ticket(priority="P2", created=at(20, month=12, year=2025),
                  resolved_at=at(31, month=12, year=2025), due_at=at(21, month=12, year=2025),
                  category="network", service_key="vpn", group_key=sd)
    h.task(h_, "qualify", sd, at(20, month=12, year=2025), at(31, month=12, year=2025))
    i = h.ticket(priority="P2", status="in_progress", created=at(1, 12), due_at=at(1, 20),
                 response_due_at=at(1, 12.5), responded_at=at(1, 12 + 1 / 6),
                 escalation_count=1, reopen_count=1, category="network", service_key="vpn",
                 group_key=net)
    h.task(i, "qualify", sd, at(1, 12), at(1, 12 + 1 / 6))
    h.task(i, "escalate", net, at(1, 14))
    r1 = h.ticket("request", priority="P4", created=at(1, 9), resolved_at=at(2, 9),
                  due_at=at(4, 9), response_due_at=at(1, 17), responded_at=at(1, 10),
                  item_key="access", group_key=apps)
    h.task(r1, "approve", mgr, at(1, 10), at(1, 14))
    h.task(r1, "fulfil", apps, at(1, 14), at(2, 9))
    r2 = h.ticket("request", status="rejected", priority="P4", created=at(2, 9),
                  closed_at=at(3, 9), due_at=at(5, 9), response_due_at=at(2, 17),
                  responded_at=at(2, 10), item_key="access", group_key=mgr)
    h.task(r2, "approve", mgr, at(2, 10), at(3, 9))
    h.ticket("request", status="resolved", priority="P4", created=at(3, 12),
             resolved_at=at(3, 12), due_at=at(6, 12), response_due_at=at(3, 20),
             item_key="password_reset")
    r4 = h.ticket("request", status="pending_approval", priority="P4", created=at(4, 8),
                  due_at=at(7, 8), response_due_at=at(4, 16), responded_at=at(4, 9),
                  item_key="laptop", group_key=mgr)
    h.task(r4, "approve", mgr, at(4, 9))
    return h


def kpis(desk, as_: str = "max", **filters: Any):
    return desk.report_kpis(desk.actor(as_), ReportFilters(**{**PERIOD.__dict__, **filters}))


def table(desk, name: str, **filters: Any) -> dict[str, Any]:
    report = desk.report(desk.actor("max"), ReportFilters(**{**PERIOD.__dict__, **filters}),
                         [name])
    found = report.tables[name]
    return {"columns": found.columns, "rows": found.rows, "bucket": report.bucket}


def test_time_to_resolve_mean_and_median_per_priority(desk, history):
    k = kpis(desk)
    assert k.resolved == 6
    assert k.mttr_hours == pytest.approx({"P1": 6.0, "P2": None, "P3": 78.0, "P4": 12.0,
                                          "P5": None}, abs=1e-3)
    assert k.median_ttr_hours == pytest.approx({"P1": 6.0, "P2": None, "P3": 78.0,
                                                "P4": 12.0, "P5": None}, abs=1e-3)
    # 0, 2, 6, 10, 24, 78 hours: mean 20, median between 6 and 10.
    assert k.mttr_hours_overall == pytest.approx(20.0, abs=1e-3)
    assert k.median_ttr_hours_overall == pytest.approx(8.0, abs=1e-3)
    rows = table(desk, "resolution_time")["rows"]
    assert [r[:2] for r in rows] == [["P1", 3], ["P2", 0], ["P3", 1], ["P4", 2], ["P5", 0]]


def test_first_contact_escalation_and_reopen(desk, history):
    k = kpis(desk)
    # Incidents resolved in the period: A (first contact), B (escalated once), C (escalated
    # twice and reopened), D (first contact). Requests never count for these two.
    assert k.fcr_rate == pytest.approx(2 / 4)
    assert k.escalation_rate == pytest.approx(2 / 4)
    assert k.escalation_depth == pytest.approx(1.5)
    assert k.reopen_rate == pytest.approx(1 / 6)  # C, among six resolved tickets
    assert table(desk, "escalation")["rows"] == [
        ["not escalated", 2], ["escalated once", 1], ["escalated twice", 1],
        ["3 times or more", 0]]
    assert table(desk, "reopen")["rows"][0] == ["P1", 3, 1, pytest.approx(1 / 3)]
    fcr = table(desk, "first_contact")
    assert fcr["bucket"] == "day"
    assert fcr["rows"] == [["2026-01-01", 2, 1, 0.5], ["2026-01-02", 1, 0, 0.0],
                           ["2026-01-03", 1, 1, 1.0], ["2026-01-04", 0, 0, None]]


def test_sla_compliance_with_a_paused_clock(desk, history):
    k = kpis(desk)
    # Resolution: A met, B late, C met (its due date was pushed back while paused), D late,
    # R1 and R3 met.
    assert k.sla_compliance == pytest.approx(4 / 6)
    assert k.sla_by_priority["resolution"] == pytest.approx(
        {"P1": 2 / 3, "P2": None, "P3": 0.0, "P4": 1.0, "P5": None})
    # Response, over the ten tickets created in the period with a target: A and B answered
    # late (R3 counts as answered: it was resolved automatically at once).
    assert k.sla_response_compliance == pytest.approx(8 / 10)
    assert k.sla_by_priority["response"] == pytest.approx(
        {"P1": 1 / 3, "P2": 1.0, "P3": 1.0, "P4": 1.0, "P5": None})
    rows = {r[0]: r[1:] for r in table(desk, "sla")["rows"]}
    assert rows["P1"] == [3, 1, pytest.approx(1 / 3), 3, 2, pytest.approx(2 / 3)]
    assert rows["P4"] == [4, 4, 1.0, 2, 2, 1.0]


def test_response_target_not_reached_yet_is_not_measured(desk, history):
    history.ticket(priority="P2", status="new", created=at(5, 8), response_due_at=at(5, 10))
    history.ticket(priority="P2", status="new", created=at(5, 7), response_due_at=at(5, 8))
    k = kpis(desk, since=at(5), until=at(6))
    assert k.sla_by_priority["response"]["P2"] == 0.0  # one breached, one still running


def test_backlog_per_priority_and_age(desk, history):
    k = kpis(desk)
    assert k.backlog == {"P1": 0, "P2": 1, "P3": 1, "P4": 1, "P5": 0}
    assert (k.backlog_unprioritized, k.backlog_overdue) == (1, 2)  # overdue: E and I
    backlog = table(desk, "backlog")
    assert backlog["columns"] == ["priority", "< 1 day", "1-3 days", "3-7 days", "7-30 days",
                                  OLDEST_AGE, "overdue"]
    assert backlog["rows"] == [["P1", 0, 0, 0, 0, 0, 0], ["P2", 0, 0, 1, 0, 0, 1],
                               ["P3", 0, 1, 0, 0, 0, 1], ["P4", 0, 1, 0, 0, 0, 0],
                               ["P5", 0, 0, 0, 0, 0, 0], ["none", 1, 0, 0, 0, 0, 0]]


def test_backlog_trend_counts_what_was_open_at_the_end_of_each_day(desk, history):
    # End of Jan 1: D, R1, I. Jan 2: R2, D, I. Jan 3: E, I. Jan 4: E, F, I, R4 and G (which
    # was resolved after the period).
    assert table(desk, "backlog_trend")["rows"] == [
        ["2026-01-01", 3], ["2026-01-02", 3], ["2026-01-03", 2], ["2026-01-04", 5]]


def test_volumes_per_category_service_and_channel(desk, history):
    k = kpis(desk)
    assert k.created == 11
    created = table(desk, "kpis")["rows"][0]
    assert created == ["tickets created", 11, 3, 2, 1, 4, 0]  # and F, not qualified yet
    assert k.volume == {"network": 4, "access": 2, "software": 2, "laptop": 1,
                        "password_reset": 1, "uncategorized": 1}
    category = table(desk, "volume_category")
    assert category["columns"] == ["period", "network", "access", "software", "laptop",
                                   "password_reset", "uncategorized"]
    assert category["rows"] == [["2026-01-01", 3, 1, 0, 0, 0, 0],
                                ["2026-01-02", 0, 1, 1, 0, 0, 0],
                                ["2026-01-03", 1, 0, 0, 0, 1, 0],
                                ["2026-01-04", 0, 0, 1, 1, 0, 1]]
    channel = table(desk, "volume_channel")
    assert channel["columns"] == ["period", "portal", "email", "phone"]
    assert [sum(r[1:]) for r in channel["rows"]] == [4, 2, 2, 3]
    service = table(desk, "volume_service")
    assert service["columns"][:3] == ["period", "none", "vpn"]  # requests have no service


def test_work_per_group(desk, history):
    rows = {r[0]: r[1:] for r in table(desk, "groups")["rows"]}
    # (ready now, completed in the period, mean hours to complete)
    assert rows["service_desk"] == [1, 4, pytest.approx((2 + 0.5 + 1 + 1 / 6) / 4, abs=1e-3)]
    assert rows["network"] == [2, 1, pytest.approx(5.5, abs=1e-3)]
    assert rows["managers"] == [1, 2, pytest.approx(13.5, abs=1e-3)]
    assert rows["applications"] == [0, 1, pytest.approx(19.0, abs=1e-3)]
    assert set(rows) == {"service_desk", "network", "managers", "applications"}


def test_fulfilment_excludes_rejected_requests_and_approvals_turnaround(desk, history):
    assert table(desk, "fulfilment")["rows"] == [
        ["access", 1, pytest.approx(24.0, abs=1e-3), pytest.approx(24.0, abs=1e-3)],
        ["password_reset", 1, pytest.approx(0.0, abs=1e-3), pytest.approx(0.0, abs=1e-3)]]
    assert table(desk, "approvals")["rows"] == [
        ["access", 2, 1, pytest.approx(13.5, abs=1e-3), pytest.approx(13.5, abs=1e-3)]]


def test_filters(desk, history):
    incidents = kpis(desk, kind="incident")
    assert incidents.resolved == 4
    assert incidents.mttr_hours["P4"] is None
    assert incidents.reopen_rate == pytest.approx(1 / 4)
    assert "access" not in incidents.volume
    requests = kpis(desk, kind="request")
    assert (requests.resolved, requests.fcr_rate, requests.escalation_rate) == (2, None, None)
    assert kpis(desk, priority="P1").resolved == 3
    vpn = kpis(desk, service="vpn")
    assert (vpn.resolved, vpn.mttr_hours["P1"]) == (2, pytest.approx(4.0, abs=1e-3))
    assert kpis(desk, group="network").resolved == 1  # B: the ticket's current group
    # A process owner compares before and after a change: C was run by version 2.
    after = kpis(desk, process_version=2)
    assert (after.resolved, after.mttr_hours["P1"]) == (1, pytest.approx(10.0, abs=1e-3))
    before = kpis(desk, process_version=1)
    assert before.mttr_hours["P1"] == pytest.approx(4.0, abs=1e-3)
    network = {r[0]: r[1:] for r in table(desk, "groups", group="network")["rows"]}
    assert network == {"network": [2, 1, pytest.approx(5.5, abs=1e-3)]}


def test_an_empty_period_has_no_rates(desk, history):
    k = kpis(desk, since=at(1, month=6), until=at(2, month=6))
    assert (k.resolved, k.created) == (0, 0)
    assert k.fcr_rate is None and k.reopen_rate is None and k.sla_compliance is None
    assert k.mttr_hours == dict.fromkeys(("P1", "P2", "P3", "P4", "P5"))
    assert k.backlog["P2"] == 1  # the backlog is the one of now


def test_default_period_and_bucket_sizes(desk, history):
    k = desk.report_kpis(desk.actor("max"), ReportFilters())
    end = NOW + timedelta(minutes=1)  # the current minute included
    assert (k.filters.since, k.filters.until) == (end - timedelta(days=30), end)
    assert k.resolved == 8  # G (Jan 5, 01:00) and H (Dec 31) too
    long = desk.report(desk.actor("max"), ReportFilters(since=at(1, month=1, year=2024)),
                       ["backlog_trend", "volume_channel"])
    assert long.bucket == "month"
    assert [r[0] for r in long.tables["backlog_trend"].rows][:2] == ["2024-01", "2024-02"]
    weeks = desk.report(desk.actor("max"), ReportFilters(since=at(1, month=10, year=2025)),
                        ["volume_channel"])
    assert weeks.bucket == "week"
    labels = [r[0] for r in weeks.tables["volume_channel"].rows]
    assert labels[0] == "2025-09-29" and labels[-1] == "2026-01-05"  # Mondays
    assert sum(sum(r[1:]) for r in weeks.tables["volume_channel"].rows) == 13


def test_only_managers_and_auditors(desk):
    for user in ("max", "aude", "admin"):
        assert desk.report_kpis(desk.actor(user), PERIOD).resolved == 0
    for user in ("sam", "alice", "olga", "nina"):
        with pytest.raises(Forbidden):
            desk.report_kpis(desk.actor(user), PERIOD)
        with pytest.raises(Forbidden):
            desk.report(desk.actor(user), PERIOD)


def test_filters_from_text():
    f = parse_filters({"since": "2026-01-01", "until": "2026-01-31", "kind": "incident",
                       "priority": "p2", "process_version": "3", "service": "vpn",
                       "group": ""})
    assert f == ReportFilters(since=at(1), until=at(1, month=2), kind="incident",
                              priority="P2", process_version=3, service="vpn")
    assert parse_filters({"since": "2026-01-01T09:00+02:00"}).since == at(1, 7)
    with pytest.raises(ValidationFailed) as err:
        parse_filters({"since": "yesterday", "kind": "problem", "priority": "P9",
                       "process_version": "two"})
    assert set(err.value.errors) == {"since", "kind", "priority", "process_version"}
    with pytest.raises(ValidationFailed) as err:
        parse_filters({"since": "2026-02-01", "until": "2026-01-01"})
    assert set(err.value.errors) == {"until"}
    assert unknown_arguments(["since", "page", "kind", "sort"]) == ["page", "sort"]


def test_unknown_service_or_group_and_too_long_periods_are_refused(desk):
    with pytest.raises(ValidationFailed) as err:
        desk.report_kpis(desk.actor("max"), ReportFilters(service="fax", group="nobody"))
    assert set(err.value.errors) == {"service", "group"}
    with pytest.raises(ValidationFailed) as err:
        desk.report_kpis(desk.actor("max"), ReportFilters(since=at(1, year=2000)))
    assert set(err.value.errors) == {"since"}


def test_kpis_of_real_lifecycles(life, desk, clock):
    """Tickets driven through the facade: the projected columns give the same figures."""
    start = clock()
    # P2, resolved at qualification after 1 hour, then closed: first contact.
    first = life.report(service="vpn")
    clock.advance(hours=1)
    life.complete(first, "qualify", as_="sam", data=QUALIFY_RESOLVE)
    life.complete(first, "confirm", as_="alice", data={"resolved": True})
    life.complete(first, "close", as_="sam", data={"closure_code": "solved"})
    # P1, escalated to network after 30 minutes (response target 15 minutes: missed),
    # resolved 2 hours later, reopened, resolved again 1 hour after that.
    second = life.report(as_="bob", service="erp")
    clock.advance(minutes=30)
    life.complete(second, "qualify", as_="sam", data=QUALIFY_ESCALATE)
    clock.advance(hours=2)
    life.complete(second, "escalate", as_="nina", data={"action": "resolve", "resolution": "x"})
    life.complete(second, "confirm", as_="bob", data={"resolved": False})
    clock.advance(hours=1)
    life.complete(second, "escalate", as_="nina", data={"action": "resolve", "resolution": "y"})
    # A request: accepted, approved 3 hours later, fulfilled 5 hours after that.
    request = life.order("access", {"application": "erp", "justification": "New in finance"})
    life.complete(request, "qualify", as_="sam", data={"action": "accept"})
    clock.advance(hours=3)
    life.complete(request, "approve", as_="max", data={"approved": True})
    clock.advance(hours=5)
    life.complete(request, "fulfil", as_="apu", data={"notes": "Granted"})
    # Still open: a new incident nobody qualified yet.
    life.report(title="Printer")

    k = desk.report_kpis(desk.actor("aude"), ReportFilters(since=start,
                                                           until=clock() + timedelta(hours=1)))
    assert k.resolved == 3
    assert k.mttr_hours["P2"] == pytest.approx(1.0, abs=1e-3)
    assert k.mttr_hours["P1"] == pytest.approx(3.5, abs=1e-3)
    assert k.mttr_hours["P4"] == pytest.approx(8.0, abs=1e-3)
    assert k.fcr_rate == 0.5
    assert (k.escalation_rate, k.escalation_depth) == (0.5, 1.0)
    assert k.reopen_rate == pytest.approx(1 / 3)
    assert k.sla_compliance == 1.0
    assert k.sla_by_priority["response"]["P1"] == 0.0
    assert k.sla_by_priority["response"]["P4"] == 1.0  # accepted at once
    assert k.backlog_unprioritized == 1 and sum(k.backlog.values()) == 0
    assert k.volume == {"network": 2, "access": 1, "uncategorized": 1}
    report = desk.report(desk.actor("max"), ReportFilters(since=start,
                                                          until=clock() + timedelta(hours=1)))
    groups = {r[0]: r[1:3] for r in report.tables["groups"].rows}
    assert groups == {"service_desk": [1, 4], "network": [0, 2], "managers": [0, 1],
                      "applications": [0, 1]}
    approvals = report.tables["approvals"].rows
    assert approvals == [["access", 1, 1, pytest.approx(3.0, abs=1e-3),
                          pytest.approx(3.0, abs=1e-3)]]


@pytest.fixture(params=["sqlite", "postgresql"])
def old_database(request, tmp_path):
    """An empty database of each backend (PostgreSQL: a throwaway one, when available)."""
    import os
    import uuid

    from sqlalchemy import create_engine, make_url, text

    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    server = os.environ.get("TEST_DATABASE_URL", "")
    if not server.startswith("postgresql"):
        pytest.skip("PostgreSQL variant: set TEST_DATABASE_URL")
    name = f"guichet_migr_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_migration_0005_gives_open_tickets_their_category(old_database):
    """Tickets that still have a workflow state get the category qualification gave them."""
    from sqlalchemy import create_engine, text

    from engine.migrate import upgrade

    engine = create_engine(old_database)
    upgrade(engine, "0004")
    now = datetime(2026, 1, 5, 9)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO users (id, username, name, email, password_hash, roles, "
                          "active) VALUES (1, 'alice', 'Alice', '', 'x', 'requester', true)"))
        conn.execute(text(
            "INSERT INTO process_versions (id, key, kind, version, name, sha256, xml, forms, "
            "elements, deployed_at, deployed_by) VALUES (1, 'incident', 'bpmn', 1, '', 'x', "
            "'', '{}', '{}', :now, 'system')"), {"now": now})
        conn.execute(text("INSERT INTO definitions (id, process_version_id, decisions, sha256) "
                          "VALUES (1, 1, '{}', 'x')"))
        for kind, number, variables in (("incident", 1, '{"category": "network"}'),
                                        ("incident", 2, '{"title": "not qualified"}'),
                                        ("request", 3, '{"category": "x", "item": "info"}')):
            conn.execute(text(
                "INSERT INTO tickets (id, number, kind, title, description, status, "
                "requester_id, channel, created_at, updated_at, definition_id, process_key, "
                "process_version, lock_version) VALUES (:id, :number, :kind, 't', '', 'new', "
                "1, 'portal', :now, :now, 1, 'incident', 1, 1)"),
                {"id": number, "number": f"T-{number}", "kind": kind, "now": now})
            conn.execute(text("INSERT INTO ticket_states (ticket_id, state, variables) "
                              "VALUES (:id, :state, :variables)"),
                         {"id": number, "state": b"\x00", "variables": variables})
    upgrade(engine)
    with engine.connect() as conn:
        found = dict(conn.execute(text("SELECT id, category FROM tickets")).all())
    engine.dispose()
    assert found == {1: "network", 2: None, 3: None}
