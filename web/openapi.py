"""The OpenAPI 3.1 document of the JSON API.

Request body schemas here are the ones the API validates against, so the document
and the behaviour cannot drift apart; a test checks every route is documented.
"""

from __future__ import annotations

from typing import Any

BODIES: dict[str, dict[str, Any]] = {
    "TokenRequest": {
        "type": "object", "additionalProperties": False, "required": ["username", "password"],
        "properties": {"username": {"type": "string", "minLength": 1, "maxLength": 64},
                       "password": {"type": "string", "minLength": 1, "maxLength": 200}},
    },
    "IncidentRequest": {
        "type": "object", "additionalProperties": False, "required": ["title"],
        "properties": {"title": {"type": "string", "minLength": 1, "maxLength": 200},
                       "description": {"type": "string", "maxLength": 10000},
                       "service": {"type": ["string", "null"]}},
    },
    "OrderRequest": {
        "type": "object", "additionalProperties": False, "required": ["item"],
        "properties": {"item": {"type": "string"},
                       "title": {"type": "string", "maxLength": 200},
                       "fields": {"type": "object"}},
    },
    "CompleteRequest": {
        "type": "object", "additionalProperties": False, "required": ["data"],
        "properties": {"data": {"type": "object"}},
    },
    "EventRequest": {
        "type": "object", "additionalProperties": False,
        "required": ["source", "service", "fingerprint", "summary", "severity"],
        "properties": {"source": {"type": "string", "minLength": 1, "maxLength": 100},
                       "service": {"type": "string", "minLength": 1, "maxLength": 64},
                       "fingerprint": {"type": "string", "minLength": 1, "maxLength": 200},
                       "summary": {"type": "string", "minLength": 1, "maxLength": 200},
                       "severity": {"enum": ["critical", "major", "minor", "warning"]}},
    },
    "ServiceStateRequest": {
        "type": "object", "additionalProperties": False, "required": ["state"],
        "properties": {"state": {"enum": ["nominal", "degraded", "interrupted", "maintenance"]},
                       "reason": {"type": "string", "maxLength": 500}},
    },
    "ReadRequest": {
        "type": "object", "additionalProperties": False,
        "properties": {"ids": {"type": "array", "items": {"type": "integer"}, "maxItems": 500,
                               "description": "Notifications to mark read (default: all)"}},
    },
}

