"""The sandbox in which every script, condition and decision cell runs.

Code is compiled with RestrictedPython: no imports, no class definitions, no names or
attributes starting with an underscore (so no ``().__class__.__base__`` walk back to
``os``), attribute and item access through guards, and only an allow-list of builtins.
SpiffWorkflow's default environment uses bare ``eval``/``exec``; this one replaces it and
must be re-attached to every restored workflow (the script engine is not serialized).

Runaway code is stopped too (``Limits``): every loop iteration, function call and
comprehension item is a step; past the step budget, the wall-time deadline or the memory
growth allowance, the code is stopped with a ``SandboxError``, and the stop is sticky (a
script that catches it is stopped again at its next step, and after it returns). The
operations that allocate at once in C (``*``, ``+``, ``**``, ``<<``, ``%`` formatting,
padding and replacing strings, ``pow``, width in f-strings) are checked before they run.
"""

from __future__ import annotations

import ast
import json
import operator
import re
import resource
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from RestrictedPython import (
    RestrictingNodeTransformer,
    compile_restricted_eval,
    compile_restricted_exec,
    limited_builtins,
    safe_builtins,
)
from RestrictedPython.Eval import default_guarded_getitem
from RestrictedPython.Guards import (
    full_write_guard,
    guarded_iter_unpack_sequence,
    guarded_unpack_sequence,
    safer_getattr,
)
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.script_engine.python_environment import BasePythonScriptEngineEnvironment

from .errors import SandboxError


@dataclass(frozen=True)
class Limits:
    """How far one script or expression may go before it is stopped."""

    steps: int = 1_000_000  # loop iterations, function calls, comprehension items
    seconds: float = 2.0  # wall time
    size: int = 1_000_000  # items of a list, tuple or dict; characters of a string
    int_bits: int = 100_000  # bits of an integer (about 30,000 decimal digits)
    memory: int = 256 * 1024 * 1024  # growth of the process's peak memory, in bytes


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
_SEQUENCES = (str, bytes, bytearray, list, tuple)
_CHECK_EVERY = 16  # steps between two looks at the clock and at memory
# Operators whose result can be far larger than their operands: run through ``_binop_``.
_GUARDED_OPS = {ast.Mult: "*", ast.Add: "+", ast.Pow: "**", ast.LShift: "<<", ast.Mod: "%"}
_BINOPS = {"*": operator.mul, "+": operator.add, "**": operator.pow, "<<": operator.lshift,
           "%": operator.mod}
# printf-style widths and precisions, and numbers in format specifications.
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d*)(?:\.(\*|\d*))?")
_NUMBER = re.compile(r"\d+")


class _Stopped(BaseException):
    """Raised inside the code when a limit is passed: not an ``Exception``, so ordinary
    ``except Exception`` clauses in a script do not swallow it."""


def _no_import(*_args: Any, **_kwargs: Any) -> None:
    raise SandboxError("imports are not allowed in scripts and expressions")


class _Policy(RestrictingNodeTransformer):
    """RestrictedPython's rules, plus: no classes, a step at each loop iteration and call,
    the allocating operators through ``_binop_``, no wide or computed f-string formats."""

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        self.error(node, "class definitions are not allowed")
        return node

    def visit_While(self, node: ast.While) -> ast.AST:
        node = self.node_contents_visit(node)
        node.body.insert(0, _tick_statement(node))
        return node

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        node = super().visit_FunctionDef(node)
        node.body.insert(0, _tick_statement(node))
        return node

    def visit_Lambda(self, node: ast.Lambda) -> ast.AST:
        node = super().visit_Lambda(node)
        # ``_tick_()`` returns None, so ``None or body`` is the body's value.
        node.body = ast.copy_location(
            ast.BoolOp(op=ast.Or(), values=[_tick_call(node.body), node.body]), node.body)
        return node

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        node = self.node_contents_visit(node)
        symbol = _GUARDED_OPS.get(type(node.op))
        if symbol is None:
            return node
        call = ast.Call(func=ast.Name("_binop_", ast.Load()),
                        args=[ast.Constant(symbol), node.left, node.right], keywords=[])
        return ast.fix_missing_locations(ast.copy_location(call, node))

    def visit_FormattedValue(self, node: ast.FormattedValue) -> ast.AST:
        spec = node.format_spec
        if spec is not None:
            parts = spec.values if isinstance(spec, ast.JoinedStr) else [spec]
            if not all(isinstance(p, ast.Constant) for p in parts):
                self.error(node, "computed format specifications are not allowed")
            elif any(int(n) > 1000 for p in parts for n in _NUMBER.findall(str(p.value))):
                self.error(node, "format widths above 1000 are not allowed")
        return self.node_contents_visit(node)


