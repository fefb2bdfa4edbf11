"""A node that fails under the web policy leaves nothing of what it did, in the database or
in the session, however it wrote it; a node that writes nothing while it runs costs no
savepoint. Both databases (``db_url``)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from webflow import STATUS, Context, Flow, flow, this
from webflow.core.models import Comment, Process, Task
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


ACTIONS = st.lists(st.sampled_from(["memory", "row", "flush", "sql", "query"]), max_size=5)


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
    wrote = {name for name in finished if "memory" in plans[name][0]}
    assert {key for key in process.data if key in plans} == wrote, plans
    texts = sorted(session.scalars(sa.select(Comment.text).where(Comment.process_id == process_id)))
    expected = sorted(f"{action} {name}" for name in finished for action in plans[name][0]
                      if action in ("row", "sql"))
    assert texts == expected, plans
    session.commit()
