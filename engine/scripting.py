"""The script engine of Guichet: the sandbox, the service operators, and the clock.

Scripts and expressions see three time functions, all on the injected clock and all
taking and returning ISO 8601 text (process data must stay JSON):

- ``now()`` — the current time;
- ``add(when, duration, fraction=1)`` — ``when`` plus an ISO duration (or a fraction of
  it: ``add(reported_at, resolution_target, 0.75)`` is 75 % of the target);
- ``shift(when, since)`` — ``when`` pushed back by the time elapsed since ``since``
  (how a paused SLA clock resumes).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition

from .clock import Clock, utcnow
from .errors import SandboxError
from .sandbox import SandboxScriptEngine


def _instant(value: Any, name: str) -> datetime:
    if isinstance(value, datetime):
        return value
    try:
        return TimerEventDefinition.get_datetime(str(value))
    except (TypeError, ValueError) as err:
        raise SandboxError(f"{name} is not an ISO 8601 date and time: {value!r}") from err


def time_functions(clock: Clock) -> dict[str, Any]:
    """``now``, ``add`` and ``shift`` bound to ``clock``."""

    def now() -> str:
        return clock().isoformat()

    def add(when: Any, duration: str, fraction: float = 1) -> str:
        start = _instant(when, "the start")
        try:
            parsed = TimerEventDefinition.parse_iso_duration(str(duration))
            delta = TimerEventDefinition.get_timedelta_from_start(parsed, start)
        except Exception as err:
            raise SandboxError(f"not an ISO 8601 duration: {duration!r}") from err
        return (start + delta * float(fraction)).isoformat()

    def shift(when: Any, since: Any) -> str:
        return (_instant(when, "the date") + (clock() - _instant(since, "the pause"))).isoformat()

    return {"now": now, "add": add, "shift": shift}


class DeskScriptEngine(SandboxScriptEngine):
    """The sandboxed script engine, carrying the clock that timers and scripts read."""

    def __init__(self, services: dict[str, Any] | None = None, clock: Clock = utcnow) -> None:
        super().__init__(services)
        self.clock = clock
        self.functions = time_functions(clock)

    def evaluate(self, task, expression, external_context=None):
        return super().evaluate(task, expression, {**self.functions, **(external_context or {})})

    def execute(self, task, script, external_context=None):
        return super().execute(task, script, {**self.functions, **(external_context or {})})