def _tick_call(node: ast.AST) -> ast.Call:
    call = ast.Call(func=ast.Name("_tick_", ast.Load()), args=[], keywords=[])
    return ast.fix_missing_locations(ast.copy_location(call, node))


def _tick_statement(node: ast.AST) -> ast.Expr:
    return ast.copy_location(ast.Expr(_tick_call(node)), node)


class _Budget:
    """The steps, time and memory one run may use; the guards that need them."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.steps = 0
        self.deadline = time.monotonic() + limits.seconds
        # Memory is measured from the first step (loop iteration or call): most expressions
        # (gateway conditions, decision table cells) never take one, and reading the peak
        # is a system call that cost more than evaluating them. Before its first step an
        # expression can only allocate what the size guards let through.
        self.peak = 0
        self.stopped: str | None = None

    def tick(self) -> None:
        if self.stopped:
            raise _Stopped(self.stopped)
        self.steps += 1
        if self.steps == 1:
            self.peak = _peak_memory()
        if self.steps > self.limits.steps:
            self.stop(f"it ran more than {self.limits.steps:,} steps (loop iterations or calls)")
        if self.steps % _CHECK_EVERY == 0:
            if time.monotonic() > self.deadline:
                self.stop(f"it ran longer than {self.limits.seconds:g} s")
            if _peak_memory() - self.peak > self.limits.memory:
                self.stop(f"it used more than {self.limits.memory // 2**20} MiB of memory")

    def stop(self, reason: str) -> None:
        self.stopped = reason
        raise _Stopped(reason)

    def getiter(self, ob: Any) -> Any:
        for item in ob:
            self.tick()
            yield item

    # -- operations that allocate in one go ------------------------------------------------

    def size(self, n: int, what: str) -> None:
        if n > self.limits.size:
            raise SandboxError(f"{what} would hold {n:,} items or characters; the limit is "
                               f"{self.limits.size:,}")

    def bits(self, n: int) -> None:
        if n > self.limits.int_bits:
            raise SandboxError(f"the number would have about {n:,} bits; the limit is "
                               f"{self.limits.int_bits:,}")

    def binop(self, symbol: str, a: Any, b: Any) -> Any:
        self.check_op(symbol, a, b)
        return _BINOPS[symbol](a, b)

    def check_op(self, symbol: str, a: Any, b: Any) -> None:
        """Refuse ``a symbol b`` when its result would pass a size limit."""
        if symbol == "*":
            if isinstance(a, _SEQUENCES) or isinstance(b, _SEQUENCES):
                seq, n = (a, b) if isinstance(a, _SEQUENCES) else (b, a)
                self.size(len(seq) * max(operator.index(n), 0), "the repeated sequence")
            elif _is_int(a) and _is_int(b):
                self.bits(int(a).bit_length() + int(b).bit_length())
        elif symbol == "+":
            if isinstance(a, _SEQUENCES) and isinstance(b, _SEQUENCES):
                self.size(len(a) + len(b), "the joined sequence")
        elif symbol == "**":
            if _is_int(a) and _is_int(b) and b > 0 and abs(a) > 1:
                self.bits(int(b) * int(a).bit_length())
        elif symbol == "<<":
            if _is_int(a) and _is_int(b) and a:
                self.bits(int(a).bit_length() + max(int(b), 0))
        elif symbol == "%" and isinstance(a, str | bytes):
            self.check_percent_format(a)

    def inplacevar(self, op: str, x: Any, y: Any) -> Any:
        if op not in _INPLACE:
            raise SandboxError(f"operator {op} is not allowed")
        if op[:-1] in _BINOPS:
            self.check_op(op[:-1], x, y)
        return _INPLACE[op](x, y)

    def sum(self, items: Any, start: Any = 0) -> Any:
        """Numbers only: ``sum(lists, [])`` would copy ever longer lists in one C call."""
        if not isinstance(start, int | float | complex):
            raise SandboxError("sum() adds numbers; join texts with ''.join(...)")
        total = start
        for item in self.getiter(items):
            total = self.binop("+", total, item)
        return total

    def pow(self, base: Any, exp: Any, mod: Any = None) -> Any:
        if mod is None:
            return self.binop("**", base, exp)
        return pow(base, exp, mod)

    def check_percent_format(self, text: str | bytes) -> None:
        spec = text if isinstance(text, str) else text.decode("latin-1")
        for width, precision in _PERCENT_SPEC.findall(spec):
            for n in (width, precision):
                if n == "*" or (n and int(n) > 1000):
                    raise SandboxError("%-format widths above 1000 (or given by *) are not "
                                       "allowed")

    def getattr(self, ob: Any, name: str, default: Any = None) -> Any:
        value = safer_getattr(ob, name, default)
        if isinstance(ob, str | bytes | bytearray) and name in _TEXT_GROWERS:
            return _TEXT_GROWERS[name](self, ob, value)
        if isinstance(ob, list) and name in ("extend", "insert", "append"):
            return _list_grower(self, ob, value)
        return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int)


def _padder(budget: _Budget, text: Any, method: Any):
    def padded(width: Any, *args: Any) -> Any:
        budget.size(operator.index(width), "the padded text")
        return method(width, *args)
    return padded


def _replacer(budget: _Budget, text: Any, method: Any):
    def replaced(old: Any, new: Any, count: Any = -1) -> Any:
        hits = text.count(old) + (1 if not old else 0)
        if count is not None and operator.index(count) >= 0:
            hits = min(hits, operator.index(count))
        budget.size(len(text) + hits * max(len(new) - len(old), 0), "the replaced text")
        return method(old, new, count)
    return replaced


def _joiner(budget: _Budget, text: Any, method: Any):
    def joined(items: Any) -> Any:
        items = list(budget.getiter(items))
        budget.size(sum(len(i) for i in items if isinstance(i, _SEQUENCES))
                    + len(text) * max(len(items) - 1, 0), "the joined text")
        return method(items)
    return joined


def _tabs(budget: _Budget, text: Any, method: Any):
    def expanded(tabsize: Any = 8) -> Any:
        budget.size(len(text) + text.count("\t" if isinstance(text, str) else b"\t")
                    * max(operator.index(tabsize), 0), "the expanded text")
        return method(tabsize)
    return expanded


_TEXT_GROWERS = {"ljust": _padder, "rjust": _padder, "center": _padder, "zfill": _padder,
                 "replace": _replacer, "join": _joiner, "expandtabs": _tabs}


def _list_grower(budget: _Budget, items: list, method: Any):
    def grow(*args: Any) -> Any:
        added = args[-1] if args else ()
        extra = len(added) if method.__name__ == "extend" and hasattr(added, "__len__") else 1
        budget.size(len(items) + extra, "the list")
        return method(*args)
    return grow


def _peak_memory() -> int:
    """The process's peak resident memory, in bytes (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


