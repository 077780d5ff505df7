"""A unit of work's statements, sent together: one round trip per send on PostgreSQL.

A step writes a dozen rows (the ticket, its state, task rows, timers, notifications, the
audit events and head). Through the ORM's flush each costs about 290 µs of Python and a
round trip of its own; queued here as SQLAlchemy Core statements they go out in one
psycopg pipeline on PostgreSQL (measured: about 30 µs a statement). On SQLite, where a
statement costs no round trip, they run one by one through SQLAlchemy Core. Reads that
must come together (a lock, then what it guards) go the same way (``read``), their rows
made into ORM objects without a session (``detached``).

Rows written through a batch are taken out of the session (``put``): the ORM must not write
them a second time at commit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Executable, Row, and_, bindparam, insert, inspect, update
from sqlalchemy.orm import Session, configure_mappers, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.exc import StaleDataError

from .compiled import Compiled, announce, compile_for, driver_errors

Params = dict[str, Any] | list[dict[str, Any]]


@dataclass
class _Queued:
    statement: Executable
    params: Params
    expect: int | None  # rows the statement must touch, else the row changed meanwhile
    what: str
    query: bool = False  # its rows are wanted


class Batch:
    """Statements queued by one unit of work and sent at once, in order, after whatever the
    session itself holds (its pending ORM changes are flushed first)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._queued: list[_Queued] = []
        self._put: set[int] = set()  # the rows put: each is written once per batch

    def add(self, statement: Executable, params: Params, expect: int | None = None,
            what: str = "") -> None:
        """Queue ``statement``; a list of parameter sets runs it once per set. ``expect``:
        the rows it must change (``StaleDataError`` naming ``what`` otherwise)."""
        self._queued.append(_Queued(statement, params, expect, what))

    def put(self, row: Any) -> None:
        """Queue the whole row of an ORM object: an INSERT if it was never stored, else an
        UPDATE by primary key when it was changed (checking and moving its version column,
        if the model has one). The object leaves the session, its values kept; it stays
        marked as changed, so a later batch writes it again."""
        if id(row) in self._put:
            return
        self._put.add(id(row))
        state = inspect(row)
        if state.session is not None:
            state.session.expunge(row)
        shape = _shape(type(row))
        values = {key: getattr(row, key) for key in shape.columns}
        if state.key is None:
            for key, default in shape.defaults.items():  # as the ORM's flush would
                if values[key] is None:
                    values[key] = default
            self.add(shape.insert, values, what=shape.table)
            for key in shape.columns:  # every column loaded: the row reads as stored
                set_committed_value(row, key, values[key])
            make_transient_to_detached(row)
            return
        if not state.modified:
            return
        params = {k: v for k, v in values.items() if k not in shape.keys}
        params.update({f"pk_{k}": values[k] for k in shape.keys})
        if shape.version:  # only the ORM's writes change it: what is here was read
            values[shape.version] = params[shape.version] = values[shape.version] + 1
            params["_old_version"] = values[shape.version] - 1
        self.add(shape.update, params, expect=1, what=shape.table)
        for key in shape.columns:  # stored now: nothing left to write
            set_committed_value(row, key, values[key])

    def send(self, query: Executable | None = None,
             params: dict[str, Any] | None = None) -> Sequence[Row]:
        """Send the session's pending changes, then what is queued, then ``query``; return
        the rows ``query`` answered."""
        answers = self.read((query, params or {})) if query is not None else self.read()
        return answers[0] if answers else []

    def read(self, *queries: tuple[Executable, dict[str, Any]]) -> list[Sequence[Row]]:
        """Send the session's pending changes, what is queued, then ``queries`` (each a
        statement of its own, run in order); return the rows each query answered."""
        self.session.flush()
        queued, self._queued = self._queued, []
        queued += [_Queued(query, params, None, "", query=True) for query, params in queries]
        if not queued:
            return []
        connection = self.session.connection()
        if connection.dialect.name != "postgresql":
            return self._run_one_by_one(connection, queued)
        return self._pipeline(connection, queued)

    @staticmethod
    def _run_one_by_one(connection, queued: list[_Queued]) -> list[Sequence[Row]]:
        answers = []
        for item in queued:
            result = connection.execute(item.statement, item.params)
            if item.expect is not None and result.rowcount != item.expect:
                raise StaleDataError(f"the {item.what} row changed meanwhile")
            if item.query:
                answers.append(result.all())
        return answers

    @staticmethod
    def _pipeline(connection, queued: list[_Queued]) -> list[Sequence[Row]]:
        dbapi_connection = connection.connection.dbapi_connection
        cursors = []
        try:
            with driver_errors(connection.dialect):
                with dbapi_connection.pipeline():
                    for item in queued:
                        cursors.append(_send(connection, item))
                answers = []
                for item, (cursor, compiled) in zip(queued, cursors, strict=True):
                    if item.expect is not None and cursor.rowcount != item.expect:
                        raise StaleDataError(f"the {item.what} row changed meanwhile")
                    if item.query:
                        answers.append(compiled.rows(cursor.fetchall()))
                return answers
        finally:
            for cursor, _ in cursors:
                cursor.close()


def _send(connection, item: _Queued) -> tuple[Any, Compiled]:
    """Queue one statement in the connection's pipeline, on a cursor of its own (which
    holds its answer until the pipeline is synced)."""
    many = isinstance(item.params, list)
    compiled = compile_for(item.statement, connection.dialect,
                           item.params[0] if many else item.params)
    cursor = connection.connection.dbapi_connection.cursor()
    params = [compiled.params(p) for p in item.params] if many else compiled.params(item.params)
    announce(connection, cursor, compiled.sql, params, many)
    if many:
        cursor.executemany(compiled.sql, params)
    else:
        cursor.execute(compiled.sql, params)
    return cursor, compiled


T = TypeVar("T")


def detached(model: type[T], values: Sequence[Any]) -> T:
    """The ORM object of a row read through ``Batch.read`` (its columns in table order):
    loaded and unchanged, as a closed session leaves its objects; ``put`` writes it back
    when it is changed."""
    shape = _shape(model)
    row = shape.new()
    row.__dict__.update(zip(shape.columns, values, strict=True))  # loaded, with no history
    make_transient_to_detached(row)
    return row


@dataclass(frozen=True)
class _Shape:
    table: str
    columns: tuple[str, ...]
    keys: tuple[str, ...]  # the primary key's columns
    defaults: dict[str, Any]  # the columns' scalar defaults
    version: str | None
    insert: Executable
    update: Executable
    new: Callable[[], Any]  # an instance of the model, its constructor not run


_SHAPES: dict[type, _Shape] = {}


def _shape(model: type) -> _Shape:
    """The full-row INSERT and UPDATE of a model, built once."""
    shape = _SHAPES.get(model)
    if shape is None:
        configure_mappers()  # the mapper's attributes must be set up to make instances
        mapper = inspect(model)
        table = mapper.local_table
        columns = tuple(c.key for c in table.columns)
        version = mapper.version_id_col.key if mapper.version_id_col is not None else None
        # The SET clause takes the other columns' names as its parameters.
        where = [c == bindparam(f"pk_{c.key}") for c in mapper.primary_key]
        if version:
            where.append(table.c[version] == bindparam("_old_version"))
        defaults = {c.key: c.default.arg for c in table.columns
                    if c.default is not None and c.default.is_scalar}
        shape = _SHAPES[model] = _Shape(
            table.name, columns, tuple(c.key for c in mapper.primary_key), defaults, version,
            insert(table), update(table).where(and_(*where)), mapper.class_manager.new_instance)
    return shape
