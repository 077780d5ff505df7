"""Time: injected everywhere so tests move it instead of sleeping."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def after(start: datetime, iso_duration: str | None) -> datetime | None:
    """``start`` plus an ISO 8601 duration such as ``PT4H`` (None when absent or invalid)."""
    if not iso_duration or not isinstance(iso_duration, str):
        return None
    try:
        parsed = TimerEventDefinition.parse_iso_duration(iso_duration)
        delta = TimerEventDefinition.get_timedelta_from_start(parsed, start)
    except Exception:
        return None
    return start + delta


def instant(value: object) -> datetime | None:
    """An aware UTC datetime from ISO 8601 text (None when absent or invalid)."""
    if not value or not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


class FrozenClock:
    """A clock for tests and benchmarks: it only moves when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> datetime:
        self.now += timedelta(**kwargs)
        return self.now
