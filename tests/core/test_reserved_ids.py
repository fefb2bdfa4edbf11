"""New processes and tasks get their ids before their INSERT (``UnitOfWork.assign_ids``:
from the sequences on PostgreSQL, after the largest id on SQLite), so that a cascade of
automatic nodes inserts its rows together. What callables and receivers were promised
still holds: they see ids and saved rows, rows of their own that point at a new task are
inserted after it, and the rows are those a flush per node wrote, in the order of
creation."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from late_writes import AutomaticFlow, rebuilt_session  # tests/core, on the path under pytest
from sqlalchemy.orm import Session

from webflow import STATUS, Context, Flow, flow, signals, this
from webflow.core import transaction
from webflow.core.context import get_session
from webflow.core.models import Notification
from webflow.core.nodes.view import ViewActivation
from webflow.core.sqlcount import SQLCounter
from webflow.models import Process, Task, TaskEvent, User

SEEN: list[dict[str, Any]] = []


def record(activation: Any) -> None:
    """A handler that looks at its rows and writes rows of its own that point at them."""
    session = get_session()
    task_id, process_id = activation.task.id, activation.process.id
    SEEN.append({
        "ids": (task_id, process_id),
        # an ORM query (flushed first by SQLAlchemy) and a text statement (by the engine)
        "orm": session.scalar(sa.select(Task.node_name).where(Task.id == task_id)),
        "text": session.execute(sa.text("SELECT count(*) FROM process WHERE id = :id"),
                                {"id": process_id}).scalar(),
    })
    user = session.scalar(sa.select(User).where(User.username == "clerk"))
    # A row with a plain foreign key to the new task: a flush would order its table
    # before the task's (no relationship between them), so the task must be in first.
    session.add(Notification(kind="note", user_id=user.id, task_id=task_id, email="c@example.com",
                             subject=f"{activation.task.node_name} ran", body="-"))
    activation.process.data = {**activation.process.data, activation.task.node_name: task_id}


class ReservedFlow(Flow):
    """Automatic work"""

    start = flow.StartFunction().Next(this.split)
    split = flow.Split().Next(this.left).Next(this.right)
    left = flow.Handler(record).Next(this.join)
    right = flow.Handler(record).Next(this.join)
    join = flow.Join().Next(this.check)
    check = flow.If(lambda act: "left" in act.process.data).Then(this.last).Else(this.end)
    last = flow.Handler(record).Next(this.end)
    end = flow.End()


ORDER = ["start", "split", "left", "right", "join", "check", "last", "end"]


@pytest.fixture
def fresh(rebuilt: Session) -> Session:
    rebuilt.add(User(username="clerk"))
    rebuilt.commit()
    return rebuilt


@pytest.mark.parametrize("propagate", [True, False], ids=["code", "web"])
def test_handlers_see_ids_and_saved_rows_and_their_own_rows_follow(fresh: Session, propagate: bool) -> None:
    SEEN.clear()
    with Context(propagate_exception=propagate):
        process = ReservedFlow.start.run()  # type: ignore[attr-defined]
    fresh.expire_all()
    process = fresh.get(Process, process.id)
    assert process is not None and process.status == STATUS.DONE
    tasks = fresh.scalars(sa.select(Task).where(Task.process_id == process.id).order_by(Task.id)).all()
    assert [t.node_name for t in tasks] == ORDER  # ids follow the order of creation
    assert all(t.status == STATUS.DONE for t in tasks)
    by_node = {t.node_name: t.id for t in tasks}
    assert [seen["ids"] for seen in SEEN] == [(by_node[n], process.id) for n in ("left", "right", "last")]
    assert [seen["orm"] for seen in SEEN] == ["left", "right", "last"]
    assert [seen["text"] for seen in SEEN] == [1, 1, 1]
    notes = fresh.scalars(sa.select(Notification.task_id).order_by(Notification.id)).all()
    assert notes == [by_node["left"], by_node["right"], by_node["last"]]
    assert process.data == {"left": by_node["left"], "right": by_node["right"], "last": by_node["last"]}


def test_signal_receivers_are_told_of_saved_rows(fresh: Session) -> None:
    found: list[tuple[str, int]] = []

    def receiver(sender: Any, process: Any, task: Any, **kwargs: Any) -> None:
        # through the connection: no flush on the receiver's behalf, the row must be there
        count = fresh.connection().execute(sa.text("SELECT count(*) FROM task WHERE id = :id"),
                                           {"id": task.id}).scalar()
        found.append((task.node_name, count))

    signals.task_finished.connect(receiver)
    try:
        with Context(propagate_exception=True):
            ReservedFlow.start.run()  # type: ignore[attr-defined]
    finally:
        signals.task_finished.disconnect(receiver)
    assert [name for name, _ in found] == ["start", "split", "left", "right", "join", "check", "last", "end"]
    assert all(count == 1 for _, count in found), found


def snapshot(session: Session) -> list[Any]:
    session.expire_all()
    return [
        # not the version: it counts the UPDATEs of the row within the transaction too,
        # and a process inserted with its final values has none (it only has to move on
        # between transactions, for the optimistic checks of job results)
        [(p.id, p.status, p.data) for p in session.scalars(sa.select(Process).order_by(Process.id))],
        [(t.id, t.process_id, t.node_name, t.status, t.token)
         for t in session.scalars(sa.select(Task).order_by(Task.id))],
        [(e.task_id, e.transition, e.to_status)
         for e in session.scalars(sa.select(TaskEvent).order_by(TaskEvent.id))],
        session.execute(sa.text("SELECT previous_id, task_id FROM task_link ORDER BY 1, 2")).all(),
        session.execute(sa.text("SELECT id, task_id FROM notification ORDER BY id")).all(),
    ]


def test_reserved_ids_write_the_rows_a_flush_per_node_wrote(db_url: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    def run() -> tuple[list[Any], int]:
        with rebuilt_session(db_url) as session:
            counter = SQLCounter(session.get_bind())  # type: ignore[arg-type]
            session.add(User(username="clerk"))
            session.commit()
            with Context(propagate_exception=True):
                for _ in range(2):
                    ReservedFlow.start.run()  # type: ignore[attr-defined]
                counter.start()
                for _ in range(2):
                    AutomaticFlow.start.run()  # type: ignore[attr-defined]
                counter.stop()
                ReservedFlow.start.run()  # type: ignore[attr-defined]
            rows = snapshot(session)
            counter.close()
        return rows, len(counter.statements)

    reserved, reserved_statements = run()
    monkeypatch.setattr(transaction, "RESERVE_IDS", False)
    flushed, flushed_statements = run()
    assert reserved == flushed
    # the light flow's rows go in together: at least three statements fewer per process
    assert reserved_statements <= flushed_statements - 2 * 3, (reserved_statements, flushed_statements)


BROKEN = {"assignee": True}


def assignee(activation: Any) -> Any:
    """The View's .Assign callable: it asks for ids (ensure_ids), then fails while BROKEN."""
    assert activation.task.id is not None and activation.process.id is not None
    if BROKEN["assignee"]:
        raise RuntimeError("the directory is down")
    return get_session().scalar(sa.select(User).where(User.username == "clerk"))


