"""Service desk KPIs and the numbers behind the /reports charts.

Every figure is a SQL aggregate (``count``, ``sum``, ``avg``, a median, ``GROUP BY``) over
the projection tables ``tickets`` and ``tasks``; nothing reads workflow state
(``ticket_states``). Periods are half-open, ``[since, until)``, and the time that puts a
ticket in a period depends on the figure (README, "Reports and KPIs"):

- outcomes (time to resolve, first contact, escalation, reopen, resolution targets,
  fulfilment time) count the tickets *resolved* in the period;
- volumes and response targets count the tickets *created* in the period;
- work per group and approvals count the tasks *completed* in the period;
- the backlog is what is open now; its trend, what was open at the end of each day, week
  or month of the period.

Times are stored as naive UTC; ``Sql`` spells the few expressions SQLite and PostgreSQL
write differently (durations, calendar buckets, the median).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from typing import Any

from sqlalchemy import Float, and_, case, cast, extract, func, or_, select, tuple_
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement

from .dto import Actor, KpiSummary, Report, ReportFilters, ReportTable
from .errors import Forbidden, ValidationFailed
from .persistence.models import Group, Service, Task, Ticket

READER_ROLES = frozenset({"manager", "auditor", "admin"})
PRIORITIES = ("P1", "P2", "P3", "P4", "P5")
KINDS = ("incident", "request")
# Open: waiting on the service desk or the requester. Resolved tickets wait on the
# requester's confirmation and count as done.
OPEN_STATUSES = ("new", "in_progress", "pending_approval", "awaiting_requester")
# Periods select rows through the time indexes. Conditions on states are written NOT IN so
# that no planner prefers the state index, which holds nearly every row (SQLite keeps no
# statistics unless ANALYZE runs).
NOT_DONE_TASKS = ("ready", "cancelled")
FILTERS = ("since", "until", "kind", "service", "group", "priority", "process_version")
DEFAULT_DAYS = 30
MAX_DAYS = 3660  # ten years: the charts over time stay readable (at most 121 months)
AGE_BUCKETS = ((1, "< 1 day"), (3, "1-3 days"), (7, "3-7 days"), (30, "7-30 days"))
OLDEST_AGE = "> 30 days"
UNCATEGORIZED = "uncategorized"
MAX_SERIES = 8  # stacked charts: the largest ones, the rest as "other"
INSTANT_HELP = ("Use a date (2026-01-05) or an ISO 8601 date and time with an offset "
                "(2026-01-05T09:00+02:00); UTC when none is given.")


def may_read(actor: Actor | None) -> bool:
    """Managers, auditors and administrators read the reports."""
    return bool(actor and actor.roles & READER_ROLES)


def require_reader(actor: Actor) -> None:
    if not may_read(actor):
        raise Forbidden("only managers and auditors may read the reports")


# -- filters ------------------------------------------------------------------------------


def unknown_arguments(args: Iterable[str]) -> list[str]:
    """Query arguments that are not report filters."""
    return sorted(name for name in args if name not in FILTERS)


def parse_filters(args: Mapping[str, str]) -> ReportFilters:
    """Filters from query-string text; empty values are ignored.

    Raises ``ValidationFailed`` naming each bad argument. A date alone covers its whole
    day (``until=2026-01-31`` ends at the start of February 1st).
    """
    values = {name: (args.get(name) or "").strip() for name in FILTERS}
    errors: dict[str, str] = {}
    found: dict[str, Any] = {}
    for name in ("since", "until"):
        if values[name]:
            try:
                found[name] = _instant(values[name], end=name == "until")
            except (ValueError, OverflowError):
                errors[name] = f"Not a date: {values[name][:40]!r}. {INSTANT_HELP}"
    if values["kind"]:
        if values["kind"] in KINDS:
            found["kind"] = values["kind"]
        else:
            errors["kind"] = "Use incident or request."
    if values["priority"]:
        if values["priority"].upper() in PRIORITIES:
            found["priority"] = values["priority"].upper()
        else:
            errors["priority"] = "Use P1, P2, P3, P4 or P5."
    for name in ("service", "group"):
        if values[name]:
            if len(values[name]) <= 64:
                found[name] = values[name]
            else:
                errors[name] = "Unknown key (at most 64 characters)."
    version = values["process_version"]
    if version:
        if version.isascii() and version.isdigit() and 1 <= int(version) <= 1_000_000:
            found["process_version"] = int(version)
        else:
            errors["process_version"] = "Must be a whole number, 1 or more."
    if "since" in found and "until" in found and found["until"] <= found["since"]:
        errors["until"] = "Must come after the start of the period (since)."
    if errors:
        raise ValidationFailed(f"Please correct these arguments: {', '.join(sorted(errors))}.",
                               errors)
    return ReportFilters(**found)


def _instant(text: str, end: bool = False) -> datetime:
    if len(text) == 10:
        day = date.fromisoformat(text) + timedelta(days=1 if end else 0)
        return datetime.combine(day, time(), tzinfo=UTC)
    moment = datetime.fromisoformat(text)
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def resolve(s: Session, f: ReportFilters, now: datetime) -> ReportFilters:
    """``f`` with its period filled in (the 30 days up to now by default), its keys checked."""
    errors = {}
    if f.service is not None and s.get(Service, f.service) is None:
        errors["service"] = f"No service {f.service!r}."
    if f.group is not None and s.get(Group, f.group) is None:
        errors["group"] = f"No group {f.group!r}."
    for name in ("since", "until"):
        value = getattr(f, name)
        if value is not None and (not isinstance(value, datetime) or value.tzinfo is None):
            errors[name] = "Must be a date and time with a UTC offset."
    if errors:
        raise ValidationFailed(f"Please correct these arguments: {', '.join(sorted(errors))}.",
                               errors)
    # By default the period ends with the current minute: what happened just now counts.
    end = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    until = f.until or (max(end, f.since + timedelta(days=DEFAULT_DAYS)) if f.since else end)
    since = f.since or until - timedelta(days=DEFAULT_DAYS)
    if until <= since:
        raise ValidationFailed("The period is empty.", {
            "until": "Must come after the start of the period (since)."})
    if until - since > timedelta(days=MAX_DAYS):
        raise ValidationFailed("The period is too long.", {
            "since": "The period can cover at most ten years."})
    return replace(f, since=since.astimezone(UTC), until=until.astimezone(UTC))


def bucket_unit(f: ReportFilters) -> str:
    """The step of the charts over time: days up to 45 days, weeks up to 400, else months."""
    days = (f.until - f.since).total_seconds() / 86400
    return "day" if days <= 45 else "week" if days <= 400 else "month"


def bucket_labels(f: ReportFilters, unit: str) -> list[str]:
    """Every bucket of the period, oldest first, labelled as ``Sql.bucket`` labels them."""
    labels, day = [], _bucket_start(f.since.date(), unit)
    last = (f.until - timedelta(microseconds=1)).date()
    while day <= last:
        labels.append(day.strftime("%Y-%m") if unit == "month" else day.isoformat())
        day = _next_bucket(day, unit)
    return labels


def _bucket_start(day: date, unit: str) -> date:
    if unit == "week":
        return day - timedelta(days=day.weekday())
    if unit == "month":
        return day.replace(day=1)
    return day


def _next_bucket(day: date, unit: str) -> date:
    if unit == "week":
        return day + timedelta(days=7)
    if unit == "month":
        return date(day.year + day.month // 12, day.month % 12 + 1, 1)
    return day + timedelta(days=1)


# -- the two dialects -----------------------------------------------------------------------


class Sql:
    """Expressions SQLite and PostgreSQL spell differently."""

    def __init__(self, dialect: str) -> None:
        self.pg = dialect == "postgresql"

    def hours(self, start, end):
        """``end - start`` in hours (a float)."""
        if self.pg:
            return cast(extract("epoch", end - start), Float) / 3600.0
        return (func.julianday(end) - func.julianday(start)) * 24.0

    def bucket(self, column, unit: str):
        """The calendar bucket of a time, as text: ``YYYY-MM-DD`` of the day or of the
        week's Monday, or ``YYYY-MM``."""
        if self.pg:
            if unit == "month":
                return func.to_char(column, "YYYY-MM")
            if unit == "week":
                return func.to_char(func.date_trunc("week", column), "YYYY-MM-DD")
            return func.to_char(column, "YYYY-MM-DD")
        if unit == "month":
            return func.strftime("%Y-%m", column)
        if unit == "week":
            return func.date(column, "-6 days", "weekday 1")
        return func.date(column)

    def stats(self, s: Session, key, value, where: list, sums: dict[str, Any] | None = None,
              select_from=None) -> tuple[dict[Any, dict[str, Any]], dict[str, Any]]:
        """Per ``key`` and over every row: ``count``, ``mean`` and ``median``
        of ``value`` (None without rows), and the total of each expression of ``sums``.

        PostgreSQL: one query, ``avg`` and ``percentile_cont(0.5)`` over grouping sets (per
        key, and all rows). SQLite has no median: a plain ``GROUP BY`` for the rest, then
        the rows numbered in order within their key and overall, the middle one (or the mean
        of the middle two) kept.
        """
        sums = sums or {}
        if self.pg:
            query = select(func.grouping(key), key, func.count(), func.avg(value),
                           func.percentile_cont(0.5).within_group(value),
                           *[func.sum(e) for e in sums.values()])
            if select_from is not None:
                query = query.select_from(select_from)
            found = s.execute(query.where(*where)
                              .group_by(func.grouping_sets(key, tuple_()))).all()
            per_key = {r[1]: _stats(r[2:], sums) for r in found if not r[0]}
            everything = next((r[2:] for r in found if r[0]), None)
            return per_key, _stats(everything or (0, None, None, *[0] * len(sums)), sums)

        def scoped(query):
            query = query.select_from(select_from) if select_from is not None else query
            return query.where(*where)

        totals = {row[0]: row[1:] for row in s.execute(scoped(select(
            key, func.count(), func.avg(value), *[func.sum(e) for e in sums.values()]))
            .group_by(key))}
        base = scoped(select(key.label("k"), value.label("v"))).subquery()
        ranked = select(
            base, func.row_number().over(partition_by=base.c.k, order_by=base.c.v).label("rn"),
            func.count().over(partition_by=base.c.k).label("n"),
            func.row_number().over(order_by=base.c.v).label("rn_all"),
            func.count().over().label("n_all")).subquery()
        r = ranked.c
        middle = and_(2 * r.rn >= r.n, 2 * r.rn <= r.n + 2)
        middle_all = and_(2 * r.rn_all >= r.n_all, 2 * r.rn_all <= r.n_all + 2)
        middles = {row[0]: row[1:] for row in s.execute(select(
            r.k, func.avg(case((middle, r.v))), func.sum(case((middle_all, r.v), else_=0)),
            func.sum(case((middle_all, 1), else_=0)),
        ).where(or_(middle, middle_all)).group_by(r.k))}
        per_key = {k: _stats((n, mean, middles.get(k, (None,))[0], *rest), sums)
                   for k, (n, mean, *rest) in totals.items()}
        count = sum(n for n, *_ in totals.values())
        picked = sum(m[2] for m in middles.values())
        everything = (
            count, sum((mean or 0) * n for n, mean, *_ in totals.values()) / count if count
            else None, sum(m[1] for m in middles.values()) / picked if picked else None,
            *[sum(row[2 + i] or 0 for row in totals.values()) for i in range(len(sums))])
        return per_key, _stats(everything, sums)


