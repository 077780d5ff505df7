"""The sandbox in which every script, condition and decision cell runs.

Code is compiled with RestrictedPython: no imports, no names or attributes starting
with an underscore (so no ``().__class__.__base__`` walk back to ``os``), attribute
and item access through guards, and only an allow-list of builtins. SpiffWorkflow's
default environment uses bare ``eval``/``exec``; this one replaces it and must be
re-attached to every restored workflow (the script engine is not serialized).
"""

from __future__ import annotations

import ast
import json
import operator
from functools import lru_cache
from typing import Any

from RestrictedPython import (
    compile_restricted_eval,
    compile_restricted_exec,
    limited_builtins,
    safe_builtins,
)
from RestrictedPython.Eval import default_guarded_getitem, default_guarded_getiter
from RestrictedPython.Guards import (
    full_write_guard,
    guarded_iter_unpack_sequence,
    guarded_unpack_sequence,
    safer_getattr,
)
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.script_engine.python_environment import BasePythonScriptEngineEnvironment

from .errors import SandboxError

_INPLACE = {
    "+=": operator.iadd,
    "-=": operator.isub,
    "*=": operator.imul,
    "/=": operator.itruediv,
    "//=": operator.ifloordiv,
    "%=": operator.imod,
}
_EXTRA_BUILTINS = {
    name: __builtins__[name] if isinstance(__builtins__, dict) else getattr(__builtins__, name)
    for name in ("min", "max", "sum", "any", "all", "sorted", "enumerate", "dict", "list", "abs")
}


def _no_import(*_args: Any, **_kwargs: Any) -> None:
    raise SandboxError("imports are not allowed in scripts and expressions")


def _inplacevar(op: str, x: Any, y: Any) -> Any:
    if op not in _INPLACE:
        raise SandboxError(f"operator {op} is not allowed")
    return _INPLACE[op](x, y)


def _guards() -> dict[str, Any]:
    builtins = {**safe_builtins, **limited_builtins, **_EXTRA_BUILTINS, "__import__": _no_import}
    return {
        "__builtins__": builtins,
        "_getattr_": safer_getattr,
        "_getitem_": default_guarded_getitem,
        "_getiter_": default_guarded_getiter,
        "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
        "_unpack_sequence_": guarded_unpack_sequence,
        "_write_": full_write_guard,
        "_inplacevar_": _inplacevar,
    }


_GUARDS = _guards()
_GUARD_NAMES = frozenset(_GUARDS)


def check(source: str, mode: str = "eval") -> list[str]:
    """Return the reasons why the sandbox would refuse ``source`` (empty when fine)."""
    try:
        tree = ast.parse(source, mode=mode)
    except SyntaxError as err:
        return [f"syntax error: {err.msg} (line {err.lineno})"]
    problems = [
        f"imports are not allowed (line {node.lineno})"
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
    ]
    compiler = compile_restricted_eval if mode == "eval" else compile_restricted_exec
    result = compiler(source)
    problems.extend(result.errors)
    return problems


@lru_cache(maxsize=4096)
def _compile(source: str, mode: str):
    problems = check(source, mode)
    if problems:
        raise SandboxError("; ".join(problems))
    compiler = compile_restricted_eval if mode == "eval" else compile_restricted_exec
    return compiler(source).code


def _json_safe(value: Any, where: str) -> None:
    try:
        json.dumps(value)
    except (TypeError, ValueError) as err:
        raise SandboxError(f"{where} is not JSON data: {err}") from err


class SandboxEnvironment(BasePythonScriptEngineEnvironment):
    """Evaluates expressions and runs scripts in the RestrictedPython sandbox."""

    def __init__(self, services: dict[str, Any] | None = None) -> None:
        super().__init__({})
        self.services = services or {}

    def evaluate(self, expression: str, context: dict, external_context: dict | None = None):
        scope = {**context, **(external_context or {}), **_GUARDS}
        return eval(_compile(expression.strip(), "eval"), scope)

    def execute(self, script: str, context: dict, external_context: dict | None = None) -> bool:
        scope = {**context, **(external_context or {}), **_GUARDS}
        exec(_compile(script, "exec"), scope)
        external = set(external_context or ())
        for key in list(context):
            if key not in scope:
                del context[key]
        for key, value in scope.items():
            if key in _GUARD_NAMES or key in external or callable(value):
                continue
            _json_safe(value, f"variable {key!r}")
            context[key] = value
        return True

    def call_service(self, context: dict, operation_name: str, operation_params: dict, **_kw):
        service = self.services.get(operation_name)
        if service is None:
            raise SandboxError(f"unknown service operator {operation_name!r}")
        params = {name: spec["value"] for name, spec in operation_params.items()}
        return json.dumps(service(context, **params))


class SandboxScriptEngine(PythonScriptEngine):
    """SpiffWorkflow's script engine bound to the sandbox."""

    def __init__(self, services: dict[str, Any] | None = None) -> None:
        super().__init__(environment=SandboxEnvironment(services))

    def call_service(self, task, **kwargs):
        # The base class refers to an undefined name when a service fails.
        from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException

        try:
            return self.environment.call_service(task.data, **kwargs)
        except Exception as err:
            raise WorkflowTaskException(str(err), task=task, exception=err) from err
