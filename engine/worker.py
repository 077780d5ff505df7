"""The background worker: fires due timers and delivers the notification outbox.

Run as ``guichet worker`` (forever) or ``guichet worker --once`` (what is due now).
Several workers, on one machine or several, share one PostgreSQL safely: each due
ticket and each e-mail is taken ``FOR UPDATE SKIP LOCKED`` in its own transaction.
Timers missed while no worker ran are due at once when one starts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from .dto import WorkerRound
from .facade import ServiceDesk
from .mailer import SmtpSettings


def run_round(desk: ServiceDesk, smtp: SmtpSettings | None, batch: int = 100) -> WorkerRound:
    """Fire what is due and send what is pending, up to ``batch`` of each."""
    return desk.fire_due_timers(limit=batch) + desk.deliver_notifications(smtp, limit=batch)


def run(desk: ServiceDesk, smtp: SmtpSettings | None, *, once: bool = False,
        interval: float = 5.0, batch: int = 100, stop: threading.Event | None = None,
        report: Callable[[WorkerRound], None] | None = None) -> WorkerRound:
    """Work until ``stop`` is set (or one pass with ``once``); return the totals.

    A full batch means more is waiting: the next round starts at once, otherwise the
    worker sleeps ``interval`` seconds (waking early when stopped).
    """
    stop = stop or threading.Event()
    total = WorkerRound()
    while not stop.is_set():
        done = run_round(desk, smtp, batch)
        total += done
        if report and (done.fired or done.failed or done.sent or done.undelivered):
            report(done)
        busy = done.fired + done.failed >= batch or done.sent + done.undelivered >= batch
        if once and not busy:
            break
        if not busy:
            stop.wait(interval)
    return total
