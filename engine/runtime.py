"""Running one ticket's workflow instance: start, complete a task, prune, inspect.

Pure functions over SpiffWorkflow objects; no database here.

Why pruning: SpiffWorkflow appends a new task below the last one each time a loop
goes round (reopen, re-escalation), so the tree of a long-lived ticket is a deep chain
that costs time at every step and overflows Python's stack after ~100 loops. After
each step the completed part of the tree above the live tasks is cut off: the history
it held is already in the audit trail, and the instance keeps only what can still run.
"""

from __future__ import annotations

from copy import deepcopy
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.task import Task as SpiffTask
from SpiffWorkflow.util.task import TaskState

from .errors import Conflict, ProcessError, SandboxError

# Engine bookkeeping that is not business data: never shown as "changed".
INTERNAL_KEYS = frozenset({"last_actor", "last_group"})


@dataclass
class StepTrace:
    """What the engine did automatically after a start or a completion."""

    path: list[str] = field(default_factory=list)  # element ids, in execution order

    def record(self, task: SpiffTask) -> None:
        bpmn_id = task.task_spec.bpmn_id
        if bpmn_id:
            self.path.append(bpmn_id)


def _wrap(err: Exception) -> ProcessError:
    task = getattr(err, "task", None)
    element = task.task_spec.bpmn_id if task is not None else None
    cause = getattr(err, "exception", None) or err
    if isinstance(cause, SandboxError):
        message = f"refused by the sandbox: {cause.message}"
    else:
        message = str(err).strip() or type(err).__name__
    where = f" at {element}" if element else ""
    return ProcessError(f"the process failed{where}: {message}", element)


# Automatic tasks one step may run: real steps run a dozen; a loop of automatic tasks
# without a user task would otherwise spin until SpiffWorkflow gives up on the deep tree.
MAX_AUTOMATIC_TASKS = 500


class _Runaway(Exception):
    pass


def run_engine(workflow: BpmnWorkflow, trace: StepTrace) -> None:
    """Run automatic tasks until the instance waits for people or timers."""
    done = len(trace.path)

    def record(task: SpiffTask) -> None:
        trace.record(task)
        if len(trace.path) - done > MAX_AUTOMATIC_TASKS:
            raise _Runaway(task.task_spec.bpmn_id)

    try:
        workflow.do_engine_steps(did_complete_task=record)
    except _Runaway as err:
        raise ProcessError(
            f"the process ran more than {MAX_AUTOMATIC_TASKS} automatic tasks in one step "
            f"(last at {err.args[0]}): a loop without a user task or a timer?",
            err.args[0]) from None
    except (SpiffWorkflowException, SandboxError) as err:
        raise _wrap(err) from err


def start(workflow: BpmnWorkflow, data: dict[str, Any]) -> StepTrace:
    """Give the new instance its start data and run it to its first wait state."""
    workflow.task_tree.data.update(deepcopy(data))
    for task in workflow.get_tasks(state=TaskState.READY):
        task.data.update(deepcopy(data))
    trace = StepTrace()
    run_engine(workflow, trace)
    prune(workflow)
    return trace


def fire_timers(workflow: BpmnWorkflow) -> StepTrace:
    """Fire the timers that are due on the engine's clock and run to the next wait state.

    ``do_engine_steps`` only refreshes timers at its end, so timers armed by the tasks it
    runs (or already due when armed) need another round.
    """
    trace = StepTrace()
    for _ in range(20):
        done = len(trace.path)
        try:
            workflow.refresh_timers()
        except (SpiffWorkflowException, SandboxError) as err:
            raise _wrap(err) from err
        run_engine(workflow, trace)
        if len(trace.path) == done:
            break
    prune(workflow)
    return trace


def provide(workflow: BpmnWorkflow, values: dict[str, Any]) -> None:
    """Give the live tasks variables they lack (kept where they exist).

    For instances moved onto a newer version that reads start data the engine gives new
    instances only since then (e.g. ``reported_at``).
    """
    for task in workflow.get_tasks(state=TaskState.NOT_FINISHED_MASK):
        for key, value in values.items():
            task.data.setdefault(key, deepcopy(value))


