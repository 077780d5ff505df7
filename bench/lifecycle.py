"""One incident lifecycle, run three ways: bare SpiffWorkflow, naive whole-blob
persistence with plain drivers (the floor), and Guichet's ServiceDesk facade.

The lifecycle: qualify (escalate to network) -> escalate (resolve) -> confirm -> close,
four user steps, the same data each way.
"""

from __future__ import annotations

import sqlite3
import time
from copy import deepcopy
from typing import Any

from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine, TaskDataEnvironment
from SpiffWorkflow.bpmn.serializer.workflow import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.spiff.parser import VALIDATOR, SpiffBpmnParser
from SpiffWorkflow.spiff.serializer import DEFAULT_CONFIG
from SpiffWorkflow.util.task import TaskState

from engine.clock import utcnow
from engine.scripting import time_functions

from .common import PROCESSES

INCIDENT = {"title": "VPN drops every hour", "description": "Since this morning",
            "service": "vpn"}
# (task, who, their group, data)
STEPS = [
    ("qualify", "sam", "service_desk",
     {"category": "network", "service": "vpn", "impact": "medium", "urgency": "high",
      "action": "escalate", "group": "network"}),
    ("escalate", "nina", "network", {"action": "resolve", "resolution": "Replaced the profile"}),
    ("confirm", "alice", None, {"resolved": True}),
    ("close", "sam", "service_desk", {"closure_code": "solved"}),
]
REOPEN = ("confirm", "alice", None, {"resolved": False, "comment": "Still dropping"})
RESOLVE = ("escalate", "nina", "network", {"action": "resolve", "resolution": "Tried again"})


def start_data(number: str) -> dict[str, Any]:
    """What the facade gives a new incident's process (engine/facade.py ``_start``)."""
    return {**INCIDENT, "channel": "portal", "requester": "alice", "ticket": number,
            "assignee_hint": None, "reopen_count": 0, "escalation_count": 0,
            "resolved_by": None, "resolved_group": None, "reported_at": utcnow().isoformat()}


# -- bare SpiffWorkflow -------------------------------------------------------------------


class Bare:
    """SpiffWorkflow alone, in memory, with its default (unsandboxed) script engine given
    the same three time functions the processes call."""

    def __init__(self) -> None:
        parser = SpiffBpmnParser(validator=VALIDATOR)
        for dmn in sorted(PROCESSES.glob("*.dmn")):
            parser.add_dmn_file(str(dmn))
        parser.add_bpmn_file(str(PROCESSES / "incident.bpmn"))
        self.spec = parser.get_spec("incident")
        self.subprocess_specs = parser.get_subprocess_specs("incident")
        self.script_engine = PythonScriptEngine(
            environment=TaskDataEnvironment(time_functions(utcnow)))
        self.count = 0

    def start(self) -> BpmnWorkflow:
        self.count += 1
        workflow = BpmnWorkflow(self.spec, self.subprocess_specs,
                                script_engine=self.script_engine)
        data = start_data(f"INC-{self.count:06d}")
        workflow.task_tree.data.update(deepcopy(data))
        for task in workflow.get_tasks(state=TaskState.READY):
            task.data.update(deepcopy(data))
        workflow.do_engine_steps()
        return workflow

    @staticmethod
    def step(workflow: BpmnWorkflow, name: str, actor: str, group: str | None,
             data: dict[str, Any]) -> None:
        task = next(t for t in workflow.get_tasks(state=TaskState.READY, manual=True)
                    if t.task_spec.bpmn_id == name)
        task.data.update(deepcopy(data))
        task.data["last_actor"], task.data["last_group"] = actor, group
        task.run()
        workflow.do_engine_steps()


def run_bare(lifecycles: int) -> tuple[list[float], float]:
    """Per-user-step seconds, and the wall time of whole lifecycles (starts included)."""
    bare = Bare()
    steps: list[float] = []
    began = time.perf_counter()
    for _ in range(lifecycles):
        workflow = bare.start()
        for name, actor, group, data in STEPS:
            t0 = time.perf_counter()
            bare.step(workflow, name, actor, group, data)
            steps.append(time.perf_counter() - t0)
        assert workflow.is_completed()
    return steps, time.perf_counter() - began


# -- the naive whole-blob floor -----------------------------------------------------------

SERIALIZER = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(DEFAULT_CONFIG))


