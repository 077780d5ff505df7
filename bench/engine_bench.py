"""Section ``engine``: bare SpiffWorkflow (the ceiling), the naive whole-blob floor and the
ServiceDesk facade, on SQLite and PostgreSQL, all running the same incident lifecycle.

Rounds are interleaved (each round runs every variant once) so that a burst of load on
the machine hits all variants alike instead of one of them."""

from __future__ import annotations

from . import lifecycle as lc
from .common import (
    Section,
    create_database,
    drop_database,
    median,
    pg_available,
    pg_url,
    ready_desk,
    scratch,
    summary_ms,
)

LIMIT = 1.5  # a persisted step costs at most 1.5x the naive floor


def run(section: Section, args) -> None:
    rounds = args.rounds
    lifecycles = 20 if args.quick else 40
    bare_lifecycles = 100 if args.quick else 200
    tmp = scratch()
    pg_problem = pg_available()
    runners, closers = {}, []

    runners["bare"] = (lambda n: lc.run_bare(n), bare_lifecycles)
    store = lc.SqliteStore(lc.Bare(), str(tmp / "floor.db"))
    closers.append(store.close)
    runners["floor sqlite"] = (lambda n: lc.run_naive(store, n), lifecycles)
    desk = ready_desk(f"sqlite:///{tmp / 'facade.db'}")
    closers.append(desk.close)
    facade = lc.Facade(desk)
    runners["facade sqlite"] = (lambda n: lc.run_facade(facade, n), lifecycles)
    if pg_problem is None:
        create_database("guichet_bench_floor")
        closers.append(lambda: drop_database("guichet_bench_floor"))
        pg_store = lc.PostgresStore(lc.Bare(), pg_url("guichet_bench_floor", sqlalchemy=False))
        closers.append(pg_store.close)
        runners["floor postgres"] = (lambda n: lc.run_naive(pg_store, n), lifecycles)
        url = create_database("guichet_bench_facade")
        closers.append(lambda: drop_database("guichet_bench_facade"))
        pg_desk = ready_desk(url)
        closers.append(pg_desk.close)
        pg_facade = lc.Facade(pg_desk)
        runners["facade postgres"] = (lambda n: lc.run_facade(pg_facade, n), lifecycles)
    else:
        section.notes.append(f"PostgreSQL rows skipped: {pg_problem}")
    try:
        for runner, n in runners.values():  # warm-up: caches, connections, JIT of nothing
            runner(max(5, n // 10))
        per_round: dict[str, list[dict]] = {name: [] for name in runners}
        for _ in range(rounds):
            for name, (runner, n) in runners.items():
                steps, wall = runner(n)
                per_round[name].append({"ms_per_step": 1000 * sum(steps) / len(steps),
                                        "lifecycles_per_s": n / wall,
                                        "p50": summary_ms(steps)["p50"],
                                        "p95": summary_ms(steps)["p95"]})
    finally:
        for close in reversed(closers):
            close()
    section.notes.append(
        f"{rounds} interleaved rounds; per round {lifecycles} lifecycles persisted, "
        f"{bare_lifecycles} bare; 4 user steps per lifecycle; figures are medians of rounds")
    results = {name: _medians(r) for name, r in per_round.items()}
    bare = results["bare"]
    rows = []
    for name, r in results.items():
        floor = results.get(name.replace("facade", "floor")) if name.startswith("facade") else None
        rows.append([
            name, r["p50"], r["p95"], r["ms_per_step"], r["steps_per_s"], r["lifecycles_per_s"],
            r["ms_per_step"] / bare["ms_per_step"],
            (r["ms_per_step"] / floor["ms_per_step"]) if floor else None,
        ])
    section.table("per user step (ms); ratios of ms per step", [
        "run", "p50 ms", "p95 ms", "ms/step", "steps/s", "lifecycles/s", "x bare", "x floor",
    ], rows)
    for backend in ("sqlite", "postgres"):
        facade_r, floor_r = results.get(f"facade {backend}"), results.get(f"floor {backend}")
        section.target(f"persisted step on {backend} vs naive whole-blob floor",
                       facade_r["ms_per_step"] / floor_r["ms_per_step"]
                       if facade_r and floor_r else None,
                       LIMIT, "<=", "x", note="mean ms per step, facade / floor, same run")
    section.data = results


def _medians(per_round: list[dict]) -> dict:
    ms_per_step = median(r["ms_per_step"] for r in per_round)
    return {
        "p50": median(r["p50"] for r in per_round), "p95": median(r["p95"] for r in per_round),
        "ms_per_step": ms_per_step, "steps_per_s": 1000 / ms_per_step,
        "lifecycles_per_s": median(r["lifecycles_per_s"] for r in per_round),
        "rounds": per_round,
    }
