"""/reports and GET /api/v1/reports/kpis: who may read them, filters and their errors, the
charts under the strict CSP, and the CSV of each chart."""

from __future__ import annotations

import csv
import io
import re

import pytest

from tests.engine.test_reports import crafted_history
from tests.web.conftest import assert_csp_ready

from .test_pages import Pages, text_of

PERIOD = "since=2026-01-01&until=2026-01-04"  # until a date: up to its end (Jan 5, 00:00)
PRIORITIES = ["P1", "P2", "P3", "P4", "P5"]


@pytest.fixture
def pages(client) -> Pages:
    return Pages(client)


@pytest.fixture
def history(desk):
    return crafted_history(desk)


# -- the API ------------------------------------------------------------------------------


def test_kpis_answer_the_contract(api, history):
    r = api.get(f"/reports/kpis?{PERIOD}", as_="max")
    assert r.status_code == 200, r.json
    k = r.json
    assert (k["since"], k["until"]) == ("2026-01-01T00:00:00+00:00", "2026-01-05T00:00:00+00:00")
    assert k["mttr_hours"] == {"P1": 6.0, "P2": None, "P3": 78.0, "P4": 12.0, "P5": None}
    assert k["median_ttr_hours"]["P4"] == 12.0
    assert k["fcr_rate"] == 0.5
    assert k["reopen_rate"] == round(1 / 6, 4)
    assert k["sla_compliance"] == round(4 / 6, 4)
    assert k["sla_by_priority"]["resolution"]["P3"] == 0.0
    assert k["backlog"] == {"P1": 0, "P2": 1, "P3": 1, "P4": 1, "P5": 0}
    assert (k["backlog_unprioritized"], k["backlog_overdue"]) == (1, 2)
    assert k["volume"] == {"network": 4, "access": 2, "software": 2, "laptop": 1,
                           "password_reset": 1, "uncategorized": 1}
    for rate in ("fcr_rate", "reopen_rate", "sla_compliance", "sla_response_compliance",
                 "escalation_rate"):
        assert 0 <= k[rate] <= 1
    assert list(k["mttr_hours"]) == PRIORITIES and list(k["backlog"]) == PRIORITIES


def test_kpis_filters(api, history):
    r = api.get(f"/reports/kpis?{PERIOD}&kind=incident&service=vpn&priority=p1", as_="aude")
    assert r.status_code == 200, r.json
    assert r.json["filters"] == {"kind": "incident", "service": "vpn", "group": None,
                                 "priority": "P1", "process_version": None}
    assert (r.json["resolved"], r.json["mttr_hours"]["P1"]) == (2, 4.0)
    after = api.get(f"/reports/kpis?{PERIOD}&process_version=2", as_="max").json
    assert (after["resolved"], after["mttr_hours"]["P1"]) == (1, 10.0)
    network = api.get(f"/reports/kpis?{PERIOD}&group=network", as_="max").json
    assert network["resolved"] == 1
    default = api.get("/reports/kpis", as_="max").json  # the 30 days up to now
    assert (default["since"], default["until"]) == ("2025-12-06T09:01:00+00:00",
                                                    "2026-01-05T09:01:00+00:00")


def test_kpis_errors_name_the_field(api, history):
    r = api.get("/reports/kpis?since=yesterday&kind=problem&priority=P7&process_version=x",
                as_="max")
    assert r.status_code == 422
    assert set(r.json["errors"]) == {"since", "kind", "priority", "process_version"}
    assert "since" in r.json["error"]
    r = api.get("/reports/kpis?since=2026-02-01&until=2026-01-01", as_="max")
    assert (r.status_code, set(r.json["errors"])) == (422, {"until"})
    r = api.get("/reports/kpis?service=fax&group=nobody", as_="max")
    assert (r.status_code, set(r.json["errors"])) == (422, {"service", "group"})
    r = api.get("/reports/kpis?from=2026-01-01&sort=x", as_="max")
    assert r.status_code == 400
    assert set(r.json["errors"]) == {"from", "sort"} and "from" in r.json["error"]


def test_kpis_only_for_managers_and_auditors(api, desk):
    for user in ("max", "aude", "admin"):
        assert api.get("/reports/kpis", as_=user).status_code == 200, user
    for user in ("sam", "alice", "olga"):
        r = api.get("/reports/kpis?since=nonsense", as_=user)  # refused before validation
        assert r.status_code == 403, user
        assert "managers and auditors" in r.json["error"]
    assert api.get("/reports/kpis", as_=None).status_code == 401
    refused = desk.audit_events(desk.actor("aude"), action="action_refused")
    assert refused.total >= 3


def test_kpis_agree_with_real_lifecycles(api, life, clock):
    from tests.conftest import QUALIFY_RESOLVE

    ticket = life.report()
    clock.advance(hours=2)
    life.complete(ticket, "qualify", as_="sam", data=QUALIFY_RESOLVE)
    k = api.get("/reports/kpis", as_="max").json
    assert (k["resolved"], k["mttr_hours"]["P2"], k["fcr_rate"]) == (1, 2.0, 1.0)
    assert k["volume"] == {"network": 1}


# -- the page -----------------------------------------------------------------------------


