"""Where a ticket went in its diagram, read back from its audit events."""

from __future__ import annotations

from .dto import AuditEventInfo


def visits(events: list[AuditEventInfo]) -> tuple[dict[str, int], dict[str, list[int]]]:
    """(element id -> times passed, element id -> seqs of the events that mention it).

    A user task counts once per ``task_created``; automatic elements once per entry of
    the ``path`` recorded with the step that ran them.
    """
    counts: dict[str, int] = {}
    by_element: dict[str, list[int]] = {}

    def mark(element: str, seq: int, count: bool) -> None:
        if count:
            counts[element] = counts.get(element, 0) + 1
        seqs = by_element.setdefault(element, [])
        if not seqs or seqs[-1] != seq:
            seqs.append(seq)

    for event in events:
        if event.task:
            mark(event.task, event.seq, count=event.action == "task_created")
        for element in event.data.get("path") or []:
            mark(element, event.seq, count=True)
    return counts, by_element
