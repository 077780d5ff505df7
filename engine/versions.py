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


def blocking_tasks(waiting: list[str], new_elements: dict[str, dict[str, Any]]) -> list[str]:
    """The waiting user tasks that the new version no longer has (same id, user task)."""
    return [name for name in waiting if new_elements.get(name, {}).get("type") != "userTask"]


def migrate(workflow: BpmnWorkflow, spec, subprocess_specs) -> None:
    """Re-point a restored instance at a newer spec; waiting tasks keep their ids."""
    top, _ = diff_workflow(SERIALIZER_REGISTRY, workflow, spec, subprocess_specs)
    migrate_workflow(top, workflow, spec)
    workflow.subprocess_specs = subprocess_specs
