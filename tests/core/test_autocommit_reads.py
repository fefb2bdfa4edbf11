"""Reads outside a unit of work run in autocommit; the first write (or row lock) begins.

Each read sees the latest commit and holds no transaction open between statements: on
SQLite a session that has only read blocks no WAL checkpoint, on PostgreSQL its backend is
idle, not "idle in transaction", and neither sent a BEGIN or will send a ROLLBACK. The
first write of a session transaction begins it (SQLite: ``BEGIN IMMEDIATE``, the write
lock), and everything up to the commit is one transaction: a failed write takes back the
ones before it. A SELECT that locks rows begins it too, so its locks last until the
commit."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session
from test_liveness_properties import act_on  # tests/core, on the path under pytest

from webflow import STATUS, Flow, TransitionNotAllowed, flow, this
from webflow.core import create_engine, use_session
from webflow.core.sqlcount import SQLCounter
from webflow.models import Base, Process, SavedFilter, Task, TaskEvent, User


def _engine_with_ann(url: str, **options: Any) -> sa.Engine:
    """An engine on a fresh schema holding one user, ann."""
    engine = create_engine(url, **options)
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        session.add(User(username="ann"))
        session.commit()
    return engine


def _ann_may(session: Session, *permissions: str) -> int:
    """Give ann these permissions (not committed) and return her id."""
    session.execute(sa.update(User).values(permissions=list(permissions)))
    ann_id = session.scalar(sa.select(User.id).where(User.username == "ann"))
    assert ann_id is not None
    return ann_id


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    engine = _engine_with_ann(db_url)
    yield engine
    engine.dispose()


def _holds_no_transaction(engine: sa.Engine, reader: Session) -> None:
    if engine.dialect.name == "sqlite":
        # nothing held open: a checkpoint can reset the whole log (busy = 0)
        with engine.connect() as other:
            busy, _, _ = other.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()
        assert busy == 0
    else:
        assert _backend_state(engine, reader) == "idle"


def _backend_state(engine: sa.Engine, session: Session) -> str | None:
    """PostgreSQL's ``pg_stat_activity.state`` of the session's connection, seen from another."""
    pid = session.scalar(sa.text("SELECT pg_backend_pid()"))
    with engine.connect() as other:
        return other.scalar(sa.text("SELECT state FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid})


def test_reads_see_each_commit_and_hold_no_transaction(engine: sa.Engine) -> None:
    counter = SQLCounter(engine)
    try:
        with Session(engine) as reader, Session(engine) as writer:
            counter.start()
            ann = reader.scalar(sa.select(User).where(User.username == "ann"))
            sent = counter.stop().statements
            assert ann is not None
            writer.add(User(username="bob"))
            writer.commit()
            counter.start()
            # the same session transaction, a later statement: it sees bob
            assert reader.scalars(sa.select(User.username).order_by(User.username)).all() == ["ann", "bob"]
            _holds_no_transaction(engine, reader)
            reader.rollback()
            sent += counter.stop().statements
        assert not any(s.startswith(("BEGIN", "COMMIT", "ROLLBACK")) for s in sent), sent
    finally:
        counter.close()


def test_the_first_write_begins_and_the_rest_is_one_transaction(engine: sa.Engine) -> None:
    counter = SQLCounter(engine)
    try:
        with Session(engine) as session:
            ann = session.scalar(sa.select(User).where(User.username == "ann"))
            assert ann is not None
            counter.start()
            session.add(SavedFilter(user_id=ann.id, list_name="inbox", name="mine", query="q=x"))
            session.flush()
            ann.timezone = "Europe/Paris"
            session.flush()
            with pytest.raises(sa.exc.IntegrityError):  # the same name: refused
                session.execute(sa.insert(SavedFilter).values(user_id=ann.id, list_name="inbox", name="mine",
                                                              query="again"))
            session.rollback()
            counter.stop()
        statements = counter.statements
    finally:
        counter.close()
    assert statements[0] == ("BEGIN IMMEDIATE" if engine.dialect.name == "sqlite" else "BEGIN"), statements
    assert sum(s.startswith("BEGIN") for s in statements) == 1
    with Session(engine) as session:  # the failed statement took the earlier writes back
        assert session.scalars(sa.select(SavedFilter)).all() == []
        assert session.scalar(sa.select(User.timezone).where(User.username == "ann")) is None


def test_a_select_with_ctes_reads_in_autocommit_too(engine: sa.Engine) -> None:
    users = sa.select(User.id).cte("users")
    with Session(engine) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(users)) == 1
        _holds_no_transaction(engine, session)


def test_a_locking_read_holds_its_lock_until_the_commit(pg_url: str) -> None:
    """PostgreSQL only: SQLite has no row locks (BEGIN IMMEDIATE locks the database)."""
    engine = _engine_with_ann(pg_url)
    try:
        locking = sa.select(User.id).where(User.username == "ann").with_for_update(nowait=True)
        with Session(engine) as holder, Session(engine) as other:
            assert holder.scalar(locking) is not None
            with pytest.raises(sa.exc.OperationalError, match="could not obtain lock"):
                other.scalar(locking)  # still held after the statement: it began a transaction
            other.rollback()
            holder.commit()
            assert other.scalar(locking) is not None  # released by the commit
            other.rollback()
    finally:
        engine.dispose()


@pytest.mark.parametrize(("statement", "kind"), [
    ("SELECT task.id FROM task WHERE task.id = ?", "read"),
    ("  select 1", "read"),
    ("SELECT process.id FROM process WHERE process.id = %(id)s FOR UPDATE", "locking read"),
    ("SELECT task.id FROM task ORDER BY task.due LIMIT 5 FOR UPDATE OF task SKIP LOCKED", "locking read"),
    ("select id from process\nfor no key update", "locking read"),
    ("SELECT id FROM process FOR SHARE", "locking read"),
    ("SELECT pg_advisory_xact_lock(42)", "locking read"),
    ("select pg_try_advisory_xact_lock(42)", "locking read"),
    ("SELECT pg_advisory_lock(42)", "read"),  # a session's lock outlives transactions anyway
    ("INSERT INTO task (status) VALUES (?)", "write"),
    ("update task set status = 'DONE'", "write"),
    ("DELETE FROM task_draft WHERE task_id IN (?)", "write"),
    ("SAVEPOINT sa_savepoint_1", "write"),
    ("RELEASE SAVEPOINT sa_savepoint_1", "read"),
    ("PRAGMA wal_checkpoint(TRUNCATE)", "read"),
    ("EXPLAIN QUERY PLAN SELECT 1", "read"),
    ("SHOW transaction_isolation", "read"),
    ("with gone as (delete from task returning id) select count(*) from gone", "write"),  # text: a write
    ("CREATE TABLE t (id INTEGER)", "write"),
    ("SELECTED_ROWS", "write"),  # not the word SELECT: taken for a write
])
def test_what_begins_a_transaction(statement: str, kind: str) -> None:
    from webflow.core.transaction import _statement_kind

    assert _statement_kind(statement, None).value == kind


class SnapshotFlow(Flow):
    """Snapshot"""

    start = flow.StartFunction().Next(this.work)
    work = flow.View().Permission(auto_create=True).Next(this.end)
    end = flow.End()


def test_an_engine_with_its_own_isolation_level_keeps_the_drivers_transactions(pg_url: str) -> None:
    """REPEATABLE READ: the reads begin a snapshot (psycopg's own BEGIN), which a transition
    ends before it locks, so it decides on rows committed by others in between."""
    engine = _engine_with_ann(pg_url, isolation_level="REPEATABLE READ")
    try:
        with Session(engine) as session, use_session(session):
            ann_id = _ann_may(session, "snapshot.can_work")
            process = SnapshotFlow.start.run()  # type: ignore[attr-defined]
            session.commit()
            task = session.scalar(sa.select(Task).where(Task.process_id == process.id,
                                                        Task.node_name == "work"))
            assert task is not None and task.status == STATUS.NEW
            assert _backend_state(engine, session) == "idle in transaction"  # the snapshot the reads began
            with Session(engine) as other, use_session(other):
                other_task = other.get(Task, task.id)
                assert other_task is not None
                other_task.activate().assign(other.get(User, ann_id))
            with pytest.raises(TransitionNotAllowed):
                task.activate().assign(session.get(User, ann_id))  # assigned meanwhile: refused
            session.expire_all()
            events = session.scalars(sa.select(TaskEvent.transition).where(TaskEvent.task_id == task.id)).all()
            assert events == ["assign"]
    finally:
        engine.dispose()


def test_a_copy_a_session_kept_across_its_commit_is_read_again_under_the_lock(db_url: str) -> None:
    """A session that does not expire its rows on commit still holds the task it read
    before; a transition decides on the row as it is under the lock, not on that copy."""
    engine = _engine_with_ann(db_url)
    try:
        with Session(engine, expire_on_commit=False) as session, use_session(session):
            ann_id = _ann_may(session, "snapshot.can_work")
            process = SnapshotFlow.start.run()  # type: ignore[attr-defined]
            task = session.scalar(sa.select(Task).where(Task.process_id == process.id,
                                                        Task.node_name == "work"))
            assert task is not None
            session.commit()  # the session's transaction ends; its copy of the task stays loaded
            with Session(engine) as other, use_session(other):
                other_task = other.get(Task, task.id)
                assert other_task is not None
                other_task.activate().assign(other.get(User, ann_id))
            activation, ann = task.activate(), session.get(User, ann_id)
            session.commit()  # what that read (the process, say) stays loaded too
            assert task.status == STATUS.NEW and not session.in_transaction()  # the kept copy
            with pytest.raises(TransitionNotAllowed):
                activation.assign(ann)  # assigned meanwhile: refused
            session.expire_all()
            events = session.scalars(sa.select(TaskEvent.transition).where(TaskEvent.task_id == task.id)).all()
            assert events == ["assign"]
    finally:
        engine.dispose()


class KeptCopyFlow(Flow):
    """Kept copy"""

    start = flow.StartFunction().Next(this.split)
    split = flow.Split().Next(this.left).Next(this.right)
    left = flow.View().Permission(auto_create=True).Next(this.join)
    right = flow.View().Permission(auto_create=True).Next(this.join)
    join = flow.Join().Next(this.end)
    end = flow.End()


def test_a_join_decides_on_the_siblings_as_they_are_not_on_a_kept_copy(db_url: str) -> None:
    """The session kept both branches across its commit; the right one is completed
    elsewhere. Completing the left one must see that (under the lock), so the join fires
    and the process ends, instead of waiting for a sibling that is already done."""
    engine = _engine_with_ann(db_url)
    try:
        with Session(engine, expire_on_commit=False) as session, use_session(session):
            ann_id = _ann_may(session, "kept_copy.can_left", "kept_copy.can_right")
            process = KeptCopyFlow.start.run()  # type: ignore[attr-defined]
            found = session.scalars(sa.select(Task).where(Task.process_id == process.id))
            tasks = {task.node_name: task for task in found}
            ann = session.get(User, ann_id)
            session.commit()
            with Session(engine) as other, use_session(other):
                right = other.get(Task, tasks["right"].id)
                assert right is not None
                act_on(right, "complete", other.get(User, ann_id))  # type: ignore[arg-type]
            assert tasks["right"].status == STATUS.NEW  # the copy the session kept
            act_on(tasks["left"], "complete", ann)  # type: ignore[arg-type]
            session.expire_all()
            assert session.get(Process, process.id).status == STATUS.DONE  # type: ignore[union-attr]
    finally:
        engine.dispose()
