"""Reading BPMN/DMN safely, building SpiffWorkflow specs, and (de)serializing instances."""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from lxml import etree
from SpiffWorkflow.bpmn.serializer.default.workflow import BpmnWorkflowConverter
from SpiffWorkflow.bpmn.serializer.workflow import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.spiff.parser import VALIDATOR, SpiffBpmnParser
from SpiffWorkflow.spiff.serializer import DEFAULT_CONFIG

from .errors import DeployFailed
from .timers import use_engine_clock

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
SPIFF_NS = "http://spiffworkflow.org/bpmn/schema/1.0/core"
DMN_NAMESPACES = (
    "https://www.omg.org/spec/DMN/20191111/MODEL/",
    "http://www.omg.org/spec/DMN/20180521/MODEL/",
    "https://www.omg.org/spec/DMN/20180521/MODEL/",
)
MAX_XML_BYTES = 2 * 1024 * 1024
FLOW_NODE_TAGS = {
    "startEvent", "endEvent", "intermediateCatchEvent", "intermediateThrowEvent",
    "boundaryEvent", "task", "userTask", "manualTask", "scriptTask", "serviceTask",
    "businessRuleTask", "sendTask", "receiveTask", "callActivity", "subProcess",
    "exclusiveGateway", "parallelGateway", "inclusiveGateway", "eventBasedGateway",
}  # fmt: skip


def _error(file: str, message: str, element: str | None = None) -> dict[str, str | None]:
    return {"file": file, "element": element, "message": message}