def test_reports_page_draws_every_chart(pages, history):
    pages.as_("max")
    r = pages.get(f"/reports?{PERIOD}")
    assert r.status_code == 200
    html = r.text
    assert_csp_ready(html, "/reports")
    charts = re.findall(r'data-chart="([a-z_]+)"', html)
    assert charts == ["resolution_time", "sla", "first_contact", "escalation", "reopen",
                      "backlog", "backlog_trend", "volume_category", "volume_service",
                      "volume_channel", "groups", "fulfilment", "approvals"]
    assert html.count("<svg") == len(charts)
    assert html.count('<rect class="chart-bar') > 20
    assert "<polyline" in html  # the backlog trend
    text = text_of(html)
    assert "Mean time to resolve 20 h" in text and "median 8 h · 6 resolved" in text
    assert "First-contact resolution 50 %" in text
    assert "Open now 4 2 past their due date" in text
    assert 'aria-current="page">Reports</a>' in html
    for name in [*charts, "kpis"]:
        assert f'href="/reports/{name}.csv?' in html, name
    assert "<script" not in html.split("</head>")[1]


def test_reports_page_with_filters_keeps_them_and_shows_errors(pages, history):
    pages.as_("aude")
    html = pages.get(f"/reports?{PERIOD}&kind=request&priority=P4").text
    assert '<option value="request" selected>' in html
    assert '<option value="P4" selected>' in html
    assert "Mean time to resolve 12 h" in text_of(html)
    r = pages.get("/reports?since=soon&process_version=0")
    assert r.status_code == 422
    assert_csp_ready(r.text, "/reports?since=soon")
    assert re.search(r'data-error-for="since">Not a date', r.text)
    assert 'data-error-for="process_version"' in r.text
    empty = pages.get("/reports?since=2025-06-01&until=2025-06-02").text
    assert "Nothing to show for this period" in empty


def test_reports_page_only_for_managers_and_auditors(pages, desk):
    for user in ("max", "aude"):
        pages.as_(user)
        html = pages.get("/reports").text
        assert 'href="/reports"' in html, user
        assert_csp_ready(html, f"/reports as {user}")
    for user in ("sam", "alice", "olga"):
        pages.as_(user)
        assert pages.get("/reports").status_code == 403, user
        assert pages.get("/reports/backlog.csv").status_code == 403, user
        assert 'href="/reports"' not in pages.get("/status").text, user
    pages.client.delete_cookie("session")
    assert pages.get("/reports").status_code == 302  # to the sign-in page


def test_each_chart_downloads_as_csv(pages, history):
    pages.as_("max")
    r = pages.get(f"/reports/resolution_time.csv?{PERIOD}&kind=incident")
    assert r.status_code == 200 and r.mimetype == "text/csv"
    assert "resolution_time-20260101-20260105.csv" in r.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0] == ["priority", "resolved", "mean_hours", "median_hours"]
    assert rows[1] == ["P1", "3", "6.0", "6.0"] and rows[2] == ["P2", "0", "", ""]
    trend = list(csv.reader(io.StringIO(pages.get(f"/reports/backlog_trend.csv?{PERIOD}").text)))
    assert trend == [["period", "open_at_end"], ["2026-01-01", "3"], ["2026-01-02", "3"],
                     ["2026-01-03", "2"], ["2026-01-04", "5"]]
    kpis = list(csv.reader(io.StringIO(pages.get(f"/reports/kpis.csv?{PERIOD}").text)))
    assert kpis[0] == ["kpi", "all", *PRIORITIES]
    assert ["first-contact resolution rate", "0.5", "", "", "", "", ""] in kpis
    assert pages.get("/reports/nothing.csv").status_code == 404
    assert pages.get("/reports/backlog.csv?kind=problem").status_code == 422


def test_reports_are_read_only(pages, history):
    pages.as_("max")
    r = pages.client.post("/reports", data={"since": "2026-01-01"})
    assert r.status_code in (400, 405)  # no form posts here (CSRF refuses it first)


# -- the chart geometry -------------------------------------------------------------------


def test_bar_heights_are_proportional_and_axes_round():
    from engine.dto import ReportTable
    from web.views.reports import BOTTOM, HEIGHT, TOP, chart, number

    table = ReportTable("resolution_time", "t", ["priority", "resolved", "mean_hours",
                                                 "median_hours"],
                        [["P1", 2, 46.0, 23.0], ["P2", 0, None, None]])
    drawn = chart(table)
    assert [t["label"] for t in drawn["axis"]] == ["0", "20", "40", "60"]
    mean, median = drawn["bars"]
    plot = HEIGHT - TOP - BOTTOM
    assert (mean["h"], median["h"]) == (round(plot * 46 / 60, 1), round(plot * 23 / 60, 1))
    assert mean["y"] + mean["h"] == HEIGHT - BOTTOM  # bars stand on the axis
    assert [label for _, label in drawn["legend"]] == ["Mean", "Median"]
    assert not drawn["empty"]

    stacked = chart(ReportTable("backlog", "t", ["priority", "< 1 day", "1-3 days", "overdue"],
                                [["P1", 3, 1, 4]]))
    low, high = stacked["bars"]
    assert high["y"] + high["h"] == low["y"]  # the second age sits on the first
    assert stacked["texts"][0]["label"] == "4"  # the total, not the overdue column

    rates = chart(ReportTable("reopen", "t", ["priority", "resolved", "reopened", "rate"],
                              [["P1", 3, 0, 0.0], ["P2", 0, 0, None]]))
    assert not rates["empty"] and rates["axis"][-1]["label"] == "100 %"
    assert (number(0.6667, "%"), number(0.5, "%"), number(12.04, "h"), number(1204)) == (
        "66.7 %", "50 %", "12 h", "1,204")
