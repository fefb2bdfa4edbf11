"""One transaction per public state change, holding the per-process lock.

PostgreSQL: ``SELECT ... FOR UPDATE`` on the process row, blocking (with the server's
``lock_timeout``), taken before any read that decides a transition. SQLite: the whole
database's write lock, taken up front with ``BEGIN IMMEDIATE`` (a deferred BEGIN that
reads and then writes fails under contention). Either lock is released only by the
commit or rollback that ends the unit of work. Calls nested inside a unit of work join
it, so a cascade through many nodes is one transaction.

Reads outside a unit of work run in autocommit on both databases, each statement on the
latest commit: no BEGIN before a page's reads and no COMMIT or ROLLBACK after them, and
no read transaction to end before a transition takes its lock. The first statement that
writes (or locks rows: ``FOR UPDATE``) begins the transaction, and everything after it up
to the commit is one transaction, as before. On SQLite that BEGIN is ``BEGIN IMMEDIATE``,
so a caller's own read-then-write never holds a read lock it must upgrade. A PostgreSQL
engine given an isolation level of its own keeps the driver's transactions.
"""

from __future__ import annotations

import enum
import functools
import random
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from .exceptions import FlowLockFailed
from .models import is_row_id

R = TypeVar("R")

LOCK_ATTEMPTS = 5
LOCK_BACKOFF = 0.05  # seconds, doubled per attempt, with jitter
# A pooled PostgreSQL connection idle longer than this is pinged before it is handed out
# (a server restart or an idle timeout may have dropped it); a busy one is not, so the
# ping is no round trip on the hot path. Within this window a dropped connection fails
# its first statement instead, and the pool replaces every connection older than it.
PING_AFTER_IDLE = 2.0  # seconds
# Set on a DBAPI connection's info by any statement that writes (_statement_kind), cleared
# by the commit or rollback that ends its transaction: "this transaction has written".
WROTE = "webflow_wrote"
# Set on a connection's info while a statement that is a whole transaction by itself runs
# (UnitOfWork.write_events): if no transaction is open, none is begun for it.
ALONE = "webflow_alone"

#: The first words of statements that may be reads (_statement_kind), in any case and
#: after leading blanks (text SQL is written by hand).
_AUTOCOMMIT_SAFE = re.compile(
    r"\s*(?:(?P<select>SELECT)|(?P<with>WITH)|BEGIN|COMMIT|ROLLBACK|RELEASE|PRAGMA|EXPLAIN|SHOW)\b", re.I)
_LOCKING_READ = re.compile(
    r"\sFOR\s+(?:UPDATE|NO\s+KEY\s+UPDATE|SHARE|KEY\s+SHARE)\b|\bpg_(?:try_)?advisory_xact_lock", re.I)
#: Turned off by the test that compares ids reserved from the sequences with ids a flush
#: gives (the same rows either way).
RESERVE_IDS = True


