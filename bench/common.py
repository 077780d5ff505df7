"""What every section shares: statistics, tables, targets, benchmark databases."""

from __future__ import annotations

import atexit
import math
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher

ROOT = Path(__file__).resolve().parent.parent
PROCESSES = ROOT / "processes"
# The server the benchmark creates its own databases on (never the test suite's `test`).
PG_SERVER = os.environ.get("BENCH_PG_SERVER", "postgresql://postgres@127.0.0.1:5432")
DB_PREFIX = "guichet_bench"
# Argon2 at its cheapest for the benchmark's own users: sign-in cost is not measured.
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)


_SCRATCH: list[Path] = []


def scratch() -> Path:
    """A temporary folder for SQLite files and logs, removed when the benchmark ends."""
    path = Path(tempfile.mkdtemp(prefix="guichet-bench-"))
    if not _SCRATCH:
        atexit.register(lambda: [shutil.rmtree(p, ignore_errors=True) for p in _SCRATCH])
    _SCRATCH.append(path)
    return path


# -- statistics -------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summary_ms(seconds: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99/mean in milliseconds of durations given in seconds."""
    ms = [s * 1000 for s in seconds]
    return {"n": len(ms), "p50": percentile(ms, 50), "p95": percentile(ms, 95),
            "p99": percentile(ms, 99), "mean": statistics.fmean(ms)}


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


class Stopwatch:
    def __enter__(self) -> Stopwatch:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.start


# -- results ----------------------------------------------------------------------------------


@dataclass
class Target:
    name: str
    value: float | None
    limit: float
    op: str  # "<=" | ">=" | "<" | ">" | "=="
    unit: str = ""
    note: str = ""

    @property
    def met(self) -> bool | None:
        if self.value is None:
            return None
        return {"<=": self.value <= self.limit, ">=": self.value >= self.limit,
                "<": self.value < self.limit, ">": self.value > self.limit,
                "==": self.value == self.limit}[self.op]

    def verdict(self) -> str:
        met = self.met
        return "n/a" if met is None else ("met" if met else "NOT MET")

    def line(self) -> str:
        value = "n/a" if self.value is None else f"{fmt(self.value)}{self.unit}"
        note = f"  ({self.note})" if self.note else ""
        return (f"  target {self.name}: {value} {self.op} {fmt(self.limit)}{self.unit}"
                f" -> {self.verdict()}{note}")

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "op": self.op, "limit": self.limit,
                "unit": self.unit, "met": self.met, "note": self.note}


@dataclass
class Section:
    name: str
    title: str
    tables: list[tuple[str, list[str], list[list[Any]]]] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None

    def table(self, caption: str, header: list[str], rows: list[list[Any]]) -> None:
        self.tables.append((caption, header, rows))

    def target(self, *args: Any, **kwargs: Any) -> Target:
        t = Target(*args, **kwargs)
        self.targets.append(t)
        return t

    def render(self) -> str:
        out = [f"== {self.name}: {self.title} ({self.seconds:.0f} s)"]
        for caption, header, rows in self.tables:
            out.append(render_table(caption, header, rows))
        out += [t.line() for t in self.targets]
        out += [f"  note: {n}" for n in self.notes]
        if self.error:
            out.append(f"  ERROR: {self.error}")
        return "\n".join(out)

    def as_json(self) -> dict[str, Any]:
        return {
            "title": self.title, "seconds": round(self.seconds, 1), "error": self.error,
            "tables": [{"caption": c, "header": h, "rows": r} for c, h, r in self.tables],
            "targets": [t.as_json() for t in self.targets], "notes": self.notes,
            "data": self.data,
        }


def fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return {True: "yes", False: "no", None: "-"}[value]
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}" if abs(value) >= 0.1 else f"{value:.3f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def render_table(caption: str, header: list[str], rows: list[list[Any]]) -> str:
    cells = [header] + [[fmt(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = [f"  {caption}"] if caption else []
    for n, row in enumerate(cells):
        parts = [c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths,
                                                                                    strict=True))]
        lines.append("  | " + " | ".join(parts) + " |")
        if n == 0:
            lines.append("  |" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


# -- databases --------------------------------------------------------------------------------


def pg_url(database: str, sqlalchemy: bool = True) -> str:
    base = PG_SERVER.rstrip("/")
    if sqlalchemy and base.startswith("postgresql://"):
        base = "postgresql+psycopg://" + base[len("postgresql://"):]
    return f"{base}/{database}"


def _admin():
    import psycopg

    return psycopg.connect(pg_url("postgres", sqlalchemy=False), autocommit=True,
                           connect_timeout=5)


def pg_available() -> str | None:
    """None when the benchmark's PostgreSQL server answers, else why not."""
    try:
        with _admin() as conn:
            conn.execute("SELECT 1")
        return None
    except Exception as err:  # any failure means: skip the PostgreSQL parts
        return f"PostgreSQL at {PG_SERVER} is not reachable: {err}".splitlines()[0]


def pg_version() -> str | None:
    try:
        with _admin() as conn:
            return conn.execute("SHOW server_version").fetchone()[0]
    except Exception:
        return None


def _check_name(name: str) -> None:
    if not name.startswith(DB_PREFIX) or not name.replace("_", "").isalnum():
        raise ValueError(f"the benchmark only touches databases named {DB_PREFIX}*, not {name}")


def create_database(name: str) -> str:
    """(Re)create an empty benchmark database; returns its SQLAlchemy URL."""
    _check_name(name)
    with _admin() as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    return pg_url(name)


def drop_database(name: str) -> None:
    _check_name(name)
    with _admin() as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


# -- the service desk -------------------------------------------------------------------------


def ready_desk(url: str, alembic: bool = False):
    """A ServiceDesk on an empty database: schema, demo directory, processes deployed."""
    from engine import SYSTEM, ServiceDesk

    desk = ServiceDesk(url, hasher=FAST_HASHER)
    if alembic:
        desk.upgrade_schema()
    else:
        desk.create_schema()
    desk.seed_demo(PROCESSES)
    desk.deploy_folder(PROCESSES, SYSTEM)
    return desk
