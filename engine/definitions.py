"""Parsed process definitions, built once per process (they never change once deployed)."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .bpmn import build_spec, read_document
from .persistence.models import Definition, ProcessVersion


@dataclass(frozen=True)
class LoadedDefinition:
    id: int
    key: str
    version: int
    spec: Any
    subprocess_specs: dict[str, Any]
    elements: dict[str, dict[str, Any]]
    forms: dict[str, dict[str, Any]]
    decisions: dict[str, int]

    def element(self, bpmn_id: str) -> dict[str, Any]:
        return self.elements.get(bpmn_id, {})

    def properties(self, bpmn_id: str) -> dict[str, str]:
        return self.element(bpmn_id).get("properties", {})

    def form(self, bpmn_id: str) -> dict[str, Any]:
        name = self.properties(bpmn_id).get("formJsonSchemaFilename")
        return self.forms.get(name, {"type": "object", "properties": {}}) if name else {}


class DefinitionCache:
    """Thread-safe cache of parsed definitions keyed by definition id."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[int, LoadedDefinition] = {}

    def get(self, session: Session, definition_id: int) -> LoadedDefinition:
        found = self._items.get(definition_id)
        if found is not None:
            return found
        loaded = _load(session, definition_id)
        with self._lock:
            return self._items.setdefault(definition_id, loaded)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


def _load(session: Session, definition_id: int) -> LoadedDefinition:
    definition = session.get(Definition, definition_id)
    if definition is None:
        raise LookupError(f"definition {definition_id} does not exist")
    process = session.get(ProcessVersion, definition.process_version_id)
    decisions: dict[str, int] = json.loads(definition.decisions)
    dmn_docs = []
    for key, version in decisions.items():
        row = session.scalars(
            select(ProcessVersion).where(ProcessVersion.key == key,
                                         ProcessVersion.version == version)
        ).one()
        dmn_docs.append(read_document(row.xml, f"{key}.dmn"))
    doc = read_document(process.xml, f"{process.key}.bpmn")
    spec, subprocess_specs = build_spec(doc, dmn_docs)
    return LoadedDefinition(
        id=definition.id, key=process.key, version=process.version, spec=spec,
        subprocess_specs=subprocess_specs, elements=json.loads(process.elements),
        forms=json.loads(process.forms), decisions=decisions,
    )