class UnitOfWork:
    """The transaction in progress: which processes it locked, what runs after commit."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.locked: set[int] = set()
        self.after_commit: list[Callable[[], Any]] = []
        # Audit rows, written in one executemany just before the commit: an ORM object
        # per transition would cost a flush step and an INSERT each.
        self.events: list[tuple[Any, Any, dict[str, Any]]] = []
        # (previous, task) links, written the same way: as a relationship the self-
        # referencing many-to-many made every flush sort and check for cycles.
        self.links: list[tuple[Any, Any]] = []
        # What the engine may answer from memory while it holds the lock (each process's
        # tasks, see queries.process_tasks); cleared when a savepoint rolls back.
        self.cache: dict[Any, Any] = {}
        # Per open exception_guard savepoint: the new tasks that guard themselves, to run
        # once it is released (see Activation.run_created).
        self.deferred: list[list[Any]] = []
        # Processes whose tasks the engine is canceling wholesale (a process cancel, a
        # terminating End, a join's cancel_rest): settling waits until it is finished.
        self.quiet: set[Any] = set()
        # Tasks whose drafts go with the last statement (forget_draft).
        self.drafts_gone: set[int] = set()
        # New processes and tasks given their ids before their INSERT (assign_ids).
        self.reserved: list[Any] = []
        # SQLite: the next process and task ids, once assign_ids has read the largest.
        self.next_ids: list[int] | None = None
        # Processes this unit of work inserted: their ids outlive the commit (keep_created_ids).
        self.created: list[Any] = []

    def write_links(self) -> None:
        """Store the pending task links (before anything reads task_link)."""
        rows = self._take_links()
        if rows:
            self.session.connection().execute(_links_insert(self._dialect()), rows)
            # What was read from task_link is read again: these links were pending then.
            for key in [key for key in self.cache if isinstance(key, tuple) and key[0] == "links"]:
                del self.cache[key]

    def _take_links(self) -> list[dict[str, int]]:
        """The pending links as rows (flushed first: the tasks need their ids), taken."""
        if not self.links:
            return []
        self.session.flush()
        # A link that is already stored states the same fact again: keep the one row.
        pairs = {(previous.id, task.id): None for previous, task in self.links}
        self.links.clear()
        return [{"previous_id": p, "task_id": t} for p, t in pairs]

    def _dialect(self) -> str:
        return self.session.get_bind().dialect.name

    def write_events(self) -> None:
        """Write what the transaction left for its end: its new processes and tasks where
        the engine may write them (row_inserts), the pending links, the audit rows, the
        drafts to drop and the search documents it changed. On PostgreSQL one
        statement (the others as CTEs of the audit rows' INSERT): one round trip. Core
        statements on the transaction's connection: the rows need no ORM objects."""
        from . import row_inserts, row_updates, search

        dialect = self._dialect()
        updates: dict[Any, Any] = {}
        if dialect in ("postgresql", "sqlite"):
            from .queries import process_tasks

            # The processes whose document changes: those this unit of work locked have
            # their tasks read now (one statement, as reading the document would be), so
            # that the document is built from memory and their rows' UPDATEs can go with
            # the last statement (row_updates; on SQLite, statements of their own).
            for process in search.note_changes(self.session):
                if process.id in self.locked and sa.inspect(process).persistent:
                    process_tasks(self.session, process)
            updates = row_updates.take(self.session, self.holds)
        inserts = row_inserts.take(self.session, self) if dialect in ("postgresql", "sqlite") else {}
        self.session.flush()
        links = self._take_links()
        # Taken, but the tasks they name stay referenced until the documents are built: the
        # session holds objects weakly, and a document built from memory must see them
        # (queries.HeldTasks) rather than the rows read before they changed.
        logged, self.events = self.events, []
        events = [dict(values, process_id=process.id, task_id=task.id if task is not None else None)
                  for process, task, values in logged]
        drafts, self.drafts_gone = sorted(self.drafts_gone), set()
        documents = search.take_documents(self.session)
        connection = self.session.connection()
        if dialect == "postgresql" and (events or updates or inserts):
            statement = _last_statement(bool(links), bool(drafts), bool(documents), bool(events),
                                        tuple(updates), tuple(inserts))
            # A transaction that wrote nothing before its last statement (a start: its rows
            # are all in it) sends it alone, in autocommit: atomic by itself, no BEGIN and
            # COMMIT around it; only where the commit that follows would have stored it
            # anyway (_may_run_alone), and when nothing in it is checked after it ran: the
            # UPDATEs' versions are (row_updates.check), and a StaleDataError must leave
            # nothing of it stored.
            if not updates and _may_run_alone(self.session, connection):
                connection.info[ALONE] = True
            try:
                result = connection.execute(statement, {
                    "link_previous": [link["previous_id"] for link in links],
                    "link_task": [link["task_id"] for link in links],
                    "draft_tasks": drafts,
                    "doc_ids": [document["process_id"] for document in documents],
                    "doc_bodies": [document["body"] for document in documents],
                    **{f"ev_{name}": [_plain(event[name]) for event in events] for name in _EVENT_COLUMNS},
                    **row_updates.parameters(updates),
                    **row_inserts.parameters(inserts),
                })
            finally:
                connection.info.pop(ALONE, None)
            if updates:
                row_updates.check(updates, tuple(result.one()))
            return
        if inserts:
            row_inserts.send(connection, inserts)
        if updates:
            row_updates.send(connection, updates)
        if links:
            connection.execute(_links_insert(dialect), links)
        if drafts:
            connection.execute(_drafts_delete(), {"task_ids": drafts})
        if events:
            connection.execute(_events_insert(), events)
        search.write_documents(self.session, documents)

    def assign_ids(self) -> bool:
        """Give the session's new processes and tasks their ids without a flush, in the
        order they were created (ids keep the order of creation); the rows stay in memory
        until the next flush, which then inserts many at once. PostgreSQL: from the
        tables' sequences, one statement per call. SQLite: the transaction holds the
        database's write lock (BEGIN IMMEDIATE), so the next ids are those after the
        tables' largest, read once; from then on every new process and task of the
        transaction takes its id here (before_flush), none from an INSERT."""
        from .models import Process, Task

        dialect = self._dialect()
        if not RESERVE_IDS or dialect not in ("postgresql", "sqlite"):
            return False
        new = sorted((obj for obj in self.session.new if isinstance(obj, Process | Task) and obj.id is None),
                     key=lambda obj: sa.inspect(obj).insert_order)
        if not new:
            return True
        processes = [obj for obj in new if isinstance(obj, Process)]
        tasks = [obj for obj in new if isinstance(obj, Task)]
        if dialect == "postgresql":
            process_ids, task_ids = self.session.connection().execute(
                _next_ids_query(), {"processes": len(processes), "tasks": len(tasks)}).one()
        else:
            if self.next_ids is None:
                last_process, last_task = self.session.connection().execute(_largest_ids_query()).one()
                self.next_ids = [(last_process or 0) + 1, (last_task or 0) + 1]
            first_process, first_task = self.next_ids
            process_ids = list(range(first_process, first_process + len(processes)))
            task_ids = list(range(first_task, first_task + len(tasks)))
            self.next_ids = [first_process + len(processes), first_task + len(tasks)]
        groups: tuple[tuple[list[Any], list[int]], ...] = ((processes, process_ids), (tasks, task_ids))
        for group, ids in groups:
            for obj, new_id in zip(group, sorted(ids), strict=True):
                obj.id = new_id
        self.reserved += new
        return True

    def keep_created_ids(self) -> None:
        """After the commit: give the processes this unit of work inserted their ids back
        (the commit expired them with every other column). What a caller does first with
        a process it just started is use its id (a redirect, a message), and with the id
        expired that read the whole row back: a statement for a number the session had.
        The other columns stay expired (read afresh when used). ``set_committed_value``
        makes SQLAlchemy count the row as loaded, so ``session.get`` hands it back without
        asking the table whether it still exists: right for a row this very transaction
        inserted, which is why only these keep their id. A process a failed node had
        started left the session with its savepoint (not persistent): it keeps nothing."""
        for obj in self.created:
            state = sa.inspect(obj)
            if state.persistent and state.expired:
                set_committed_value(obj, "id", state.identity[0])  # the key outlives expiry

    def holds(self, process: Any) -> bool:
        """True when the unit of work holds every task of the process (it read them under
        the lock, or created the process): its search document is built from memory."""
        return ("tasks", process) in self.cache

    def forget_draft(self, task_id: int) -> None:
        """Drop the task's draft with the transaction's last statement (what the session
        holds of it goes now: nothing reads a draft of a task that changed hands)."""
        from sqlalchemy.orm.util import identity_key

        from .models import TaskDraft

        held = self.session.identity_map.get(identity_key(TaskDraft, task_id))
        if held is not None:
            self.session.expunge(held)
        self.drafts_gone.add(task_id)

    def lock_and_read(self, process_id: int, task_id: int | None) -> None:
        """Lock the process (and its tree's top one) and the task about to change, and read
        them, in one statement: the rows a transition decides on, current under the lock.

        Both are locked (``FOR UPDATE`` of each table): after waiting for another
        transaction, PostgreSQL hands back the latest version of every row it locked,
        whereas a row it only read would be the one of the statement's start. The other
        tasks of the process are read later, by a statement of their own (queries.
        process_tasks), which sees everything committed before the lock was ours."""
        if task_id is None or not is_row_id(task_id):
            self.lock(process_id)
            return
        query = _lock_and_read_query(self._dialect())
        rows = self.session.execute(query, {"process_id": process_id, "task_id": task_id}).all()
        if not rows:  # the task is gone: the process is locked all the same
            self.lock(process_id)
            return
        for row_process, row_task in rows:
            self.locked.add(row_process.id)
            if row_process.id == row_task.process_id:
                # populate_existing reset task.process; point it at the row just read, so
                # the process stays held (the identity map holds rows weakly) and is not
                # read again by the transition's first ``task.process``.
                set_committed_value(row_task, "process", row_process)
        self.locked.add(process_id)

    def lock(self, process_id: int) -> None:
        """Lock the process row (PostgreSQL); SQLite already holds its write lock."""
        if process_id in self.locked:
            return
        # An id no row can have (beyond PostgreSQL's integer) locks nothing: PostgreSQL
        # failed the statement with a DataError where SQLite found no row.
        if self._dialect() != "sqlite" and is_row_id(process_id):
            # The process and the top process of its tree (subprocesses), in id order:
            # the top one is older, so every transaction in a tree takes it first.
            locked = self.session.scalars(_lock_query(), {"process_id": process_id})
            self.locked.update(locked)
        self.locked.add(process_id)


@functools.cache
def _lock_and_read_query(dialect: str) -> Any:
    """The lock-and-read of a process and one of its tasks (built once per dialect)."""
    from .models import Process, Task

    process_id: Any = sa.bindparam("process_id")
    task_id: Any = sa.bindparam("task_id")
    query = (sa.select(Process, Task).join(Task, Task.process_id == process_id)
             .where(Task.id == task_id).order_by(Process.id)
             .execution_options(populate_existing=True))
    if dialect == "sqlite":
        return query.where(Process.id == process_id)  # BEGIN IMMEDIATE holds the lock
    # The process and the top process of its tree (subprocesses), in id order: the top
    # one is older, so every transaction in a tree takes it first (then, in the same
    # row, the task: FROM order).
    root = sa.select(Process.root_process_id).where(Process.id == process_id).scalar_subquery()
    return query.where(sa.or_(Process.id == process_id, Process.id == root)).with_for_update()


@functools.cache
def _next_ids_query() -> sa.TextClause:
    return sa.text(
        "SELECT ARRAY(SELECT nextval(pg_get_serial_sequence('process', 'id')) "
        "FROM generate_series(1, :processes)), "
        "ARRAY(SELECT nextval(pg_get_serial_sequence('task', 'id')) FROM generate_series(1, :tasks))")


@functools.cache
def _largest_ids_query() -> sa.TextClause:
    return sa.text("SELECT (SELECT max(id) FROM process), (SELECT max(id) FROM task)")


@functools.cache
def _lock_query() -> Any:
    from .models import Process

    process_id: Any = sa.bindparam("process_id")
    root = sa.select(Process.root_process_id).where(Process.id == process_id).scalar_subquery()
    return (sa.select(Process.id).where(sa.or_(Process.id == process_id, Process.id == root))
            .order_by(Process.id).with_for_update())


@functools.cache
def _links_insert(dialect: str) -> Any:
    """INSERT of task links that keeps a link already stored (built once per dialect)."""
    from sqlalchemy.dialects import postgresql, sqlite

    from .models import task_link

    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(task_link).on_conflict_do_nothing()


_EVENT_COLUMNS = ("process_id", "task_id", "transition", "from_status", "to_status", "user_id",
                  "comments", "created")
_EVENT_TYPES = ("INTEGER", "INTEGER", "VARCHAR", "VARCHAR", "VARCHAR", "INTEGER", "TEXT", "TIMESTAMPTZ")


def _plain(value: Any) -> Any:
    """A value as the arrays of the last statement take it (a status as its text)."""
    return value.value if isinstance(value, enum.Enum) else value


@functools.lru_cache(maxsize=512)
def _last_statement(links: bool, drafts: bool, documents: bool, events: bool,
                    updates: tuple[Any, ...] = (), inserts: tuple[Any, ...] = ()) -> sa.TextClause:
    """PostgreSQL: the audit rows' INSERT with the transaction's new rows (row_inserts),
    links, dropped drafts, search documents and row updates (row_updates) as CTEs, one
    round trip. Rows come as
    arrays (``unnest``), so the text is one of a few whatever the number of rows: compiled
    once each. Literal multi-row VALUES were compiled again for every transaction (a fifth
    of its time). With row updates, the statement answers how many rows each matched."""
    from . import row_inserts, row_updates

    cte_parts, counts = row_updates.ctes(updates) if updates else ((), ())
    parts = [*(row_inserts.ctes(inserts) if inserts else ()), *cte_parts]
    if links:
        parts.append(
            "new_links AS (INSERT INTO task_link (previous_id, task_id) "
            "SELECT * FROM unnest(CAST(:link_previous AS INTEGER[]), CAST(:link_task AS INTEGER[])) "
            "ON CONFLICT DO NOTHING)")
    if drafts:
        parts.append("gone_drafts AS (DELETE FROM task_draft "
                     "WHERE task_id = ANY(CAST(:draft_tasks AS INTEGER[])))")
    if documents:
        parts.append(
            "new_documents AS (INSERT INTO search_document (process_id, body, document) "
            "SELECT d.process_id, d.body, to_tsvector('simple'::regconfig, d.body) "
            "FROM unnest(CAST(:doc_ids AS INTEGER[]), CAST(:doc_bodies AS TEXT[])) AS d(process_id, body) "
            "ON CONFLICT (process_id) DO UPDATE SET body = excluded.body, document = excluded.document "
            "WHERE search_document.body IS DISTINCT FROM excluded.body)")
    arrays = ", ".join(f"CAST(:ev_{name} AS {kind}[])"
                       for name, kind in zip(_EVENT_COLUMNS, _EVENT_TYPES, strict=True))
    names = ", ".join(_EVENT_COLUMNS)
    # In the order noted (ORDINALITY): the trail's ids follow the order of the transitions.
    insert = (f"INSERT INTO task_event ({names}) SELECT {names} FROM unnest({arrays}) "
              f"WITH ORDINALITY AS e({names}, n) ORDER BY n")
    if counts:
        if events:
            parts.append(f"new_events AS ({insert})")
        main = "SELECT " + ", ".join(counts)
    elif events:
        main = insert
    else:
        main = "SELECT 1"  # the CTEs run all the same: data-modifying ones always do
    return sa.text(("WITH " + ", ".join(parts) + " " if parts else "") + main)


@functools.cache
def _drafts_delete() -> Any:
    """DELETE of the drafts of some tasks, built once (building it per call cost a tenth
    of write_events on a completion)."""
    from .models import TaskDraft

    return sa.delete(TaskDraft).where(TaskDraft.task_id.in_(sa.bindparam("task_ids", expanding=True)))


@functools.cache
def _events_insert() -> Any:
    from .models import TaskEvent

    return sa.insert(TaskEvent)


_current: ContextVar[UnitOfWork | None] = ContextVar("webflow_uow", default=None)


def _flush_reserved(session: Session) -> None:
    """Insert the processes and tasks that have ids but no rows yet (assign_ids), if any."""
    uow = _current.get()
    if uow is None or uow.session is not session or not uow.reserved:
        return
    if session._flushing or not session.autoflush:  # inside a flush, or no_autoflush on purpose
        return
    pending = any(sa.inspect(obj).pending for obj in uow.reserved)
    uow.reserved.clear()
    if pending:
        session.flush()


@event.listens_for(Session, "before_flush")
def _ids_for_every_new_row(session: Session, flush_context: Any, instances: Any) -> None:
    """SQLite, once the transaction hands out ids itself: the rows it did not give one
    yet take theirs from the same counter (an INSERT's own id could be one handed out
    to a row still in memory)."""
    uow = _current.get()
    if uow is not None and uow.session is session and uow.next_ids is not None:
        uow.assign_ids()


@event.listens_for(Session, "before_attach")
def _reserved_rows_first(session: Session, instance: Any) -> None:
    """A row of any other kind that joins the session may point at a reserved process or
    task (a handler's own records, a notification): those are inserted first. Without a
    relationship between them, a flush orders the tables by class name, not by foreign key."""
    from .models import Process, Task

    if not isinstance(instance, Process | Task):
        _flush_reserved(session)


@event.listens_for(Session, "do_orm_execute")
def _reserved_rows_before_statements(state: Any) -> None:
    """A statement run through the session (``session.execute(text(...))`` is not flushed
    for by SQLAlchemy) sees the reserved rows in the table."""
    _flush_reserved(state.session)


@event.listens_for(Session, "pending_to_persistent")
def _created_here(session: Session, instance: Any) -> None:
    """A process inserted by the running unit of work is its own: no other transaction
    sees the row before the commit, so nothing is to be locked (a join or a nested call
    on it would otherwise send a SELECT ... FOR UPDATE for nothing). It is noted as
    created too: its id outlives the commit (UnitOfWork.keep_created_ids)."""
    from .models import Process

    if isinstance(instance, Process):
        uow = _current.get()
        if uow is not None and uow.session is session:
            uow.locked.add(instance.id)
            uow.created.append(instance)


def get_or_add(session: Session, model: type[R], key: Any, **values: Any) -> R:
    """The row of ``model`` whose primary key is ``key``; a new one made of ``values`` when
    there is none. Two transactions adding it at once (a settings form sent twice by a
    double click) both found none and both inserted: the second failed at its commit (a
    unique violation, a 500 on PostgreSQL). The insert runs in a savepoint, and a copy
    that loses takes the row the other stored."""
    row = session.get(model, key)
    if row is not None:
        return row
    try:
        with session.begin_nested():
            row = model(**values)
            session.add(row)
    except sa.exc.IntegrityError:
        row = session.get(model, key)
        if row is None:
            raise
    return row


def current_unit_of_work() -> UnitOfWork | None:
    return _current.get()


def on_commit(callback: Callable[[], Any]) -> None:
    """Run the callback after the current unit of work commits (never if it rolls back)."""
    uow = _current.get()
    if uow is None:
        callback()
    else:
        uow.after_commit.append(callback)


def is_unreachable(exc: BaseException) -> bool:
    """True for an error that says the database cannot be reached now (server down,
    connection dropped or refused), as opposed to a bad statement or a lock timeout."""
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, sa.exc.InterfaceError):
        return True
    return isinstance(exc, OperationalError) and not _is_lock_error(exc)


