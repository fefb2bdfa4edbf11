"""A node that fails under the web policy leaves nothing of what it did, in the database or
in the session, however it wrote it; a node that writes nothing while it runs costs no
savepoint. Both databases (``db_url``)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from late_writes import rebuilt_session
from sqlalchemy.orm import Session

from webflow import STATUS, Context, Flow, flow, this
from webflow.core import guard
from webflow.core.models import Comment, Process, Task, TaskEvent, User, task_link
from webflow.core.sqlcount import SQLCounter

#: What the failing handler does before it raises; each test sets it.
BEFORE_FAILING: list[Callable[[Any], None]] = []


def fine(activation: Any) -> None:
    activation.process.data = {**activation.process.data, activation.task.node_name: "done"}


def failing(activation: Any) -> None:
    for step in BEFORE_FAILING:
        step(activation)
    raise RuntimeError("the handler broke")


class TwoBranchesFlow(Flow):
    """Two handlers in parallel, one of them failing"""

    start = flow.StartFunction().Next(this.split)
    split = flow.Split().Next(this.good).Next(this.bad)
    good = flow.Handler(fine).Next(this.join)
    bad = flow.Handler(failing).Next(this.join)
    join = flow.Join().Next(this.end)
    end = flow.End()


def start(session: Session, **data: Any) -> int:
    with Context(propagate_exception=False):
        process = TwoBranchesFlow.start.run(**data)
    return process.id


def tasks_by_node(session: Session, process_id: int) -> dict[str, Task]:
    session.expire_all()
    return {t.node_name: t for t in session.scalars(sa.select(Task).where(Task.process_id == process_id))}


def assert_bad_failed_alone(session: Session, process_id: int) -> Process:
    tasks = tasks_by_node(session, process_id)
    assert tasks["bad"].status == STATUS.ERROR and "the handler broke" in tasks["bad"].comments
    assert tasks["good"].status == STATUS.DONE
    assert "end" not in tasks
    process = session.get(Process, process_id)
    assert process is not None and process.data.get("good") == "done"
    return process


def test_changes_in_memory_are_undone(session: Session) -> None:
    BEFORE_FAILING[:] = [lambda a: a.process.data.update(bad="half-written"),
                         lambda a: setattr(a.task, "data", {"scratch": 1})]
    process_id = start(session, order=7)
    process = assert_bad_failed_alone(session, process_id)
    assert "bad" not in process.data and process.data["order"] == 7
    assert tasks_by_node(session, process_id)["bad"].data in (None, {})


def test_rows_added_through_the_session_are_not_stored_nor_held(session: Session) -> None:
    added: list[Comment] = []

    def add_comment(activation: Any) -> None:
        comment = Comment(process_id=activation.process.id, task_id=activation.task.id, text="from a handler")
        activation.session.add(comment)
        added.append(comment)

    BEFORE_FAILING[:] = [add_comment]
    process_id = start(session)
    assert_bad_failed_alone(session, process_id)
    assert session.scalar(sa.select(sa.func.count()).select_from(Comment)) == 0
    assert added and added[0] not in session


def test_what_a_flush_inside_the_node_wrote_is_rolled_back(session: Session) -> None:
    def add_and_flush(activation: Any) -> None:
        activation.session.add(Comment(process_id=activation.process.id, text="flushed"))
        activation.process.data = {**activation.process.data, "bad": "flushed"}
        activation.session.flush()  # reaches the database inside the node's savepoint

    BEFORE_FAILING[:] = [add_and_flush]
    process_id = start(session)
    process = assert_bad_failed_alone(session, process_id)
    assert "bad" not in process.data
    assert session.scalar(sa.select(sa.func.count()).select_from(Comment)) == 0


def test_sql_the_node_ran_itself_is_rolled_back(session: Session) -> None:
    def write_sql(activation: Any) -> None:
        activation.session.execute(sa.update(Process).where(Process.id == activation.process.id)
                                   .values(summary="written in SQL by a failing handler"))

    BEFORE_FAILING[:] = [write_sql]
    process_id = start(session)
    process = assert_bad_failed_alone(session, process_id)
    assert process.summary != "written in SQL by a failing handler"


def test_a_failed_node_can_be_retried_and_the_process_finishes(session: Session) -> None:
    BEFORE_FAILING[:] = [lambda a: a.process.data.update(bad="half-written")]
    process_id = start(session)
    assert_bad_failed_alone(session, process_id)
    BEFORE_FAILING[:] = []
    bad = tasks_by_node(session, process_id)["bad"]
    TwoBranchesFlow.bad.handler = fine  # the fix is deployed
    try:
        TwoBranchesFlow.bad._handler = fine
        with Context(propagate_exception=False):
            bad.activate().retry()
    finally:
        TwoBranchesFlow.bad.handler = TwoBranchesFlow.bad._handler = failing
    tasks = tasks_by_node(session, process_id)
    assert tasks["bad"].status == STATUS.DONE and tasks["end"].status == STATUS.DONE
    process = session.get(Process, process_id)
    assert process is not None and process.status == STATUS.DONE
    assert process.data["bad"] == "done" and process.data["good"] == "done"


def test_a_node_that_writes_nothing_while_it_runs_costs_no_savepoint(session: Session) -> None:
    counter = SQLCounter(session.get_bind())  # type: ignore[arg-type]
    BEFORE_FAILING[:] = []
    start(session)  # warm
    counter.start()
    start(session)
    counter.stop()
    counter.close()
    statements = counter.statements
    # good and split write nothing while they run: no savepoint for them. bad failed: its
    # block wrote nothing either, so nothing is rolled back in the database.
    savepoints = [s for s in statements if s.startswith("SAVEPOINT")]
    assert len(savepoints) <= 1, statements  # the join's arrival writes the links inside good
    assert not any(s.startswith("ROLLBACK TO") for s in statements)


# -- any mix of ways to write, any handler failing --------------------------------------------

#: Per handler node: (the actions it takes, whether it raises after them); set per example.
PLANS: dict[str, tuple[list[str], bool]] = {}


def planned(activation: Any) -> None:
    name = activation.task.node_name
    actions, fails = PLANS[name]
    session = activation.session
    for action in actions:
        if action == "memory":
            activation.process.data = {**activation.process.data, name: True}
        elif action == "in place":
            activation.process.data[name] = True
            activation.task.data[name] = "noted"
        elif action == "row":
            session.add(Comment(process_id=activation.process.id, text=f"row {name}"))
        elif action == "flush":
            session.flush()
        elif action == "sql":
            session.execute(sa.insert(Comment.__table__).values(
                process_id=activation.process.id, text=f"sql {name}", mentions=[]))
        elif action == "query":  # autoflushes what the handler changed so far
            session.scalar(sa.select(sa.func.count()).select_from(Task)
                           .where(Task.process_id == activation.process.id))
    if fails:
        raise RuntimeError(f"{name} failed as planned")


class ThreeHandlersFlow(Flow):
    """Three handlers in parallel"""

    start = flow.StartFunction().Next(this.split)
    split = flow.Split().Next(this.h1).Next(this.h2).Next(this.h3)
    h1 = flow.Handler(planned).Next(this.join)
    h2 = flow.Handler(planned).Next(this.join)
    h3 = flow.Handler(planned).Next(this.join)
    join = flow.Join().Next(this.end)
    end = flow.End()


ACTIONS = st.lists(st.sampled_from(["memory", "in place", "row", "flush", "sql", "query"]), max_size=5)


@settings(max_examples=int(os.environ.get("WEBFLOW_HYPOTHESIS_EXAMPLES", "30")), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(plans=st.fixed_dictionaries({name: st.tuples(ACTIONS, st.booleans()) for name in ("h1", "h2", "h3")}))
def test_what_stays_is_exactly_what_the_handlers_that_finished_wrote(
        session: Session, plans: dict[str, tuple[list[str], bool]]) -> None:
    PLANS.clear()
    PLANS.update(plans)
    with Context(propagate_exception=False):
        process_id = ThreeHandlersFlow.start.run().id
    session.expire_all()
    tasks = {t.node_name: t for t in session.scalars(sa.select(Task).where(Task.process_id == process_id))}
    finished = [name for name, (_, fails) in plans.items() if not fails]
    for name, (_, fails) in plans.items():
        assert tasks[name].status == (STATUS.ERROR if fails else STATUS.DONE), (name, plans)
    process = session.get(Process, process_id)
    assert process is not None
    assert process.status == (STATUS.DONE if len(finished) == 3 else STATUS.NEW), plans
    wrote = {name for name in finished if {"memory", "in place"} & set(plans[name][0])}
    assert {key for key in process.data if key in plans} == wrote, plans
    texts = sorted(session.scalars(sa.select(Comment.text).where(Comment.process_id == process_id)))
    expected = sorted(f"{action} {name}" for name in finished for action in plans[name][0]
                      if action in ("row", "sql"))
    assert texts == expected, plans
    session.commit()


# -- rows left unsaved when a guard begins ------------------------------------------------------

class ViewThenHandlersFlow(ThreeHandlersFlow):
    """A person's task, then three handlers in parallel"""

    start = flow.StartFunction().Next(this.review)
    review = flow.View().Next(this.split)


