"""The UPDATEs of process and task rows, sent by the engine instead of the ORM's flush:
on PostgreSQL with the transaction's last statement, on SQLite (which has no
data-modifying CTE) as one statement per table and set of changed columns, all its rows at
once (``send``), which skips the ORM's unit of work for rows whose changes are plain.

A human transition changes two rows that exist already (the task; the process's version,
status or data), and the ORM sends an UPDATE for each: two statements and two round trips
on top of the lock, the read and the last statement that carries the audit rows, links and
search documents. Here the changes of those objects are read from the session (what
the ORM itself would have written: column changes, and the foreign key of a many-to-one
changed through its relationship) and become data-modifying CTEs of that last statement,
one per table and set of changed columns, each row's values in arrays (``unnest``) so
that the text is one of a few, compiled once. The objects are then marked clean, so the
commit's flush leaves them alone.

Only rows whose process's search document the unit of work builds from memory are taken:
a document read from the table would be read before the CTEs run, so those processes'
rows go through the ordinary flush first. Anything the ORM must work out itself (a
relationship to a row without an id yet, a collection that lost members, a version set
by hand) leaves its object to the flush. A process row is updated on its version as the
ORM does (``version_id_col``): the statement counts the rows it matched, and a mismatch is
the ORM's own ``StaleDataError``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.orm.interfaces import MANYTOONE, ONETOMANY

from . import json_data

#: Turned off by the test that compares the two ways of writing (same rows either way).
ENABLED = True
#: Told ``(session, objects)`` just before the changes of those objects are taken, while
#: their history is still there: what listeners of a flush (``after_flush``) would have
#: seen of them (livefeed listens here too).
listeners: list[Callable[[Session, list[Any]], None]] = []


@dataclass(frozen=True)
class Group:
    """Rows of one table that change the same columns (one CTE)."""

    table: str
    columns: tuple[str, ...]  # column names, in the table's order
    versioned: bool


@dataclass
class Rows:
    """The values of one group: ids (and old versions), and one list per column."""

    ids: list[int] = field(default_factory=list)
    versions: list[int] = field(default_factory=list)
    values: dict[str, list[Any]] = field(default_factory=dict)


def take(session: Session, held: Callable[[Any], bool]) -> dict[Group, Rows]:
    """Take the pending UPDATEs of processes and tasks whose process ``held`` says the unit
    of work holds whole (see the module's docstring): their values, grouped, with the
    objects marked clean. What is not taken stays for the flush."""
    from .models import Process, Task

    if not ENABLED:
        return {}
    dialect = session.get_bind().dialect
    groups: dict[Group, Rows] = {}
    taken: list[tuple[Any, dict[str, Any]]] = []
    for obj in list(session.dirty):
        if not isinstance(obj, Process | Task):
            continue
        state: Any = sa.inspect(obj)
        if not state.persistent:
            continue
        process = obj if isinstance(obj, Process) else process_of(session, state)
        if process is None or not held(process):
            continue
        change = _changes(state) if _foldable(state.mapper.local_table) else None
        if change is None:
            continue  # the ORM works this one out itself
        columns, foreign_keys = change
        version = None
        if isinstance(obj, Process):
            version = state.dict.get("version")
            if version is None or "version" in columns:
                continue
        if columns:
            table = state.mapper.local_table
            group = Group(table.name, tuple(c.name for c in table.columns if c.name in columns),
                          version is not None)
            rows = groups.setdefault(group, Rows())
            rows.ids.append(state.identity[0])
            if version is not None:
                rows.versions.append(version)
            for name in group.columns:
                rows.values.setdefault(name, []).append(bind(dialect, table.c[name], columns[name]))
        taken.append((state, {**foreign_keys, **({} if version is None else {"version": version + 1})}))
    if taken and listeners:
        objects = [state.obj() for state, _ in taken]
        for listener in listeners:
            listener(session, objects)
    for state, values in taken:
        # What the row holds once the statement ran (the new version, the foreign key of
        # a many-to-one), and no history left for the commit's flush.
        state.dict.update(values)
        state._commit_all(state.dict, session.identity_map)
    return groups


@functools.cache
def _foldable(table: Any) -> bool:
    """A table whose UPDATE is only the changed columns: no column the ORM or the server
    fills in on update (``onupdate``), which a CTE written from the changes would miss."""
    return not any(column.onupdate is not None or column.server_onupdate is not None
                   for column in table.columns)


def process_of(session: Session, state: Any) -> Any:
    from sqlalchemy.orm.util import identity_key

    from .models import Process

    process = state.dict.get("process")
    if process is not None:
        return process
    process_id = state.dict.get("process_id")
    return None if process_id is None else session.identity_map.get(identity_key(Process, process_id))


def _changes(state: Any) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The object's changed columns by column name (with many-to-one changes as their
    foreign key) and the foreign-key attributes to set in memory; None when the ORM must
    decide (see the module's docstring)."""
    mapper = state.mapper
    columns: dict[str, Any] = {}
    foreign_keys: dict[str, Any] = {}
    for key in list(state.committed_state):
        prop = mapper.get_property(key)
        history = state.attrs[key].history
        if not history.has_changes():
            continue
        if isinstance(prop, sa.orm.ColumnProperty):
            if len(prop.columns) != 1:
                return None
            columns.setdefault(prop.columns[0].name, history.added[0] if history.added else None)
        elif prop.direction is MANYTOONE:
            target = history.added[0] if history.added else None
            pairs = prop.local_remote_pairs
            if len(pairs) != 1:
                return None
            local, remote = pairs[0]
            if target is None:
                value = None
            else:
                target_state = sa.inspect(target)
                if not target_state.has_identity or remote.key not in target_state.dict:
                    return None  # a row without an id yet: the flush orders that
                value = target_state.dict[remote.key]
            columns[local.name] = value  # the relationship wins over the column, as in a flush
            foreign_keys[mapper.get_property_by_column(local).key] = value
        elif prop.direction is ONETOMANY:
            # A child added to the collection carries the foreign key itself (its own
            # many-to-one, flushed with it); one taken out would need this row's flush.
            if history.deleted or any(_parent_of(child, prop) is not state.obj() for child in history.added):
                return None
        else:
            return None
    return columns, foreign_keys


def _parent_of(child: Any, prop: Any) -> Any:
    back = prop.back_populates or prop.backref
    return sa.inspect(child).dict.get(back) if isinstance(back, str) else None


@functools.cache
def _processor(dialect: Any, column: Any) -> Callable[[Any], Any] | None:
    if isinstance(column.type, sa.JSON):
        # The driver's JSON wrapper does not go into an array: the text, cast by the
        # statement (JSON's None is the JSON null, as the ORM writes it); floats kept
        # floats on PostgreSQL (json_data.dumps), as the ORM's writes keep them.
        return json_data.dumps
    # The type as this dialect spells it: a TypeDecorator's own bind_processor wraps its
    # generic impl (sa.DateTime has none), not the dialect's (SQLite's DATETIME formats
    # the text every other write stores; without it sqlite3 stored "...+00:00", which
    # compares wrongly against the other rows' text).
    return column.type.dialect_impl(dialect).bind_processor(dialect)  # type: ignore[no-any-return]


def bind(dialect: Any, column: Any, value: Any) -> Any:
    """The value as the driver takes it for the column (also row_inserts')."""
    processor = _processor(dialect, column)
    return value if processor is None else processor(value)


def parameters(groups: dict[Group, Rows]) -> dict[str, Any]:
    """The bound arrays of the CTEs of ``ctes(tuple(groups))``."""
    params: dict[str, Any] = {}
    for index, (group, rows) in enumerate(groups.items()):
        params[f"u{index}_id"] = rows.ids
        if group.versioned:
            params[f"u{index}_version"] = rows.versions
        for name in group.columns:
            params[f"u{index}_{name}"] = rows.values[name]
    return params


@functools.lru_cache(maxsize=256)
def ctes(groups: tuple[Group, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The CTEs updating each group's rows, and the count each one answers (in order;
    tuples: the answer is cached and shared)."""
    from sqlalchemy.dialects.postgresql import psycopg

    from .models import Base

    dialect = psycopg.dialect()
    quote = dialect.identifier_preparer.quote
    parts, counts = [], []
    for index, group in enumerate(groups):
        table = Base.metadata.tables[group.table]
        names = ["id", *(["version"] if group.versioned else []), *group.columns]
        arrays = [f"CAST(:u{index}_id AS INTEGER[])"]
        if group.versioned:
            arrays.append(f"CAST(:u{index}_version AS INTEGER[])")
        arrays += [f"CAST(:u{index}_{name} AS {array_type(table.c[name].type, dialect)}[])"
                   for name in group.columns]
        sets = [f"{quote(name)} = u.{quote(name)}" for name in group.columns]
        where = f"{quote(table.name)}.id = u.id"
        if group.versioned:
            sets.append("version = u.version + 1")
            where += f" AND {quote(table.name)}.version = u.version"
        quoted = ", ".join(quote(name) for name in names)
        parts.append(f"updated_{index} AS (UPDATE {quote(table.name)} SET {', '.join(sets)} "
                     f"FROM unnest({', '.join(arrays)}) AS u({quoted}) WHERE {where} RETURNING 1)")
        counts.append(f"(SELECT count(*) FROM updated_{index})")
    return tuple(parts), tuple(counts)


def array_type(column_type: Any, dialect: Any) -> str:
    """The element type of a column's array in the engine's CTEs (here and row_inserts'):
    its own, but a string without its length. PostgreSQL cuts a text to the length of a
    CAST to VARCHAR(n) without a word; the assignment to the column itself refuses a text
    too long for it (DataError), as the ORM's own INSERT and UPDATE are refused, instead of
    storing it cut."""
    if isinstance(column_type, sa.String) and column_type.length is not None:
        return "VARCHAR"
    return str(column_type.compile(dialect=dialect))


def check(groups: dict[Group, Rows], matched: tuple[int, ...]) -> None:
    """Raise the ORM's StaleDataError when a CTE matched fewer rows than it was given (a
    process whose version moved on, a row deleted meanwhile)."""
    for (group, rows), count in zip(groups.items(), matched, strict=True):
        if count != len(rows.ids):
            raise StaleDataError(
                f"UPDATE of table '{group.table}' expected to match {len(rows.ids)} row(s); "
                f"{count} matched (ids {rows.ids})")


@functools.lru_cache(maxsize=256)
def _update_text(group: Group) -> str:
    """SQLite: the group's UPDATE as one statement run for each row (executemany)."""
    sets = [f'"{name}" = ?' for name in group.columns]
    where = "id = ?"
    if group.versioned:
        sets.append("version = version + 1")
        where += " AND version = ?"
    return f'UPDATE "{group.table}" SET {", ".join(sets)} WHERE {where}'


def send(connection: Any, groups: dict[Group, Rows]) -> None:
    """SQLite (no data-modifying CTE): each group's UPDATE on its own, all its rows at once,
    checked as the CTEs are."""
    matched = []
    for group, rows in groups.items():
        params = [(*(rows.values[name][i] for name in group.columns), row_id,
                   *((rows.versions[i],) if group.versioned else ()))
                  for i, row_id in enumerate(rows.ids)]
        matched.append(connection.exec_driver_sql(_update_text(group), params).rowcount)
    check(groups, tuple(matched))