def _is_lock_error(exc: OperationalError) -> bool:
    text = str(exc.orig).lower()
    return "locked" in text or "lock timeout" in text or "could not obtain lock" in text


def _may_run_alone(session: Session, connection: sa.Connection) -> bool:
    """True when a statement run alone in autocommit (ALONE) is what the session's commit
    would store: the commit ends the connection's transaction, and nothing can refuse it
    after the statement. Not so, and the statement begins the transaction as any write:

    - a session joined to a transaction its caller began on the connection (SQLAlchemy's
      ``join_transaction_mode`` "rollback_only", and "conditional_savepoint" outside a
      savepoint) does not commit it: the caller's rollback must take the rows back;
    - a ``before_commit`` listener other than the engine's own (search's, whose documents
      the last statement wrote) runs after the statement and may raise (or write): the
      refused commit must leave nothing stored."""
    from .search import _refresh_before_commit

    transaction = session.get_transaction()
    entry = getattr(transaction, "_connections", {}).get(connection)  # (conn, trans, should_commit, ...)
    if entry is None or not entry[2]:
        return False
    return all(listener is _refresh_before_commit for listener in session.dispatch.before_commit)


def _has_written(session: Session) -> bool:
    """True when the session's transaction holds changes: pending in the session, or
    sent to the database already (flushed, or executed by the caller)."""
    if session.new or session.dirty or session.deleted:
        return True
    transaction = session.get_transaction()
    if transaction is None:
        return False
    connections = getattr(transaction, "_connections", {})  # keyed by engine and by connection
    return any(key.info.get(WROTE) for key in connections if isinstance(key, sa.Connection))


