"""The JSON API of CONTRACT.md, under ``/api/v1``."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, g, jsonify, request
from jsonschema import Draft202012Validator
from werkzeug.exceptions import HTTPException

from engine import (
    Conflict,
    DeployFailed,
    Forbidden,
    GuichetError,
    NotFound,
    ProcessError,
    ValidationFailed,
)
from engine import reports as report_rules

from . import openapi, trail
from . import serialize as js
from .auth import Unauthorized, actor_from_token, issue_token, token_required
from .errors import audit_refusal
from .facade import desk
from .views.reports import kpis_json

bp = Blueprint("api", __name__, url_prefix="/api/v1")

STATUS = {NotFound: 404, Forbidden: 403, Conflict: 409, ValidationFailed: 422,
          DeployFailed: 422, ProcessError: 422}
_VALIDATORS = {name: Draft202012Validator(schema) for name, schema in openapi.BODIES.items()}


def error(status: int, message: str, errors: Any = None) -> tuple[Response, int]:
    body: dict[str, Any] = {"error": message}
    if errors is not None:
        body["errors"] = errors
    return jsonify(body), status


@bp.errorhandler(GuichetError)
def _engine_error(err: GuichetError):
    status = next((code for cls, code in STATUS.items() if isinstance(err, cls)), 400)
    if status == 403:
        audit_refusal(err.message)
    return error(status, err.message, getattr(err, "errors", None))


@bp.errorhandler(Unauthorized)
def _unauthorized(_err):
    response, status = error(401, "sign in first: send 'Authorization: Bearer TOKEN' "
                                  "(POST /api/v1/token gives one)")
    response.headers["WWW-Authenticate"] = "Bearer"
    return response, status


@bp.errorhandler(HTTPException)
def _http_error(err: HTTPException):
    return error(err.code or 500, err.description or err.name)


# What a monitoring account may call: the event API, and the incidents it opened.
MONITOR_ENDPOINTS = frozenset({"api.token", "api.openapi_document", "api.monitoring_event",
                               "api.tickets", "api.ticket", "api.history"})


def _bearer_actor():
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return actor_from_token(token.strip()) if scheme.lower() == "bearer" and token else None


@bp.before_request
def _auditors_change_nothing():
    """Every write answers 403 to an auditor, whatever the route (read-only role)."""
    if request.method in ("GET", "HEAD", "OPTIONS") or request.url_rule is None \
            or request.endpoint == "api.token":
        return
    actor = _bearer_actor()
    if trail.read_only(actor):
        g.actor = actor  # the refusal is audited under their name
        raise Forbidden("auditors read everything and change nothing")


@bp.before_request
def _monitors_use_the_event_api_only():
    """A monitoring account (role ``monitor`` alone) reaches nothing but the event API."""
    if request.url_rule is None or request.endpoint in MONITOR_ENDPOINTS:
        return
    actor = _bearer_actor()
    if actor is not None and actor.roles == frozenset({"monitor"}):
        g.actor = actor
        raise Forbidden("monitoring accounts use the event API only: POST /api/v1/events, "
                        "and GET /api/v1/tickets for the incidents they opened")


def body(schema_name: str) -> dict[str, Any]:
    """The JSON body, validated against its OpenAPI schema (422 naming each field)."""
    data = request.get_json(silent=True)
    if data is None:
        raise ValidationFailed("the request body must be a JSON object",
                               {"_": "send Content-Type: application/json"})
    problems: dict[str, str] = {}
    for err in _VALIDATORS[schema_name].iter_errors(data):
        field = ".".join(str(p) for p in err.absolute_path) or "_"
        if err.validator == "required":
            missing = [f for f in err.validator_value if f not in (err.instance or {})]
            problems.update({f: "This field is required." for f in missing})
        elif err.validator == "additionalProperties":
            known = _VALIDATORS[schema_name].schema.get("properties", {})
            problems.update({f: "Unknown field." for f in err.instance if f not in known})
        else:
            problems.setdefault(field, err.message)
    if problems:
        raise ValidationFailed(f"Please correct these fields: {', '.join(sorted(problems))}.",
                               problems)
    return data


def _paging() -> dict[str, Any]:
    return {"page": request.args.get("page", 1), "per_page": request.args.get("per_page", 25)}


@bp.post("/token")
def token():
    data = body("TokenRequest")
    actor = desk().authenticate(data["username"], data["password"], channel="api",
                                address=request.remote_addr)
    if actor is None:
        return error(401, "unknown user or wrong password")
    return jsonify(token=issue_token(actor))


@bp.get("/catalog")
@token_required
def catalog():
    return jsonify(js.listing(desk().catalog(), js.catalog_item))


@bp.get("/services")
@token_required
def services():
    return jsonify(js.listing(desk().services(), js.service))


@bp.post("/incidents")
@token_required
def open_incident():
    data = body("IncidentRequest")
    ticket = desk().open_incident(g.actor, data["title"], data.get("description", ""),
                                  data.get("service"), channel="api")
    return jsonify(js.ticket(ticket)), 201


@bp.post("/requests")
@token_required
def order():
    data = body("OrderRequest")
    ticket = desk().order(g.actor, data["item"], data.get("title"), data.get("fields", {}))
    return jsonify(js.ticket(ticket)), 201


@bp.get("/tickets")
@token_required
def tickets():
    args = request.args
    page = desk().tickets(g.actor, kind=args.get("kind"), status=args.get("status"),
                          q=args.get("q"), priority=args.get("priority"),
                          service=args.get("service"), **_paging())
    return jsonify(js.page(page, lambda t: js.ticket(t, full=False)))


@bp.get("/tickets/<number>")
@token_required
def ticket(number: str):
    return jsonify(js.ticket(desk().ticket(g.actor, number)))


@bp.get("/tickets/<number>/history")
@token_required
def history(number: str):
    return jsonify(js.listing(desk().history(g.actor, number), js.event))


@bp.get("/tasks")
@token_required
def tasks():
    return jsonify(js.page(desk().tasks(g.actor, **_paging()), js.task))


@bp.get("/tasks/<task_id>")
@token_required
def task(task_id: str):
    return jsonify(js.task(desk().task(g.actor, task_id)))


@bp.post("/tasks/<task_id>/claim")
@token_required
def claim(task_id: str):
    return jsonify(js.task(desk().claim(g.actor, task_id)))


@bp.post("/tasks/<task_id>/release")
@token_required
def release(task_id: str):
    return jsonify(js.task(desk().release(g.actor, task_id)))


@bp.post("/tasks/<task_id>/complete")
@token_required
def complete(task_id: str):
    data = body("CompleteRequest")
    return jsonify(js.ticket(desk().complete(g.actor, task_id, data["data"])))


@bp.get("/processes")
@token_required
def processes():
    return jsonify(js.listing(desk().processes(), js.version))


@bp.get("/processes/<key>/versions")
@token_required
def versions(key: str):
    return jsonify(js.listing(desk().versions(key), js.version))


@bp.post("/processes/<key>/versions")
@token_required
def deploy(key: str):
    xml = request.get_data(cache=False)
    if not xml:
        return error(400, "send the BPMN or DMN XML as the request body")
    outcome = desk().deploy_xml(key, xml, g.actor)
    return jsonify(version=outcome.version, created=outcome.created), (
        201 if outcome.created else 200)


@bp.get("/processes/<key>/versions/<int:version>/xml")
@token_required
def version_xml(key: str, version: int):
    return Response(desk().version_xml(key, version), mimetype="application/xml")


@bp.get("/audit/verify")
@token_required
def audit_verify():
    if not g.actor.roles & {"auditor", "admin"}:
        raise Forbidden("only auditors may verify the audit trail")
    count, first_bad, reason = desk().verify_audit()
    result: dict[str, Any] = {"ok": first_bad is None, "events": count}
    if first_bad is not None:
        result.update(first_bad=first_bad, reason=reason)
    return jsonify(result)


@bp.get("/audit/events")
@token_required
def audit_events():
    """Search the trail: a page (newest first), or with ``format`` every match (oldest first)."""
    if not g.actor.roles & {"auditor", "admin"}:
        raise Forbidden("only auditors may search the audit trail")
    filters, problems = trail.parse_filters(request.args)
    fmt = request.args.get("format", "")
    if fmt not in ("", "json", "csv"):
        problems["format"] = "Use json or csv."
    if problems:
        raise ValidationFailed(
            f"Please correct these arguments: {', '.join(sorted(problems))}.", problems)
    if not fmt:
        return jsonify(js.page(desk().audit_events(g.actor, **filters, **_paging()), js.event))
    events = trail.primed(desk().audit_export(g.actor, **filters))
    return trail.download(events, fmt, trail.export_name(filters, fmt))


@bp.get("/reports/kpis")
@token_required
def report_kpis():
    """The service desk KPIs of a period (managers and auditors): README, "Reports and KPIs"."""
    if not report_rules.may_read(g.actor):
        raise Forbidden("only managers and auditors may read the reports")
    unknown = report_rules.unknown_arguments(request.args)
    if unknown:
        allowed = ", ".join(report_rules.FILTERS)
        return error(400, f"unknown query argument(s): {', '.join(unknown)}; use {allowed}",
                     {name: f"Unknown argument; use {allowed}." for name in unknown})
    filters = report_rules.parse_filters(request.args)
    return jsonify(kpis_json(desk().report_kpis(g.actor, filters)))


@bp.post("/events")
@token_required
def monitoring_event():
    data = body("EventRequest")
    ticket, created = desk().receive_event(g.actor, **data)
    return jsonify(js.ticket(ticket)), 201 if created else 200


@bp.post("/services/<key>/state")
@token_required
def service_state(key: str):
    data = body("ServiceStateRequest")
    return jsonify(js.service(desk().set_service_state(g.actor, key, data["state"],
                                                       data.get("reason", ""))))


@bp.get("/status")
@token_required
def status_board():
    return jsonify(js.listing(desk().status_board(g.actor), js.service_status))


@bp.get("/notifications")
@token_required
def notifications():
    page = desk().notifications(g.actor, unread=request.args.get("unread") == "1", **_paging())
    return jsonify(js.page(page, js.notification))


@bp.post("/notifications/read")
@token_required
def notifications_read():
    data = body("ReadRequest")
    return jsonify(marked=desk().mark_read(g.actor, data.get("ids")))


@bp.get("/admin/failures")
@token_required
def failures():
    return jsonify(js.listing(desk().failures(g.actor), js.failure))


@bp.post("/admin/failures/<int:failure_id>/retry")
@token_required
def retry_failure(failure_id: int):
    return jsonify(js.failure(desk().retry_failure(g.actor, failure_id)))


@bp.get("/admin/outbox")
@token_required
def outbox():
    page = desk().outbox(g.actor, state=request.args.get("state") or None, **_paging())
    return jsonify(js.page(page, js.notification))


@bp.get("/openapi.json")
def openapi_document():
    return jsonify(openapi.document())
