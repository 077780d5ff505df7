"""Engine results as the JSON of CONTRACT.md."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from engine import (
    AuditEventInfo,
    CatalogItemInfo,
    FailureInfo,
    NotificationInfo,
    Page,
    ProcessVersionInfo,
    ServiceInfo,
    ServiceStatus,
    TaskInfo,
    TicketInfo,
)


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def task(t: TaskInfo) -> dict[str, Any]:
    return {
        "id": t.id, "name": t.name, "title": t.title, "ticket": t.ticket, "group": t.group,
        "assignee": t.assignee, "for_requester": t.for_requester, "form": t.form,
        "due_at": iso(t.due_at), "created_at": iso(t.created_at), "priority": t.priority,
        "ticket_title": t.ticket_title,
    }


def ticket(t: TicketInfo, full: bool = True) -> dict[str, Any]:
    out = {
        "number": t.number, "kind": t.kind, "title": t.title, "description": t.description,
        "status": t.status, "priority": t.priority, "requester": t.requester,
        "service": t.service, "item": t.item, "group": t.group, "assignee": t.assignee,
        "channel": t.channel, "created_at": iso(t.created_at), "updated_at": iso(t.updated_at),
        "resolved_at": iso(t.resolved_at), "closed_at": iso(t.closed_at),
        "response_due_at": iso(t.response_due_at), "due_at": iso(t.due_at),
        "paused_at": iso(t.paused_at),
        "process": {"key": t.process.key, "version": t.process.version},
    }
    if full:
        out["tasks"] = [task(x) for x in t.tasks]
        out["data"] = t.data
    return out


def event(e: AuditEventInfo) -> dict[str, Any]:
    return {
        "seq": e.seq, "at": iso(e.at), "actor": e.actor, "action": e.action,
        "ticket": e.ticket, "task": e.task, "data": e.data,
        "process": {"key": e.process.key, "version": e.process.version} if e.process else None,
        "hash": e.hash,
    }


def version(v: ProcessVersionInfo) -> dict[str, Any]:
    return {"key": v.key, "kind": v.kind, "name": v.name, "version": v.version,
            "sha256": v.sha256, "deployed_at": iso(v.deployed_at), "deployed_by": v.deployed_by}


def catalog_item(i: CatalogItemInfo) -> dict[str, Any]:
    return {"key": i.key, "name": i.name, "description": i.description,
            "needs_approval": i.needs_approval, "auto_accept": i.auto_accept,
            "fulfilment_group": i.fulfilment_group, "form": i.form}


def service(s: ServiceInfo) -> dict[str, Any]:
    return {"key": s.key, "name": s.name, "state": s.state}


def page(p: Page, convert) -> dict[str, Any]:
    return {"items": [convert(x) for x in p.items], "total": p.total, "page": p.page,
            "per_page": p.per_page}


def listing(items: list, convert) -> dict[str, Any]:
    return {"items": [convert(x) for x in items], "total": len(items)}


def notification(n: NotificationInfo) -> dict[str, Any]:
    return {"id": n.id, "kind": n.kind, "subject": n.subject, "body": n.body,
            "ticket": n.ticket, "created_at": iso(n.created_at), "state": n.state,
            "read": n.read, "attempts": n.attempts, "last_error": n.last_error, "user": n.user}


def service_status(s: ServiceStatus) -> dict[str, Any]:
    return {"key": s.key, "name": s.name, "state": s.state, "since": iso(s.since),
            "reason": s.reason, "restore_at": iso(s.restore_at),
            "incidents": [ticket(t, full=False) for t in s.incidents]}


def failure(f: FailureInfo) -> dict[str, Any]:
    return {"id": f.id, "ticket": f.ticket, "task_id": f.task_id, "operation": f.operation,
            "actor": f.actor, "element": f.element, "error": f.error, "at": iso(f.at),
            "attempts": f.attempts, "resolved_at": iso(f.resolved_at),
            "resolved_by": f.resolved_by}
