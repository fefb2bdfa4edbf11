"""Joins fire exactly once when branches finish at the same moment in different processes.

Several OS processes, each with its own engine and session, finish the branches of the
same flow processes behind a Barrier, on PostgreSQL (row lock on the process) and on
SQLite (the database write lock). Every count below is exact: nothing lost, nothing twice.
"""

from __future__ import annotations

from collections import Counter

import pytest
import sqlalchemy as sa
from parallel_flows import (
    WORKER,
    FanOutFlow,
    NestedFanOutFlow,
    ParentFlow,
    QuorumCancelFlow,
    QuorumFanOutFlow,
    ViewFanOutFlow,
    child_finish_or_parent_cancel,
    complete_branches,
    race_for_task,
)
from sqlalchemy.orm import Session

from webflow import STATUS, Flow
from webflow.models import Process, Task, TaskEvent, User

PROCESSES = 8
WORKERS = 4


def start_processes(session: Session, flow_class: type[Flow], count: int) -> list[int]:
    if flow_class in (ViewFanOutFlow, QuorumFanOutFlow, QuorumCancelFlow, ParentFlow):
        session.add(User(username=WORKER))
        session.commit()
    ids = [flow_class.start.run(n=n).id for n in range(count)]  # type: ignore[attr-defined]
    session.commit()
    return ids


def expected_nodes(flow_class: type[Flow]) -> Counter[str]:
    """Exactly one task per node: every node of these flows runs once per process."""
    return Counter(node.name for node in flow_class.nodes())


@pytest.mark.parametrize("flow_class", [FanOutFlow, NestedFanOutFlow, ViewFanOutFlow],
                         ids=lambda f: f.__name__)
def test_every_join_fires_once(db_url, session, children, flow_class):  # type: ignore[no-untyped-def]
    process_ids = start_processes(session, flow_class, PROCESSES)
    branch_types = {"FUNCTION", "HUMAN"}
    branches = sum(1 for n in flow_class.nodes() if n.task_type in branch_types)
    assert branches == 8

    reports = children.run(
        complete_branches,
        lambda n, barrier, results: (db_url, flow_class.path(), process_ids, n, WORKERS, barrier, results),
        WORKERS,
    )
    assert sum(r["completed"] for r in reports) == PROCESSES * branches
    # The work was really shared: every child finished branches of the same processes.
    assert all(r["completed"] > 0 for r in reports)

    session.rollback()  # end the test's own read snapshot (SQLite keeps one per transaction)
    for process_id in process_ids:
        process = session.get(Process, process_id)
        assert process is not None
        tasks = process.tasks
        assert process.status == STATUS.DONE, [t for t in tasks if t.status != STATUS.DONE]
        assert Counter(t.node_name for t in tasks) == expected_nodes(flow_class)
        assert {t.status for t in tasks} == {STATUS.DONE}
        for join in (t for t in tasks if t.flow_task_type == "JOIN"):
            # The join waited for every task of its split and continued exactly once.
            assert len(join.leading) == 1
            assert all(prev.status == STATUS.DONE for prev in join.previous)
        if flow_class is ViewFanOutFlow:
            # Each View merged its own key into process.data: no update was lost.
            assert {f"v{n}" for n in range(1, 9)} <= set(process.data)

    # Each branch task was completed once: one 'done' in the audit trail, no more.
    done_events = Counter(session.scalars(
        sa.select(TaskEvent.task_id).join(Task, Task.id == TaskEvent.task_id)
        .where(Task.process_id.in_(process_ids), Task.flow_task_type.in_(branch_types),
               TaskEvent.transition == "done")
    ))
    assert len(done_events) == PROCESSES * branches
    assert set(done_events.values()) == {1}


def test_branches_canceled_and_completed_at_once_fire_the_join_once(db_url, session, children):  # type: ignore[no-untyped-def]
    """Half the children cancel their branches while the others complete theirs, at the same
    moment: whichever ends last, the join fires exactly once and the process ends."""
    process_ids = start_processes(session, ViewFanOutFlow, PROCESSES)
    reports = children.run(
        complete_branches,
        lambda n, barrier, results: (db_url, ViewFanOutFlow.path(), process_ids, n, WORKERS, barrier,
                                     results, True),
        WORKERS,
    )
    assert sum(r["completed"] for r in reports) == PROCESSES * 8
    session.rollback()
    for process_id in process_ids:
        process = session.get(Process, process_id)
        assert process is not None
        tasks = process.tasks
        statuses = Counter(t.status for t in tasks if t.flow_task_type == "HUMAN")
        assert statuses == {STATUS.DONE: 4, STATUS.CANCELED: 4}, statuses
        joins = [t for t in tasks if t.flow_task_type == "JOIN"]
        assert [j.status for j in joins] == [STATUS.DONE]
        assert len(joins[0].leading) == 1
        assert sorted(p.node_name for p in joins[0].previous) == sorted(
            t.node_name for t in tasks if t.flow_task_type == "HUMAN" and t.status == STATUS.DONE)
        assert process.status == STATUS.DONE and process.stalled is None


