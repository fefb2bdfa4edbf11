"""Savepoints that cost nothing when nothing inside them writes.

Under the web policy (``propagate_exception=False``) every handler, gate, join and timer
runs inside a savepoint, so that a failure rolls back that node alone and leaves it in
ERROR. Most nodes write nothing while they run: a handler changes ``process.data`` in
memory, a gate picks its branches, and the rows reach the database with the next flush.
SQLAlchemy's ``begin_nested`` sends ``SAVEPOINT`` at once and flushes again before its
``RELEASE``, so each node cost two statements and a flush more than under the code policy.

A ``Guard`` instead:

- flushes what came before it (that belongs to the enclosing transaction or guard);
- notes a savepoint on the connection that is sent only when a statement other than a
  SELECT is about to run inside it (a flush, the caller's own SQL): before that
  statement, in order, with every enclosing guard's savepoint not sent yet;
- on success, sends ``RELEASE`` only if its savepoint was sent, and does not flush: what
  the block changed in memory goes with the next flush, in the enclosing scope;
- on failure, sends ``ROLLBACK TO`` only if its savepoint was sent, and undoes in memory
  what the block did: objects it added are expunged (pending, or inserted by a flush
  inside it), objects it changed are expired, so they are read again as they were when
  the guard began (the database holds that state: the guard flushed on entry).

The database sees exactly what a savepoint around the block would have made of it; the
session is left as SQLAlchemy's own rollback of a nested transaction leaves it, but for one
case the engine never meets: a row that a flush inside the block deleted is back in the
table after the rollback, and no longer held by the session (read it again to use it).
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

#: On a DBAPI connection's info: the open guards' savepoints, [name, sent] each, outermost first.
SAVEPOINTS = "webflow_savepoints"
#: On a session's info: the open guards, outermost first (each notes what flushes inside it wrote).
GUARDS = "webflow_guards"


class Guard:
    """One node's savepoint (see the module's docstring): begun when created, ended by
    ``release()`` or ``roll_back()`` (Activation.exception_guard)."""

    def __init__(self, session: Session) -> None:
        session.flush()  # what came before the guard is not the guard's to undo
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

    def _close(self) -> bool:
        """Forget the guard; True when its savepoint reached the database."""
        if self.guards and self.guards[-1] is self:
            self.guards.pop()
        if self.savepoints and self.savepoints[-1] is self.entry:
            self.savepoints.pop()
        return bool(self.entry[1])

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
        for obj in [*session.new, *self.inserted]:
            if obj in session:
                session.expunge(obj)
        for obj in [*session.dirty, *session.deleted, *self.updated]:
            if obj in session:
                if obj in session.deleted:
                    session.expunge(obj)  # a deletion it asked for is dropped with the rest
                else:
                    session.expire(obj)


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
