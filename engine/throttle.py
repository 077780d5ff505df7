"""Sign-in throttling, counted from the audit trail so every web process sees the same.

Each refused sign-in is already an audit event (``sign_in_refused``, its actor the user
name typed, its data the channel and client address). Past ``PER_USERNAME`` refusals for a
user name since its last successful sign-in, or ``PER_ADDRESS`` refusals from one address,
within ``WINDOW``, further attempts are refused without checking the password until the
oldest counted refusal leaves the window. Throttled attempts are audited
(``sign_in_throttled``) but do not count, so the lock ends on its own.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from .persistence.models import AuditEvent

WINDOW = timedelta(minutes=5)
PER_USERNAME = 5
PER_ADDRESS = 20
REFUSED, SIGNED_IN, THROTTLED = "sign_in_refused", "user_signed_in", "sign_in_throttled"


class Throttled(Exception):
    """Too many refused sign-ins; ``retry_after`` is in whole seconds.

    Not a ``GuichetError``: the web answers it with 429 and ``Retry-After`` itself.
    """

    def __init__(self, retry_after: int) -> None:
        minutes = math.ceil(retry_after / 60)
        self.retry_after = retry_after
        self.message = ("Too many failed sign-ins for this user name or from this address. "
                        f"Try again in {minutes} minute{'s' if minutes > 1 else ''}.")
        super().__init__(self.message)


def actor_name(username: str | None) -> str:
    """The actor a sign-in attempt is recorded under."""
    return (username or "")[:64] or "anonymous"


def sign_in_data(channel: str, address: str | None) -> dict[str, str]:
    return {"channel": channel, **({"address": address[:64]} if address else {})}


def wait(session: Session, username: str, address: str | None, now: datetime) -> int | None:
    """Seconds before ``username`` may try again from ``address``, or None when it may now."""
    since = now - WINDOW
    actor = actor_name(username)
    last_success = session.scalars(
        select(AuditEvent.at).where(AuditEvent.actor == actor, AuditEvent.action == SIGNED_IN,
                                    AuditEvent.at > since)
        .order_by(AuditEvent.at.desc()).limit(1)).first()
    by_name = select(AuditEvent.at).where(AuditEvent.actor == actor,
                                          AuditEvent.action == REFUSED,
                                          AuditEvent.at > (last_success or since))
    waits = [_wait(session, by_name, PER_USERNAME, now)]
    if address:
        needle = json.dumps({"address": address[:64]})[1:-1]  # "address": "..."
        escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        by_address = select(AuditEvent.at).where(
            AuditEvent.action == REFUSED, AuditEvent.at > since,
            AuditEvent.data.like(f"%{escaped}%", escape="\\"))
        waits.append(_wait(session, by_address, PER_ADDRESS, now))
    return max((w for w in waits if w is not None), default=None)


def _wait(session: Session, query, limit: int, now: datetime) -> int | None:
    times = session.scalars(query.order_by(AuditEvent.at.desc()).limit(limit)).all()
    if len(times) < limit:
        return None
    return max(1, math.ceil((times[-1] + WINDOW - now).total_seconds()))
