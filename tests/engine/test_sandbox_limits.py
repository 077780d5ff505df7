"""Runaway scripts and expressions are stopped: steps, time, memory, sizes, recursion."""

from __future__ import annotations

import re
import time

import pytest

from engine import ProcessError, SandboxError, sandbox
from engine.sandbox import Limits, SandboxEnvironment, check
from tests.conftest import QUALIFY_RESOLVE

# Past the step budget, or past the 2 s deadline first on a loaded machine.
STEPS = r"ran more than 1,000,000 steps|ran longer than 2 s"
RUNAWAY = {
    "while True: pass": STEPS,
    "x = 'a' * 10**10": "would hold 10,000,000,000 items",
    "x = [0] * 10**9": "would hold 1,000,000,000 items",
    "x = 10**9 * [0]": "would hold 1,000,000,000 items",
    "x = 2 ** 10**8": "about 200,000,000 bits",
    "x = pow(2, 10**8)": "about 200,000,000 bits",
    "x = 1 << 10**9": "bits",
    "x = 2\nfor i in range(40):\n    x = x * x": "bits",
    "def f(n):\n    return f(n + 1)\nx = f(0)": "recursion went too deep",
    "f = lambda n: n and f(n - 1) + f(n - 1)\nx = f(60)": STEPS,
    "x = 'a'\nfor i in range(100):\n    x = x + x": "joined sequence",
    "x = 'a'\nfor i in range(100):\n    x += x": "joined sequence",
    "x = [1]\nfor i in range(100):\n    x.extend(x)": "the list",
    "x = '%0999999999d' % 1": "widths above 1000",
    "x = '%*d' % (10**9, 1)": "given by *",
    "x = 'a'.ljust(10**9)": "padded text",
    "x = 'a'.zfill(10**9)": "padded text",
    "x = 'ab'.replace('', 'c' * 999999)": "replaced text",
    "x = '\\t'.expandtabs(10**9)": "expanded text",
    "x = ('a' * 999999).join(['a', 'b', 'c'])": "joined text",
    "x = sum([[0] * 999] * 999, [])": "sum\\(\\) adds numbers",
    "x = sum([[0] * 999] * 2, [0] * 999999)": "sum\\(\\) adds numbers",
    "for i in range(999):\n    for j in range(999):\n        for k in range(999):\n"
    "            pass": STEPS,
    "x = [y for a in range(999) for b in range(999) for y in range(999)]": STEPS,
}


@pytest.mark.parametrize("script", RUNAWAY)
def test_runaway_scripts_are_stopped_with_a_clear_message(script):
    started = time.monotonic()
    with pytest.raises(SandboxError, match=RUNAWAY[script]):
        SandboxEnvironment().execute(script, {})
    assert time.monotonic() - started < 3


@pytest.mark.parametrize("expression", [
    "'a' * 10**10", "2 ** 10**8", "[x for x in range(999) for y in range(999) for z in range(9)]",
    "(lambda f: f(f))(lambda f: f(f))",
])
def test_runaway_expressions_are_stopped(expression):
    with pytest.raises(SandboxError, match=r"limit|stopped"):
        SandboxEnvironment().evaluate(expression, {})


@pytest.mark.parametrize("source", [
    "class A:\n    pass",
    "x = f'{1:>99999999}'",
    "w = 5\nx = f'{1:>{w}}'",
])
def test_classes_and_wide_or_computed_formats_are_refused_when_compiled(source):
    assert check(source, "exec")
    with pytest.raises(SandboxError):
        SandboxEnvironment().execute(source, {})


@pytest.mark.parametrize("name", ["SystemExit", "KeyboardInterrupt", "GeneratorExit",
                                  "BaseException"])
def test_scripts_cannot_raise_what_would_stop_the_process(name):
    """A NameError, an ordinary error that fails the step, not a SystemExit."""
    with pytest.raises(NameError):
        SandboxEnvironment().execute(f"raise {name}()", {})


