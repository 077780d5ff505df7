"""Validating and deploying BPMN processes and DMN decision tables, versioned by content."""

from __future__ import annotations

import ast
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from . import sandbox
from .bpmn import Document, build_spec, read_document
from .dto import DeployOutcome
from .errors import DeployFailed
from .forms import schema_problems
from .persistence.models import Definition, ProcessVersion

TASK_STATUSES = {"new", "in_progress", "pending_approval", "resolved", "awaiting_requester"}
END_STATUSES = {"closed", "rejected"}
FORM_PROPERTY = "formJsonSchemaFilename"
REQUESTER = "requester"


@dataclass
class Upload:
    """One file to deploy, with the forms its user tasks may reference."""

    filename: str
    content: str | bytes
    forms: dict[str, Any]  # filename -> parsed JSON Schema (or the text that failed to parse)


def current_version(session: Session, key: str) -> ProcessVersion | None:
    return session.scalars(
        select(ProcessVersion).where(ProcessVersion.key == key)
        .order_by(ProcessVersion.version.desc()).limit(1)
    ).first()


def _sha(doc: Document, forms: dict[str, Any]) -> str:
    digest = hashlib.sha256(doc.xml.encode())
    digest.update(json.dumps(forms).encode())  # key order is the order fields are shown in
    return digest.hexdigest()


def _err(file: str, element: str | None, message: str) -> dict[str, str | None]:
    return {"file": file, "element": element, "message": message}


def check_bpmn(
    doc: Document, filename: str, forms: dict[str, Any], groups: set[str], decisions: set[str]
) -> list[dict[str, str | None]]:
    """Guichet's own rules on top of SpiffWorkflow's: each error names its element."""
    errors = []
    flows = {k: v for k, v in doc.elements.items() if v["type"] == "sequenceFlow"}
    for element_id, info in doc.elements.items():
        kind, props = info["type"], info.get("properties", {})
        if kind == "userTask":
            errors += _check_user_task(element_id, props, forms, groups, filename)
        elif kind == "endEvent" and props.get("status", "closed") not in END_STATUSES:
            errors.append(_err(filename, element_id, "end event status must be one of "
                               f"{sorted(END_STATUSES)}, not {props.get('status')!r}"))
        elif kind == "scriptTask":
            for problem in sandbox.check(info.get("script", ""), "exec"):
                errors.append(_err(filename, element_id, f"script refused: {problem}"))
        if info.get("timer"):
            errors += [_err(filename, element_id, problem)
                       for problem in _timer_problems(info["timer"])]
        elif kind == "businessRuleTask" and info.get("decision") not in decisions:
            errors.append(_err(filename, element_id, f"calls decision {info.get('decision')!r}, "
                               f"which is not deployed (known: {sorted(decisions)})"))
        elif kind == "exclusiveGateway":
            outgoing = [fid for fid, f in flows.items() if f["source"] == element_id]
            undecided = [fid for fid in outgoing
                         if fid != info.get("default") and not flows[fid]["condition"]]
            if len(outgoing) > 1 and undecided:
                errors.append(_err(filename, element_id, "gateway has outgoing flows without a "
                                   f"condition and not marked default: {', '.join(undecided)}"))
    for flow_id, flow in flows.items():
        if flow["condition"]:
            for problem in sandbox.check(flow["condition"], "eval"):
                errors.append(_err(filename, flow_id, f"condition refused: {problem}"))
    return errors


def _timer_problems(timer: dict[str, str]) -> list[str]:
    """Timer expressions are sandboxed Python; a literal must be valid ISO 8601."""
    parsers = {
        "timeDuration": TimerEventDefinition.parse_iso_duration,
        "timeDate": TimerEventDefinition.get_datetime,
        "timeCycle": TimerEventDefinition.parse_iso_recurring_interval,
    }
    problems = []
    for kind, expression in timer.items():
        if kind == "timeCycle":
            problems.append("cycle timers are not supported; use a date or a duration")
            continue
        refused = sandbox.check(expression or "None", "eval")
        if refused:
            problems += [f"timer expression refused: {p}" for p in refused]
            continue
        try:
            literal = ast.literal_eval(expression)
        except (ValueError, SyntaxError):
            continue  # computed at run time from process data
        try:
            if not isinstance(literal, str) or kind not in parsers:
                raise ValueError(literal)
            parsers[kind](literal)
        except Exception:
            problems.append(f"timer {kind} {literal!r} is not valid ISO 8601 "
                            "(e.g. \"PT4H\", \"P3D\", \"2026-01-05T09:00:00Z\")")
    return problems


