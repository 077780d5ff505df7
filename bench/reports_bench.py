"""Section ``reports``: the KPI API and the /reports page at each generated size.

Fresh databases per size, generated like the ``scale`` section's (``guichet demo-data
--tickets N``; PostgreSQL at every size, SQLite at the smallest), then every request
below once per round, rounds interleaved across sizes; medians of rounds are reported.
The default period is the 30 days up to now; "a year" asks for the 365 days before now.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from .common import (
    Section,
    create_database,
    drop_database,
    median,
    percentile,
    pg_available,
    ready_desk,
    scratch,
)
from .scale_bench import _generate, _short

REQUESTS = 10  # per request kind, size and round
WARMUP = 3
BUDGET = 30.0  # seconds per request kind and size at most, over all rounds
YEAR_AGO = (datetime.now(UTC) - timedelta(days=365)).date().isoformat()
QUERIES = [
    ("api", "GET /api/v1/reports/kpis (30 days)", "/api/v1/reports/kpis"),
    ("api_year", "GET /api/v1/reports/kpis (a year)", f"/api/v1/reports/kpis?since={YEAR_AGO}"),
    ("api_filtered", "GET /api/v1/reports/kpis (a year, incidents, version 1)",
     f"/api/v1/reports/kpis?since={YEAR_AGO}&kind=incident&process_version=1"),
    ("page", "GET /reports: every chart (30 days)", "/reports"),
    ("page_year", "GET /reports: every chart (a year)", f"/reports?since={YEAR_AGO}"),
    ("csv", "GET /reports/backlog_trend.csv (a year)",
     f"/reports/backlog_trend.csv?since={YEAR_AGO}"),
]


def run(section: Section, args) -> None:
    sizes = sorted(args.sizes)
    problem = pg_available()
    targets: list[tuple[str, int, str]] = []
    generation, created = [], []
    try:
        if problem is None:
            for size in sizes:
                name = f"guichet_bench_reports_{size}"
                url = create_database(name)
                created.append(name)
                ready_desk(url, alembic=True).close()
                generation.append(["postgres", size, _generate(url, size)[0]])
                targets.append(("postgres", size, url))
        else:
            section.notes.append(f"PostgreSQL skipped: {problem}")
        if not args.no_sqlite_scale:
            url = f"sqlite:///{scratch() / 'reports.db'}"
            ready_desk(url, alembic=True).close()
            generation.append(["sqlite", sizes[0], _generate(url, sizes[0])[0]])
            targets.append(("sqlite", sizes[0], url))
        results = _measure(targets, args.rounds, section)
    finally:
        for name in created:
            drop_database(name)
    section.table("generation with `guichet demo-data --tickets N` (fresh database each)",
                  ["database", "tickets", "seconds"], generation)
    names = list(results)
    for stat in ("p50", "p95"):
        section.table(
            f"{stat} latency in ms, Flask test client in process as max ({REQUESTS} requests "
            f"per round, median of {args.rounds} interleaved rounds)",
            ["request"] + [f"{db} {_short(n)}" for db, n in names],
            [[label] + [results[name][key][stat] if results[name].get(key) else None
                        for name in names] for key, label, _ in QUERIES])
    section.data = {"generation": generation,
                    "latency": {f"{db} {n}": r for (db, n), r in results.items()}}


class _Client:
    """A generated database, its app, and max signed in to the API and to the pages."""

    def __init__(self, url: str) -> None:
        from engine import ServiceDesk
        from web import create_app

        self.desk = ServiceDesk(url)
        app = create_app({"TESTING": True, "SECRET_KEY": "guichet-bench",
                          "WTF_CSRF_ENABLED": False, "SESSION_COOKIE_SECURE": False},
                         desk=self.desk)
        self.client = app.test_client()
        r = self.client.post("/api/v1/token", json={"username": "max", "password": "demo"})
        if r.status_code != 200:
            raise RuntimeError(f"cannot sign in as max: {r.status_code} {r.get_json()}")
        self.headers = {"Authorization": f"Bearer {r.get_json()['token']}"}
        r = self.client.post("/login", data={"username": "max", "password": "demo"})
        if r.status_code != 302:
            raise RuntimeError(f"cannot sign in to the pages as max: {r.status_code}")

    def get(self, path: str) -> tuple[int, float]:
        began = time.perf_counter()
        response = self.client.get(path, headers=self.headers if path.startswith("/api/")
                                   else {})
        ms = (time.perf_counter() - began) * 1000
        return response.status_code, ms


def _measure(targets, rounds: int, section: Section) -> dict:
    clients = {(db, size): _Client(url) for db, size, url in targets}
    samples = {(name, key): [] for name in clients for key, _, _ in QUERIES}
    spent = dict.fromkeys(samples, 0.0)
    errors: dict[tuple, str] = {}
    try:
        for client in clients.values():
            for _, _, path in QUERIES:
                for _ in range(WARMUP):
                    client.get(path)
        for _ in range(rounds):
            for name, client in clients.items():
                for key, _, path in QUERIES:
                    if spent[name, key] > BUDGET:
                        continue
                    times = []
                    for _ in range(REQUESTS):
                        status, ms = client.get(path)
                        times.append(ms)
                        spent[name, key] += ms / 1000
                        if status != 200:
                            errors.setdefault((name, key), f"{path}: {status}")
                    samples[name, key].append(times)
    finally:
        for client in clients.values():
            client.desk.close()
    for (name, key), error in errors.items():
        section.notes.append(f"{name[0]} {name[1]:,} {key}: error, first: {error}")
    return {name: {key: {"p50": median(percentile(t, 50) for t in samples[name, key]),
                         "p95": median(percentile(t, 95) for t in samples[name, key]),
                         "rounds": len(samples[name, key])} if samples[name, key] else None
                   for key, _, _ in QUERIES} for name in clients}