def _reads_committed(session: Session) -> bool:
    """True when each statement of the session's transaction sees the latest commits."""
    bind = session.get_bind()
    if bind.dialect.name == "sqlite":
        return True  # reads run in autocommit (_before_statement begins before writes)
    level = bind.get_execution_options().get("isolation_level") or bind.dialect.default_isolation_level
    return level in (None, "READ COMMITTED")


def _expire_engine_rows(session: Session) -> None:
    """Forget what the session read of processes and tasks (read before the lock): the
    engine decides on rows read under it. Users and groups loaded by the caller stay."""
    from .models import Process, Task

    for obj in list(session.identity_map.values()):
        if isinstance(obj, Process | Task):
            session.expire(obj)


def _begin(session: Session, process_id: int | None, task_id: int | None = None) -> UnitOfWork:
    """End whatever the session had open, if need be, then begin with the lock held."""
    if session.in_transaction():
        if _has_written(session):
            # The caller's own changes are kept (committed), never dropped with a
            # transition that fails.
            session.commit()
        elif not _reads_committed(session):
            # A read snapshot is ended (PostgreSQL above read committed), so that the lock
            # is taken first and the latest rows are read; what the caller read (users,
            # say) is still good to use.
            expire, session.expire_on_commit = session.expire_on_commit, False
            try:
                session.commit()
            finally:
                session.expire_on_commit = expire
        # Otherwise (read committed, or reads in autocommit) every statement sees the
        # latest committed rows, so a transaction that only read goes on (no COMMIT and
        # BEGIN).
    # The engine decides on rows read under the lock: the processes and tasks the session
    # holds, read before it in this transaction or (a session that does not expire on
    # commit) in an earlier one, are read afresh. Users and groups stay.
    _expire_engine_rows(session)
    uow = UnitOfWork(session)
    connection = session.connection()
    if process_id is not None or connection.dialect.name == "sqlite":
        # SQLite: the write lock, before any read. PostgreSQL: the lock comes next. A
        # transaction that locks nothing (a start) begins at its first write, which may be
        # its last statement, sent alone (write_events).
        _begin_now(connection)
    if process_id is not None:
        uow.lock_and_read(process_id, task_id)
    return uow


