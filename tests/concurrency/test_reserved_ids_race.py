"""Processes started at the same moment from several OS processes each get their own ids.

New processes and tasks take their ids before their INSERT (PostgreSQL: from the
sequences; SQLite: after the tables' largest, read under the write lock). Four children
start automatic processes behind a Barrier, under both error policies; every process ends
DONE with its own eight tasks, in the order they were created, and nothing is lost. Under
the web policy, a branch that fails in every other process after a flush inside its node
leaves that process waiting with the failure, and nothing of the branch is stored."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from parallel_flows import AutomaticFlow, FailingRightFlow, start_automatic

from webflow import STATUS
from webflow.models import Process, Task

WORKERS = 4
EACH = 10
ORDER = ["start", "split", "left", "right", "join", "check", "last", "end"]


def started_at_once(db_url, session, children, flow_class, propagate):  # type: ignore[no-untyped-def]
    """WORKERS children start EACH processes of the flow behind a barrier: the processes,
    read back, after checking that each child's ids are its own and every one is stored."""
    reports = children.run(
        start_automatic,
        lambda n, barrier, results: (db_url, flow_class.path(), EACH, propagate, n, barrier, results),
        WORKERS,
    )
    started = [process_id for report in reports for process_id in report["started"]]
    assert len(started) == len(set(started)) == WORKERS * EACH

    session.rollback()
    processes = session.scalars(sa.select(Process).order_by(Process.id)).all()
    assert [p.id for p in processes] == sorted(started)
    return processes


@pytest.mark.parametrize("propagate", [True, False], ids=["code", "web"])
def test_processes_started_at_once_each_get_their_own_rows(db_url, session, children,  # type: ignore[no-untyped-def]
                                                           propagate):
    processes = started_at_once(db_url, session, children, AutomaticFlow, propagate)
    tasks = session.scalars(sa.select(Task).order_by(Task.id)).all()
    assert len(tasks) == WORKERS * EACH * len(ORDER)
    by_process: dict[int, list[Task]] = {}
    for task in tasks:
        by_process.setdefault(task.process_id, []).append(task)
    for process in processes:
        mine = by_process[process.id]
        assert process.status == STATUS.DONE
        assert [t.node_name for t in mine] == ORDER  # ids in the order of creation
        assert {t.status for t in mine} == {STATUS.DONE}
        ids = {t.node_name: t.id for t in mine}
        assert {k: process.data[k] for k in ("left", "right", "last")} == {
            k: ids[k] for k in ("left", "right", "last")}  # each handler saw its own task's id
        join = next(t for t in mine if t.node_name == "join")
        assert sorted(p.node_name for p in join.previous) == ["left", "right"]


def test_nodes_failing_at_once_in_several_processes_leave_only_their_error(db_url, session,  # type: ignore[no-untyped-def]
                                                                           children):
    processes = started_at_once(db_url, session, children, FailingRightFlow, False)
    for process in processes:
        tasks = session.scalars(sa.select(Task).where(Task.process_id == process.id).order_by(Task.id)).all()
        statuses = {t.node_name: t.status for t in tasks}
        if process.data["n"] % 2:
            assert process.status == STATUS.NEW and "right" not in process.data
            assert [t.node_name for t in tasks] == ["start", "split", "left", "right", "join"]
            assert statuses["right"] == STATUS.ERROR and statuses["join"] == STATUS.STARTED
            right = next(t for t in tasks if t.node_name == "right")
            assert "odd processes fail here" in right.comments
        else:
            assert process.status == STATUS.DONE and [t.node_name for t in tasks] == ORDER
            assert set(statuses.values()) == {STATUS.DONE}
            assert process.data["right"] == next(t.id for t in tasks if t.node_name == "right")