def parse_xml(data: str | bytes, filename: str) -> etree._Element:
    """Parse untrusted XML: size-limited, no DTD, no entities, no network."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if len(raw) > MAX_XML_BYTES:
        raise DeployFailed(
            [_error(filename, f"file is larger than {MAX_XML_BYTES // 1024} KiB")]
        )
    if b"<!DOCTYPE" in raw or b"<!ENTITY" in raw:
        raise DeployFailed([_error(filename, "DOCTYPE and ENTITY declarations are not allowed")])
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
    )
    try:
        root = etree.fromstring(raw, parser)
    except etree.XMLSyntaxError as err:
        raise DeployFailed([_error(filename, f"XML is not well formed: {err}")]) from err
    info = root.getroottree().docinfo
    if info.doctype or info.internalDTD is not None:  # declared in UTF-16 or UTF-32 text
        raise DeployFailed([_error(filename, "DOCTYPE and ENTITY declarations are not allowed")])
    return root


@dataclass
class Document:
    """What Guichet needs to know about one BPMN or DMN file."""

    kind: str  # bpmn | dmn
    key: str
    name: str
    root: etree._Element
    elements: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def xml(self) -> str:
        return etree.tostring(self.root, encoding="unicode")


def _local(tag: Any) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def _properties(node: etree._Element) -> dict[str, str]:
    props = node.findall(f"{{{BPMN_NS}}}extensionElements/{{{SPIFF_NS}}}properties/"
                         f"{{{SPIFF_NS}}}property")
    return {p.get("name"): p.get("value", "") for p in props}


def read_document(data: str | bytes, filename: str) -> Document:
    """Parse a BPMN or DMN file and describe its elements (ids, names, lanes, properties)."""
    root = parse_xml(data, filename)
    ns = etree.QName(root).namespace
    if ns == BPMN_NS:
        return _read_bpmn(root, filename)
    if ns in DMN_NAMESPACES:
        return _read_dmn(root, filename)
    raise DeployFailed([_error(filename, f"not a BPMN or DMN document (namespace {ns!r})")])


def _read_bpmn(root: etree._Element, filename: str) -> Document:
    processes = [p for p in root.findall(f"{{{BPMN_NS}}}process")
                 if p.get("isExecutable", "false") == "true"]
    if len(processes) != 1:
        raise DeployFailed([_error(filename, "a BPMN file must hold exactly one executable "
                                   f"process (found {len(processes)})")])
    process = processes[0]
    doc = Document("bpmn", process.get("id", ""), process.get("name", ""), root)
    lanes = {}
    for lane in process.iter(f"{{{BPMN_NS}}}lane"):
        for ref in lane.findall(f"{{{BPMN_NS}}}flowNodeRef"):
            lanes[(ref.text or "").strip()] = lane.get("name", lane.get("id"))
    for node in process.iter():
        tag = _local(node.tag)
        node_id = node.get("id")
        if not node_id:
            continue
        if tag in FLOW_NODE_TAGS:
            info: dict[str, Any] = {
                "type": tag, "name": node.get("name", ""), "lane": lanes.get(node_id),
                "properties": _properties(node),
            }
            if tag == "boundaryEvent":
                info["attached_to"] = node.get("attachedToRef")
            if node.get("default"):
                info["default"] = node.get("default")
            timer = node.find(f".//{{{BPMN_NS}}}timerEventDefinition")
            if timer is not None:
                info["timer"] = {_local(c.tag): (c.text or "").strip() for c in timer}
            script = node.find(f"{{{BPMN_NS}}}script")
            if script is not None:
                info["script"] = script.text or ""
            decision = node.find(f"{{{BPMN_NS}}}extensionElements/{{{SPIFF_NS}}}calledDecisionId")
            if decision is not None:
                info["decision"] = (decision.text or "").strip()
            doc.elements[node_id] = info
        elif tag == "sequenceFlow":
            cond = node.find(f"{{{BPMN_NS}}}conditionExpression")
            doc.elements[node_id] = {
                "type": tag, "name": node.get("name", ""),
                "source": node.get("sourceRef"), "target": node.get("targetRef"),
                "condition": (cond.text or "").strip() if cond is not None else None,
            }
    return doc


def _read_dmn(root: etree._Element, filename: str) -> Document:
    ns = etree.QName(root).namespace
    decisions = root.findall(f"{{{ns}}}decision")
    if len(decisions) != 1:
        raise DeployFailed([_error(filename, "a DMN file must hold exactly one decision "
                                   f"(found {len(decisions)})")])
    decision = decisions[0]
    doc = Document("dmn", decision.get("id", ""), decision.get("name", ""), root)
    table = decision.find(f"{{{ns}}}decisionTable")
    inputs = [] if table is None else [
        {"id": i.get("id"), "label": i.get("label", ""),
         "expression": (i.findtext(f"{{{ns}}}inputExpression/{{{ns}}}text") or "").strip()}
        for i in table.findall(f"{{{ns}}}input")
    ]
    outputs = [] if table is None else [
        {"id": o.get("id"), "name": o.get("name", ""), "label": o.get("label", "")}
        for o in table.findall(f"{{{ns}}}output")
    ]
    rules = [] if table is None else [
        {"id": r.get("id"),
         "inputs": [(e.findtext(f"{{{ns}}}text") or "").strip()
                    for e in r.findall(f"{{{ns}}}inputEntry")],
         "outputs": [(e.findtext(f"{{{ns}}}text") or "").strip()
                     for e in r.findall(f"{{{ns}}}outputEntry")]}
        for r in table.findall(f"{{{ns}}}rule")
    ]
    doc.elements[doc.key] = {
        "type": "decision", "name": doc.name,
        "hit_policy": table.get("hitPolicy", "UNIQUE") if table is not None else None,
        "inputs": inputs, "outputs": outputs, "rules": rules,
    }
    return doc


def build_spec(bpmn: Document, decisions: list[Document], filename: str = ""):
    """Parse with SpiffWorkflow: the process spec and its subprocess specs."""
    parser = SpiffBpmnParser(validator=VALIDATOR)
    try:
        for dmn in decisions:
            parser.add_dmn_xml(dmn.root, filename=f"{dmn.key}.dmn")
        parser.add_bpmn_xml(etree.ElementTree(bpmn.root), filename=filename or bpmn.key)
        spec = parser.get_spec(bpmn.key)
        subprocess_specs = parser.get_subprocess_specs(bpmn.key)
        use_engine_clock([spec, *subprocess_specs.values()])
    except Exception as err:  # SpiffWorkflow raises many kinds; all mean "invalid"
        element = getattr(err, "id", None) or None
        raise DeployFailed([_error(filename or bpmn.key, _describe(err), element)]) from err
    return spec, subprocess_specs


def _describe(err: Exception) -> str:
    text = str(err).strip() or type(err).__name__
    notes = getattr(err, "__notes__", None)
    return f"{text} ({'; '.join(notes)})" if notes else text


class _StatelessSpecConverter(BpmnWorkflowConverter):
    """Leaves the process definition out of each instance: it is stored once per version."""

    def to_dict(self, workflow):
        dct = super(BpmnWorkflowConverter, self).to_dict(workflow)
        dct["subprocesses"] = self.mapping_to_dict(workflow.subprocesses)
        dct["bpmn_events"] = self.registry.convert(workflow.bpmn_events)
        return dct

    def from_dict(self, dct):
        workflow = self.target_class(dct.pop("spec"), dct.pop("subprocess_specs"),
                                     deserializing=True)
        workflow.tasks = self.mapping_from_dict(dct["tasks"], UUID, workflow=workflow)
        workflow.task_tree = workflow.tasks.get(UUID(dct["root"]))
        self.set_default_attributes(workflow, dct)
        self.subprocesses_from_dict(dct["subprocesses"], workflow)
        workflow.bpmn_events = self.registry.restore(dct.pop("bpmn_events", []))
        return workflow


_CONFIG = dict(DEFAULT_CONFIG)
_CONFIG[BpmnWorkflow] = _StatelessSpecConverter
_SERIALIZER = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(_CONFIG))
SERIALIZER_REGISTRY = _SERIALIZER.registry
STATE_FORMAT = 1


def dump_state(workflow: BpmnWorkflow) -> bytes:
    """Serialize an instance without its spec, as compressed JSON."""
    dct = _SERIALIZER.to_dict(workflow)
    dct["format"] = STATE_FORMAT
    return zlib.compress(json.dumps(dct, separators=(",", ":")).encode(), 1)


def load_state(blob: bytes, spec, subprocess_specs) -> BpmnWorkflow:
    """Restore an instance on its (cached) spec. Attach the script engine afterwards."""
    dct = json.loads(zlib.decompress(blob))
    if dct.pop("format", None) != STATE_FORMAT:
        raise ValueError("unknown workflow state format")
    dct["spec"], dct["subprocess_specs"] = spec, subprocess_specs
    return _SERIALIZER.from_dict(dct)