class NaiveStore:
    """Whole workflow (spec included) serialized each step, written with a plain driver,
    read and deserialized before the next: one transaction per step, row locked."""

    def __init__(self, bare: Bare) -> None:
        self.bare = bare

    # driver specifics
    def begin(self) -> None: ...
    def read(self, wid: int) -> str: ...
    def write(self, wid: int, state: str) -> None: ...
    def insert(self, state: str) -> int: ...
    def commit(self) -> None: ...

    def start(self) -> int:
        workflow = self.bare.start()
        self.begin()
        wid = self.insert(SERIALIZER.serialize_json(workflow))
        self.commit()
        return wid

    def step(self, wid: int, name: str, actor: str, group: str | None,
             data: dict[str, Any]) -> None:
        self.begin()
        workflow = SERIALIZER.deserialize_json(self.read(wid))
        workflow.script_engine = self.bare.script_engine  # not serialized
        self.bare.step(workflow, name, actor, group, data)
        self.write(wid, SERIALIZER.serialize_json(workflow))
        self.commit()


class SqliteStore(NaiveStore):
    """sqlite3, WAL and synchronous=NORMAL like Guichet's own SQLite set-up."""

    def __init__(self, bare: Bare, path: str) -> None:
        super().__init__(bare)
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("CREATE TABLE IF NOT EXISTS wf (id INTEGER PRIMARY KEY, state TEXT)")

    def begin(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def read(self, wid: int) -> str:
        return self.conn.execute("SELECT state FROM wf WHERE id = ?", (wid,)).fetchone()[0]

    def write(self, wid: int, state: str) -> None:
        self.conn.execute("UPDATE wf SET state = ? WHERE id = ?", (state, wid))

    def insert(self, state: str) -> int:
        return self.conn.execute("INSERT INTO wf (state) VALUES (?)", (state,)).lastrowid

    def commit(self) -> None:
        self.conn.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()


class PostgresStore(NaiveStore):
    """psycopg, ``text`` column, ``SELECT ... FOR UPDATE`` then ``UPDATE`` and commit."""

    def __init__(self, bare: Bare, url: str) -> None:
        import psycopg

        super().__init__(bare)
        self.conn = psycopg.connect(url)
        self.conn.execute("CREATE TABLE IF NOT EXISTS wf (id serial PRIMARY KEY, state text)")
        self.conn.commit()

    def read(self, wid: int) -> str:
        return self.conn.execute("SELECT state FROM wf WHERE id = %s FOR UPDATE",
                                 (wid,)).fetchone()[0]

    def write(self, wid: int, state: str) -> None:
        self.conn.execute("UPDATE wf SET state = %s WHERE id = %s", (state, wid))

    def insert(self, state: str) -> int:
        return self.conn.execute("INSERT INTO wf (state) VALUES (%s) RETURNING id",
                                 (state,)).fetchone()[0]

    def commit(self) -> None:
        self.conn.commit()

    def close(self) -> None:
        self.conn.close()


def run_naive(store: NaiveStore, lifecycles: int) -> tuple[list[float], float]:
    steps: list[float] = []
    began = time.perf_counter()
    for _ in range(lifecycles):
        wid = store.start()
        for name, actor, group, data in STEPS:
            t0 = time.perf_counter()
            store.step(wid, name, actor, group, data)
            steps.append(time.perf_counter() - t0)
    return steps, time.perf_counter() - began


def floor_worker(url: str, seconds: float, prepared: int, barrier, results) -> None:
    """One of the floor's processes: pre-create instances, wait for the others, then
    run user steps for ``seconds``; puts (steps done, ran out of instances, seconds taken)
    in ``results``."""
    store = PostgresStore(Bare(), url)
    ids = [store.start() for _ in range(prepared)]
    barrier.wait()
    began = time.perf_counter()
    end = began + seconds
    done, exhausted = 0, True
    try:
        for wid in ids:
            for name, actor, group, data in STEPS:
                store.step(wid, name, actor, group, data)
                done += 1
            if time.perf_counter() >= end:
                exhausted = False
                break
    finally:
        elapsed = time.perf_counter() - began
        store.close()
        results.put((done, exhausted, elapsed))


# -- the ServiceDesk facade ----------------------------------------------------------------


class Facade:
    """The same lifecycle through ``ServiceDesk`` (one transaction per call)."""

    def __init__(self, desk) -> None:
        self.desk = desk
        self.actors = {u: desk.actor(u) for u in ("alice", "sam", "nina")}

    def start(self):
        return self.desk.open_incident(self.actors["alice"], INCIDENT["title"],
                                       INCIDENT["description"], INCIDENT["service"])

    def step(self, ticket, name: str, actor: str, data: dict[str, Any]):
        task = next(t for t in ticket.tasks if t.name == name)
        return self.desk.complete(self.actors[actor], task.id, data)


def run_facade(facade: Facade, lifecycles: int) -> tuple[list[float], float]:
    steps: list[float] = []
    began = time.perf_counter()
    for _ in range(lifecycles):
        ticket = facade.start()
        for name, actor, _group, data in STEPS:
            t0 = time.perf_counter()
            ticket = facade.step(ticket, name, actor, data)
            steps.append(time.perf_counter() - t0)
        assert ticket.status == "closed", ticket.status
    return steps, time.perf_counter() - began
