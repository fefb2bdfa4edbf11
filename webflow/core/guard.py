"""Savepoints that cost nothing when nothing inside them writes.

Under the web policy (``propagate_exception=False``) every handler, gate, join and timer
runs inside a savepoint, so that a failure rolls back that node alone and leaves it in
ERROR. Most nodes write nothing while they run: a handler changes ``process.data`` in
memory, a gate picks its branches, and the rows reach the database with the next flush.
SQLAlchemy's ``begin_nested`` sends ``SAVEPOINT`` at once and flushes again before its
``RELEASE``, so each node cost two statements and a flush more than under the code policy.

A ``Guard`` instead:

- leaves unsaved what came before it, when that is only processes and tasks being inserted
  or updated (the engine's own rows, which is what a node normally finds): it notes what
  each of them holds (a copy of its columns, and which columns are unsaved changes), so a
  failure can put them back without a statement. Anything else unsaved (another model's
  rows, a deletion) is flushed first, as before: that belongs to the enclosing transaction
  or guard, and only a flush keeps it apart from what the block does;
- notes a savepoint on the connection that is sent only when a statement other than a
  SELECT is about to run inside it (a flush, the caller's own SQL): before that
  statement, in order, with every enclosing guard's savepoint not sent yet. A flush inside
  the block therefore writes the rows left unsaved at the guard's start *inside* the
  savepoint, next to the block's own;
- on success, sends ``RELEASE`` only if its savepoint was sent, and does not flush: what
  the block changed in memory goes with the next flush, in the enclosing scope;
- on failure, sends ``ROLLBACK TO`` only if its savepoint was sent, and undoes in memory
  what the block did: objects it added are expunged (pending, or inserted by a flush
  inside it), objects it changed that were saved when it began are expired, so they are
  read again as they were then; the rows left unsaved at its start get their noted
  columns back and are unsaved again (a row a flush inside the block inserted, and the
  rollback took out again, is pending once more; a row it updated has its noted changes
  marked to be written again).

The database sees exactly what a savepoint around the block would have made of it; the
session is left as SQLAlchemy's own rollback of a nested transaction leaves it, but for one
case the engine never meets: a row that a flush inside the block deleted is back in the
table after the rollback, and no longer held by the session (read it again to use it).
Under the web policy a flow of automatic nodes therefore writes its rows once, at the end,
as under the code policy, instead of once per node.
"""

from __future__ import annotations

import contextvars
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session, attributes, make_transient

from .json_data import DataDict, plain
from .models import MutableJSONType, Process, Task
from .transaction import current_unit_of_work

T = TypeVar("T")

#: On a DBAPI connection's info: the open guards' savepoints, [name, sent] each, outermost first.
SAVEPOINTS = "webflow_savepoints"
#: On a session's info: the open guards, outermost first (each notes what flushes inside it wrote).
GUARDS = "webflow_guards"
#: Off: every guard flushes what came before it (the earlier way, which the tests compare
#: with this one).
LEAVE_UNSAVED = True
#: On (``writing_each_node``): every guard writes what came before it and what its node
#: did, inside the node's savepoint: see ``kept_on_refusal``.
_each_node: contextvars.ContextVar[bool] = contextvars.ContextVar("webflow_each_node", default=False)


@contextmanager
def writing_each_node() -> Iterator[None]:
    """Guards write every row, the engine's own too, before their node ends."""
    token = _each_node.set(True)
    try:
        yield
    finally:
        _each_node.reset(token)


def kept_on_refusal(session: Session, call: Callable[[], T]) -> T:
    """Run ``call`` (an engine call that commits, under the web policy). The engine writes
    processes and tasks once, at the end, past every node's guard: a value the database
    refuses only then (a handler that left the process naming a user who does not exist)
    failed the whole call, and a person's completion was lost. Then the call is rolled
    back and run once more with each node's rows written inside its own savepoint, so the
    refusal fails the node that caused it (ERROR with the reason) and the rest is kept.
    The happy path costs nothing; a refusal outside every node is raised again."""
    try:
        return call()
    except (sa.exc.IntegrityError, sa.exc.DataError):
        session.rollback()
    with writing_each_node():
        return call()