@contextmanager
def unit_of_work(session: Session, process_id: int | None = None,
                 task_id: int | None = None) -> Iterator[UnitOfWork]:
    """Run the block as one locked transaction, or inside the one already running;
    ``task_id`` names the task of the process the block changes (locked and read too)."""
    current = _current.get()
    if current is not None and current.session is session:
        if process_id is not None:
            current.lock(process_id)
        yield current
        return

    for attempt in range(LOCK_ATTEMPTS):
        try:
            uow = _begin(session, process_id, task_id)
            break
        except OperationalError as exc:
            session.rollback()
            if not _is_lock_error(exc):
                raise
            if attempt == LOCK_ATTEMPTS - 1:
                raise FlowLockFailed(
                    f"could not lock process {process_id} after {LOCK_ATTEMPTS} attempts "
                    f"({exc.orig}); the process is busy, try again"
                ) from exc
            time.sleep(LOCK_BACKOFF * 2**attempt * (1 + random.random()))

    token = _current.set(uow)
    try:
        yield uow
        uow.write_events()
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        _current.reset(token)
    uow.keep_created_ids()  # after the try: the commit is done, whatever this does
    for callback in uow.after_commit:
        callback()


def configure_engine(engine: Engine) -> Engine:
    """Make an engine fit for the engine's locking (call once, before first use)."""
    @event.listens_for(engine, "before_cursor_execute")
    def _before_statement(conn: sa.Connection, cursor: Any, statement: str, parameters: Any,
                          context: Any, executemany: bool) -> None:
        kind = _statement_kind(statement, context)
        if kind is _Kind.WRITE:
            conn.info[WROTE] = True
        if kind is not _Kind.READ and not conn.info.get(ALONE):
            _begin_now(conn)

    @event.listens_for(engine, "commit")
    @event.listens_for(engine, "rollback")
    def _transaction_ended(conn: sa.Connection) -> None:
        conn.info.pop(WROTE, None)

    if engine.dialect.name == "postgresql":
        @event.listens_for(engine, "connect")
        def _reads_in_autocommit(dbapi_connection: Any, record: Any) -> None:
            # Unless the engine chose an isolation level (SQLAlchemy has set it by now),
            # reads run in autocommit and _before_statement begins before the first write.
            if not dbapi_connection.autocommit and dbapi_connection.isolation_level is None:
                dbapi_connection.autocommit = True

        @event.listens_for(engine, "checkin")
        def _idle_from(dbapi_connection: Any, record: Any) -> None:
            record.info["webflow_idle_since"] = time.monotonic()

        @event.listens_for(engine, "checkout")
        def _ping_if_idle(dbapi_connection: Any, record: Any, proxy: Any) -> None:
            idle_since = record.info.get("webflow_idle_since")
            if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE:
                return
            try:
                # In autocommit: one round trip, no BEGIN and ROLLBACK around it.
                autocommit, dbapi_connection.autocommit = dbapi_connection.autocommit, True
                try:
                    dbapi_connection.execute("SELECT 1")
                finally:
                    dbapi_connection.autocommit = autocommit
            except Exception as exc:
                raise sa.exc.DisconnectionError("a pooled connection was dropped") from exc

    if engine.dialect.name == "sqlite":
        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_connection: Any, record: Any) -> None:
            # The driver begins nothing: reads run in autocommit, and _before_statement
            # begins the transaction before the first write.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=10000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

    return engine