def _stats(row, sums: dict[str, Any]) -> dict[str, Any]:
    count, mean, median, *totals = row
    return {"count": int(count or 0), "mean": _float(mean), "median": _float(median),
            **{name: int(total or 0) for name, total in zip(sums, totals, strict=True)}}


class unindexed(FunctionElement):  # lower case: used like a column
    """A column no index may serve (SQLite's no-op ``+column``; the column elsewhere).

    Report queries select rows through the period's time index. Without statistics
    (SQLite has none until ANALYZE runs) SQLite would rather use the index of an equality
    such as ``kind = 'incident'``, which holds most rows; ``+kind`` leaves it out.
    """

    inherit_cache = True

    def __init__(self, column) -> None:
        super().__init__(column)
        self.type = column.type


@compiles(unindexed)
def _unindexed(element, compiler, **kw) -> str:
    return compiler.process(element.clauses, **kw)


@compiles(unindexed, "sqlite")
def _unindexed_sqlite(element, compiler, **kw) -> str:
    return "+" + compiler.process(element.clauses, **kw)


# -- conditions ---------------------------------------------------------------------------


def _tickets(f: ReportFilters, group: bool = True) -> list:
    """The equality filters on tickets (``group``: on the ticket's current group)."""
    where = []
    for column, value in ((Ticket.kind, f.kind), (Ticket.service_key, f.service),
                          (Ticket.priority, f.priority),
                          (Ticket.process_version, f.process_version)):
        if value is not None:
            where.append(unindexed(column) == value)
    if group and f.group is not None:
        where.append(unindexed(Ticket.group_key) == f.group)
    return where