class Guard:
    """One node's savepoint (see the module's docstring): begun when created, ended by
    ``release()`` or ``roll_back()`` (Activation.exception_guard)."""

    def __init__(self, session: Session) -> None:
        held = _unsaved_engine_rows(session) if LEAVE_UNSAVED and not _each_node.get() else None
        if held is None:
            session.flush()  # what came before the guard is not the guard's to undo
            held = []
        self.session = session
        self.connection = session.connection()
        if self.connection.engine not in _engines:
            _listen_on(self.connection.engine)
        self.savepoints: list[list[Any]] = self.connection.info.setdefault(SAVEPOINTS, [])
        self.entry = [f"webflow_guard_{len(self.savepoints) + 1}", False]
        self.savepoints.append(self.entry)
        self.guards: list[Guard] = session.info.setdefault(GUARDS, [])
        self.guards.append(self)
        self.inserted: list[Any] = []  # rows flushes inside the guard inserted
        self.updated: list[Any] = []   # and updated or deleted
        self.before = [_Unsaved(obj) for obj in held]  # rows left unsaved at the start

    def _close(self) -> bool:
        """Forget the guard; True when its savepoint reached the database."""
        if self.guards and self.guards[-1] is self:
            self.guards.pop()
        if self.savepoints and self.savepoints[-1] is self.entry:
            self.savepoints.pop()
        return bool(self.entry[1])

    def settle(self) -> None:
        """Write, inside the savepoint, rows of other models that the block left unsaved (a
        handler's own rows, a deletion). The database may refuse them (a unique name taken,
        a missing reference), and that must be this node's failure: written with the commit
        instead, after every guard, it failed the whole transition, and under the web policy
        a person's completion was lost with a 500. The engine's own rows stay unsaved for
        the one statement at the end (what they hold is checked when it is set), so a node
        that touches only them still costs no statement."""
        if _each_node.get() or _unsaved_engine_rows(self.session) is None:
            session: Any = self.session
            # In a savepoint of SQLAlchemy's own: a flush that fails outside one ends the
            # whole transaction (the session rolls it back), and this node's failure must
            # not. begin_nested() flushes before it sends SAVEPOINT unless a flush is under
            # way: that flag keeps the rows for the flush inside it (test_guard's
            # test_a_row_the_database_refuses_fails_its_node_... fails if that changes).
            session._flushing = True
            try:
                nested = session.begin_nested()
            finally:
                session._flushing = False
            with nested:
                session.flush()

    def release(self) -> None:
        """The block succeeded: keep what it did (nothing is flushed here)."""
        if self._close():
            self.connection.exec_driver_sql(f"RELEASE SAVEPOINT {self.entry[0]}")
        if self.guards:  # an enclosing guard undoes these rows too if it fails
            self.guards[-1].inserted += self.inserted
            self.guards[-1].updated += self.updated

    def roll_back(self) -> None:
        """The block failed: undo what it did, in the database and in the session."""
        if self._close():
            self.connection.exec_driver_sql(f"ROLLBACK TO SAVEPOINT {self.entry[0]}")
            self.connection.exec_driver_sql(f"RELEASE SAVEPOINT {self.entry[0]}")
        session = self.session
        kept = {id(before.obj) for before in self.before}
        gone: set[int] = set()
        with session.no_autoflush:  # nothing is written while the session is half restored
            for obj in [*session.new, *self.inserted]:
                if id(obj) not in kept and obj in session:
                    session.expunge(obj)
                    gone.add(id(obj))
            for obj in [*session.dirty, *session.deleted, *self.updated]:
                if id(obj) in kept or obj not in session:
                    continue
                if obj in session.deleted:
                    session.expunge(obj)  # a deletion it asked for is dropped with the rest
                else:
                    session.expire(obj)
            for before in self.before:  # first: no cascade below may reach a row that is gone
                before.forget(gone)
            for before in self.before:
                before.restore(session)


def _unsaved_engine_rows(session: Session) -> list[Any] | None:
    """The objects with unsaved changes, when every one is a process or a task being
    inserted or updated; None when anything else is unsaved (it must be flushed first)."""
    if session.deleted:
        return None
    held = [*session.new, *session.dirty]
    if any(type(obj) not in (Process, Task) for obj in held):
        return None
    return held


class _Shape(NamedTuple):
    """What the guard needs to know of a mapped class."""

    columns: tuple[str, ...]
    references: tuple[str, ...]    # writable relationships to one row (task.process)
    collections: tuple[str, ...]   # and to many (process.tasks)
    mutable: frozenset[str]        # columns of mutable JSON


_shapes: dict[type, _Shape] = {}


def _shape(cls: type) -> _Shape:
    if cls not in _shapes:
        mapper: Any = sa.inspect(cls)
        writable = [rel for rel in mapper.relationships if not rel.viewonly]
        _shapes[cls] = _Shape(
            columns=tuple(prop.key for prop in mapper.column_attrs),
            references=tuple(rel.key for rel in writable if not rel.uselist),
            collections=tuple(rel.key for rel in writable if rel.uselist),
            # MutableDict.as_mutable tracks the columns declared with that very type object.
            mutable=frozenset(prop.key for prop in mapper.column_attrs
                              if prop.columns[0].type is MutableJSONType),
        )
    return _shapes[cls]


