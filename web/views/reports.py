"""Reports: the service desk's KPIs with charts, for managers and auditors.

Charts are SVG drawn on the server (no script: the page works under the strict CSP); the
geometry is computed here, the template only writes it out. Every chart's numbers download
as CSV with the same filters (``/reports/NAME.csv?...``).
"""

from __future__ import annotations

import csv
import io
import math
from typing import Any

from flask import Blueprint, Response, abort, render_template, request

from engine import NotFound, ValidationFailed
from engine import reports as rules
from engine.dto import KpiSummary, ReportTable

from ..facade import desk
from .common import PRIORITIES, error_page, require_login, require_roles

bp = Blueprint("reports", __name__, url_prefix="/reports")
bp.before_request(require_login)

READERS = ("manager", "auditor")
KINDS = [("incident", "Incidents"), ("request", "Requests")]
# What each chart shows, in one sentence (the README says the same).
DEFINITIONS = {
    "kpis": "The headline figures of the period, overall and per priority.",
    "resolution_time": "Hours from creation to resolution of the tickets resolved in the "
                       "period, mean and median; a reopened ticket counts until its last "
                       "resolution, rejected requests are never resolved.",
    "first_contact": "Share of the incidents resolved in each period that were resolved at "
                     "qualification: never escalated and never reopened.",
    "escalation": "Incidents resolved in the period by how many times they were escalated "
                  "to another group.",
    "reopen": "Share of the tickets resolved in the period that their requester reopened at "
              "least once.",
    "sla": "Response: tickets created in the period answered (first task done by staff, or "
           "resolved) by their response target, among those answered or past it. "
           "Resolution: tickets resolved in the period by their due date (pushed back while "
           "the clock is paused).",
    "backlog": "Tickets open now (new, in progress, pending approval, awaiting the "
               "requester) per priority, by age; resolved tickets awaiting confirmation are "
               "not open.",
    "backlog_trend": "Tickets open at the end of each period (approximate for tickets "
                     "reopened meanwhile).",
    "volume_category": "Tickets created in each period per category: the incident's "
                       "category, the catalog item of a request.",
    "volume_service": "Tickets created in each period per affected service (requests have "
                      "none).",
    "volume_channel": "Tickets created in each period per channel (portal, e-mail, phone, "
                      "API, monitoring).",
    "groups": "Tasks waiting in each group's queue now, and tasks the group completed in the "
              "period (with the mean hours from task creation to completion).",
    "fulfilment": "Hours from order to resolution of the requests resolved in the period, per "
                  "catalog item; rejected requests are left out.",
    "approvals": "Approval decisions taken in the period, per catalog item: how many, how many "
                 "approved, and the hours from the approval task's creation to the decision.",
}
# Chart of each table: kind, the columns drawn (label, column, unit).
CHARTS: dict[str, dict[str, Any]] = {
    "resolution_time": {"kind": "bars", "unit": "h",
                        "series": [("Mean", "mean_hours"), ("Median", "median_hours")]},
    "first_contact": {"kind": "bars", "unit": "%", "series": [("First contact", "rate")]},
    "escalation": {"kind": "bars", "unit": "", "series": [("Incidents", "incidents")]},
    "reopen": {"kind": "bars", "unit": "%", "series": [("Reopened", "rate")]},
    "sla": {"kind": "bars", "unit": "%", "series": [("Response", "response_rate"),
                                                    ("Resolution", "resolution_rate")]},
    "backlog": {"kind": "stacked", "unit": "", "series": "columns", "skip": ("overdue",)},
    "backlog_trend": {"kind": "line", "unit": "", "series": [("Open", "open_at_end")]},
    "volume_category": {"kind": "stacked", "unit": "", "series": "columns"},
    "volume_service": {"kind": "stacked", "unit": "", "series": "columns"},
    "volume_channel": {"kind": "stacked", "unit": "", "series": "columns"},
    "groups": {"kind": "bars", "unit": "", "series": [("Waiting now", "ready_now"),
                                                      ("Completed in the period", "completed")]},
    "fulfilment": {"kind": "bars", "unit": "h",
                   "series": [("Mean", "mean_hours"), ("Median", "median_hours")]},
    "approvals": {"kind": "bars", "unit": "h",
                  "series": [("Mean", "mean_hours"), ("Median", "median_hours")]},
}
SECTIONS = [
    ("Resolution", ["resolution_time", "sla", "first_contact", "escalation", "reopen"]),
    ("Backlog", ["backlog", "backlog_trend"]),
    ("Volumes", ["volume_category", "volume_service", "volume_channel"]),
    ("Work and requests", ["groups", "fulfilment", "approvals"]),
]
WIDTH, HEIGHT = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 16, 44


