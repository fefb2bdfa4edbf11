"""The UPDATEs the engine sends itself (core.row_updates: on the transaction's last
statement on PostgreSQL, a statement per table and set of columns on SQLite) write exactly
what the ORM's own flush writes, check the process version as the ORM does, and leave
nothing half written when they fail. Both databases."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from late_writes import stored_time_formats  # tests/core, on the path under pytest
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from webflow import STATUS, Context, Flow, flow, signals, this
from webflow.core import Base, row_updates, transaction
from webflow.core.models import task_link
from webflow.core.sqlcount import SQLCounter
from webflow.models import Process, SearchDocument, Task, TaskEvent, User


def stamp(activation: Any) -> None:
    activation.process.data["stamped"] = activation.task.node_name  # a change in place


class FoldFlow(Flow):
    """Two reviews and a stamp"""

    start = flow.StartFunction().Next(this.split)
    split = flow.Split().Next(this.review).Next(this.audit)
    review = flow.View().Permission(auto_create=True).Next(this.join)
    audit = flow.View().Permission(auto_create=True).Next(this.join)
    join = flow.Join().Next(this.check)
    check = flow.If(lambda act: act.process.data.get("ok", False)).Then(this.stamp).Else(this.end)
    stamp = flow.Handler(stamp).Next(this.end)
    end = flow.End()


PERMISSIONS = ["fold_flow.can_review", "fold_flow.can_audit"]


def task_of(session: Session, process: Process, node: str) -> Task:
    session.expire_all()
    return session.scalars(sa.select(Task).where(Task.process_id == process.id, Task.node_name == node)
                           .order_by(Task.id.desc())).first()  # type: ignore[return-value]


def scenario(session: Session) -> None:
    """Every transition of a View, a join reached by a done and by a cancel, a handler that
    changes process.data in place, an undo, a canceled process."""
    alice, bob = User(username="alice", permissions=PERMISSIONS), User(username="bob", permissions=PERMISSIONS)
    session.add_all([alice, bob])
    session.commit()
    with Context(propagate_exception=True):
        first = FoldFlow.start.run()  # type: ignore[attr-defined]
        task_of(session, first, "review").activate().assign(alice)
        task_of(session, first, "review").activate().unassign()
        task_of(session, first, "review").activate().assign(bob)
        task_of(session, first, "review").activate().reassign(alice, "alice knows it")
        review = task_of(session, first, "review").activate()
        review.prepare(data={"ok": True, "note": "fine"}, user=alice)
        review.done()
        task_of(session, first, "audit").activate().assign(bob)
        audit = task_of(session, first, "audit").activate()
        audit.prepare(data={"audited": "yes"}, user=bob)
        audit.done()

        second = FoldFlow.start.run()  # type: ignore[attr-defined]
        task_of(session, second, "review").activate().assign(bob)
        review = task_of(session, second, "review").activate()
        review.prepare(data={"ok": False}, user=bob)
        review.done()
        task_of(session, second, "join").activate().cancel()  # what the review led to, first
        task_of(session, second, "review").activate().undo()
        task_of(session, second, "review").activate().cancel()
        task_of(session, second, "audit").activate().cancel()

        third = FoldFlow.start.run()  # type: ignore[attr-defined]
        task_of(session, third, "audit").activate().assign(alice)
        session.expire_all()
        session.get(Process, third.id).cancel()  # type: ignore[union-attr]


def snapshot(session: Session) -> dict[str, list[tuple[Any, ...]]]:
    """Every row the scenario wrote, without the clock's values (which differ per run)."""
    session.expire_all()
    return {
        "process": [(p.id, p.status, p.data, p.version, p.summary, p.finished is None, p.stalled is None)
                    for p in session.scalars(sa.select(Process).order_by(Process.id))],
        "task": [(t.id, t.process_id, t.node_name, t.status, t.owner_id, t.data, t.comments,
                  t.attempts, t.assigned is None, t.started is None, t.finished is None)
                 for t in session.scalars(sa.select(Task).order_by(Task.id))],
        "event": [(e.process_id, e.task_id, e.transition, e.from_status, e.to_status, e.user_id, e.comments)
                  for e in session.scalars(sa.select(TaskEvent).order_by(TaskEvent.id))],
        "link": sorted(session.execute(sa.select(task_link.c.previous_id, task_link.c.task_id)).all()),
        "document": [(d.process_id, d.body)
                     for d in session.scalars(sa.select(SearchDocument).order_by(SearchDocument.process_id))],
        "time formats": stored_time_formats(session),
    }


def scenario_two_ways(session: Session, switch_off: Callable[[], None]) -> tuple[Any, Any, Any, Any]:
    """The scenario's statements and rows; then, on tables made again, after
    ``switch_off()``, the same two."""
    counter = SQLCounter(session.get_bind())  # type: ignore[arg-type]
    try:
        counter.start()
        scenario(session)
        counter.stop()
        on = counter.statements, snapshot(session)
        engine = session.get_bind()
        session.close()
        Base.metadata.drop_all(engine)
        Base.metadata.create_all(engine)
        switch_off()
        counter.start()
        scenario(session)
        counter.stop()
        return (*on, counter.statements, snapshot(session))
    finally:
        counter.close()