def every_row(session: Session) -> list[Any]:
    session.expire_all()
    tables = [Process.__table__, Task.__table__, TaskEvent.__table__, task_link, Comment.__table__]
    # Times; tracebacks' line numbers; the version, which counts the row's writes.
    volatile = {"created", "assigned", "started", "finished", "comments", "version"}
    return [[tuple(value for key, value in row._mapping.items() if key not in volatile)
             for row in session.execute(sa.select(table).order_by(*table.primary_key.columns))]
            for table in tables]


def run_plans(url: str, after_a_view: bool) -> list[Any]:
    """The handlers run in the transaction that starts the process (everything before them
    is unsaved: the process, the split, their own tasks) or in the one that completes a
    person's task (the process is a saved row with unsaved changes)."""
    with rebuilt_session(url) as session, Context(propagate_exception=False):
        root = User(username="root", is_superuser=True)
        session.add(root)
        session.commit()
        if after_a_view:
            process = ViewThenHandlersFlow.start.run()
            review = process.get_task(ViewThenHandlersFlow.review).activate()
            review.assign(root)
            review.prepare(data={"seen": True}, user=root)
            review.done()
        else:
            ThreeHandlersFlow.start.run()
        return every_row(session)


@pytest.mark.parametrize("after_a_view", [False, True], ids=["new process", "saved process"])
@settings(max_examples=int(os.environ.get("WEBFLOW_HYPOTHESIS_EXAMPLES", "30")), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(plans=st.fixed_dictionaries({name: st.tuples(ACTIONS, st.booleans()) for name in ("h1", "h2", "h3")}))
def test_rows_left_unsaved_come_out_as_a_flush_before_the_guard_left_them(
        db_url: str, monkeypatch: pytest.MonkeyPatch, after_a_view: bool,
        plans: dict[str, tuple[list[str], bool]]) -> None:
    """Whatever the handlers do and whichever of them fail, leaving the rows before a guard
    unsaved stores exactly what flushing them at its start stored."""
    PLANS.clear()
    PLANS.update(plans)
    unsaved = run_plans(db_url, after_a_view)
    with monkeypatch.context() as patch:
        patch.setattr(guard, "LEAVE_UNSAVED", False)
        flushed = run_plans(db_url, after_a_view)
    assert unsaved == flushed, plans


def test_a_failed_node_leaves_the_rows_before_it_unsaved_and_whole(session: Session) -> None:
    """The failing handler ran after a flush inside it wrote the rows left unsaved at its
    start: the rollback takes them out of the table, and the session holds them again,
    pending, with what they held at the start; the commit stores them."""
    PLANS.clear()
    PLANS.update({"h1": (["in place"], False), "h2": (["in place", "query"], True), "h3": ([], False)})
    counter = SQLCounter(session.get_bind())  # type: ignore[arg-type]
    counter.start()
    with Context(propagate_exception=False):
        process = ThreeHandlersFlow.start.run()
    counter.stop()
    counter.close()
    assert any(s.startswith("ROLLBACK TO") for s in counter.statements)  # the query flushed inside h2
    tasks = tasks_by_node(session, process.id)
    assert tasks["h2"].status == STATUS.ERROR and "h2 failed as planned" in tasks["h2"].comments
    assert tasks["h1"].status == tasks["h3"].status == STATUS.DONE
    assert tasks["h1"].data == {"h1": "noted"} and tasks["h2"].data in ({}, None)
    stored = session.get(Process, process.id)
    assert stored is not None and stored.data == {"h1": True}
    assert {t.node_name for t in stored.tasks} == {"start", "split", "h1", "h2", "h3", "join"}


def test_a_handler_that_changes_data_in_place_after_a_failure_is_saved(session: Session) -> None:
    """The process put back after a failure still notices a change of its data in place."""
    PLANS.clear()
    PLANS.update({"h1": (["query"], True), "h2": (["in place"], False), "h3": (["in place"], False)})
    with Context(propagate_exception=False):
        process_id = ThreeHandlersFlow.start.run().id
    stored = session.get(Process, process_id)
    assert stored is not None and stored.data == {"h2": True, "h3": True}


class DuplicateFlow(Flow):
    """A person's task, then a handler that adds a row of another model: a group whose name
    may already be taken (the database refuses it when the row is written)."""

    start = flow.StartFunction().Next(this.work)
    work = flow.View().Next(this.record)
    record = flow.Handler(lambda act: act.session.add(sa_group(act.process.data["group"]))).Next(this.end)
    end = flow.End()


def sa_group(name: str) -> Any:
    from webflow.core.models import Group

    return Group(name=name)


def test_a_row_the_database_refuses_fails_its_node_not_the_persons_completion(session: Session) -> None:
    """Under the web policy a handler's own row that the database refuses (here a duplicate
    unique name) was written only at the commit, after every guard: the whole completion
    failed and the person's work was lost (a 500 on the web). The node that added it is
    now in ERROR with the reason and the person's task is DONE."""
    from webflow.core.models import Group

    session.add(Group(name="taken"))
    worker = User(username="worker", is_superuser=True)
    session.add(worker)
    session.commit()
    process = DuplicateFlow.start.run(group="taken")  # type: ignore[attr-defined]
    work = process.get_task(DuplicateFlow.work)
    with Context(propagate_exception=False):
        work.activate().assign(worker)
        activation = work.activate()
        activation.prepare(data={"note": "kept"}, user=worker)
        activation.done()
    session.expire_all()
    tasks = {t.node_name: t for t in session.scalars(sa.select(Task).where(Task.process_id == process.id))}
    assert tasks["work"].status == STATUS.DONE
    assert tasks["record"].status == STATUS.ERROR and "taken" in tasks["record"].comments
    assert "end" not in tasks
    assert session.get(Process, process.id).data["note"] == "kept"  # type: ignore[union-attr]
    assert session.scalar(sa.select(sa.func.count()).select_from(Group)) == 1
    session.execute(sa.update(Process).where(Process.id == process.id).values(data={"group": "free"}))
    session.commit()
    with Context(propagate_exception=False):
        tasks["record"].activate().retry()
    session.expire_all()
    assert session.get(Process, process.id).status == STATUS.DONE  # type: ignore[union-attr]
    assert session.scalars(sa.select(Group.name).order_by(Group.name)).all() == ["free", "taken"]