def _check_user_task(
    element_id: str, props: dict[str, str], forms: dict[str, Any], groups: set[str], filename: str
) -> list[dict[str, str | None]]:
    errors = []
    form = props.get(FORM_PROPERTY)
    if not form:
        errors.append(_err(filename, element_id, f"user task needs a {FORM_PROPERTY} property"))
    elif form not in forms:
        errors.append(_err(filename, element_id, f"form {form!r} not found"))
    else:
        errors += [_err(filename, element_id, f"form {form}: {p}")
                   for p in schema_problems(forms[form])]
    if "group" in props:
        if props["group"] != REQUESTER and props["group"] not in groups:
            errors.append(_err(filename, element_id, f"group {props['group']!r} is not a known "
                               f"group (known: {', '.join(sorted(groups))}, or requester)"))
    elif not props.get("groupFrom"):
        errors.append(_err(filename, element_id,
                           "user task needs a 'group' or 'groupFrom' property"))
    if props.get("status", "in_progress") not in TASK_STATUSES:
        errors.append(_err(filename, element_id, f"status {props.get('status')!r} must be one "
                           f"of {sorted(TASK_STATUSES)}"))
    return errors


def check_dmn(doc: Document, filename: str) -> list[dict[str, str | None]]:
    """Every cell of a decision table must be accepted by the sandbox."""
    info = doc.elements[doc.key]
    errors = []
    for i in info["inputs"]:
        for problem in sandbox.check(i["expression"] or "None", "eval"):
            errors.append(_err(filename, i["id"], f"input expression refused: {problem}"))
    for rule in info["rules"]:
        cells = [_input_test(c) for c in rule["inputs"]] + rule["outputs"]
        for cell in cells:
            for problem in sandbox.check(cell, "eval") if cell and cell != "-" else []:
                errors.append(_err(filename, rule["id"], f"cell {cell!r} refused: {problem}"))
    if not info["rules"]:
        errors.append(_err(filename, doc.key, "the decision table has no rules"))
    return errors


def _input_test(cell: str) -> str:
    """The expression SpiffWorkflow builds from an input cell (``v`` stands for the input)."""
    if not cell or cell == "-":
        return cell
    if "?" in cell:
        return cell.replace("?", "v")
    return f"(v) == ({cell})" if not sandbox.check(f"({cell})") else f"v {cell}"


def deploy(
    session: Session,
    uploads: list[Upload],
    actor: str,
    now: datetime,
    groups: set[str],
    expected_key: str | None = None,
) -> list[DeployOutcome]:
    """Validate every upload, then store each changed one as a new version (all or nothing)."""
    docs = validate(session, uploads, groups, expected_key)
    outcomes = []
    for upload, doc in sorted(docs, key=lambda d: d[1].kind != "dmn"):
        forms = _used_forms(doc, upload.forms)
        outcomes.append(_store(session, doc, forms, actor, now))
    for key in session.scalars(select(ProcessVersion.key).where(ProcessVersion.kind == "bpmn")
                               .distinct()):
        current_definition(session, key)  # created here, so starting a ticket only reads
    return outcomes


