"""Database schema upgrades: Alembic, driven from code (no alembic.ini needed).

``upgrade(engine)`` brings any database, empty or older, to the newest revision of
``engine/migrations``. Running it on an up-to-date database does nothing.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, text

MIGRATIONS = Path(__file__).resolve().parent / "migrations"

# Any constant will do: it only has to be the same for every Guichet process.
_PG_LOCK_KEY = 0x6775696368  # "guich"


def alembic_config() -> Config:
    """An Alembic configuration pointing at the packaged migration scripts."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run ``alembic upgrade head`` (or up to ``revision``) on ``engine``, in one transaction.

    On PostgreSQL a transaction-level advisory lock makes concurrent upgrades (several
    processes starting at once) run one after the other; on SQLite the write lock is
    taken up front for the same reason.
    """
    config = alembic_config()
    with engine.execution_options(write=True).begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def current(engine: Engine) -> str | None:
    """The revision the database is at, or None when it was never upgraded."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