def ready_user_tasks(workflow: BpmnWorkflow) -> list[SpiffTask]:
    return workflow.get_tasks(state=TaskState.READY, manual=True)


def complete(
    workflow: BpmnWorkflow, task_id: str, data: dict[str, Any], actor: str, group: str | None
) -> StepTrace:
    """Complete a ready user task with validated data and run to the next wait state."""
    try:
        task = workflow.get_task_from_id(UUID(task_id))
    except Exception as err:
        raise Conflict("this task is no longer part of the ticket") from err
    if task is None or task.state != TaskState.READY or not task.task_spec.manual:
        raise Conflict("this task is no longer ready; someone else completed it")
    task.data.update(deepcopy(data))
    task.data["last_actor"] = actor
    task.data["last_group"] = group
    trace = StepTrace()
    try:
        task.run()
    except (SpiffWorkflowException, SandboxError) as err:
        raise _wrap(err) from err
    run_engine(workflow, trace)
    prune(workflow)
    return trace


def variables(workflow: BpmnWorkflow) -> dict[str, Any]:
    """The process data where the instance stands (a ready task's, or the final data)."""
    ready = workflow.get_tasks(state=TaskState.READY)
    if ready:
        return dict(ready[0].data)
    if workflow.is_completed():
        return dict(workflow.data) if workflow.data else dict(_last(workflow).data)
    waiting = workflow.get_tasks(state=TaskState.WAITING)
    return dict(waiting[0].data) if waiting else dict(workflow.task_tree.data)


def _last(workflow: BpmnWorkflow) -> SpiffTask:
    finished = workflow.get_tasks(state=TaskState.COMPLETED)
    return max(finished, key=lambda t: t.last_state_change) if finished else workflow.task_tree


def end_event(workflow: BpmnWorkflow) -> str | None:
    """The id of the end event a completed instance finished on."""
    ends = [
        t for t in workflow.get_tasks(state=TaskState.COMPLETED)
        if t.task_spec.bpmn_id and type(t.task_spec).__name__ == "EndEvent"
    ]
    return max(ends, key=lambda t: t.last_state_change).task_spec.bpmn_id if ends else None


def changed(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Variables whose value differs after a step (removed ones map to None)."""
    keys = (set(before) | set(after)) - INTERNAL_KEYS
    return {k: after.get(k) for k in sorted(keys) if before.get(k) != after.get(k)}


def prune(workflow: BpmnWorkflow) -> int:
    """Cut finished history off the task tree; return how many tasks were dropped.

    The new root is the parent of the lowest common ancestor of every unfinished task,
    so everything that can still run (branches, boundary events, joins) stays whole.
    """
    if workflow.is_completed():
        return 0
    live = [t for t in workflow.tasks.values() if not t.has_state(TaskState.FINISHED_MASK)]
    if not live:
        return 0
    ancestor = _common_ancestor(live)
    new_root = ancestor.parent
    if new_root is None or new_root is workflow.task_tree:
        return 0
    keep = set()
    stack = [new_root]
    while stack:
        task = stack.pop()
        keep.add(task.id)
        stack.extend(task.children)
    dropped = [tid for tid in workflow.tasks if tid not in keep]
    for tid in dropped:
        workflow.tasks.pop(tid)
        workflow.subprocesses.pop(tid, None)
    new_root._parent = None
    workflow.task_tree = new_root
    if workflow.last_task is not None and workflow.last_task.id not in keep:
        workflow.last_task = None
    return len(dropped)


def _chain(task: SpiffTask) -> list[SpiffTask]:
    chain = []
    while task is not None:
        chain.append(task)
        task = task.parent
    chain.reverse()
    return chain


def _common_ancestor(tasks: list[SpiffTask]) -> SpiffTask:
    chains = [_chain(t) for t in tasks]
    common = chains[0][0]
    for level in zip(*chains, strict=False):
        if all(t.id == level[0].id for t in level):
            common = level[0]
        else:
            break
    return common
