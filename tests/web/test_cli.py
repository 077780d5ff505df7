"""The ``guichet`` command line on the test database."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from tests.conftest import PROCESSES, QUALIFY_ESCALATE
from web.cli import main


@pytest.fixture
def run(database_url, desk, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", database_url)

    def invoke(*args: str):
        return CliRunner().invoke(main, list(args), catch_exceptions=False)

    return invoke


def test_deploy_is_idempotent_and_refuses_invalid_files(run, tmp_path):
    result = run("deploy", str(PROCESSES))
    assert result.exit_code == 0 and "incident: version 1 (unchanged)" in result.output
    bad = tmp_path / "incident.bpmn"
    bad.write_text((PROCESSES / "incident.bpmn").read_text()
                   .replace('value="service_desk"', 'value="ghosts"', 1))
    (tmp_path / "forms").symlink_to(PROCESSES / "forms")
    result = run("deploy", str(tmp_path))
    assert result.exit_code == 1
    assert "[qualify]: group 'ghosts' is not a known group" in result.output
    assert "nothing deployed" in result.output


def test_migrate_moves_waiting_tickets(run, life, desk):
    ticket = life.report()
    life.complete(ticket, "qualify", as_="sam", data=QUALIFY_ESCALATE)
    xml = (PROCESSES / "incident.bpmn").read_text().replace("Investigate and resolve", "Fix it")
    desk.deploy_xml("incident", xml, life.user("olga"))
    dry = run("migrate", "incident", "--dry-run")
    assert f"{ticket.number}: v1 -> v2 can move" in dry.output
    result = run("migrate", "incident", "--to", "2")
    assert result.exit_code == 0 and "1 of 1 waiting ticket(s) moved" in result.output
    assert life.task(ticket, "escalate").title == "Fix it"


def test_audit_verify_and_head(run, desk, life):
    life.report()
    result = run("audit", "verify")
    assert result.exit_code == 0 and "audit trail intact" in result.output
    seq, digest = run("audit", "head").output.split()
    assert (int(seq), digest) == desk.audit_head()
    last = desk.audit_events(life.user("aude"), per_page=1).items[0]
    assert (last.seq, last.hash) == (int(seq), digest)
