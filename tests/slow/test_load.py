"""Load test: 50 agents working for a minute against several gunicorn workers on PostgreSQL
(``GUICHET_LOAD_SECONDS``, ``GUICHET_LOAD_AGENTS`` change it). No error, no completion
lost or done twice, the ticket counts right, every saved workflow agrees with its tasks.
The run is ``bench.load_bench.load_run``: ``make bench`` reports the same figures."""

from __future__ import annotations

import os
import time

import pytest

from bench.common import render_table
from bench.load_bench import load_run

from .conftest import guichet, state_mismatches

pytestmark = pytest.mark.slow

SECONDS = float(os.environ.get("GUICHET_LOAD_SECONDS", "60"))
AGENTS = int(os.environ.get("GUICHET_LOAD_AGENTS", "50"))


def test_agents_under_load_lose_and_repeat_nothing(slow_database: str,
                                                   capsys: pytest.CaptureFixture):
    began = time.perf_counter()
    result = load_run(slow_database, AGENTS, SECONDS)
    mismatches = state_mismatches(slow_database)
    verify = guichet(slow_database, "audit", "verify")
    with capsys.disabled():
        print("\nload test:\n" + render_table(*result.table()))
        print(f"  {result.summary()}; {time.perf_counter() - began:.0f} s in all")
    problems = result.problems()
    assert not problems, "\n".join(problems)
    assert not mismatches, "\n".join(mismatches[:10])
    assert verify.returncode == 0, verify.stdout + verify.stderr
