"""SQLAlchemy Core statements compiled once for the driver and run on its cursor directly.

SQLAlchemy's execution path costs a few hundred microseconds of Python per statement; the
hot paths (a step's writes, the inbox) run the same few statements thousands of times. The
statement is still written with SQLAlchemy, compiled for the dialect once, and its types'
conversions (``UTCDateTime``) applied here as SQLAlchemy would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Executable
from sqlalchemy.exc import DBAPIError


@dataclass(frozen=True)
class Compiled:
    statement: Executable  # held: while cached, its id cannot be another statement's
    sql: str
    binds: dict[str, Callable[[Any], Any]]  # bind name -> the column type's conversion
    fixed: dict[str, Any]  # values written in the statement itself (``id == 1``)
    results: tuple[tuple[int, Callable[[Any], Any]], ...]  # column index -> conversion
    expands: bool = False  # a list of values to expand: left to SQLAlchemy

    def params(self, given: dict[str, Any]) -> dict[str, Any]:
        """The driver's parameters for ``given`` values."""
        if not self.binds and not self.fixed:
            return given
        bound = {**self.fixed, **given}
        for name, process in self.binds.items():
            if name in bound:
                bound[name] = process(bound[name])
        return bound

    def rows(self, rows: Iterable[Sequence[Any]]) -> list[tuple]:
        """The driver's rows with each column's type conversion applied."""
        if not self.results:
            return list(rows)
        typed = []
        for row in rows:
            row = list(row)
            for index, process in self.results:
                row[index] = process(row[index])
            typed.append(tuple(row))
        return typed


@contextmanager
def driver_errors(dialect) -> Iterator[None]:
    """Raise the driver's errors as SQLAlchemy would raise them: callers and the error pages
    know those (a lost connection is a 503, not a 500)."""
    error = dialect.loaded_dbapi.Error
    try:
        yield
    except error as err:
        raise DBAPIError.instance(None, None, err, error) from err


def announce(connection: Connection, cursor: Any, sql: str, params: Any, many: bool) -> None:
    """Tell the engine's ``before_cursor_execute`` listeners of a statement run on the
    driver, as SQLAlchemy does of its own: what counts statements (the tests) and
    ``db._note_writes`` see these too. Only that event, without an execution context: a
    listener that needs ``after_cursor_execute`` or the context does not see them."""
    connection.dispatch.before_cursor_execute(connection, cursor, sql, params, None, many)


_CACHE: dict[tuple, Compiled] = {}  # hot statements are built once: a few dozen
_CACHE_SIZE = 1024  # inboxes build a statement per shape of actor and filters (cached apart)


def compile_for(statement: Executable, dialect, names: Iterable[str],
                strict: bool = True) -> Compiled | None:
    """``statement`` compiled for ``dialect``'s driver, with these parameter names (the
    columns an INSERT or UPDATE sets), made once.

    A statement that expands a list into ``IN (...)`` when it runs cannot be compiled once:
    ``ValueError``, or None when not ``strict``.
    """
    names = tuple(names)
    key = (id(statement), dialect.name, names)
    compiled = _CACHE.get(key)
    if compiled is None:
        if len(_CACHE) >= _CACHE_SIZE:  # statements built and dropped elsewhere: start over
            _CACHE.clear()
        compiled = _CACHE[key] = _compile(statement, dialect, names)
    if compiled.expands:
        if strict:
            raise ValueError("a statement run on the driver cannot expand a list of values")
        return None
    return compiled


def _compile(statement: Executable, dialect, names: tuple[str, ...]) -> Compiled:
    sql = statement.compile(dialect=dialect, column_keys=list(names))
    if "POSTCOMPILE" in sql.string:
        return Compiled(statement, "", {}, {}, (), expands=True)
    binds, fixed = {}, {}
    for name, bind in sql.binds.items():
        process = bind.type.bind_processor(dialect)
        if process is not None:
            binds[name] = process
        if not bind.required:
            fixed[name] = bind.effective_value
    results = []
    for index, column in enumerate(getattr(statement, "selected_columns", ())):
        process = column.type.result_processor(dialect, None)
        if process is not None:
            results.append((index, process))
    return Compiled(statement, sql.string, binds, fixed, tuple(results))