def _resolved(f: ReportFilters) -> list:
    """Tickets resolved in the period (closed ones keep the time they were resolved; a
    reopened ticket has none until resolved again)."""
    return [*_tickets(f), Ticket.status.not_in(OPEN_STATUSES),
            Ticket.resolved_at >= f.since, Ticket.resolved_at < f.until]


def _created(f: ReportFilters) -> list:
    return [*_tickets(f), Ticket.created_at >= f.since, Ticket.created_at < f.until]


def _count(condition):
    return func.sum(case((condition, 1), else_=0))


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _by_priority(values: Mapping[Any, Any], default: Any = None) -> dict[str, Any]:
    return {p: values.get(p, default) for p in PRIORITIES}


INCIDENT = unindexed(Ticket.kind) == "incident"
FIRST_CONTACT = INCIDENT & (Ticket.escalation_count == 0) & (Ticket.reopen_count == 0)
ESCALATED = INCIDENT & (Ticket.escalation_count > 0)


# -- the headline KPIs --------------------------------------------------------------------


class Figures:
    """The queries of one report, each run once however many charts use it."""

    def __init__(self, s: Session, f: ReportFilters, now: datetime) -> None:
        self.s, self.f, self.now = s, f, now
        self.sql = Sql(s.get_bind().dialect.name)
        self.unit = bucket_unit(f)
        self.ttr = self.sql.hours(Ticket.created_at, Ticket.resolved_at)

    @cached_property
    def _resolved_stats(self) -> tuple[dict[Any, dict[str, Any]], dict[str, Any]]:
        """Over the tickets resolved in the period, per priority and overall: ``count``,
        ``mean`` and ``median`` hours to resolve, and the counts the rates need."""
        return self.sql.stats(self.s, Ticket.priority, self.ttr, _resolved(self.f), {
            "incidents": case((INCIDENT, 1), else_=0),
            "first_contact": case((FIRST_CONTACT, 1), else_=0),
            "escalated": case((ESCALATED, 1), else_=0),
            "depth": case((ESCALATED, Ticket.escalation_count), else_=0),
            "reopened": case((Ticket.reopen_count > 0, 1), else_=0),
            "with_due": case((Ticket.due_at.is_not(None), 1), else_=0),
            "met": case((Ticket.resolved_at <= Ticket.due_at, 1), else_=0),
        })

    @property
    def outcomes(self) -> dict[Any, dict[str, Any]]:
        return self._resolved_stats[0]

    def outcome(self, priority: Any, name: str) -> Any:
        return self.outcomes.get(priority, {}).get(name, 0)

    @cached_property
    def arrivals(self) -> dict[tuple[Any, str], tuple[int, int, int]]:
        """Tickets created in the period per (priority, category): (count, response
        measured, response met). Measured: with a response target, answered or past it
        before the period's end (or now). Answered: a first task done by staff, or the
        ticket resolved."""
        horizon = min(self.f.until, self.now)
        answered = or_(Ticket.responded_at.is_not(None), Ticket.resolved_at.is_not(None))
        measured = and_(Ticket.response_due_at.is_not(None),
                        or_(answered, Ticket.response_due_at < horizon))
        met = and_(measured, or_(Ticket.responded_at <= Ticket.response_due_at,
                                 Ticket.resolved_at <= Ticket.response_due_at))
        inner = select(Ticket.priority.label("priority"), _category().label("category"),
                       case((measured, 1), else_=0).label("measured"),
                       case((met, 1), else_=0).label("met")).where(*_created(self.f)).subquery()
        c = inner.c
        rows = self.s.execute(select(c.priority, c.category, func.count(), func.sum(c.measured),
                                     func.sum(c.met)).group_by(c.priority, c.category))
        return {(p, k): (int(n), int(measured or 0), int(met or 0))
                for p, k, n, measured, met in rows}

    @cached_property
    def response(self) -> dict[Any, tuple[int, int]]:
        """Per priority: (response measured, met) over the tickets created in the period."""
        found: dict[Any, tuple[int, int]] = {}
        for (priority, _), (_, measured, met) in self.arrivals.items():
            n, m = found.get(priority, (0, 0))
            found[priority] = (n + measured, m + met)
        return {p: nm for p, nm in found.items() if nm[0]}

    @cached_property
    def backlog(self) -> dict[tuple[Any, str], tuple[int, int]]:
        """Open tickets now by (priority, age bucket): (count, past their due date)."""
        now = self.now
        age = case(*[(Ticket.created_at > now - timedelta(days=days), label)
                     for days, label in AGE_BUCKETS], else_=OLDEST_AGE)
        inner = select(Ticket.priority.label("priority"), age.label("age"),
                       case((Ticket.due_at < now, 1), else_=0).label("overdue")).where(
            *_tickets(self.f), Ticket.status.in_(OPEN_STATUSES)).subquery()
        rows = self.s.execute(select(inner.c.priority, inner.c.age, func.count(),
                                     func.sum(inner.c.overdue))
                              .group_by(inner.c.priority, inner.c.age)).all()
        return {(p, a): (int(n), int(o or 0)) for p, a, n, o in rows}

    @cached_property
    def volume(self) -> dict[str, int]:
        """Tickets created in the period per category (requests: their catalog item)."""
        totals: dict[str, int] = {}
        for (_, category), (n, _, _) in self.arrivals.items():
            totals[category] = totals.get(category, 0) + n
        return dict(sorted(totals.items(), key=lambda kv: (-kv[1], kv[0])))

    @cached_property
    def created(self) -> dict[tuple[str, str, str, str], int]:
        """Tickets created in the period per (bucket, category, service, channel): the three
        volume charts and the backlog trend from one scan."""
        inner = select(self.sql.bucket(Ticket.created_at, self.unit).label("period"),
                       _category().label("category"),
                       func.coalesce(Ticket.service_key, "none").label("service"),
                       Ticket.channel.label("channel")).where(*_created(self.f)).subquery()
        c = inner.c
        rows = self.s.execute(select(c.period, c.category, c.service, c.channel, func.count())
                              .group_by(c.period, c.category, c.service, c.channel))
        return {tuple(row[:4]): int(row[4]) for row in rows}

    @cached_property
    def summary(self) -> KpiSummary:
        total = self._resolved_stats[1]
        response = self.response
        open_by_priority: dict[Any, int] = {}
        for (priority, _age), (count, _overdue) in self.backlog.items():
            open_by_priority[priority] = open_by_priority.get(priority, 0) + count
        return KpiSummary(
            filters=self.f,
            created=sum(self.volume.values()),
            resolved=total["count"],
            mttr_hours=_by_priority({p: r["mean"] for p, r in self.outcomes.items()}),
            median_ttr_hours=_by_priority({p: r["median"] for p, r in self.outcomes.items()}),
            mttr_hours_overall=total["mean"],
            median_ttr_hours_overall=total["median"],
            fcr_rate=_rate(total["first_contact"], total["incidents"]),
            escalation_rate=_rate(total["escalated"], total["incidents"]),
            escalation_depth=_rate(total["depth"], total["escalated"]),
            reopen_rate=_rate(total["reopened"], total["count"]),
            sla_compliance=_rate(total["met"], total["with_due"]),
            sla_response_compliance=_rate(sum(m for _, m in response.values()),
                                          sum(n for n, _ in response.values())),
            sla_by_priority={
                "response": _by_priority({p: _rate(m, n) for p, (n, m) in response.items()}),
                "resolution": _by_priority({p: _rate(r["met"], r["with_due"])
                                            for p, r in self.outcomes.items()}),
            },
            backlog=_by_priority(open_by_priority, 0),
            backlog_unprioritized=open_by_priority.get(None, 0),
            backlog_overdue=sum(overdue for _, overdue in self.backlog.values()),
            volume=self.volume,
        )


