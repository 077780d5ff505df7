"""What comes next: the user tasks a ticket can reach from where it waits, read off the BPMN."""

from __future__ import annotations

from typing import Any

USER_TASK = "userTask"


def next_user_tasks(elements: dict[str, dict[str, Any]], current: list[str]) -> list[str]:
    """Ids of the user tasks reachable from ``current`` without passing another user task."""
    outgoing: dict[str, list[str]] = {}
    for info in elements.values():
        if info.get("type") == "sequenceFlow":
            outgoing.setdefault(info["source"], []).append(info["target"])
    found: list[str] = []
    seen = set(current)
    frontier = [t for c in current for t in outgoing.get(c, [])]
    while frontier:
        node = frontier.pop(0)
        if node in seen:
            continue
        seen.add(node)
        if elements.get(node, {}).get("type") == USER_TASK:
            found.append(node)
            continue
        frontier.extend(outgoing.get(node, []))
    return found