def test_rows_written_with_the_last_statement_equal_the_flushed_ones(rebuilt: Session,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    statements, with_updates, statements_off, without = scenario_two_ways(
        rebuilt, lambda: monkeypatch.setattr(row_updates, "ENABLED", False))
    # PostgreSQL: CTEs of the last statement; SQLite: row_updates.send's own UPDATEs
    # (quoted names), one per table and set of columns, each for all its rows.
    folded = sum(("UPDATE" in s and s.startswith("WITH")) or s.startswith('UPDATE "') for s in statements)
    flushed = sum(s.startswith("UPDATE ") and not s.startswith('UPDATE "') for s in statements)
    flushed_only = sum(s.startswith("UPDATE") for s in statements_off)
    assert without == with_updates
    # the comparison is between the two ways: most UPDATEs rode on the last statement
    assert folded >= 10 and flushed < flushed_only / 2, (folded, flushed, flushed_only)
    statuses = [row[1] for row in with_updates["process"]]
    # the second has every branch canceled: nothing left to do, listed for a manager
    assert statuses == [STATUS.DONE, STATUS.NEW, STATUS.CANCELED] and with_updates["process"][1][6] is False
    assert with_updates["process"][0][2] == {"ok": True, "note": "fine", "audited": "yes", "stamped": "stamp"}


def test_a_process_version_that_moved_on_fails_the_transition_and_writes_nothing(rebuilt: Session) -> None:
    alice = User(username="alice", permissions=PERMISSIONS)
    rebuilt.add(alice)
    rebuilt.commit()
    process = FoldFlow.start.run()  # type: ignore[attr-defined]
    process_id, version = process.id, process.version
    review = task_of(rebuilt, process, "review")
    review_id = review.id
    review.activate().assign(alice)
    activation = task_of(rebuilt, process, "review").activate()
    activation.prepare(data={"ok": True}, user=alice)

    def behind_the_engines_back(sender: Any, process: Any, task: Any, **kwargs: Any) -> None:
        # Another writer moved the version on in this very transaction (the process
        # lock keeps any other transaction out): the engine's UPDATE must not win.
        rebuilt.connection().execute(sa.text("UPDATE process SET version = version + 10 WHERE id = :id"),
                                        {"id": process.id})

    signals.task_finished.connect(behind_the_engines_back)
    try:
        with Context(propagate_exception=True), pytest.raises(StaleDataError):
            activation.done()
    finally:
        signals.task_finished.disconnect(behind_the_engines_back)
    rebuilt.rollback()
    rebuilt.expire_all()
    assert rebuilt.get(Process, process_id).version == version  # neither the +10 nor the done
    assert rebuilt.get(Task, review_id).status == STATUS.ASSIGNED
    trail = rebuilt.scalars(sa.select(TaskEvent.transition).where(TaskEvent.task_id == review_id)).all()
    assert trail == ["assign"]


def test_a_change_the_orm_must_order_is_left_to_the_flush(rebuilt: Session) -> None:
    """A task pointed at a user who is not in the table yet: the user's INSERT comes first."""
    alice = User(username="alice", permissions=PERMISSIONS)
    rebuilt.add(alice)
    rebuilt.commit()
    process = FoldFlow.start.run()  # type: ignore[attr-defined]
    task = task_of(rebuilt, process, "review")
    # Added inside the transition's transaction (a user the engine is handed must be in the
    # session: a User never added is refused), so newcomer is pending: no id to write yet.
    with Context(propagate_exception=True), transaction.unit_of_work(rebuilt, process.id):
        newcomer = User(username="newcomer", permissions=PERMISSIONS)
        rebuilt.add(newcomer)
        task.activate().assign(newcomer)
    rebuilt.expire_all()
    task = task_of(rebuilt, process, "review")
    assert task.status == STATUS.ASSIGNED and task.owner.username == "newcomer"
    document = rebuilt.get(SearchDocument, process.id)
    assert document is not None and "newcomer" in document.body.split()


def test_documents_built_from_memory_equal_the_ones_read_back(rebuilt: Session) -> None:
    """Every transition that held the process's tasks built its search document from
    memory; each stored document is the one ``build_documents`` (what the index command
    writes) reads from the tables."""
    from webflow.core.search import build_documents

    scenario(rebuilt)
    rebuilt.expire_all()
    stored = {d.process_id: d.body for d in rebuilt.scalars(sa.select(SearchDocument))}
    ids = list(rebuilt.scalars(sa.select(Process.id)))
    assert len(stored) == len(ids) == 3
    assert {d["process_id"]: d["body"] for d in build_documents(rebuilt, ids)} == stored


def test_a_value_longer_than_its_column_is_refused_as_the_flush_refuses_it_never_cut(
        rebuilt: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before, the UPDATE's arrays were cast to VARCHAR(255), which PostgreSQL cuts to size
    without a word: a 300-character job id was stored as its first 255. The flush's own
    UPDATE is refused (DataError) there; SQLite, which keeps no length, stores it whole."""
    alice = User(username="alice", permissions=PERMISSIONS)
    rebuilt.add(alice)
    rebuilt.commit()
    postgresql = rebuilt.get_bind().dialect.name == "postgresql"
    long_id = "j" * 300

    def tag(sender: Any, process: Any, task: Any, **kwargs: Any) -> None:
        if task.node_name == "review":
            task.external_task_id = long_id

    outcomes = []
    for enabled in (True, False):
        monkeypatch.setattr(row_updates, "ENABLED", enabled)
        process = FoldFlow.start.run()  # type: ignore[attr-defined]
        task_of(rebuilt, process, "review").activate().assign(alice)
        review = task_of(rebuilt, process, "review").activate()
        review.prepare(data={"ok": True}, user=alice)
        signals.task_finished.connect(tag)
        try:
            with Context(propagate_exception=True):
                review.done()
            outcome: Any = "stored"
        except sa.exc.DataError:
            rebuilt.rollback()
            outcome = "refused"
        finally:
            signals.task_finished.disconnect(tag)
        stored = task_of(rebuilt, process, "review")
        outcomes.append((outcome, stored.status, stored.external_task_id))
    expected = ("refused", STATUS.ASSIGNED, None) if postgresql else ("stored", STATUS.DONE, long_id)
    assert outcomes == [expected, expected]