class _Unsaved:
    """A process or task that had unsaved changes when a guard began: its columns then,
    and which of them were the unsaved changes (all of them for a row not inserted yet)."""

    __slots__ = ("obj", "pending", "values", "changed")

    def __init__(self, obj: Any) -> None:
        state = sa.inspect(obj)
        shape = _shape(type(obj))
        self.obj = obj
        self.pending = state.key is None
        # Everything the row holds (relationships too: restore reads only the columns);
        # a copy of what can change in place. Scalars are immutable.
        self.values = values = dict(state.dict)
        for key in shape.mutable:
            if key in values:
                values[key] = plain(values[key])
        self.changed = [key for key in state.committed_state if key not in shape.collections]

    def forget(self, gone: set[int]) -> None:
        """Drop the references to rows the block added (they left the session)."""
        if not gone:
            return
        state = sa.inspect(self.obj)
        shape = _shape(type(self.obj))
        for key in shape.collections:
            value = state.dict.get(key)
            if value is not None and any(id(item) in gone for item in value):
                attributes.set_committed_value(self.obj, key, [i for i in value if id(i) not in gone])
        for key in shape.references:
            value = state.dict.get(key)
            if value is not None and id(value) in gone:
                attributes.set_committed_value(self.obj, key, None)
        # Appends to a collection not loaded yet wait in the state until it loads (a new
        # task's backref to its process's tasks): a row that is gone is not appended.
        for waiting in state.__dict__.get("_pending_mutations", {}).values():
            for item in [item for item in waiting.added_items if id(item) in gone]:
                waiting.added_items.remove(item)

    def restore(self, session: Session) -> None:
        obj = self.obj
        state = sa.inspect(obj)
        shape = _shape(type(obj))
        values = self.values
        if self.pending:
            if state.key is not None:  # a flush inside the block inserted it: rolled back
                make_transient(obj)
            for key in shape.columns:
                if key == "id":
                    continue  # an id given inside the block is kept: the counter has moved on
                if key in values:
                    setattr(obj, key, plain(values[key]))
                else:
                    state.dict.pop(key, None)
            for key in shape.references:
                if key not in values:
                    state.dict.pop(key, None)
                elif state.dict.get(key) is not values[key]:
                    setattr(obj, key, values[key])
                # The foreign key comes from the relationship at the INSERT (a flush
                # fills it in): what it points at is to be written again.
                if state.dict.get(key) is not None:
                    attributes.flag_modified(obj, key)
            if obj not in session:
                session.add(obj)
                uow = current_unit_of_work()
                if uow is not None and uow.session is session and obj.id is not None:
                    uow.reserved.append(obj)  # its id is taken: it goes in before others' rows
            return
        if obj not in session:  # a deletion inside the block (never the engine's own)
            session.add(obj)
        # The noted columns as they were, with no history; then the noted changes marked
        # to be written (the database holds the row as it was before them).
        for key in shape.columns:
            if key in values:
                value = plain(values[key])
                if key in shape.mutable:
                    value = _tracked(state, key, value)
                attributes.set_committed_value(obj, key, value)
            elif key in state.dict:
                session.expire(obj, [key])  # read by the block: read again as saved
        for key in shape.references:
            if key in values and state.dict.get(key) is not values[key]:
                attributes.set_committed_value(obj, key, values[key])
        for key in self.changed:
            attributes.flag_modified(obj, key)


def _tracked(state: Any, key: str, value: dict[str, Any]) -> Any:
    """The mutable JSON value as a MutableDict its row listens to (set_committed_value
    bypasses the events that would coerce it)."""
    tracked: Any = DataDict.coerce(key, value)
    tracked._parents[state] = key
    return tracked


def _note_flush(session: Session, flush_context: Any) -> None:
    """After a flush inside guards: what it inserted and changed (still listed as new and
    dirty here, per SQLAlchemy's after_flush), for a guard that fails to undo."""
    guards = session.info.get(GUARDS)
    if guards:
        guards[-1].inserted += list(session.new)
        guards[-1].updated += [*session.dirty, *session.deleted]


def _send_savepoints(conn: Connection, cursor: Any, statement: str, *args: Any) -> None:
    """Before a statement that writes: send the open guards' savepoints not sent yet."""
    savepoints = conn.info.get(SAVEPOINTS)
    if not savepoints or savepoints[-1][1] or statement.startswith("SELECT"):
        return
    waiting = [entry for entry in savepoints if not entry[1]]
    for entry in waiting:
        entry[1] = True  # first: the SAVEPOINT below comes through this listener too
    for entry in waiting:
        conn.exec_driver_sql(f"SAVEPOINT {entry[0]}")


def _forget_savepoints(conn: Connection) -> None:
    conn.info.pop(SAVEPOINTS, None)


def _forget_guards(session: Session, *args: Any) -> None:
    if not session.in_transaction():
        session.info.pop(GUARDS, None)


_engines: weakref.WeakSet[Engine] = weakref.WeakSet()
_listening = threading.Lock()


def _listen_on(engine: Engine) -> None:
    """Send savepoints on this engine's connections (from its first guard on: an engine
    no guard runs on pays nothing per statement)."""
    with _listening:  # request threads may meet a new engine at once
        if engine not in _engines:
            event.listen(engine, "before_cursor_execute", _send_savepoints)
            event.listen(engine, "commit", _forget_savepoints)
            event.listen(engine, "rollback", _forget_savepoints)
            _engines.add(engine)


event.listen(Session, "after_flush", _note_flush)
event.listen(Session, "after_commit", _forget_guards)
event.listen(Session, "after_rollback", _forget_guards)
