"""The Alembic migrations build exactly the schema of engine/persistence/models.py.

Runs on a fresh SQLite file, and also on a fresh PostgreSQL database (created and
dropped here) when ``TEST_DATABASE_URL`` points at a PostgreSQL server.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, inspect, make_url, text

from engine.migrate import alembic_config, current, upgrade
from engine.persistence.db import make_engine
from engine.persistence.models import Base

HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()


def _postgres_url() -> str:
    url = os.environ.get("TEST_DATABASE_URL", "")
    if not url.startswith("postgresql"):
        pytest.skip("PostgreSQL variant: set TEST_DATABASE_URL (as make test does)")
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh(request, tmp_path) -> Iterator[Engine]:
    """An engine on an empty database of each backend."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'guichet.db'}")
        yield engine
        engine.dispose()
        return
    url = make_url(_postgres_url())
    name = f"guichet_migr_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(url.set(database=name).render_as_string(hide_password=False))
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def differences(engine: Engine) -> list:
    """What autogenerate would still have to do to reach the models (empty when none)."""
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(context, Base.metadata)


def test_upgrade_builds_the_schema_of_the_models(fresh):
    assert current(fresh) is None
    upgrade(fresh)
    assert current(fresh) == HEAD
    assert differences(fresh) == []
    tables = set(inspect(fresh).get_table_names())
    assert tables == set(Base.metadata.tables) | {"alembic_version"}
    for table in Base.metadata.sorted_tables:
        indexes = {ix["name"] for ix in inspect(fresh).get_indexes(table.name)}
        assert {ix.name for ix in table.indexes} <= indexes, table.name


def test_upgrade_twice_is_a_no_op(fresh):
    upgrade(fresh)
    with fresh.begin() as conn:
        conn.execute(text("INSERT INTO counters (name, value) VALUES ('INC', 7)"))
    upgrade(fresh)
    assert current(fresh) == HEAD
    assert differences(fresh) == []
    with fresh.connect() as conn:
        assert conn.execute(text("SELECT value FROM counters")).scalar_one() == 7


def test_the_comparison_notices_what_is_missing(fresh):
    """Guards the two tests above: a missing table or index must show as a difference."""
    upgrade(fresh)
    with fresh.begin() as conn:
        conn.execute(text("DROP INDEX ix_audit_at"))
        conn.execute(text("DROP TABLE counters"))
    found = {(diff[0], diff[1].name) for diff in differences(fresh) if isinstance(diff, tuple)}
    assert ("add_index", "ix_audit_at") in found
    assert ("add_table", "counters") in found


def test_downgrade_to_base_removes_everything(fresh):
    upgrade(fresh)
    config = alembic_config()
    with fresh.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "base")
    assert set(inspect(fresh).get_table_names()) <= {"alembic_version"}
    assert current(fresh) is None
    upgrade(fresh)
    assert differences(fresh) == []
