"""One transaction per public state change, holding the per-process lock.

PostgreSQL: ``SELECT ... FOR UPDATE`` on the process row, blocking (with the server's
``lock_timeout``), taken before any read that decides a transition. SQLite: the whole
database's write lock, taken up front with ``BEGIN IMMEDIATE`` (a deferred BEGIN that
reads and then writes fails under contention). Either lock is released only by the
commit or rollback that ends the unit of work. Calls nested inside a unit of work join
it, so a cascade through many nodes is one transaction.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from .exceptions import FlowLockFailed

LOCK_ATTEMPTS = 5
LOCK_BACKOFF = 0.05  # seconds, doubled per attempt, with jitter

_begin_immediate: ContextVar[bool] = ContextVar("webflow_begin_immediate", default=False)


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

    def write_links(self) -> None:
        """Store the pending task links (before anything reads task_link)."""
        if not self.links:
            return
        from .models import task_link

        self.session.flush()
        rows = list({(previous.id, task.id): None for previous, task in self.links})
        self.links.clear()
        # A link that is already stored states the same fact again: keep the one row.
        from sqlalchemy.dialects import postgresql, sqlite

        dialect = postgresql if self.session.get_bind().dialect.name == "postgresql" else sqlite
        self.session.execute(dialect.insert(task_link).on_conflict_do_nothing(),
                             [{"previous_id": p, "task_id": t} for p, t in rows])

    def write_events(self) -> None:
        self.write_links()
        if not self.events:
            return
        from .models import TaskEvent

        self.session.flush()
        rows = [dict(values, process_id=process.id, task_id=task.id if task is not None else None)
                for process, task, values in self.events]
        self.events.clear()
        self.session.execute(sa.insert(TaskEvent), rows)

    def lock(self, process_id: int) -> None:
        """Lock the process row (PostgreSQL); SQLite already holds its write lock."""
        if process_id in self.locked:
            return
        if self.session.get_bind().dialect.name != "sqlite":
            from .models import Process

            # The process and the top process of its tree (subprocesses), in id order:
            # the top one is older, so every transaction in a tree takes it first.
            root = (sa.select(Process.root_process_id).where(Process.id == process_id)
                    .scalar_subquery())
            locked = self.session.scalars(
                sa.select(Process.id).where(sa.or_(Process.id == process_id, Process.id == root))
                .order_by(Process.id).with_for_update()
            )
            self.locked.update(locked)
        self.locked.add(process_id)


_current: ContextVar[UnitOfWork | None] = ContextVar("webflow_uow", default=None)


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


def _begin(session: Session, process_id: int | None) -> UnitOfWork:
    """End whatever the session had open, then begin with the lock held."""
    if session.in_transaction():
        # The caller's own pending changes are kept (committed), never dropped; a read
        # snapshot is ended so the lock below sees the latest committed rows.
        session.commit()
    uow = UnitOfWork(session)
    flag = _begin_immediate.set(True)
    try:
        session.connection()  # starts the transaction: BEGIN IMMEDIATE on SQLite
    finally:
        _begin_immediate.reset(flag)
    if process_id is not None:
        uow.lock(process_id)
    return uow


@contextmanager
def unit_of_work(session: Session, process_id: int | None = None) -> Iterator[UnitOfWork]:
    """Run the block as one locked transaction, or inside the one already running."""
    current = _current.get()
    if current is not None and current.session is session:
        if process_id is not None:
            current.lock(process_id)
        yield current
        return

    for attempt in range(LOCK_ATTEMPTS):
        try:
            uow = _begin(session, process_id)
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
    for callback in uow.after_commit:
        callback()


def configure_engine(engine: Engine) -> Engine:
    """Make an engine fit for the engine's locking (call once, before first use)."""
    if engine.dialect.name == "sqlite":
        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_connection: Any, record: Any) -> None:
            # Let SQLAlchemy, not the driver, say when a transaction begins.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=10000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: sa.Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE" if _begin_immediate.get() else "BEGIN")

    return engine


def engine_options(url: str) -> dict[str, Any]:
    """Engine keyword arguments for a database URL."""
    if url.startswith("postgresql"):
        # A bounded wait for a process lock; past it the unit of work retries, then
        # raises FlowLockFailed instead of hanging a request.
        return {
            "connect_args": {"options": "-c lock_timeout=10000"},
            "pool_pre_ping": True,
        }
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
