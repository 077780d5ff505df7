"""``python -m bench``: run the benchmark sections, print their tables, write JSON.

Sections: engine, loops, storage, http, load, scale, reports (``--only`` picks some).
PostgreSQL parts create and drop their own ``guichet_bench*`` databases on BENCH_PG_SERVER
(default postgresql://postgres@127.0.0.1:5432). Results: bench-results/latest.json and
a timestamped copy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from datetime import UTC, datetime
from importlib import metadata

from . import (
    engine_bench,
    http_bench,
    load_bench,
    loops_bench,
    reports_bench,
    scale_bench,
    storage_bench,
)
from .common import PG_SERVER, ROOT, Section, fmt, pg_version

SECTIONS = {
    "engine": ("bare engine vs naive whole-blob floor vs ServiceDesk facade", engine_bench),
    "loops": ("step cost after reopen/escalation loops (SQLite)", loops_bench),
    "storage": ("stored bytes per closed ticket", storage_bench),
    "http": ("simulated agents over HTTP (gunicorn, PostgreSQL)", http_bench),
    "load": ("agents for a minute, then every completion checked (gunicorn, PostgreSQL)",
             load_bench),
    "scale": ("queries at 10 k / 100 k / 1 M generated tickets", scale_bench),
    "reports": ("the KPI API and the /reports page at the same sizes", reports_bench),
}


def _sizes(text: str) -> list[int]:
    try:
        sizes = sorted({int(s.replace("_", "")) for s in text.split(",") if s.strip()})
    except ValueError as err:
        raise argparse.ArgumentTypeError("sizes are whole numbers, comma separated") from err
    if not sizes or sizes[0] < 100:
        raise argparse.ArgumentTypeError("give sizes of at least 100 tickets")
    return sizes


def _only(text: str) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown section(s) {unknown}; "
                                         f"choose from {', '.join(SECTIONS)}")
    return names


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="smaller runs: 10 k and 100 k tickets, 10 s of HTTP, fewer rounds")
    parser.add_argument("--sizes", type=_sizes,
                        help="ticket counts of the scale section (default 10000,100000,1000000; "
                             "--quick: 10000,100000)")
    parser.add_argument("--agents", type=int, default=50, help="simulated HTTP agents (50)")
    parser.add_argument("--http-seconds", type=float,
                        help="duration of the HTTP run and of its floor (20; --quick: 10)")
    parser.add_argument("--load-seconds", type=float,
                        help="duration of the load section's run (60; --quick: 20)")
    parser.add_argument("--rounds", type=int, help="interleaved repetitions where noise "
                                                   "matters (5; --quick: 3)")
    parser.add_argument("--only", type=_only, default=list(SECTIONS),
                        help=f"comma-separated sections among {', '.join(SECTIONS)}")
    parser.add_argument("--no-sqlite-scale", action="store_true",
                        help="skip the SQLite run at the smallest scale size")
    parser.add_argument("--out", default=str(ROOT / "bench-results"),
                        help="folder of the JSON results (bench-results/)")
    args = parser.parse_args(argv)
    args.sizes = args.sizes or ([10_000, 100_000] if args.quick else
                                [10_000, 100_000, 1_000_000])
    args.http_seconds = args.http_seconds or (10.0 if args.quick else 20.0)
    args.load_seconds = args.load_seconds or (20.0 if args.quick else 60.0)
    args.rounds = args.rounds or (3 if args.quick else 5)
    if args.agents < 3:
        parser.error("--agents must be at least 3 (desk, network, requester)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    started = datetime.now(UTC)
    began = time.perf_counter()
    load = os.getloadavg()
    print(f"Guichet benchmark, {started:%Y-%m-%d %H:%M} UTC: {', '.join(args.only)}"
          f"{' (quick)' if args.quick else ''}; {os.cpu_count()} CPUs, load average "
          f"{load[0]:.1f}", flush=True)
    if load[0] > 0.5 * (os.cpu_count() or 1):
        print("warning: the machine is busy; figures will be noisy (ratios less so: "
              "what they compare runs interleaved)", flush=True)
    sections: list[Section] = []
    for name in args.only:
        title, module = SECTIONS[name]
        section = Section(name, title)
        print(f"-- running {name} ...", flush=True)
        t0 = time.perf_counter()
        try:
            module.run(section, args)
        except Exception as err:
            section.error = f"{type(err).__name__}: {err}"
            section.data["traceback"] = traceback.format_exc()
            traceback.print_exc()
        section.seconds = time.perf_counter() - t0
        sections.append(section)
        print(section.render(), flush=True)
        print(flush=True)

    targets = [(s.name, t) for s in sections for t in s.targets]
    print("== targets")
    for name, t in targets:
        value = "n/a" if t.value is None else f"{fmt(t.value)}{t.unit}"
        print(f"  [{t.verdict():>7}] {name}: {t.name}: {value} "
              f"(target {t.op} {fmt(t.limit)}{t.unit})")
    failed = [s.name for s in sections if s.error]
    total = time.perf_counter() - began
    print(f"\ntotal {total / 60:.1f} min, load average now {os.getloadavg()[0]:.1f}"
          + (f"; sections that failed: {failed}" if failed else ""))
    _save(args, started, total, sections, load)
    return 1 if failed else 0


def _save(args, started: datetime, total: float, sections: list[Section],
          load: tuple[float, float, float]) -> None:
    out = {
        "started_at": started.isoformat(timespec="seconds"),
        "seconds": round(total, 1),
        "args": {k: v for k, v in vars(args).items() if k != "out"},
        "machine": {**_machine(), "load_average_start": load,
                    "load_average_end": os.getloadavg()},
        "sections": {s.name: s.as_json() for s in sections},
        "targets": [{"section": s.name, **t.as_json()} for s in sections for t in s.targets],
    }
    folder = os.path.abspath(args.out)
    os.makedirs(folder, exist_ok=True)
    text = json.dumps(out, indent=2, default=str)
    stamped = os.path.join(folder, f"bench-{started:%Y%m%d-%H%M%S}.json")
    for path in (os.path.join(folder, "latest.json"), stamped):
        with open(path, "w") as f:
            f.write(text)
    print(f"results: {os.path.relpath(stamped, os.getcwd())} (and latest.json)")


def _machine() -> dict:
    def git(*cmd: str) -> str | None:
        try:
            return subprocess.run(["git", *cmd], cwd=ROOT, capture_output=True, text=True,
                                  check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return None

    import sqlite3

    return {
        "cpus": os.cpu_count(), "platform": platform.platform(),
        "python": platform.python_version(),
        "spiffworkflow": metadata.version("SpiffWorkflow"),
        "sqlalchemy": metadata.version("SQLAlchemy"), "sqlite": sqlite3.sqlite_version,
        "postgresql": pg_version(), "postgresql_server": PG_SERVER.rsplit("@", 1)[-1],
        "git_commit": git("rev-parse", "--short", "HEAD"),
        "git_dirty": bool(git("status", "--porcelain")),
    }


if __name__ == "__main__":
    sys.exit(main())