def test_two_clients_completing_one_view_task(db_url, session, children):  # type: ignore[no-untyped-def]
    """Both submit the same task at the same moment: one wins, the other is refused."""
    process_ids = start_processes(session, ViewFanOutFlow, 6)
    task_ids = [session.get(Process, pid).get_task(ViewFanOutFlow.v1).id for pid in process_ids]  # type: ignore[union-attr]
    session.rollback()

    reports = children.run(
        race_for_task,
        lambda n, barrier, results: (db_url, task_ids, n, barrier, results),
        2,
    )
    by_worker = {r["worker"]: r["outcome"] for r in reports}
    for n, task_id in enumerate(task_ids):
        outcomes = sorted(by_worker[w][n] for w in (0, 1))
        assert outcomes == ["done", "refused"], f"task {task_id}: {outcomes}"
        winner = f"w{0 if by_worker[0][n] == 'done' else 1}"
        task = session.get(Task, task_id)
        assert task is not None and task.status == STATUS.DONE
        assert task.process.data["winner"] == winner
        assert [t.node_name for t in task.leading] == ["join"]


@pytest.mark.parametrize("flow_class", [QuorumFanOutFlow, QuorumCancelFlow], ids=lambda f: f.__name__)
def test_a_partial_join_over_a_fan_out_fires_once_under_concurrent_answers(  # type: ignore[no-untyped-def]
        db_url, session, children, flow_class):
    """Eight reviewers answer at once from four OS processes: the 3-of-8 join fires once;
    with cancel_rest the five others are canceled (their answers refused), without it they
    are absorbed."""
    process_ids = start_processes(session, flow_class, PROCESSES)
    reports = children.run(
        complete_branches,
        lambda n, barrier, results: (db_url, flow_class.path(), process_ids, n, WORKERS, barrier, results),
        WORKERS,
    )
    completed = sum(r["completed"] for r in reports)
    refused = sum(r["refused"] for r in reports)
    assert completed + refused == PROCESSES * 8
    session.rollback()
    for process_id in process_ids:
        process = session.get(Process, process_id)
        assert process is not None
        tasks = process.tasks
        joins = [t for t in tasks if t.flow_task_type == "JOIN"]
        assert [j.status for j in joins] == [STATUS.DONE] and len(joins[0].leading) == 1
        review = Counter(t.status for t in tasks if t.node_name == "review")
        if flow_class is QuorumCancelFlow:
            assert review == {STATUS.DONE: 3, STATUS.CANCELED: 5}, review
        else:
            assert review == {STATUS.DONE: 8}, review
            assert len(joins[0].previous) == 8  # the late five absorbed into the one join
        assert process.status == STATUS.DONE
    if flow_class is QuorumCancelFlow:
        assert refused == PROCESSES * 5


def test_a_child_finishing_while_its_parent_is_canceled(db_url, session, children):  # type: ignore[no-untyped-def]
    """The child's last task is completed at the moment its parent is canceled: the
    top-process-first lock makes one wait for the other, never a deadlock."""
    parent_ids = start_processes(session, ParentFlow, PROCESSES)
    reports = children.run(
        child_finish_or_parent_cancel,
        lambda n, barrier, results: (db_url, parent_ids, n, barrier, results),
        2,
    )
    by_worker = {r["worker"]: r["outcome"] for r in reports}
    assert by_worker[1] == ["done"] * PROCESSES  # every parent cancel succeeded
    session.rollback()
    for n, parent_id in enumerate(parent_ids):
        parent = session.get(Process, parent_id)
        assert parent is not None and parent.status == STATUS.CANCELED
        (sub,) = [t for t in parent.tasks if t.node_name == "purchase"]
        (child,) = session.scalars(sa.select(Process).where(Process.parent_task_id == sub.id)).all()
        if by_worker[0][n] == "done":  # the child finished first: the parent went on, then was canceled
            assert child.status == STATUS.DONE and sub.status == STATUS.DONE
            assert [t.status for t in parent.tasks if t.node_name == "receive"] == [STATUS.CANCELED]
        else:  # the cancel came first: the child was canceled and its task refused
            assert child.status == STATUS.CANCELED and sub.status == STATUS.CANCELED
