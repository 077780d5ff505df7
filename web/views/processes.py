"""Process owners: the deployed processes and decision tables, their versions and
differences, the modeler that deploys new versions, and moving waiting tickets onto them.

Staff read the list, a process's versions and the differences between two of them.
Editing, validating, deploying, redeploying and migrating are for process owners (and
administrators): everyone else gets 403, in the pages and in the JSON the modeler posts.
The modeler (web/static/modeler.js) is bpmn-js with its properties panel, or dmn-js for
decision tables, served from node_modules through the /vendor allow-list (web/vendor.py).
"""

from __future__ import annotations

import json
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from werkzeug.exceptions import HTTPException

from engine import Actor, DeployFailed, Forbidden, GuichetError, NotFound
from engine.deploy import END_STATUSES, TASK_STATUSES

from ..errors import audit_refusal
from ..facade import desk
from .common import (
    TICKET_STATUSES,
    error_page,
    humanize,
    is_staff,
    require_login,
    require_roles,
)

bp = Blueprint("processes", __name__, url_prefix="/processes")
bp.before_request(require_login)

OWNER = "process_owner"
KINDS = {"bpmn": "Process", "dmn": "Decision table"}
ELEMENT_TYPES = {
    "userTask": "User task", "scriptTask": "Script task", "serviceTask": "Service task",
    "businessRuleTask": "Decision task", "exclusiveGateway": "Exclusive gateway",
    "parallelGateway": "Parallel gateway", "inclusiveGateway": "Inclusive gateway",
    "startEvent": "Start event", "endEvent": "End event", "sequenceFlow": "Sequence flow",
    "boundaryEvent": "Boundary event", "intermediateCatchEvent": "Waiting event",
    "decision": "Decision table", "rule": "Rule", "input": "Input", "output": "Output",
}
# The modeler's endpoints answer JSON, errors included.
JSON_ENDPOINTS = frozenset({"processes.model", "processes.validate", "processes.deploy"})
MAX_FORMS = 50


@bp.before_request
def _staff_only():
    if not is_staff(g.user):
        abort(403, "The processes are for the service desk, process owners and auditors.")


@bp.errorhandler(HTTPException)
def _http_error(err: HTTPException):
    """As the app's own handler does, but in JSON for the modeler's requests."""
    status = err.code or 500
    message = err.description or err.name
    if status == 403:
        audit_refusal(message)
    if request.endpoint in JSON_ENDPOINTS:
        return jsonify(error=message), status
    return error_page(status, message)


def may_edit(actor: Actor | None) -> bool:
    return bool(actor and actor.has(OWNER))



# -- reading -----------------------------------------------------------------------------


@bp.get("")
def index():
    rows = []
    for current in desk().processes():
        rows.append({"current": current, "earlier": desk().versions(current.key)[1:]})
    return render_template("processes/index.html", rows=rows, kinds=KINDS,
                           may_edit=may_edit(g.user))


@bp.get("/<key>")
def detail(key: str):
    versions = desk().versions(key)
    current = versions[0]
    candidates = None
    if current.kind == "bpmn" and may_edit(g.user):
        candidates = desk().migration_candidates(g.user, key, current.version)
    return render_template(
        "processes/detail.html", key=key, current=current, versions=versions, kinds=KINDS,
        candidates=candidates, may_edit=may_edit(g.user),
    )


@bp.get("/<key>/compare")
def compare(key: str):
    """The version pickers of the pages (a GET form) lead to the A..B page."""
    versions = desk().versions(key)
    numbers = {v.version for v in versions}
    a, b = _version_arg("a", numbers), _version_arg("b", numbers)
    if a is None or b is None:
        abort(404, f"{key} has no such version.")
    return redirect(url_for("processes.changes", key=key, a=a, b=b))


@bp.get("/<key>/versions/<int:a>..<int:b>")
def changes(key: str, a: int, b: int):
    versions = desk().versions(key)
    by_number = {v.version: v for v in versions}
    if a not in by_number or b not in by_number:
        missing = a if a not in by_number else b
        raise NotFound(f"{key} has no version {missing}")
    diff = desk().diff(key, a, b)
    counts = {kind: sum(1 for c in diff if c.kind == kind)
              for kind in ("added", "removed", "changed")}
    return render_template(
        "processes/changes.html", key=key, a=by_number[a], b=by_number[b], diff=diff,
        counts=counts, versions=versions, current=versions[0], kinds=KINDS,
        type_label=type_label, may_edit=may_edit(g.user),
    )


@bp.get("/<key>/versions/<int:version>.xml")
def version_xml(key: str, version: int):
    kind = next((v.kind for v in desk().versions(key) if v.version == version), "bpmn")
    xml = desk().version_xml(key, version)
    return Response(xml, mimetype="application/xml", headers={
        "Content-Disposition": f'attachment; filename="{key}-v{version}.{kind}"'})


def type_label(kind: str) -> str:
    return ELEMENT_TYPES.get(kind, humanize(kind))


# -- the modeler -------------------------------------------------------------------------


@bp.get("/<key>/edit")
def edit(key: str):
    require_roles(OWNER)
    versions = desk().versions(key)
    numbers = {v.version for v in versions}
    chosen = _version_arg("version", numbers) or versions[0].version
    opened = next(v for v in versions if v.version == chosen)
    return render_template(
        "processes/edit.html", key=key, opened=opened, current=versions[0], kinds=KINDS,
        model_url=url_for("processes.model", key=key, version=opened.version),
        validate_url=url_for("processes.validate", key=key),
        deploy_url=url_for("processes.deploy", key=key),
        detail_url=url_for("processes.detail", key=key),
    )


