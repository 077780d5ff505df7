"""Scripts, conditions and decision cells run in the RestrictedPython sandbox."""

from __future__ import annotations

import pytest

from engine import SandboxError
from engine.sandbox import SandboxEnvironment, check

ESCAPES = [
    "__import__('os').system('id')",
    "().__class__.__base__.__subclasses__()",
    "open('/etc/passwd').read()",
    "getattr(action, '__class__')",
    "globals()",
    "eval('1')",
    "compile('1', 'x', 'eval')",
    "type(action)",
]


@pytest.mark.parametrize("expression", ESCAPES)
def test_expressions_cannot_escape(expression):
    env = SandboxEnvironment()
    with pytest.raises((SandboxError, NameError)):
        env.evaluate(expression, {"action": "resolve"})


@pytest.mark.parametrize("script", [
    "import os",
    "from os import path",
    "import socket\nsocket.create_connection(('127.0.0.1', 5432))",
    "x = resolved_by.__dict__",
])
def test_scripts_with_imports_or_dunders_are_refused(script):
    assert check(script, "exec")
    with pytest.raises(SandboxError):
        SandboxEnvironment().execute(script, {"resolved_by": "sam"})


def test_plain_scripts_and_expressions_work():
    env = SandboxEnvironment()
    data = {"last_actor": "sam", "reopen_count": 1, "tags": ["a"]}
    env.execute("resolved_by = last_actor\nreopen_count += 1\nn = len([t for t in tags])", data)
    assert data == {"last_actor": "sam", "reopen_count": 2, "tags": ["a"],
                    "resolved_by": "sam", "n": 1}
    assert env.evaluate('action == "resolve" and count < 3', {"action": "resolve", "count": 2})


def test_scripts_cannot_leave_non_json_values_in_task_data():
    with pytest.raises(SandboxError, match="not JSON"):
        SandboxEnvironment().execute("s = {1, 2}", {})


def test_the_engine_refuses_to_deploy_a_script_that_imports(desk, life):
    from engine import SYSTEM, DeployFailed, Upload
    from tests.conftest import PROCESSES

    xml = (PROCESSES / "incident.bpmn").read_text()
    evil = xml.replace("resolved_by = last_actor", "import os\nresolved_by = os.getcwd()", 1)
    assert evil != xml
    forms = {p.name: __import__("json").loads(p.read_text())
             for p in (PROCESSES / "forms").glob("*.json")}
    with pytest.raises(DeployFailed) as err:
        desk.deploy([Upload("incident.bpmn", evil, forms)], SYSTEM)
    assert {"file": "incident.bpmn", "element": "record_resolution",
            "message": "script refused: imports are not allowed (line 1)"} in err.value.errors
    assert [v.version for v in desk.versions("incident")] == [1]


def test_a_script_refused_at_run_time_rolls_the_step_back(desk, life, monkeypatch):
    """Even if a bad script got past deployment, running it fails cleanly and changes nothing."""
    from engine import ProcessError
    from tests.conftest import QUALIFY_RESOLVE

    ticket = life.report()
    definition = next(iter(desk.definitions._items.values()))
    spec = definition.spec.task_specs["record_resolution"]
    monkeypatch.setattr(spec, "script", "import os\nresolved_by = os.getcwd()")
    with pytest.raises(ProcessError, match=r"record_resolution.*imports are not allowed"):
        life.complete(ticket, "qualify", as_="sam", data=QUALIFY_RESOLVE)
    assert life.waits_on(ticket) == ["qualify"]
    assert life.ticket(ticket).status == "new"