def _category():
    """Incidents: their category; requests: their catalog item."""
    return func.coalesce(Ticket.category, Ticket.item_key, UNCATEGORIZED)


def kpis(s: Session, f: ReportFilters, now: datetime) -> KpiSummary:
    """The KPIs of the API and of the page's tiles; ``f`` has its period (``resolve``)."""
    return Figures(s, f, now).summary


# -- the charts of the page ---------------------------------------------------------------


CHARTS = {
    "kpis": "Key figures",
    "resolution_time": "Time to resolve per priority (hours)",
    "first_contact": "First-contact resolution over time",
    "escalation": "Escalations of resolved incidents",
    "reopen": "Reopened tickets per priority",
    "sla": "Targets met per priority",
    "backlog": "Open now, per priority and age",
    "backlog_trend": "Open tickets over time",
    "volume_category": "New tickets per category",
    "volume_service": "New tickets per service",
    "volume_channel": "New tickets per channel",
    "groups": "Work per group",
    "fulfilment": "Request fulfilment time per catalog item (hours)",
    "approvals": "Approval turnaround per catalog item (hours)",
}


def report(s: Session, f: ReportFilters, now: datetime,
           names: Iterable[str] | None = None) -> Report:
    """The KPIs and the numbers of the charts ``names`` (all of them by default)."""
    q = Figures(s, f, now)
    wanted = set(CHARTS) if names is None else set(names)
    tables = {}
    for name, title in CHARTS.items():
        if name in wanted:
            columns, rows = _BUILDERS[name](q)
            tables[name] = ReportTable(name, title, columns, rows)
    summary = q.summary if names is None else vars(q).get("summary")  # computed, or not
    return Report(f, summary, q.unit, tables)


