"""E-mail delivery of the notification outbox over SMTP.

Settings come from the environment (``SmtpSettings.from_env``): ``GUICHET_SMTP_HOST``
(no host: e-mails stay pending in the outbox, listed in the app), ``GUICHET_SMTP_PORT``
(25), ``GUICHET_SMTP_FROM``, ``GUICHET_SMTP_USER``/``GUICHET_SMTP_PASSWORD`` and
``GUICHET_SMTP_STARTTLS=1``. Delivery is at least once: a crash between the SMTP
answer and the commit sends that message again.
"""

from __future__ import annotations

import os
import smtplib
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage

from sqlalchemy import select
from sqlalchemy.orm import Session

from .persistence.models import Notification

MAX_ATTEMPTS = 8


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = 25
    sender: str = "guichet@localhost"
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    timeout: float = 10.0

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> SmtpSettings | None:
        env = os.environ if env is None else env
        host = env.get("GUICHET_SMTP_HOST", "").strip()
        if not host:
            return None
        return cls(host=host, port=int(env.get("GUICHET_SMTP_PORT", "25")),
                   sender=env.get("GUICHET_SMTP_FROM", "guichet@localhost"),
                   username=env.get("GUICHET_SMTP_USER") or None,
                   password=env.get("GUICHET_SMTP_PASSWORD") or None,
                   starttls=env.get("GUICHET_SMTP_STARTTLS", "") == "1")


def send(settings: SmtpSettings, rows: list[Notification]) -> dict[int, str | None]:
    """Send each row over one SMTP connection: ``{id: None}`` when sent, else the error."""
    results: dict[int, str | None] = {}
    try:
        with smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout) as smtp:
            if settings.starttls:
                smtp.starttls()
            if settings.username:
                smtp.login(settings.username, settings.password or "")
            for row in rows:
                message = EmailMessage()
                message["From"], message["To"] = settings.sender, row.email
                message["Subject"] = row.subject
                message.set_content(row.body)
                try:
                    smtp.send_message(message)
                    results[row.id] = None
                except smtplib.SMTPException as err:
                    results[row.id] = f"{type(err).__name__}: {err}"
    except (OSError, smtplib.SMTPException) as err:
        for row in rows:
            results.setdefault(row.id, f"{type(err).__name__}: {err}")
    return results


def deliver_due(session: Session, settings: SmtpSettings, now: datetime,
                limit: int = 100) -> tuple[int, int]:
    """Deliver pending e-mails that are due; return (sent, failed attempts).

    Rows are locked ``FOR UPDATE SKIP LOCKED`` on PostgreSQL so several workers share
    the outbox without sending a message twice.
    """
    query = (select(Notification)
             .where(Notification.state == "pending", Notification.next_attempt_at <= now)
             .order_by(Notification.next_attempt_at, Notification.id).limit(limit))
    if session.bind.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    rows = list(session.scalars(query))
    if not rows:
        return 0, 0
    results = send(settings, rows)
    sent = failed = 0
    for row in rows:
        error = results.get(row.id, "not attempted")
        row.attempts += 1
        if error is None:
            row.state, row.sent_at, row.last_error = "sent", now, None
            sent += 1
            continue
        failed += 1
        row.last_error = error[:2000]
        if row.attempts >= MAX_ATTEMPTS:
            row.state = "failed"
        else:
            row.next_attempt_at = now + timedelta(seconds=min(3600, 15 * 2 ** row.attempts))
    return sent, failed
