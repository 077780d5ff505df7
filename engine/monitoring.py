"""Monitoring events and service states.

An event from a monitoring tool opens an incident on its service, or adds to the open
incident with the same fingerprint. The service's state follows its open monitoring
incidents (the worst severity wins) and returns to nominal when the last one is
resolved; a state set by hand (e.g. planned maintenance) stays until set by hand again.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from .persistence.models import Service, ServiceStateChange, Ticket

SEVERITIES = ("critical", "major", "minor", "warning")
# severity -> (impact, urgency) for the priority matrix, and the state it puts the service in
IMPACT_URGENCY = {"critical": ("high", "high"), "major": ("high", "medium"),
                  "minor": ("medium", "medium"), "warning": ("low", "medium")}
SERVICE_STATE = {"critical": "interrupted", "major": "degraded", "minor": "degraded",
                 "warning": "degraded"}
STATES = ("nominal", "degraded", "interrupted", "maintenance")
_WORSE = {"nominal": 0, "maintenance": 1, "degraded": 2, "interrupted": 3}
CLOSED = ("resolved", "closed", "rejected")
OPEN = ("new", "in_progress", "pending_approval", "awaiting_requester")


def open_incident_for(session: Session, fingerprint: str) -> Ticket | None:
    """The open incident already opened for this fingerprint, if any (by index)."""
    return session.scalars(
        select(Ticket).where(Ticket.fingerprint == fingerprint, Ticket.status.in_(OPEN))
        .order_by(Ticket.id.desc()).limit(1).with_for_update()
    ).first()


def change(session: Session, service: Service, state: str, reason: str, actor: str,
           now: datetime, ticket_id: int | None = None) -> bool:
    """Put ``service`` in ``state`` and record why; False when it already was."""
    if service.state == state:
        return False
    service.state = state
    session.add(ServiceStateChange(service_key=service.key, state=state, reason=reason[:2000],
                                   ticket_id=ticket_id, actor=actor, at=now))
    return True


def set_by_incident(session: Session, service: Service, severity: str, ticket: Ticket,
                    now: datetime) -> bool:
    """Degrade (or interrupt) the service for a monitoring incident; never improve it."""
    wanted = SERVICE_STATE[severity]
    if _manual(session, service.key) or _WORSE[wanted] <= _WORSE[service.state]:
        return False
    return change(session, service, wanted, f"{ticket.number}: {ticket.title}", "system", now,
                  ticket.id)


def follow(session: Session, ticket: Ticket, now: datetime) -> bool:
    """After a monitoring incident is resolved, return its service to nominal when no
    other open monitoring incident affects it and no one set its state by hand."""
    if not ticket.fingerprint or not ticket.service_key or ticket.status not in CLOSED:
        return False
    service = session.get(Service, ticket.service_key)
    if service is None or service.state == "nominal" or _manual(session, service.key):
        return False
    others = session.scalar(
        select(Ticket.id).where(Ticket.service_key == service.key, Ticket.id != ticket.id,
                                Ticket.fingerprint.is_not(None), Ticket.status.in_(OPEN))
        .limit(1))
    if others is not None:
        return False
    return change(session, service, "nominal", f"{ticket.number} {ticket.status}", "system", now,
                  ticket.id)


def _manual(session: Session, service_key: str) -> bool:
    """Whether the service's current state was set by a person (not by an incident)."""
    last = session.scalars(
        select(ServiceStateChange).where(ServiceStateChange.service_key == service_key)
        .order_by(ServiceStateChange.id.desc()).limit(1)
    ).first()
    return last is not None and last.ticket_id is None and last.state != "nominal"