class StrictReviewActivation(ViewActivation):
    """Asks ``assignee`` in its own step, outside the soft guard a View puts around its
    ``.Assign`` (whose failure leaves the task in the queue): a failure here fails the
    handler that created the task, as a custom node's step would."""

    def run_automatic(self) -> None:
        self.ensure_ids()
        self.assign(assignee(self))


class StrictReview(flow.View):
    activation_class = StrictReviewActivation


class AssignAfterWorkFlow(Flow):
    """A handler, then a person's task assigned by a callable"""

    start = flow.StartFunction().Next(this.prepare)
    prepare = flow.Handler(record).Next(this.review)
    review = StrictReview().Next(this.end)
    end = flow.End()


@pytest.mark.parametrize("propagate", [True, False], ids=["code", "web"])
def test_a_failure_after_ids_were_reserved_leaves_nothing_and_the_retry_takes_new_ones(
        fresh: Session, propagate: bool) -> None:
    """The review's ids are reserved, then its assignee fails. Code policy: the whole call
    rolls back; web policy: the handler is stored in ERROR with nothing it created. Either
    way no row of the review exists, and the next try (a new process, or the handler's
    retry) takes ids of its own: none collides with one handed out before."""
    SEEN.clear()
    BROKEN["assignee"] = True
    try:
        with Context(propagate_exception=propagate):
            if propagate:
                with pytest.raises(RuntimeError, match="directory is down"):
                    AssignAfterWorkFlow.start.run()  # type: ignore[attr-defined]
                fresh.rollback()
                assert fresh.scalar(sa.select(sa.func.count()).select_from(Process)) == 0
                BROKEN["assignee"] = False
                process = AssignAfterWorkFlow.start.run()  # type: ignore[attr-defined]
            else:
                process = AssignAfterWorkFlow.start.run()  # type: ignore[attr-defined]
                fresh.expire_all()
                failed = fresh.scalars(sa.select(Task).where(Task.process_id == process.id)
                                       .order_by(Task.id)).all()
                assert [(t.node_name, t.status) for t in failed] == [
                    ("start", STATUS.DONE), ("prepare", STATUS.ERROR)]
                assert "directory is down" in (failed[1].comments or "")
                assert fresh.scalars(sa.select(Notification)).all() == []  # the handler's own row went too
                BROKEN["assignee"] = False
                failed[1].activate().retry()
    finally:
        BROKEN["assignee"] = True
    fresh.expire_all()
    tasks = fresh.scalars(sa.select(Task).where(Task.process_id == process.id).order_by(Task.id)).all()
    assert [(t.node_name, t.status) for t in tasks] == [
        ("start", STATUS.DONE), ("prepare", STATUS.DONE), ("review", STATUS.ASSIGNED)]
    assert tasks[2].owner.username == "clerk"
    assert fresh.scalar(sa.select(sa.func.count()).select_from(Task)) == 3  # nothing of the failed try
    notes = fresh.scalars(sa.select(Notification.task_id)).all()
    assert notes == [tasks[1].id]