_BUILTINS = {**safe_builtins, **limited_builtins, **_EXTRA_BUILTINS, "__import__": _no_import}
# No classes; and nothing that would stop the web or worker process, or that a script
# could catch the limits with by name.
for _name in ("__build_class__", "SystemExit", "KeyboardInterrupt", "GeneratorExit",
              "BaseException"):
    _BUILTINS.pop(_name, None)
_STATIC_GUARDS: dict[str, Any] = {
    "_getitem_": default_guarded_getitem,
    "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
    "_unpack_sequence_": guarded_unpack_sequence,
    "_write_": full_write_guard,
}
_GUARD_NAMES = frozenset(
    {*_STATIC_GUARDS, "__builtins__", "_getattr_", "_getiter_", "_inplacevar_", "_binop_",
     "_tick_"})


def _guards(budget: _Budget) -> dict[str, Any]:
    """The names the compiled code calls, bound to this run's budget."""
    return {
        **_STATIC_GUARDS,
        "__builtins__": {**_BUILTINS, "pow": budget.pow, "sum": budget.sum},
        "_getattr_": budget.getattr,
        "_getiter_": budget.getiter,
        "_inplacevar_": budget.inplacevar,
        "_binop_": budget.binop,
        "_tick_": budget.tick,
    }


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
    result = compiler(source, policy=_Policy)
    problems.extend(result.errors)
    return problems