@bp.get("")
def index():
    actor = require_roles(*READERS)
    values = {name: (request.args.get(name) or "").strip() for name in rules.FILTERS}
    report, errors = None, {}
    try:
        report = desk().report(actor, rules.parse_filters(request.args))
    except ValidationFailed as err:
        errors = err.errors or {"_": err.message}
    options = _options()
    names = {key: label for name in ("service", "group") for key, label in options[name]}
    names["none"] = "None"
    charts = {}
    if report is not None:
        charts = {name: chart(table, report.bucket, names)
                  for name, table in report.tables.items() if name in CHARTS}
    return render_template(
        "reports.html", report=report, k=report.kpis if report else None, charts=charts,
        errors=errors, values=values, sections=SECTIONS, definitions=DEFINITIONS,
        options=options, searched={n: v for n, v in values.items() if v},
        filtered=any(v for n, v in values.items() if n not in ("since", "until")),
    ), (422 if errors else 200)


@bp.get("/<name>.csv")
def download(name: str):
    """One chart's numbers as CSV, for the same filters as the page."""
    actor = require_roles(*READERS)
    if name not in rules.CHARTS:
        abort(404)
    try:
        report = desk().report(actor, rules.parse_filters(request.args), [name])
    except ValidationFailed as err:
        details = "; ".join(f"{k}: {v}" for k, v in sorted(err.errors.items()))
        return error_page(422, f"These numbers cannot be exported. {details}")
    f = report.filters
    filename = f"{name}-{f.since:%Y%m%d}-{f.until:%Y%m%d}.csv"
    return Response(csv_text(report.tables[name]), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def csv_text(table: ReportTable) -> str:
    """The table as CSV: a header, then rows; rates as fractions, figures to 4 decimals."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(table.columns)
    for row in table.rows:
        writer.writerow(["" if v is None else round(v, 4) if isinstance(v, float) else v
                         for v in row])
    return out.getvalue()


def _options() -> dict[str, list[tuple[str, str]]]:
    versions: set[int] = set()
    for key in ("incident", "service_request"):
        try:
            versions |= {v.version for v in desk().versions(key)}
        except NotFound:  # not deployed yet
            continue
    return {
        "kind": KINDS,
        "service": [(s.key, s.name) for s in desk().services()],
        "group": [(g.key, g.name) for g in desk().groups()],
        "priority": PRIORITIES,
        "process_version": [(str(v), f"Version {v}") for v in sorted(versions)],
    }


# -- JSON (the API answer) ----------------------------------------------------------------


def kpis_json(k: KpiSummary) -> dict[str, Any]:
    """The KPIs as ``GET /api/v1/reports/kpis`` answers them (CONTRACT.md)."""
    f = k.filters
    return {
        "since": f.since.isoformat(), "until": f.until.isoformat(),
        "filters": {"kind": f.kind, "service": f.service, "group": f.group,
                    "priority": f.priority, "process_version": f.process_version},
        "created": k.created, "resolved": k.resolved,
        "mttr_hours": _rounded(k.mttr_hours, 3),
        "median_ttr_hours": _rounded(k.median_ttr_hours, 3),
        "mttr_hours_overall": _round(k.mttr_hours_overall, 3),
        "median_ttr_hours_overall": _round(k.median_ttr_hours_overall, 3),
        "fcr_rate": _round(k.fcr_rate), "escalation_rate": _round(k.escalation_rate),
        "escalation_depth": _round(k.escalation_depth, 3), "reopen_rate": _round(k.reopen_rate),
        "sla_compliance": _round(k.sla_compliance),
        "sla_response_compliance": _round(k.sla_response_compliance),
        "sla_by_priority": {name: _rounded(values) for name, values in k.sla_by_priority.items()},
        "backlog": k.backlog, "backlog_unprioritized": k.backlog_unprioritized,
        "backlog_overdue": k.backlog_overdue, "volume": k.volume,
    }


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def _rounded(values: dict[str, float | None], digits: int = 4) -> dict[str, float | None]:
    return {key: _round(value, digits) for key, value in values.items()}


# -- charts -------------------------------------------------------------------------------


def chart(table: ReportTable, bucket: str = "day",
          names: dict[str, str] | None = None) -> dict[str, Any]:
    """The SVG geometry of a table's chart: bars (grouped or stacked) or a line.

    ``names`` gives the label shown for a key (services, groups)."""
    names = names or {}
    spec = CHARTS[table.name]
    index = {c: i for i, c in enumerate(table.columns)}
    if spec["series"] == "columns":
        series = [(names.get(c, c), c) for c in table.columns[1:]
                  if c not in spec.get("skip", ())]
    else:
        series = spec["series"]
    labels = [names.get(str(row[0]), str(row[0])) for row in table.rows]
    values = [[row[index[column]] for row in table.rows] for _, column in series]
    percent = spec["unit"] == "%"
    if spec["kind"] == "line":
        drawn = _line(labels, values[0], bucket)
    else:
        drawn = _bars(labels, values, spec["kind"] == "stacked", percent, bucket)
    drawn.update(
        name=table.name, title=table.title, unit=spec["unit"],
        legend=[(i, label) for i, (label, _) in enumerate(series)] if len(series) > 1 else [],
        # No data: every value None (a 0 % rate is data), or every count zero.
        empty=not any(v is not None and (percent or v) for column in values for v in column),
        columns=table.columns, rows=table.rows,
    )
    return drawn


def _scale(maximum: float, percent: bool) -> tuple[float, list[float]]:
    """A round top of the axis and its ticks."""
    if percent:
        return 1.0, [0, 0.25, 0.5, 0.75, 1.0]
    if maximum <= 0:
        return 1.0, [0, 1.0]
    rough = maximum / 4
    magnitude = 10 ** math.floor(math.log10(rough))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if rough <= m * magnitude)
    if step < 1 and maximum >= 1:
        step = 1.0  # counts: whole numbers
    ticks = math.ceil(maximum / step - 1e-9)
    return step * ticks, [step * i for i in range(ticks + 1)]


def _axis(top: float, ticks: list[float], percent: bool) -> list[dict[str, Any]]:
    plot = HEIGHT - TOP - BOTTOM
    return [{"y": round(TOP + plot - plot * t / top, 1), "label": number(t, "%" if percent
                                                                           else "")}
            for t in ticks]


def _short(label: str, bucket: str, room: int) -> str:
    """Dates without their year on the axis (the table and tooltips keep them whole)."""
    if bucket in ("day", "week") and len(label) == 10 and label[4] == "-":
        return label[5:]
    return label if len(label) <= room else label[:room - 1] + "…"


def _x_labels(labels: list[str], centers: list[float], bucket: str) -> list[dict[str, Any]]:
    every = max(1, math.ceil(len(labels) / 12))
    room = max(6, int((WIDTH - LEFT - RIGHT) / max(len(labels), 1) / 6.5))
    return [{"x": round(x, 1), "label": _short(label, bucket, room)}
            for i, (label, x) in enumerate(zip(labels, centers, strict=True)) if i % every == 0]


def _bars(labels: list[str], values: list[list[Any]], stacked: bool, percent: bool,
          bucket: str) -> dict[str, Any]:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    n = max(len(labels), 1)
    if stacked:
        highest = max((sum(v or 0 for v in column) for column in zip(*values, strict=True)),
                      default=0)
    else:
        highest = max((v or 0 for column in values for v in column), default=0)
    top, ticks = _scale(highest, percent)
    band = plot_w / n
    width = band * 0.75 / (1 if stacked else len(values))
    bars, centers, texts = [], [], []
    for i, label in enumerate(labels):
        x0 = LEFT + band * i + band * 0.125
        centers.append(LEFT + band * (i + 0.5))
        base = 0.0
        for s, column in enumerate(values):
            value = column[i]
            if value is None:
                continue
            height = plot_h * min(value / top, 1.0) if top else 0
            x = x0 if stacked else x0 + width * s
            y = TOP + plot_h - height - (plot_h * base / top if stacked else 0)
            bars.append({"x": round(x, 1), "y": round(y, 1), "w": round(max(width - 1, 1), 1),
                         "h": round(height, 1), "series": s,
                         "title": f"{label}: {number(value, '%' if percent else '')}"})
            if stacked:
                base += value
            elif len(labels) * len(values) <= 12 and value:
                texts.append({"x": round(x + width / 2, 1), "y": round(y - 4, 1),
                              "label": number(value, "%" if percent else "")})
        if stacked and base and len(labels) <= 12:
            texts.append({"x": round(x0 + width / 2, 1),
                          "y": round(TOP + plot_h - plot_h * base / top - 4, 1),
                          "label": number(base, "")})
    return {"kind": "bars", "width": WIDTH, "height": HEIGHT, "left": LEFT,
            "right": WIDTH - RIGHT, "bottom": HEIGHT - BOTTOM, "axis": _axis(top, ticks, percent),
            "bars": bars, "texts": texts, "x_labels": _x_labels(labels, centers, bucket)}


def _line(labels: list[str], values: list[Any], bucket: str) -> dict[str, Any]:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top, ticks = _scale(max((v or 0 for v in values), default=0), False)
    n = len(labels)
    step = plot_w / max(n - 1, 1)
    points = []
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        x = LEFT + step * i if n > 1 else LEFT + plot_w / 2
        y = TOP + plot_h - plot_h * (value or 0) / top
        points.append({"x": round(x, 1), "y": round(y, 1),
                       "title": f"{label}: {number(value or 0, '')}"})
    path = " ".join(f"{p['x']},{p['y']}" for p in points)
    area = (f"{points[0]['x']},{HEIGHT - BOTTOM} {path} {points[-1]['x']},{HEIGHT - BOTTOM}"
            if points else "")
    return {"kind": "line", "width": WIDTH, "height": HEIGHT, "left": LEFT,
            "right": WIDTH - RIGHT, "bottom": HEIGHT - BOTTOM, "axis": _axis(top, ticks, False),
            "points": points if n <= 62 else [], "path": path, "area": area,
            "x_labels": _x_labels(labels, [p["x"] for p in points], bucket)}


def number(value: Any, unit: str = "") -> str:
    """A figure as people read it: 67 %, 12.5 h, 1,204."""
    if value is None:
        return "—"
    if unit == "%":
        share = round(float(value) * 100, 1)
        return f"{share:.0f} %" if share.is_integer() else f"{share:.1f} %"
    value = round(value, 1) if abs(value) < 1000 else round(value)
    text = f"{value:,.1f}" if isinstance(value, float) and not value.is_integer() \
        else f"{int(value):,}"
    return f"{text} h" if unit == "h" else text


def unit_of(column: str, label: Any = "") -> str:
    """The unit of a table cell, from its column name or its row's label."""
    text = f"{column} {label if isinstance(label, str) else ''}"
    if "rate" in text or "targets met" in text:
        return "%"
    return "h" if "hours" in text else ""


@bp.app_template_filter("kpi")
def _kpi_filter(value: Any, unit: str = "") -> str:
    return number(value, unit)


@bp.app_template_filter("report_cell")
def _cell_filter(value: Any, column: str, label: Any = "") -> str:
    if isinstance(value, str):
        return value
    return number(value, unit_of(column, label))