_TIME = {"type": ["string", "null"], "format": "date-time"}
SCHEMAS: dict[str, dict[str, Any]] = {
    **BODIES,
    "Notification": {
        "type": "object",
        "properties": {"id": {"type": "integer"}, "kind": {"type": "string"},
                       "subject": {"type": "string"}, "body": {"type": "string"},
                       "ticket": {"type": ["string", "null"]}, "created_at": _TIME,
                       "state": {"enum": ["pending", "sent", "failed", "no_email"],
                                 "description": "e-mail delivery"},
                       "read": {"type": "boolean"}, "attempts": {"type": "integer"},
                       "last_error": {"type": ["string", "null"]},
                       "user": {"type": ["string", "null"]}},
    },
    "ServiceStatus": {
        "type": "object",
        "properties": {"key": {"type": "string"}, "name": {"type": "string"},
                       "state": {"type": "string"}, "since": _TIME,
                       "reason": {"type": "string"}, "restore_at": _TIME,
                       "incidents": {"type": "array", "items": {"type": "object"}}},
    },
    "Failure": {
        "type": "object",
        "properties": {"id": {"type": "integer"}, "ticket": {"type": "string"},
                       "task_id": {"type": ["string", "null"]},
                       "operation": {"enum": ["complete", "timer"]},
                       "actor": {"type": "string"}, "element": {"type": ["string", "null"]},
                       "error": {"type": "string"}, "at": _TIME,
                       "attempts": {"type": "integer"}, "resolved_at": _TIME,
                       "resolved_by": {"type": ["string", "null"]}},
    },
    "Error": {
        "type": "object", "required": ["error"],
        "properties": {"error": {"type": "string"},
                       "errors": {"oneOf": [
                           {"type": "object", "additionalProperties": {"type": "string"}},
                           {"type": "array", "items": {"$ref": "#/components/schemas/DeployError"}},
                       ]}},
    },
    "DeployError": {
        "type": "object",
        "properties": {"file": {"type": ["string", "null"]},
                       "element": {"type": ["string", "null"]}, "message": {"type": "string"}},
    },
    "Task": {
        "type": "object",
        "properties": {
            "id": {"type": "string"}, "name": {"type": "string", "description": "BPMN id"},
            "title": {"type": "string"}, "ticket": {"type": "string"},
            "group": {"type": ["string", "null"]}, "assignee": {"type": ["string", "null"]},
            "for_requester": {"type": "boolean"}, "form": {"type": "object"},
            "due_at": _TIME, "created_at": _TIME, "priority": {"type": ["string", "null"]},
            "ticket_title": {"type": "string"},
        },
    },
    "Ticket": {
        "type": "object",
        "properties": {
            "number": {"type": "string", "examples": ["INC-000001"]},
            "kind": {"enum": ["incident", "request"]}, "title": {"type": "string"},
            "description": {"type": "string"},
            "status": {"enum": ["new", "in_progress", "pending_approval", "resolved",
                                "closed", "rejected", "awaiting_requester"]},
            "priority": {"type": ["string", "null"]}, "requester": {"type": "string"},
            "service": {"type": ["string", "null"]}, "item": {"type": ["string", "null"]},
            "group": {"type": ["string", "null"]}, "assignee": {"type": ["string", "null"]},
            "channel": {"type": "string"}, "created_at": _TIME, "updated_at": _TIME,
            "resolved_at": _TIME, "closed_at": _TIME, "response_due_at": _TIME, "due_at": _TIME,
            "process": {"type": "object", "properties": {"key": {"type": "string"},
                                                         "version": {"type": "integer"}}},
            "tasks": {"type": "array", "items": {"$ref": "#/components/schemas/Task"}},
            "data": {"type": "object", "description": "process variables the caller may read"},
        },
    },
    "AuditEvent": {
        "type": "object",
        "properties": {"seq": {"type": "integer"}, "at": _TIME, "actor": {"type": "string"},
                       "action": {"type": "string"}, "ticket": {"type": ["string", "null"]},
                       "task": {"type": ["string", "null"]}, "data": {"type": "object"},
                       "process": {"type": ["object", "null"]}, "hash": {"type": "string"}},
    },
    "ProcessVersion": {
        "type": "object",
        "properties": {"key": {"type": "string"}, "kind": {"enum": ["bpmn", "dmn"]},
                       "name": {"type": "string"}, "version": {"type": "integer"},
                       "sha256": {"type": "string"}, "deployed_at": _TIME,
                       "deployed_by": {"type": "string"}},
    },
    "CatalogItem": {
        "type": "object",
        "properties": {"key": {"type": "string"}, "name": {"type": "string"},
                       "description": {"type": "string"}, "needs_approval": {"type": "boolean"},
                       "auto_accept": {"type": "boolean"},
                       "fulfilment_group": {"type": "string"}, "form": {"type": "object"}},
    },
    "Service": {
        "type": "object",
        "properties": {"key": {"type": "string"}, "name": {"type": "string"},
                       "state": {"enum": ["nominal", "degraded", "interrupted", "maintenance"]}},
    },
    "Kpis": {
        "type": "object",
        "description": "Service desk KPIs of a period (README, \"Reports and KPIs\"). Rates "
                       "are fractions 0..1, null when there is nothing to measure; "
                       "per-priority figures are objects keyed P1..P5.",
        "properties": {
            "since": _TIME, "until": _TIME,
            "filters": {"type": "object", "description": "the filters applied"},
            "created": {"type": "integer", "description": "tickets created in the period"},
            "resolved": {"type": "integer", "description": "tickets resolved in the period"},
            "mttr_hours": {"$ref": "#/components/schemas/PerPriority"},
            "median_ttr_hours": {"$ref": "#/components/schemas/PerPriority"},
            "mttr_hours_overall": {"type": ["number", "null"]},
            "median_ttr_hours_overall": {"type": ["number", "null"]},
            "fcr_rate": {"type": ["number", "null"]},
            "escalation_rate": {"type": ["number", "null"]},
            "escalation_depth": {"type": ["number", "null"]},
            "reopen_rate": {"type": ["number", "null"]},
            "sla_compliance": {"type": ["number", "null"],
                               "description": "resolution targets met"},
            "sla_response_compliance": {"type": ["number", "null"]},
            "sla_by_priority": {"type": "object", "properties": {
                "response": {"$ref": "#/components/schemas/PerPriority"},
                "resolution": {"$ref": "#/components/schemas/PerPriority"}}},
            "backlog": {"$ref": "#/components/schemas/PerPriority",
                        "description": "tickets open now"},
            "backlog_unprioritized": {"type": "integer"},
            "backlog_overdue": {"type": "integer"},
            "volume": {"type": "object", "additionalProperties": {"type": "integer"},
                       "description": "tickets created in the period, per category"},
        },
    },
    "PerPriority": {
        "type": "object",
        "properties": {p: {"type": ["number", "null"]} for p in ("P1", "P2", "P3", "P4", "P5")},
    },
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _list_of(name: str) -> dict[str, Any]:
    return {"type": "object", "properties": {"items": {"type": "array", "items": _ref(name)},
                                             "total": {"type": "integer"}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {400: "Malformed request", 401: "Not signed in", 403: "Not allowed",
            404: "Not found or not visible to the caller", 409: "Conflict with the current state",
            413: "Body larger than the limit", 422: "Invalid data, nothing changed",
            429: "Too many failed sign-ins: wait for Retry-After seconds",
            503: "Database unreachable for a moment, nothing changed: retry after Retry-After"}
    return {str(c): _json(_ref("Error"), text[c]) for c in codes}


def _op(summary: str, ok: tuple[int, dict[str, Any], str], *errors: int, body: str | None = None,
        params: list[dict[str, Any]] | None = None, public: bool = False, xml: bool = False):
    code, schema, description = ok
    op: dict[str, Any] = {"summary": summary,
                          "responses": {str(code): _json(schema, description),
                                        **_errors(*(() if public else (401,)), *errors,
                                                  *((413,) if body or xml else ()), 503)}}
    if body:
        op["requestBody"] = {"required": True,
                             "content": {"application/json": {"schema": _ref(body)}}}
    if xml:
        op["requestBody"] = {"required": True,
                             "content": {"application/xml": {"schema": {"type": "string"}}}}
    if params:
        op["parameters"] = params
    if public:
        op["security"] = []
    return op


def _path(name: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema or {"type": "string"}}


def _query(name: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False,
            "schema": schema or {"type": "string"}}


PAGING = [_query("page", {"type": "integer", "minimum": 1}),
          _query("per_page", {"type": "integer", "minimum": 1, "maximum": 100})]
NUMBER, TASK = _path("number"), _path("task_id")
_INSTANT = ("A date (the whole day) or an ISO 8601 date and time; UTC unless an offset "
            "is given.")
AUDIT_FILTERS = [
    {**_query("ticket"), "description": "Ticket number, e.g. INC-000001"},
    {**_query("actor"), "description": "User name of whoever acted"},
    {**_query("action"), "description": "e.g. task_completed, ticket_status_changed"},
    {**_query("process"), "description": "Process key, e.g. incident"},
    _query("version", {"type": "integer", "minimum": 1}),
    {**_query("since"), "description": f"Events at or after this instant. {_INSTANT}"},
    {**_query("until"), "description": f"Events before this instant (a date: up to its end). "
                                       f"{_INSTANT}"},
    {**_query("format", {"enum": ["json", "csv"]}),
     "description": "Without it, one page of events, newest first. With it, every matching "
                    "event, oldest first, streamed: JSON {items, total} or CSV with the columns "
                    "seq, at, actor, action, ticket, task, process_key, process_version, data "
                    "(JSON text), hash."},
]


REPORT_FILTERS = [
    {**_query("since"), "description": f"Start of the period (default: 30 days before its "
                                       f"end). {_INSTANT}"},
    {**_query("until"), "description": f"End of the period, excluded (a date: up to its end; "
                                       f"default: now). {_INSTANT}"},
    _query("kind", {"enum": ["incident", "request"]}),
    {**_query("service"), "description": "Service key"},
    {**_query("group"), "description": "Group key: the ticket's current group"},
    _query("priority", {"enum": ["P1", "P2", "P3", "P4", "P5"]}),
    {**_query("process_version", {"type": "integer", "minimum": 1}),
     "description": "Tickets run by this version of their process"},
]


def _audit_search() -> dict[str, Any]:
    events = _list_of("AuditEvent")
    events["properties"].update(
        page={"type": "integer", "description": "without format only"},
        per_page={"type": "integer", "description": "without format only"})
    op = _op("Search the audit trail (auditors)",
             (200, events, "A page of events, or every match with format=json or csv"),
             403, 422, params=[*AUDIT_FILTERS, *PAGING])
    op["responses"]["200"]["content"]["text/csv"] = {"schema": {"type": "string"}}
    return op


def document() -> dict[str, Any]:
    """The OpenAPI document served at ``/api/v1/openapi.json``."""
    tickets = _list_of("Ticket")
    return {
        "openapi": "3.1.0",
        "info": {"title": "Guichet API", "version": "1",
                 "description": "ITIL service desk: incidents and service requests run as BPMN."},
        "servers": [{"url": "/api/v1"}],
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": {
            "/token": {"post": _op("Exchange credentials for a bearer token",
                                   (200, {"type": "object", "properties": {
                                       "token": {"type": "string"}}}, "A token"),
                                   400, 401, 422, 429, body="TokenRequest", public=True)},
            "/catalog": {"get": _op("Service catalog", (200, _list_of("CatalogItem"), "Items"))},
            "/services": {"get": _op("Services and their state",
                                     (200, _list_of("Service"), "Services"))},
            "/incidents": {"post": _op("Report an incident", (201, _ref("Ticket"), "Created"),
                                       400, 403, 422, body="IncidentRequest")},
            "/requests": {"post": _op("Order a catalog item", (201, _ref("Ticket"), "Created"),
                                      400, 403, 422, body="OrderRequest")},
            "/tickets": {"get": _op("Tickets the caller may see, newest first",
                                    (200, tickets, "A page of tickets"), 422,
                                    params=[_query("kind", {"enum": ["incident", "request"]}),
                                            _query("status"), _query("q"),
                                            _query("priority", {"enum": ["P1", "P2", "P3", "P4",
                                                                         "P5"]}),
                                            _query("service"), *PAGING])},
            "/tickets/{number}": {"get": _op("One ticket", (200, _ref("Ticket"), "The ticket"),
                                             404, params=[NUMBER])},
            "/tickets/{number}/history": {"get": _op(
                "Audit events of the ticket, oldest first",
                (200, _list_of("AuditEvent"), "Events"), 404, params=[NUMBER])},
            "/tasks": {"get": _op("Ready user tasks the caller may act on",
                                  (200, _list_of("Task"), "A page of tasks"), 422, params=PAGING)},
            "/tasks/{task_id}": {"get": _op("One task", (200, _ref("Task"), "The task"), 404,
                                            params=[TASK])},
            "/tasks/{task_id}/claim": {"post": _op("Claim a task", (200, _ref("Task"), "Claimed"),
                                                   403, 404, 409, params=[TASK])},
            "/tasks/{task_id}/release": {"post": _op(
                "Release a claimed task", (200, _ref("Task"), "Released"), 403, 404, 409,
                params=[TASK])},
            "/tasks/{task_id}/complete": {"post": _op(
                "Complete a task; the process moves to its next wait state",
                (200, _ref("Ticket"), "The ticket after the step"), 400, 403, 404, 409, 422,
                body="CompleteRequest", params=[TASK])},
            "/processes": {"get": _op("Current version of every process and decision table",
                                      (200, _list_of("ProcessVersion"), "Versions"))},
            "/processes/{key}/versions": {
                "get": _op("Every version, newest first",
                           (200, _list_of("ProcessVersion"), "Versions"), 404,
                           params=[_path("key")]),
                "post": _op("Deploy a new version (process owners)",
                            (201, {"type": "object", "properties": {
                                "version": {"type": "integer"},
                                "created": {"type": "boolean"}}}, "Deployed"),
                            400, 403, 422, params=[_path("key")], xml=True),
            },
            "/processes/{key}/versions/{version}/xml": {"get": _op(
                "The deployed BPMN/DMN XML", (200, {"type": "string"}, "XML"), 404,
                params=[_path("key"), _path("version", {"type": "integer"})])},
            "/audit/verify": {"get": _op(
                "Check the audit hash chain (auditors)",
                (200, {"type": "object", "properties": {
                    "ok": {"type": "boolean"}, "events": {"type": "integer"},
                    "first_bad": {"type": "integer"}, "reason": {"type": "string"}}},
                 "Verification result"), 403)},
            "/audit/events": {"get": _audit_search()},
            "/reports/kpis": {"get": _op(
                "Service desk KPIs of a period (managers and auditors)",
                (200, _ref("Kpis"), "The KPIs"), 400, 403, 422, params=REPORT_FILTERS)},
            "/events": {"post": _op(
                "A monitoring event (role monitor): opens an incident, or adds to the open "
                "one with the same fingerprint (200)", (201, _ref("Ticket"), "New incident"),
                400, 403, 422, body="EventRequest")},
            "/services/{key}/state": {"post": _op(
                "Set a service's state by hand, e.g. planned maintenance (agents, managers)",
                (200, _ref("Service"), "The service"), 400, 403, 404, 422,
                body="ServiceStateRequest", params=[_path("key")])},
            "/status": {"get": _op(
                "Each service's state, its open incidents and the expected restore time",
                (200, _list_of("ServiceStatus"), "Services"))},
            "/notifications": {"get": _op(
                "The caller's notifications, newest first",
                (200, _list_of("Notification"), "A page of notifications"), 422,
                params=[_query("unread", {"enum": ["0", "1"]}), *PAGING])},
            "/notifications/read": {"post": _op(
                "Mark notifications read", (200, {"type": "object", "properties": {
                    "marked": {"type": "integer"}}}, "How many were marked"),
                400, 403, 422, body="ReadRequest")},
            "/admin/failures": {"get": _op(
                "Steps the engine could not finish (administrators)",
                (200, _list_of("Failure"), "Open failures, newest first"), 403)},
            "/admin/failures/{failure_id}/retry": {"post": _op(
                "Retry a failed step (administrators)", (200, _ref("Failure"), "Retried"),
                403, 404, 409, 422, params=[_path("failure_id", {"type": "integer"})])},
            "/admin/outbox": {"get": _op(
                "Every notification with its delivery state (administrators, managers)",
                (200, _list_of("Notification"), "A page of notifications"), 403, 422,
                params=[_query("state", {"enum": ["pending", "sent", "failed", "no_email"]}),
                        *PAGING])},
            "/openapi.json": {"get": _op("This document", (200, {"type": "object"}, "OpenAPI"),
                                         public=True)},
        },
    }
