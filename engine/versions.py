"""Comparing versions element by element, and moving waiting instances to a newer one."""

from __future__ import annotations

from typing import Any

from SpiffWorkflow.bpmn.util.diff import diff_workflow, migrate_workflow
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow

from .bpmn import SERIALIZER_REGISTRY
from .dto import ElementChange

COMPARED = ("type", "name", "lane", "properties", "condition", "script", "timer", "decision",
            "default", "source", "target", "attached_to", "hit_policy", "inputs", "outputs",
            "rules")
FORM_PROPERTY = "formJsonSchemaFilename"


def diff(old: dict[str, dict[str, Any]], new: dict[str, dict[str, Any]],
         old_forms: dict[str, Any], new_forms: dict[str, Any]) -> list[ElementChange]:
    """What changed between two versions' element tables (and the forms they use)."""
    changes = []
    for element in sorted(set(old) | set(new)):
        before, after = old.get(element), new.get(element)
        if before is None or after is None:
            info = after or before
            changes.append(ElementChange(element, "added" if before is None else "removed",
                                         info["type"], info.get("name", ""), []))
            continue
        details = [f"{field}: {_show(before.get(field))} → {_show(after.get(field))}"
                   for field in COMPARED if before.get(field) != after.get(field)]
        form = (after.get("properties") or {}).get(FORM_PROPERTY)
        if form and old_forms.get(form) != new_forms.get(form) and form in old_forms:
            details.append(f"form {form} changed: {_form_change(old_forms[form], new_forms[form])}")
        if details:
            changes.append(ElementChange(element, "changed", after["type"],
                                         after.get("name", ""), details))
    return changes


def _show(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else f"'{value}'"
    return text if len(text) <= 160 else text[:157] + "..."


def _form_change(old: dict[str, Any], new: dict[str, Any]) -> str:
    before, after = set(old.get("properties", {})), set(new.get("properties", {}))
    parts = [f"field {f} added" for f in sorted(after - before)]
    parts += [f"field {f} removed" for f in sorted(before - after)]
    parts += [f"field {f} changed" for f in sorted(before & after)
              if old["properties"][f] != new["properties"][f]]
    if old.get("required") != new.get("required"):
        parts.append("required fields changed")
    return ", ".join(parts) or "wording or rules changed"


def blocking_tasks(waiting: list[str], new_elements: dict[str, dict[str, Any]],
                   old_elements: dict[str, dict[str, Any]]) -> dict[str, str]:
    """The waiting user tasks that cannot move to the new version, each with why.

    A task must still be a user task with the same id, and keep the same boundary events:
    SpiffWorkflow arms boundary events when a task starts waiting, so a task migrated
    onto a version that adds (or drops) one would fail at its next step.
    """
    blocked = {}
    for name in waiting:
        if new_elements.get(name, {}).get("type") != "userTask":
            blocked[name] = "is not a user task there"
        elif _boundaries(old_elements, name) != _boundaries(new_elements, name):
            blocked[name] = "has other boundary events (timers) there"
    return blocked


def _boundaries(elements: dict[str, dict[str, Any]], task: str) -> list[str]:
    return sorted(eid for eid, info in elements.items() if info.get("attached_to") == task)


def migrate(workflow: BpmnWorkflow, spec, subprocess_specs) -> None:
    """Re-point a restored instance at a newer spec; waiting tasks keep their ids."""
    top, _ = diff_workflow(SERIALIZER_REGISTRY, workflow, spec, subprocess_specs)
    migrate_workflow(top, workflow, spec)
    workflow.subprocess_specs = subprocess_specs