@bp.get("/<key>/versions/<int:version>/model.json")
def model(key: str, version: int):
    """What the modeler opens: the XML and forms of one version, and the known groups."""
    require_roles(OWNER)
    try:
        versions = desk().versions(key)
        opened = next((v for v in versions if v.version == version), None)
        if opened is None:
            raise NotFound(f"{key} has no version {version}")
        xml = desk().version_xml(key, version)
        forms = desk().version_forms(key, version) if opened.kind == "bpmn" else {}
    except NotFound as err:
        return jsonify(error=err.message), 404
    # Not jsonify, which sorts keys: the order of a form's properties is the order of its
    # fields, and edited forms go back as they came.
    payload = dict(
        key=key, kind=opened.kind, name=opened.name, version=opened.version,
        current=versions[0].version, xml=xml, forms=forms,
        groups=[{"key": grp.key, "name": grp.name} for grp in desk().groups()],
        decisions=sorted(v.key for v in desk().processes() if v.kind == "dmn"),
        task_statuses=[s for s, _ in TICKET_STATUSES if s in TASK_STATUSES]
        + sorted(TASK_STATUSES - {s for s, _ in TICKET_STATUSES}),
        end_statuses=sorted(END_STATUSES),
    )
    return Response(json.dumps(payload, ensure_ascii=False), mimetype="application/json",
                    headers={"Cache-Control": "no-store"})


@bp.post("/<key>/validate")
def validate(key: str):
    """Every error a deployment would report, without deploying: ``{"ok", "errors"}``."""
    actor = require_roles(OWNER)
    body, problem = _model_body()
    if problem:
        return jsonify(error=problem), 400
    try:
        errors = desk().validate_xml(key, body["xml"], actor, body["forms"])
    except GuichetError as err:
        return _engine_error(err)
    return jsonify(ok=not errors, errors=errors)


@bp.post("/<key>/deploy")
def deploy(key: str):
    """Validate and deploy: ``201 {"version", "created"}``, or ``422 {"error", "errors"}``."""
    actor = require_roles(OWNER)
    body, problem = _model_body()
    if problem:
        return jsonify(error=problem), 400
    try:
        outcome = desk().deploy_xml(key, body["xml"], actor, forms=body["forms"])
    except DeployFailed as err:
        return jsonify(error=err.message, errors=err.errors), 422
    except GuichetError as err:
        return _engine_error(err)
    if outcome.created:
        message = f"Version {outcome.version} of {key} deployed: new tickets start on it."
    else:
        message = (f"Nothing changed: version {outcome.version} of {key} already has this "
                   "content.")
    return jsonify(key=outcome.key, version=outcome.version, created=outcome.created,
                   message=message,
                   url=url_for("processes.detail", key=key)), (201 if outcome.created else 200)


def _model_body() -> tuple[dict[str, Any], str | None]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        return {}, "Send a JSON object with the XML of the diagram."
    xml = data.get("xml")
    if not isinstance(xml, str) or not xml.strip():
        return {}, "The XML of the diagram is missing."
    forms = data.get("forms") or {}
    if not isinstance(forms, dict) or len(forms) > MAX_FORMS \
            or not all(isinstance(name, str) and name for name in forms):
        return {}, "forms must map form file names to JSON Schemas."
    return {"xml": xml, "forms": forms}, None


def _engine_error(err: GuichetError):
    status = 404 if isinstance(err, NotFound) else 403 if isinstance(err, Forbidden) else 422
    if status == 403:
        audit_refusal(err.message)
    return jsonify(error=err.message), status


# -- redeploying and migrating -------------------------------------------------------------


@bp.post("/<key>/versions/<int:version>/redeploy")
def redeploy(key: str, version: int):
    actor = require_roles(OWNER)
    try:
        outcome = desk().redeploy(key, version, actor)
    except DeployFailed as err:
        details = "; ".join(f"{e.get('element') or e.get('file')}: {e['message']}"
                            for e in err.errors[:5])
        flash(f"Version {version} of {key} cannot be deployed again: {details}", "error")
        return redirect(url_for("processes.detail", key=key))
    if outcome.created:
        flash(f"Version {version} of {key} deployed again as version {outcome.version}: new "
              "tickets start on it.", "success")
    else:
        flash(f"Version {version} of {key} is the current content already (version "
              f"{outcome.version}).", "info")
    return redirect(url_for("processes.detail", key=key))


@bp.post("/<key>/migrate")
def migrate(key: str):
    actor = require_roles(OWNER)
    to_version = _int(request.form.get("to_version"))
    chosen = [t.strip() for t in request.form.getlist("tickets") if t.strip()]
    if not chosen:
        flash("Choose the tickets to move first.", "error")
        return redirect(url_for("processes.detail", key=key) + "#migration")
    results = desk().migrate(actor, key, to_version, tickets=chosen)
    moved = [r.ticket for r in results if r.moved]
    stayed = [r for r in results if not r.moved]
    target = to_version or desk().versions(key)[0].version
    if moved:
        flash(f"Moved to version {target}: {', '.join(moved)}.", "success")
    for result in stayed:
        flash(f"{result.ticket} not moved: {result.reason}.", "error")
    unknown = sorted(set(chosen) - {r.ticket for r in results})
    if unknown:
        flash(f"Not waiting on an older version (any more): {', '.join(unknown)}.", "info")
    return redirect(url_for("processes.detail", key=key) + "#migration")


# -- helpers -----------------------------------------------------------------------------


def _int(value: Any) -> int | None:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def _version_arg(name: str, known: set[int]) -> int | None:
    number = _int(request.args.get(name))
    return number if number in known else None