def validate(
    session: Session, uploads: list[Upload], groups: set[str], expected_key: str | None = None
) -> list[tuple[Upload, Document]]:
    """Check every upload (SpiffWorkflow's parser and Guichet's rules); raise ``DeployFailed``
    listing every error, or return the parsed documents."""
    errors: list[dict[str, str | None]] = []
    docs: list[tuple[Upload, Document]] = []
    for upload in uploads:
        try:
            doc = read_document(upload.content, upload.filename)
        except DeployFailed as err:
            errors += err.errors
            continue
        if expected_key and doc.key != expected_key:
            what = "process" if doc.kind == "bpmn" else "decision"
            errors.append(_err(upload.filename, doc.key, f"{what} id {doc.key!r} must equal the "
                               f"key {expected_key!r}"))
        docs.append((upload, doc))
    dmn_docs = {doc.key: doc for _, doc in docs if doc.kind == "dmn"}
    for upload, doc in docs:
        if doc.kind == "dmn":
            errors += check_dmn(doc, upload.filename)
    decisions = {**_current_decisions(session), **dmn_docs}
    for upload, doc in docs:
        if doc.kind != "bpmn":
            continue
        errors += check_bpmn(doc, upload.filename, upload.forms, groups, set(decisions))
        called = {e.get("decision") for e in doc.elements.values() if e.get("decision")}
        try:
            build_spec(doc, [decisions[k] for k in called if k in decisions], upload.filename)
        except DeployFailed as err:
            errors += err.errors
    if errors:
        raise DeployFailed(errors)
    return docs


def _used_forms(doc: Document, forms: dict[str, Any]) -> dict[str, Any]:
    names = {e["properties"].get(FORM_PROPERTY) for e in doc.elements.values()
             if e.get("properties", {}).get(FORM_PROPERTY)}
    return {name: forms[name] for name in sorted(names)}


def _store(
    session: Session, doc: Document, forms: dict[str, Any], actor: str, now: datetime
) -> DeployOutcome:
    sha = _sha(doc, forms)
    current = current_version(session, doc.key)
    if current is not None and current.sha256 == sha:
        return DeployOutcome(doc.key, current.version, created=False)
    version = (current.version + 1) if current else 1
    session.add(ProcessVersion(
        key=doc.key, kind=doc.kind, version=version, name=doc.name, sha256=sha, xml=doc.xml,
        forms=json.dumps(forms), elements=json.dumps(doc.elements),
        deployed_at=now, deployed_by=actor,
    ))
    session.flush()
    return DeployOutcome(doc.key, version, created=True)


def _current_decisions(session: Session) -> dict[str, Document]:
    latest = (
        select(ProcessVersion.key, func.max(ProcessVersion.version).label("v"))
        .where(ProcessVersion.kind == "dmn").group_by(ProcessVersion.key).subquery()
    )
    rows = session.scalars(
        select(ProcessVersion).join(
            latest, (ProcessVersion.key == latest.c.key) & (ProcessVersion.version == latest.c.v)
        )
    ).all()
    return {row.key: read_document(row.xml, f"{row.key}.dmn") for row in rows}


def current_definition(session: Session, key: str) -> Definition | None:
    """The definition new tickets of ``key`` start on: latest process and decisions.

    Reads no XML: starting a ticket needs the ids, the loaded spec is cached by id.
    """
    process = session.execute(
        select(ProcessVersion.id, ProcessVersion.kind, ProcessVersion.elements)
        .where(ProcessVersion.key == key).order_by(ProcessVersion.version.desc()).limit(1)
    ).first()
    if process is None or process.kind != "bpmn":
        return None
    return _definition(session, process.id, process.elements)


def definition_for(session: Session, process: ProcessVersion) -> Definition:
    """The definition of a process version with the current decision tables it calls."""
    return _definition(session, process.id, process.elements)


def _definition(session: Session, process_id: int, elements_json: str) -> Definition:
    elements = json.loads(elements_json)
    called = sorted({e["decision"] for e in elements.values() if e.get("decision")})
    decisions = dict(session.execute(
        select(ProcessVersion.key, func.max(ProcessVersion.version))
        .where(ProcessVersion.key.in_(called)).group_by(ProcessVersion.key)
    ).all()) if called else {}
    decisions = {name: decisions[name] for name in called if name in decisions}
    sha = hashlib.sha256(f"{process_id}:{json.dumps(decisions, sort_keys=True)}".encode())
    existing = session.scalars(
        select(Definition).where(Definition.sha256 == sha.hexdigest())
    ).first()
    if existing is not None:
        return existing
    definition = Definition(process_version_id=process_id, decisions=json.dumps(decisions),
                            sha256=sha.hexdigest())
    session.add(definition)
    session.flush()
    return definition
