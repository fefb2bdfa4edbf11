"""The INSERTs of new process and task rows, sent by the engine instead of the ORM's flush:
on PostgreSQL as data-modifying CTEs of the transaction's last statement, on SQLite as one
statement per table (all its rows at once).

A start creates a process and two tasks, a completion the task it leads to. The ORM's
flush inserted them: its unit of work (dependency sort, attribute history, defaults,
RETURNING of the ids) was the largest single cost of a start, and each table an INSERT of
its own. Here, when everything the session has to write is those new rows, their values
are read from the objects (what the ORM would have written: column values, column
defaults, the foreign key of each many-to-one, the version the process starts at), the
objects are given ids first if they have none (``UnitOfWork.assign_ids``) and become
persistent, as a flush would make them; the rows go with the statement that carries the
audit rows. On PostgreSQL a start is then one statement that needs no transaction around
it: the ids, then everything at once, atomic by itself (no BEGIN, no COMMIT).

Anything else to write (another kind of row, a deleted row, a change the UPDATEs of
``row_updates`` left to the flush) leaves the new rows to the flush too: an ordinary flush
sends its statements before the last one, and a row of it may point at a new process or
task, which must be in the table by then. So may a relationship this module cannot settle
by itself (a collection member that does not point back, a many-to-one to a row without
an id).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlalchemy.orm.interfaces import MANYTOONE, ONETOMANY

from . import row_updates

#: Turned off by the tests that compare the two ways of writing (same rows either way).
ENABLED = True


@dataclass(frozen=True)
class Table:
    """The new rows of one table (one CTE, or one statement on SQLite)."""

    name: str
    columns: tuple[str, ...]  # every column, in the table's order


@dataclass
class Rows:
    values: dict[str, list[Any]] = field(default_factory=dict)


class _Unfit(Exception):
    """The flush must write this one (see the module's docstring)."""


def take(session: Session, uow: Any) -> dict[Table, Rows]:
    """Take the session's new processes and tasks, when they are all it has to write:
    their rows, by table (processes first), with the objects made persistent. Otherwise
    nothing is taken and the flush inserts them."""
    from .models import Process, Task

    if not ENABLED or not session.new:
        return {}
    new = list(session.new)
    if not all(isinstance(obj, Process | Task) for obj in new) or session.deleted:
        return {}
    if any(session.is_modified(obj) for obj in session.dirty):
        return {}  # the flush writes first, and may point at a new row
    if not all(uow.holds(obj) if isinstance(obj, Process) else _process_held(session, uow, obj)
               for obj in new):
        return {}
    if any(obj.id is None for obj in new):
        if session.get_bind().dialect.name == "sqlite" and uow.next_ids is None:
            # Ids would cost a statement (the tables' largest) where the flush's INSERT
            # gives them for nothing; once the transaction hands out ids, it is free.
            return {}
        if not uow.assign_ids():
            return {}
    states = sorted((sa.inspect(obj) for obj in new), key=lambda state: (state.mapper.local_table.name,
                                                                         state.dict["id"]))
    members = set(new)  # once: a fan-out's start brings thousands
    try:
        rows = [(state, _row(state, members)) for state in states]
    except _Unfit:
        return {}
    if row_updates.listeners:
        for listener in row_updates.listeners:
            listener(session, new)  # what a flush's listeners would have seen (livefeed)
    dialect = session.get_bind().dialect
    tables: dict[Table, Rows] = {}
    for state, values in rows:
        table = state.mapper.local_table
        group = tables.setdefault(_table(table), Rows())
        for column in table.columns:
            group.values.setdefault(column.name, []).append(
                row_updates.bind(dialect, column, values[column.name]))
    # As the flush would leave them: keyed, in the identity map, no history, noted as new
    # in the transaction (a rollback makes them transient again); pending_to_persistent
    # listeners run (UnitOfWork notes the processes it created).
    session._register_persistent({state for state, _ in rows})
    # Processes first: on SQLite each table is a statement, checked at once.
    return dict(sorted(tables.items(), key=lambda item: item[0].name != "process"))


def _process_held(session: Session, uow: Any, task: Any) -> bool:
    """True when the unit of work holds every task of the task's process: its search
    document is built from memory. Another one's document is read from the tables before
    the last statement, which would not see a task inserted by it.

    A new process counts only when held too (a start holds its process's tasks, see
    StartActivation.done), and so does a new process itself (``take``): the unit of work
    forgets what it holds when a guarded node fails (Activation.exception_guard), so a
    process a handler started before that node had its document read from the tables
    while its row rode on the last statement, and was stored without one."""
    process = row_updates.process_of(session, sa.inspect(task))
    return process is not None and uow.holds(process)


@functools.cache
def _table(table: Any) -> Table:
    return Table(table.name, tuple(column.name for column in table.columns))


def _row(state: Any, new: set[Any]) -> dict[str, Any]:
    """The row the flush would insert for this pending object, by column name; the values
    the flush would have put on the object (defaults, foreign keys, the version) are put
    there now."""
    mapper = state.mapper
    obj = state.obj()
    values: dict[str, Any] = {}
    foreign: dict[str, Any] = {}
    for prop in mapper.relationships:
        if prop.viewonly or prop.key not in state.dict:
            continue
        target = state.dict[prop.key]
        if prop.direction is MANYTOONE:
            if len(prop.local_remote_pairs) != 1:
                raise _Unfit
            local, remote = prop.local_remote_pairs[0]
            if target is None:
                if state.dict.get(mapper.get_property_by_column(local).key) is not None:
                    raise _Unfit  # set to None over a foreign key given by hand: the ORM decides
                foreign[local.name] = None
                continue
            target_state = sa.inspect(target)
            value = target_state.dict.get(remote.key)
            if value is None or not (target_state.persistent or target in new):
                raise _Unfit
            foreign[local.name] = value
        elif prop.direction is ONETOMANY:
            back = prop.back_populates
            if target and (not isinstance(back, str)
                           or any(sa.inspect(child).dict.get(back) is not obj for child in target)):
                raise _Unfit
        elif target:
            raise _Unfit
    for column, key, versioned in _columns(mapper):
        if column.name in foreign:
            value = foreign[column.name]
        elif key in state.dict:
            value = state.dict[key]
        elif versioned:
            value = mapper.version_id_generator(None)
        elif column.default is not None:
            value = _default(column.default)
        elif column.server_default is not None:
            raise _Unfit  # the row would have to be read back
        else:
            value = None
        if key not in state.dict or state.dict[key] is not value:
            setattr(obj, key, value)  # through the attribute: mutable JSON gets its tracking
            value = state.dict[key]
        values[column.name] = value
    return values


@functools.cache
def _columns(mapper: Any) -> tuple[tuple[Any, str, bool], ...]:
    """Each column of the mapper's table, its attribute's name, and whether it is the
    version counter."""
    return tuple((column, mapper.get_property_by_column(column).key, column is mapper.version_id_col)
                 for column in mapper.local_table.columns)


def _default(default: Any) -> Any:
    if default.is_scalar:
        return default.arg
    if default.is_callable:
        return default.arg(None)  # SQLAlchemy wraps a callable of no argument to take a context
    raise _Unfit


def parameters(tables: dict[Table, Rows]) -> dict[str, Any]:
    """The bound arrays of the CTEs of ``ctes(tuple(tables))``."""
    return {f"i{index}_{name}": rows.values[name]
            for index, (table, rows) in enumerate(tables.items()) for name in table.columns}


@functools.lru_cache(maxsize=64)
def ctes(tables: tuple[Table, ...]) -> tuple[str, ...]:
    """PostgreSQL: the CTEs inserting each table's rows (a tuple: the answer is cached)."""
    from sqlalchemy.dialects.postgresql import psycopg

    from .models import Base

    dialect = psycopg.dialect()
    quote = dialect.identifier_preparer.quote
    parts = []
    for index, group in enumerate(tables):
        table = Base.metadata.tables[group.name]
        arrays = ", ".join(f"CAST(:i{index}_{name} AS {row_updates.array_type(table.c[name].type, dialect)}[])"
                           for name in group.columns)
        names = ", ".join(quote(name) for name in group.columns)
        parts.append(f"inserted_{index} AS (INSERT INTO {quote(table.name)} ({names}) "
                     f"SELECT * FROM unnest({arrays}))")
    return tuple(parts)


def send(connection: Any, tables: dict[Table, Rows]) -> None:
    """SQLite: each table's INSERT, all its rows at once (executemany)."""
    for table, rows in tables.items():
        connection.exec_driver_sql(_insert_text(table), list(_tuples(table, rows)))


def _tuples(table: Table, rows: Rows) -> Iterable[tuple[Any, ...]]:
    return zip(*(rows.values[name] for name in table.columns), strict=True)


@functools.lru_cache(maxsize=64)
def _insert_text(table: Table) -> str:
    names = ", ".join(f'"{name}"' for name in table.columns)
    return f'INSERT INTO "{table.name}" ({names}) VALUES ({", ".join("?" * len(table.columns))})'