def _kpi_rows(q: Figures) -> tuple[list[str], list[list[Any]]]:
    k, none = q.summary, [None] * len(PRIORITIES)
    created: dict[Any, int] = {}
    for (priority, _), (n, _, _) in q.arrivals.items():
        created[priority] = created.get(priority, 0) + n
    rows = [
        ["tickets created", k.created, *[created.get(p, 0) for p in PRIORITIES]],
        ["tickets resolved", k.resolved, *[q.outcome(p, "count") for p in PRIORITIES]],
        ["mean hours to resolve", k.mttr_hours_overall, *k.mttr_hours.values()],
        ["median hours to resolve", k.median_ttr_hours_overall, *k.median_ttr_hours.values()],
        ["first-contact resolution rate", k.fcr_rate, *none],
        ["escalation rate", k.escalation_rate, *none],
        ["escalation depth", k.escalation_depth, *none],
        ["reopen rate", k.reopen_rate, *none],
        ["response targets met", k.sla_response_compliance,
         *k.sla_by_priority["response"].values()],
        ["resolution targets met", k.sla_compliance, *k.sla_by_priority["resolution"].values()],
        ["open now", sum(k.backlog.values()) + k.backlog_unprioritized, *k.backlog.values()],
        ["open now and overdue", k.backlog_overdue, *none],
    ]
    return ["kpi", "all", *PRIORITIES], rows


