"""The ``guichet`` command line."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from engine import SYSTEM, DeployFailed, GuichetError, ServiceDesk, uploads_from_folder

from . import DEFAULT_PROCESSES, ROOT


def _database_url() -> str:
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    instance = ROOT / "instance"
    instance.mkdir(exist_ok=True)
    return f"sqlite:///{instance / 'guichet.db'}"


@contextmanager
def _desk() -> Iterator[ServiceDesk]:
    """The engine for one command; its connections are closed when the command ends."""
    desk = ServiceDesk(_database_url())
    try:
        yield desk
    finally:
        desk.close()


@click.group()
def main() -> None:
    """Guichet: an ITIL service desk run by BPMN."""


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create the database or bring it to the latest schema."""
    with _desk() as desk:
        desk.upgrade_schema()
    click.echo("database is up to date")


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
def deploy(paths: tuple[Path, ...]) -> None:
    """Validate and deploy BPMN/DMN files (default: processes/); all or nothing."""
    uploads = []
    for path in paths or (DEFAULT_PROCESSES,):
        if path.is_dir():
            uploads += uploads_from_folder(path)
        else:
            uploads += [u for u in uploads_from_folder(path.parent) if Path(u.filename) == path]
    try:
        with _desk() as desk:
            outcomes = desk.deploy(uploads, SYSTEM)
    except DeployFailed as err:
        for e in err.errors:
            where = f" [{e['element']}]" if e.get("element") else ""
            click.echo(f"{e['file']}{where}: {e['message']}", err=True)
        click.echo(f"nothing deployed: {len(err.errors)} error(s)", err=True)
        sys.exit(1)
    for o in outcomes:
        click.echo(f"{o.key}: version {o.version}" + ("" if o.created else " (unchanged)"))


@main.command("demo-data")
@click.option("--tickets", "tickets", default=0, show_default=True, type=click.IntRange(min=0),
              help="Also generate N realistic historical tickets (adds N more on each run; "
                   "deploy the processes first).")
@click.option("--seed", default=1, show_default=True, type=int,
              help="Random seed of the generated tickets.")
def demo_data(tickets: int, seed: int) -> None:
    """Create the demo users, groups, services and catalog (idempotent)."""
    from engine import bulk

    with _desk() as desk:
        created = desk.seed_demo(DEFAULT_PROCESSES)
        click.echo("demo data: " + ", ".join(f"{n} {k} created" for k, n in created.items()))
        if not tickets:
            return
        try:
            done = bulk.generate(desk.db.engine, tickets, seed=seed)
        except LookupError as err:
            click.echo(f"no tickets generated: {err.args[0]}", err=True)
            sys.exit(1)
    statuses = ", ".join(f"{n} {s}" for s, n in done["by_status"].items())
    numbers = ", ".join(f"{done['first_numbers'][k]}..{done['last_numbers'][k]}"
                        for k in done["last_numbers"])
    click.echo(f"generated {done['tickets']} tickets in {done['seconds']:.1f} s: "
               f"{done['incidents']} incidents, {done['requests']} requests ({statuses}); "
               f"numbers {numbers}")
    click.echo(f"rows: {', '.join(f'{n} {t}' for t, n in done['rows'].items())}; "
               f"{done['users_created']} requester users created; audit: {done['audit']}"
               + "".join(f"; {note}" for note in done["notes"]))
    if done["defaulted_columns"]:
        click.echo("warning: engine.bulk left these columns to their default: "
                   + ", ".join(done["defaulted_columns"]), err=True)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int)
def serve(host: str, port: int, workers: int) -> None:
    """Serve the web app and API with gunicorn."""
    from gunicorn.app.base import BaseApplication

    from . import create_app

    os.environ.setdefault("DATABASE_URL", _database_url())
    os.environ.setdefault("GUICHET_INSECURE_COOKIES", "1" if host in ("127.0.0.1",
                                                                       "localhost") else "0")

    class _App(BaseApplication):
        def load_config(self) -> None:
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("threads", 4)
            self.cfg.set("accesslog", "-")

        def load(self):
            return create_app()

    click.echo(f"Guichet on http://{host}:{port} (database {_database_url()})")
    _App().run()


@main.command()
@click.option("--once", is_flag=True, help="Process what is due now, then exit.")
@click.option("--interval", default=5.0, show_default=True, type=click.FloatRange(min=0.1),
              help="Seconds between rounds when nothing is due.")
@click.option("--batch", default=100, show_default=True, type=click.IntRange(min=1),
              help="Tickets (and e-mails) per round.")
def worker(once: bool, interval: float, batch: int) -> None:
    """Fire due timers (SLA, auto-close) and send notifications; safe to run several."""
    import signal
    import threading

    from engine import worker as work
    from engine.mailer import SmtpSettings

    smtp = SmtpSettings.from_env()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if not once:
        where = f"SMTP {smtp.host}:{smtp.port}" if smtp else "no SMTP (GUICHET_SMTP_HOST unset)"
        click.echo(f"worker started on {_database_url()}, {where}")

    def report(done) -> None:
        click.echo(f"fired {done.fired} ticket timer(s), {done.failed} failed; "
                   f"sent {done.sent} e-mail(s), {done.undelivered} not delivered", err=False)

    with _desk() as desk:
        total = work.run(desk, smtp, once=once, interval=interval, batch=batch, stop=stop,
                         report=report)
    if once:
        click.echo(f"done: {total.fired} fired, {total.failed} failed, {total.sent} sent, "
                   f"{total.undelivered} not delivered")


@main.group()
def audit() -> None:
    """The audit trail."""


@audit.command("head")
def audit_head() -> None:
    """Print the last event's number and hash, to keep somewhere the database is not."""
    with _desk() as desk:
        seq, digest = desk.audit_head()
    click.echo(f"{seq} {digest}")


@audit.command("verify")
def audit_verify() -> None:
    """Check the hash chain; exit 1 naming the first bad event."""
    with _desk() as desk:
        count, first_bad, reason = desk.verify_audit()
    if first_bad is None:
        click.echo(f"audit trail intact: {count} events")
        return
    click.echo(f"audit trail BROKEN at event {first_bad}: {reason} ({count} events verified "
               "before it)", err=True)
    sys.exit(1)


@main.command()
@click.argument("key")
@click.option("--to", "to_version", type=int, default=None,
              help="Target version (default: the current one).")
@click.option("--dry-run", is_flag=True, help="List which tickets can move, move none.")
def migrate(key: str, to_version: int | None, dry_run: bool) -> None:
    """Move waiting tickets of process KEY to a newer version (each one atomically)."""
    try:
        with _desk() as desk:
            if dry_run:
                for c in desk.migration_candidates(SYSTEM, key, to_version):
                    mark = "can move" if c.movable else "stays"
                    click.echo(f"{c.ticket}: v{c.from_version} -> v{c.to_version} {mark}: "
                               f"{c.reason}")
                return
            results = desk.migrate(SYSTEM, key, to_version)
    except GuichetError as err:
        click.echo(err.message, err=True)
        sys.exit(1)
    for r in results:
        click.echo(f"{r.ticket}: {'moved' if r.moved else 'not moved'}: {r.reason}")
    moved = sum(r.moved for r in results)
    click.echo(f"{moved} of {len(results)} waiting ticket(s) moved")
