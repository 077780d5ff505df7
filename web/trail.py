"""The audit trail's search filters and exports, shared by the API and the auditor pages."""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from flask import Response, stream_with_context

from engine import Actor, AuditEventInfo

from . import serialize as js

# The query arguments of a search, as the API and the /audit page name them.
TEXT_FILTERS = ("ticket", "actor", "action", "process")
FILTERS = (*TEXT_FILTERS, "version", "since", "until")
CSV_COLUMNS = ("seq", "at", "actor", "action", "ticket", "task", "process_key",
               "process_version", "data", "hash")
INSTANT_HELP = "Use a date (2026-01-05) or a date and time (2026-01-05T09:00, UTC unless an " \
               "offset such as +02:00 is given)."


def read_only(actor: Actor | None) -> bool:
    """Auditors read everything and change nothing (admins hold every right)."""
    return bool(actor and actor.roles and actor.roles <= {"auditor"})


def parse_instant(value: str, end: bool = False) -> datetime:
    """An aware datetime from ISO 8601 text; naive means UTC.

    A date alone covers the whole day: its start, or with ``end`` the start of the next
    day (the engine's ``until`` is exclusive).
    """
    text = value.strip()
    if len(text) == 10:
        day = date.fromisoformat(text)
        if end:
            day += timedelta(days=1)
        return datetime.combine(day, time(), tzinfo=UTC)
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_filters(args: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """(the engine's keyword filters, errors by argument name) from a query string.

    Empty arguments are ignored; the keys of the result are those of
    ``ServiceDesk.audit_events`` (``actor`` becomes ``actor_name``).
    """
    filters: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name in TEXT_FILTERS:
        value = (args.get(name) or "").strip()
        if value:
            filters["actor_name" if name == "actor" else name] = value[:200]
    version = (args.get("version") or "").strip()
    if version:
        if version.isascii() and version.isdigit() and 1 <= int(version) <= 1_000_000:
            filters["version"] = int(version)
        else:
            errors["version"] = "Must be a whole number, 1 or more."
    for name in ("since", "until"):
        value = (args.get(name) or "").strip()
        if not value:
            continue
        try:
            filters[name] = parse_instant(value, end=name == "until")
        except (ValueError, OverflowError):
            errors[name] = f"Not a date: {value[:40]!r}. {INSTANT_HELP}"
    if not errors and "since" in filters and "until" in filters \
            and filters["until"] <= filters["since"]:
        errors["until"] = "Must come after the start of the period."
    return filters, errors


def query_args(args: Mapping[str, str]) -> dict[str, str]:
    """The non-empty search arguments, as typed (to rebuild links: export, pages)."""
    return {name: args[name].strip() for name in FILTERS if (args.get(name) or "").strip()}


def primed(events: Iterable[AuditEventInfo]) -> Iterator[AuditEventInfo]:
    """``events`` with the first one already read: a refusal or a bad filter is raised
    here, before a streamed answer has sent its status line."""
    iterator = iter(events)
    try:
        first = next(iterator)
    except StopIteration:
        return iter(())
    return itertools.chain([first], iterator)


def pretty_json(value: Any) -> str:
    """Event data as an auditor reads it: indented JSON, keys sorted, text as typed."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, indent=2, default=str)


def csv_row(event: AuditEventInfo) -> list[Any]:
    process = event.process
    return [event.seq, js.iso(event.at), event.actor, event.action, event.ticket or "",
            event.task or "", process.key if process else "", process.version if process else "",
            json.dumps(event.data, ensure_ascii=False, sort_keys=True, separators=(",", ":")),
            event.hash]


def csv_lines(events: Iterable[AuditEventInfo], batch: int = 500) -> Iterator[str]:
    """The CSV export: a header, then one row per event (RFC 4180, CRLF line ends)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for count, event in enumerate(events, start=1):
        writer.writerow(csv_row(event))
        if count % batch == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def json_chunks(events: Iterable[AuditEventInfo], batch: int = 500) -> Iterator[str]:
    """The JSON export, ``{"items": [...], "total": N}``, written as the events come."""
    parts = ['{"items": [']
    total = 0
    for total, event in enumerate(events, start=1):
        parts.append(("," if total > 1 else "") + "\n"
                     + json.dumps(js.event(event), ensure_ascii=False))
        if total % batch == 0:
            yield "".join(parts)
            parts = []
    parts.append(f'\n], "total": {total}}}\n')
    yield "".join(parts)


def export_name(filters: Mapping[str, Any], extension: str) -> str:
    """A file name saying what was exported: ``audit-INC-000001.csv``, ``audit-events.json``."""
    ticket = filters.get("ticket")
    safe = "".join(c for c in str(ticket) if c.isalnum() or c in "-_")[:40] if ticket else ""
    return f"audit-{safe or 'events'}.{extension}"


def download(events: Iterable[AuditEventInfo], fmt: str, filename: str) -> Response:
    """A streamed download of ``events`` as ``csv`` or ``json`` (pass them ``primed``)."""
    if fmt == "csv":
        chunks, mimetype = csv_lines(events), "text/csv"
    else:
        chunks, mimetype = json_chunks(events), "application/json"
    return Response(stream_with_context(chunks), mimetype=mimetype,
                    headers={"Content-Disposition": f'attachment; filename="{filename}"',
                             "Cache-Control": "no-store"})