def _resolution_time(q: Figures):
    k = q.summary
    return (["priority", "resolved", "mean_hours", "median_hours"],
            [[p, q.outcome(p, "count"), k.mttr_hours[p], k.median_ttr_hours[p]]
             for p in PRIORITIES])


def _first_contact(q: Figures):
    inner = select(q.sql.bucket(Ticket.resolved_at, q.unit).label("period"),
                   case((FIRST_CONTACT, 1), else_=0).label("fcr")).where(
        *_resolved(q.f), INCIDENT).subquery()
    found = {p: (int(n), int(m or 0)) for p, n, m in q.s.execute(
        select(inner.c.period, func.count(), func.sum(inner.c.fcr)).group_by(inner.c.period))}
    rows = []
    for label in bucket_labels(q.f, q.unit):
        n, m = found.get(label, (0, 0))
        rows.append([label, n, m, _rate(m, n)])
    return ["period", "resolved_incidents", "first_contact", "rate"], rows


ESCALATION_LEVELS = ("not escalated", "escalated once", "escalated twice", "3 times or more")


def _escalation(q: Figures):
    level = case((Ticket.escalation_count >= 3, 3), else_=Ticket.escalation_count)
    inner = select(level.label("level")).where(*_resolved(q.f), INCIDENT).subquery()
    found = {int(v): int(n) for v, n in q.s.execute(
        select(inner.c.level, func.count()).group_by(inner.c.level))}
    return (["escalations", "incidents"],
            [[label, found.get(i, 0)] for i, label in enumerate(ESCALATION_LEVELS)])


