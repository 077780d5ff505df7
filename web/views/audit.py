"""Auditors: search, export and verify the trail; any ticket's path drawn on its diagram.

Auditors read everything and change nothing: every write of the pages answers 403 to
them (the API refuses them the same way). The bpmn-js viewer the trace page draws with
comes from node_modules (npm ci), served by web/vendor.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import (
    Blueprint,
    abort,
    g,
    jsonify,
    render_template,
    request,
    url_for,
)
from lxml import etree

from engine import Actor, TraceInfo

from .. import trail
from ..facade import desk
from .common import error_page, humanize, is_staff, page_number, require_login, require_roles

bp = Blueprint("audit", __name__)
bp.before_request(require_login)
bp.add_app_template_global(trail.read_only, "read_only")
bp.add_app_template_filter(trail.pretty_json, "pretty_json")

PER_PAGE = 50
SESSION_ENDPOINTS = frozenset({"auth.login", "auth.logout"})
BPMN_KINDS = {
    "startEvent": "Start event", "endEvent": "End event", "userTask": "User task",
    "scriptTask": "Script task", "serviceTask": "Service task", "task": "Task",
    "businessRuleTask": "Decision", "exclusiveGateway": "Gateway",
    "parallelGateway": "Parallel gateway", "inclusiveGateway": "Gateway",
    "eventBasedGateway": "Gateway", "intermediateCatchEvent": "Waiting event",
    "intermediateThrowEvent": "Event", "boundaryEvent": "Boundary event",
    "subProcess": "Sub-process", "callActivity": "Call activity",
}


@bp.before_app_request
def _auditors_change_nothing():
    """A page write (any method but GET) answers 403 to an auditor; signing in and out
    are not writes. The API blueprint has its own check for bearer tokens."""
    if request.method in ("GET", "HEAD", "OPTIONS") or request.path.startswith("/api/") \
            or request.url_rule is None or request.endpoint in SESSION_ENDPOINTS:
        return None
    if trail.read_only(g.get("user")):
        abort(403, "Auditors can read everything and change nothing.")
    return None


# -- the trail -------------------------------------------------------------------------


@bp.get("/audit")
def index():
    actor = require_roles("auditor")
    filters, errors = trail.parse_filters(request.args)
    page = None
    if not errors:
        page = desk().audit_events(actor, page=page_number(request.args.get("page")),
                                   per_page=PER_PAGE, **filters)
    searched = trail.query_args(request.args)
    actions = desk().audit_actions()
    chosen = searched.get("action")
    if chosen and chosen not in actions:
        actions = sorted([*actions, chosen])
    processes = sorted({(v.key, v.name) for v in desk().processes() if v.kind == "bpmn"})
    return render_template(
        "audit/index.html", page=page, errors=errors,
        values={name: request.args.get(name, "") for name in trail.FILTERS},
        searched=searched, actions=actions, processes=processes,
        instant_help=trail.INSTANT_HELP,
    ), (422 if errors else 200)


@bp.get("/audit/events.<fmt>")
def export(fmt: str):
    """The current search of /audit, every match oldest first, as a CSV or JSON file."""
    actor = require_roles("auditor")
    if fmt not in ("csv", "json"):
        abort(404)
    filters, errors = trail.parse_filters(request.args)
    if errors:
        details = "; ".join(f"{k}: {v}" for k, v in sorted(errors.items()))
        return error_page(422, f"This search cannot be exported. {details}")
    events = trail.primed(desk().audit_export(actor, **filters))
    return trail.download(events, fmt, trail.export_name(filters, fmt))


@bp.get("/audit/verify")
def verify():
    require_roles("auditor")
    count, first_bad, reason = desk().verify_audit()
    return render_template("audit/verify.html", count=count, first_bad=first_bad,
                           reason=reason, checked_at=datetime.now(UTC))


# -- one ticket's path -----------------------------------------------------------------


@bp.get("/tickets/<number>/trace")
def trace(number: str):
    actor = _staff()
    info = desk().trace(actor, number)
    ticket = desk().ticket(actor, number)
    names = element_names(info.xml)
    selected = request.args.get("element") or None
    if selected not in names and selected not in info.element_events:
        selected = None
    shown = set(info.element_events.get(selected, [])) if selected else None
    current = next((v.version for v in desk().processes() if v.key == info.process.key), None)
    return render_template(
        "audit/trace.html", info=info, ticket=ticket, names=names,
        elements=_elements(info, names), selected=selected, shown=shown,
        elements_of=_elements_of(info), current_version=current,
        trace_url=url_for("audit.trace_json", number=info.ticket),
    )


@bp.get("/tickets/<number>/trace.json")
def trace_json(number: str):
    """What trace.js draws: the BPMN of the ticket's version and the path it took."""
    info = desk().trace(_staff(), number)
    response = jsonify(
        ticket=info.ticket, process={"key": info.process.key, "version": info.process.version},
        xml=info.xml, visits=info.visits, waiting=info.waiting,
        element_events=info.element_events,
        names={k: v["name"] for k, v in element_names(info.xml).items()},
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def _staff() -> Actor:
    actor = g.user
    if not is_staff(actor):
        abort(403, "The process trace is for the service desk, process owners and auditors.")
    return actor


def element_names(xml: str) -> dict[str, dict[str, str]]:
    """Element id -> {name, kind} of the flow elements of a BPMN document."""
    try:
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                                 remove_comments=True)  # one per call: not thread-safe
        root = etree.fromstring(xml.encode(), parser)
    except (etree.XMLSyntaxError, ValueError):
        return {}
    found: dict[str, dict[str, str]] = {}
    for node in root.iter():
        if not isinstance(node.tag, str) or not node.get("id"):
            continue
        kind = etree.QName(node).localname
        if kind in BPMN_KINDS or kind.endswith(("Task", "Event", "Gateway")):
            found[node.get("id")] = {
                "name": (node.get("name") or "").strip() or node.get("id"),
                "kind": BPMN_KINDS.get(kind, humanize(kind)),
            }
    return found


def _elements(info: TraceInfo, names: dict[str, dict[str, str]]) -> list[dict[str, Any]]:
    """The elements the ticket reached, in the order it first reached them."""
    ids = list(info.element_events) + [i for i in info.waiting if i not in info.element_events]
    first = {i: (info.element_events.get(i) or [10**12])[0] for i in ids}
    rows = []
    for element in sorted(ids, key=lambda i: first[i]):
        known = names.get(element, {"name": element, "kind": ""})
        rows.append({"id": element, "name": known["name"], "kind": known["kind"],
                     "visits": info.visits.get(element, 0),
                     "waiting": element in info.waiting,
                     "events": len(info.element_events.get(element, []))})
    return rows


def _elements_of(info: TraceInfo) -> dict[int, list[str]]:
    """Event seq -> the elements it concerns (the inverse of ``element_events``)."""
    by_seq: dict[int, list[str]] = {}
    for element, seqs in info.element_events.items():
        for seq in seqs:
            by_seq.setdefault(seq, []).append(element)
    return by_seq