def test_a_script_that_catches_the_stop_is_stopped_anyway():
    script = ("while True:\n    try:\n        while True:\n            pass\n"
              "    except:\n        pass")
    with pytest.raises(SandboxError, match="steps"):
        SandboxEnvironment(limits=Limits(steps=10_000)).execute(script, {})
    script = "try:\n    while True:\n        pass\nexcept:\n    done = 1"
    data: dict = {}
    with pytest.raises(SandboxError, match="steps"):
        SandboxEnvironment(limits=Limits(steps=10_000)).execute(script, data)
    assert "done" not in data


def test_limits_are_configurable_steps_time_and_memory():
    loops = "n = 0\nfor i in range(999):\n    for j in range(999):\n        n += 1"
    with pytest.raises(SandboxError, match="more than 5,000 steps"):
        SandboxEnvironment(limits=Limits(steps=5_000)).execute(loops, {})
    started = time.monotonic()
    with pytest.raises(SandboxError, match=r"longer than 0\.05 s"):
        SandboxEnvironment(limits=Limits(seconds=0.05, steps=10**9)).execute(
            "while True: pass", {})
    assert time.monotonic() - started < 1
    hog = "x = []\nfor i in range(999):\n    x.append('a' * 10**6)"
    with pytest.raises(SandboxError, match="more than 32 MiB of memory"):
        SandboxEnvironment(limits=Limits(memory=32 * 2**20)).execute(hog, {})
    data: dict = {}
    SandboxEnvironment().execute(loops.replace("range(999):\n        n", "range(200):\n        n"),
                                 data)  # ordinary loops fit the defaults
    assert data["n"] == 199_800


def test_ordinary_arithmetic_and_text_still_work():
    env = SandboxEnvironment()
    data = {"items": [1, 2], "name": "vpn"}
    env.execute("items += [3]\ntotal = sum(i * 2 for i in items) + 2 ** 10\n"
                "label = '%s-%03d' % (name, 7)\nline = ', '.join([name, 'mail']).upper()\n"
                "padded = f'{name:>6}'\nbig = 10 ** 100 % 7\nshifted = 1 << 10", data)
    assert data["items"] == [1, 2, 3] and data["total"] == 1036
    assert (data["label"], data["line"], data["padded"]) == ("vpn-007", "VPN, MAIL", "   vpn")
    assert data["big"] == 10 ** 100 % 7 and data["shifted"] == 1024


@pytest.mark.parametrize(("script", "reason"), [
    ("while True:\n    pass", STEPS),
    ("resolved_by = 'a' * 10**10", "would hold 10,000,000,000 items"),
    ("def f(n):\n    return f(n + 1)\nresolved_by = f(0)", "recursion went too deep"),
])
def test_a_runaway_script_task_fails_the_step_naming_the_element(desk, life, monkeypatch,
                                                                  script, reason):
    """Nothing is half-done: the step is rolled back and the ticket still waits."""
    ticket = life.report()
    definition = next(iter(desk.definitions._items.values()))
    monkeypatch.setattr(definition.spec.task_specs["record_resolution"], "script", script)
    with pytest.raises(ProcessError) as err:
        life.complete(ticket, "qualify", as_="sam", data=QUALIFY_RESOLVE)
    assert err.value.element == "record_resolution"
    assert "record_resolution" in err.value.message and re.search(reason, err.value.message)
    assert life.waits_on(ticket) == ["qualify"]
    assert life.ticket(ticket).status == "new"


def test_memory_is_measured_from_the_first_step_only(monkeypatch):
    """Reading the process's peak memory is a system call; gateway conditions and decision
    cells, evaluated by the dozen each step, take no step and must not pay for it."""
    reads = []
    monkeypatch.setattr(sandbox, "_peak_memory", lambda: reads.append(1) or 0)
    env = SandboxEnvironment()
    assert env.evaluate("priority in ('P1', 'P2') and impact == 'high'",
                        {"priority": "P1", "impact": "high"})
    assert reads == []
    env.execute("n = 0\nfor i in range(100):\n    n += i", {})
    assert reads  # a loop is measured