def _reopen(q: Figures):
    rows = []
    for p in PRIORITIES:
        resolved, reopened = q.outcome(p, "count"), q.outcome(p, "reopened")
        rows.append([p, resolved, reopened, _rate(reopened, resolved)])
    return ["priority", "resolved", "reopened", "rate"], rows


def _sla(q: Figures):
    rows = []
    for p in PRIORITIES:
        n, m = q.response.get(p, (0, 0))
        due, met = q.outcome(p, "with_due"), q.outcome(p, "met")
        rows.append([p, n, m, _rate(m, n), due, met, _rate(met, due)])
    return (["priority", "response_measured", "response_met", "response_rate",
             "resolution_measured", "resolution_met", "resolution_rate"], rows)


def _backlog(q: Figures):
    ages = [label for _, label in AGE_BUCKETS] + [OLDEST_AGE]
    rows = []
    for p in (*PRIORITIES, None):
        counts = [q.backlog.get((p, age), (0, 0))[0] for age in ages]
        if p is not None or any(counts):
            rows.append([p or "none", *counts,
                         sum(q.backlog.get((p, a), (0, 0))[1] for a in ages)])
    return ["priority", *ages, "overdue"], rows


def _backlog_trend(q: Figures):
    """Open at the end of each bucket, counted back from now: open now, minus what was
    created since, plus what left the backlog since (resolved, or closed unresolved)."""
    s, f = q.s, q.f
    left = func.coalesce(Ticket.resolved_at, Ticket.closed_at)
    done = [*_tickets(f), Ticket.status.not_in(OPEN_STATUSES)]
    value = sum(count for count, _ in q.backlog.values())
    if f.until < q.now:
        value -= s.scalar(select(func.count()).select_from(Ticket).where(
            *_tickets(f), Ticket.created_at >= f.until))
        value += s.scalar(select(func.count()).select_from(Ticket).where(
            *done, or_(Ticket.resolved_at >= f.until,
                       and_(Ticket.resolved_at.is_(None), Ticket.closed_at >= f.until))))
    created: dict[str, int] = {}
    for (period, *_), n in q.created.items():
        created[period] = created.get(period, 0) + n
    gone = _per_bucket(s, q.sql.bucket(left, q.unit), [*done, or_(
        and_(Ticket.resolved_at >= f.since, Ticket.resolved_at < f.until),
        and_(Ticket.resolved_at.is_(None), Ticket.closed_at >= f.since,
             Ticket.closed_at < f.until))])
    rows = []
    for label in reversed(bucket_labels(f, q.unit)):
        rows.append([label, max(value, 0)])
        value += gone.get(label, 0) - created.get(label, 0)
    return ["period", "open_at_end"], rows[::-1]


def _per_bucket(s: Session, bucket, where: list) -> dict[str, int]:
    inner = select(bucket.label("period")).where(*where).subquery()
    return {p: int(n) for p, n in s.execute(
        select(inner.c.period, func.count()).group_by(inner.c.period))}