class _Kind(enum.Enum):
    """What a statement is, for the transaction it needs (_statement_kind)."""

    READ = "read"  # runs in autocommit outside a transaction
    LOCKING_READ = "locking read"  # begins one, so that its lock lasts until the commit
    WRITE = "write"  # begins one, and marks it as having written (WROTE)


def _statement_kind(statement: str, context: Any) -> _Kind:
    """A SELECT is a read unless it locks rows or takes a transaction's advisory lock (in
    autocommit the lock would end with the statement); so is a WITH that SQLAlchemy
    compiled as a SELECT (a text one is taken for a write: it may end in one), and so are
    BEGIN, COMMIT, ROLLBACK, RELEASE, PRAGMA, EXPLAIN and SHOW. Anything else writes, a
    SAVEPOINT included (on SQLite it would otherwise begin a deferred transaction)."""
    head = _AUTOCOMMIT_SAFE.match(statement)
    if head is None:
        return _Kind.WRITE
    if head["select"]:
        return _Kind.LOCKING_READ if _LOCKING_READ.search(statement) else _Kind.READ
    if head["with"]:
        # SQLAlchemy compiles text too (``sa.text``): only a WITH built as a SELECT is a
        # read. A text one ran in autocommit before, its write out of reach of the
        # rollback, and so did the last statement of a unit of work (write_events).
        compiled = getattr(context, "compiled", None)
        if (compiled is None or isinstance(compiled.statement, sa.TextClause)
                or context.isinsert or context.isupdate or context.isdelete):
            return _Kind.WRITE
    return _Kind.READ