@lru_cache(maxsize=4096)
def _compile(source: str, mode: str):
    problems = check(source, mode)
    if problems:
        raise SandboxError("; ".join(problems))
    compiler = compile_restricted_eval if mode == "eval" else compile_restricted_exec
    return compiler(source, policy=_Policy).code


def _json_safe(value: Any, where: str) -> None:
    try:
        json.dumps(value)
    except (TypeError, ValueError) as err:
        raise SandboxError(f"{where} is not JSON data: {err}") from err


def _run(code: Any, scope: dict[str, Any], budget: _Budget, kind: str) -> Any:
    """Run compiled code under ``budget``; every way it can be stopped is a SandboxError."""
    try:
        result = eval(code, scope)  # code objects of exec mode run the same way
    except _Stopped as stop:
        raise SandboxError(f"the {kind} was stopped: {stop.args[0]}") from None
    except RecursionError:
        raise SandboxError(f"the {kind} was stopped: its recursion went too deep") from None
    except MemoryError:
        raise SandboxError(f"the {kind} was stopped: it ran out of memory") from None
    if budget.stopped:  # the script caught the stop and went on
        raise SandboxError(f"the {kind} was stopped: {budget.stopped}")
    return result


class SandboxEnvironment(BasePythonScriptEngineEnvironment):
    """Evaluates expressions and runs scripts in the RestrictedPython sandbox."""

    def __init__(self, services: dict[str, Any] | None = None,
                 limits: Limits | None = None) -> None:
        super().__init__({})
        self.services = services or {}
        self.limits = limits or Limits()

    def evaluate(self, expression: str, context: dict, external_context: dict | None = None):
        budget = _Budget(self.limits)
        scope = {**context, **(external_context or {}), **_guards(budget)}
        return _run(_compile(expression.strip(), "eval"), scope, budget, "expression")

    def execute(self, script: str, context: dict, external_context: dict | None = None) -> bool:
        budget = _Budget(self.limits)
        scope = {**context, **(external_context or {}), **_guards(budget)}
        _run(_compile(script, "exec"), scope, budget, "script")
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

    def __init__(self, services: dict[str, Any] | None = None,
                 limits: Limits | None = None) -> None:
        super().__init__(environment=SandboxEnvironment(services, limits))

    def call_service(self, task, **kwargs):
        # The base class refers to an undefined name when a service fails.
        from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException

        try:
            return self.environment.call_service(task.data, **kwargs)
        except Exception as err:
            raise WorkflowTaskException(str(err), task=task, exception=err) from err