def _volume(dimension: int):
    """New tickets per bucket, one column per value of a dimension of ``Figures.created``
    (1: category, 2: service, 3: channel), largest first."""
    def build(q: Figures):
        found: dict[tuple[str, str], int] = {}
        totals: dict[str, int] = {}
        for group, n in q.created.items():
            period, key = group[0], group[dimension]
            found[period, key] = found.get((period, key), 0) + n
            totals[key] = totals.get(key, 0) + n
        keys = sorted(totals, key=lambda x: (-totals[x], x))
        shown = keys if len(keys) <= MAX_SERIES else keys[:MAX_SERIES - 1]
        other = keys[len(shown):]
        rows = []
        for label in bucket_labels(q.f, q.unit):
            row = [label, *[found.get((label, key), 0) for key in shown]]
            if other:
                row.append(sum(found.get((label, key), 0) for key in other))
            rows.append(row)
        return ["period", *shown, *(["other"] if other else [])], rows
    return build


def _groups(q: Figures):
    """Ready tasks now (workload) and tasks completed in the period (throughput) per group,
    with the mean hours from a task's creation to its completion."""
    def query(*columns):
        query = select(Task.group_key, *columns).where(Task.for_requester.is_(False),
                                                       Task.group_key.is_not(None))
        ticket_where = _tickets(q.f, group=False)
        if ticket_where:
            query = query.join(Ticket, Task.ticket_id == Ticket.id).where(*ticket_where)
        if q.f.group is not None:
            query = query.where(Task.group_key == q.f.group)
        return query.group_by(Task.group_key)

    ready = {g: int(n) for g, n in q.s.execute(query(func.count()).where(Task.state == "ready"))}
    done = {g: (int(n), _float(h)) for g, n, h in q.s.execute(
        query(func.count(), func.avg(q.sql.hours(Task.created_at, Task.completed_at))).where(
            Task.state.not_in(NOT_DONE_TASKS), Task.completed_at >= q.f.since,
            Task.completed_at < q.f.until))}
    rows = [[g, ready.get(g, 0), *done.get(g, (0, None))] for g in sorted(set(ready) | set(done))]
    return ["group", "ready_now", "completed", "mean_hours"], rows


def _fulfilment(q: Figures):
    """Requests resolved in the period (rejected ones are never resolved), per item."""
    per_item, _ = q.sql.stats(q.s, Ticket.item_key, q.ttr,
                              [*_resolved(q.f), unindexed(Ticket.kind) == "request"])
    return (["item", "fulfilled", "mean_hours", "median_hours"],
            [[item or "none", row["count"], row["mean"], row["median"]]
             for item, row in sorted(per_item.items(), key=lambda kv: kv[0] or "")])


def _approvals(q: Figures):
    """Approval tasks decided in the period, per item: how many, how many approved (the
    request was not rejected), and hours from the task's creation to the decision."""
    where = [*_tickets(q.f), Task.name == "approve", Task.state.not_in(NOT_DONE_TASKS),
             Task.completed_at >= q.f.since, Task.completed_at < q.f.until]
    per_item, _ = q.sql.stats(
        q.s, Ticket.item_key, q.sql.hours(Task.created_at, Task.completed_at), where,
        {"approved": case((Ticket.status != "rejected", 1), else_=0)},
        select_from=Task.__table__.join(Ticket.__table__, Task.ticket_id == Ticket.id))
    return (["item", "decided", "approved", "mean_hours", "median_hours"],
            [[item or "none", row["count"], row["approved"], row["mean"], row["median"]]
             for item, row in sorted(per_item.items(), key=lambda kv: kv[0] or "")])


_BUILDERS = {
    "kpis": _kpi_rows,
    "resolution_time": _resolution_time,
    "first_contact": _first_contact,
    "escalation": _escalation,
    "reopen": _reopen,
    "sla": _sla,
    "backlog": _backlog,
    "backlog_trend": _backlog_trend,
    "volume_category": _volume(1),
    "volume_service": _volume(2),
    "volume_channel": _volume(3),
    "groups": _groups,
    "fulfilment": _fulfilment,
    "approvals": _approvals,
}