def _begin_now(conn: sa.Connection) -> None:
    """Begin the connection's transaction unless one is open (or the driver begins its
    own): ``BEGIN IMMEDIATE`` on SQLite, which takes the write lock up front (a deferred
    BEGIN would have to upgrade a read lock, which fails under contention)."""
    dbapi_connection: Any = conn.connection.dbapi_connection
    if conn.dialect.name == "sqlite":
        if not dbapi_connection.in_transaction:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
    elif dbapi_connection.autocommit and dbapi_connection.info.transaction_status == 0:  # IDLE
        conn.exec_driver_sql("BEGIN")


def engine_options(url: str) -> dict[str, Any]:
    """Engine keyword arguments for a database URL."""
    if url.startswith("postgresql"):
        # A bounded wait for a process lock; past it the unit of work retries, then
        # raises FlowLockFailed instead of hanging a request.
        # Connections are checked before use when they were idle (configure_engine),
        # not on every checkout: SQLAlchemy's pool_pre_ping costs a round trip each time.
        return {"connect_args": {"options": "-c lock_timeout=10000"}}
    return {}


def normalize_database_url(url: str) -> str:
    """Accept Heroku's postgres:// URLs and pick the psycopg 3 driver."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def create_engine(url: str, **kwargs: Any) -> Engine:
    """An engine configured for webflow."""
    url = normalize_database_url(url)
    options = engine_options(url) | kwargs
    return configure_engine(sa.create_engine(url, **options))
