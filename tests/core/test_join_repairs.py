"""Joins in the orders the happy path never takes: an empty fan-out inside a branch, a
join a manager undid before its last branch arrived, and a failing ``until`` or
subprocess ``data`` under the web policy (the node fails, not the person's work)."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from webflow import STATUS, Context, Flow, flow, this
from webflow.models import Process, TaskEvent, User


class NestedEmptyFlow(Flow):
    start = flow.StartFunction().Next(this.outer)
    outer = flow.Split().Next(this.inner).Next(this.b)
    inner = flow.Split().Each(this.x, items=lambda act: act.process.data["items"])
    x = flow.View().Next(this.inner_join)
    inner_join = flow.Join().Next(this.outer_join)
    b = flow.View().Next(this.outer_join)
    outer_join = flow.Join().Next(this.after)
    after = flow.View().Next(this.end)
    end = flow.End()


class TwoViewsFlow(Flow):
    start = flow.StartFunction().Next(this.split)
    split = flow.Split().Next(this.a).Next(this.b)
    a = flow.View().Next(this.join)
    b = flow.View().Next(this.join)
    join = flow.Join().Next(this.c)
    c = flow.View().Next(this.end)
    end = flow.End()


def boom(activation: Any) -> Any:
    raise RuntimeError("the callable failed")


class ChildFlow(Flow):
    start = flow.StartFunction().Next(this.end)
    end = flow.End()


class BadDataFlow(Flow):
    start = flow.StartFunction().Next(this.v)
    v = flow.View().Next(this.sub)
    sub = flow.Subprocess(ChildFlow.start, data=boom).Next(this.end)
    end = flow.End()


class BadUntilFlow(Flow):
    start = flow.StartFunction().Next(this.split)
    split = flow.Split().Next(this.a).Next(this.b)
    a = flow.View().Next(this.join)
    b = flow.View().Next(this.join)
    join = flow.Join(until=boom).Next(this.end)
    end = flow.End()


def rows(session: Any, process: Process) -> list[tuple[str, STATUS, str]]:
    session.expire_all()
    return [(t.node_name, t.status, t.token) for t in sorted(process.tasks, key=lambda t: t.id)]


def complete(session: Any, process: Process, node: str, user: User) -> None:
    session.expire_all()
    task = next(t for t in process.tasks if t.node_name == node and t.status in (STATUS.NEW, STATUS.ASSIGNED))
    activation = task.activate()
    if task.status == STATUS.NEW:
        activation.assign(user)
    activation.prepare(data={}, user=user)
    activation.done()
    session.commit()


@pytest.mark.parametrize("items", [[], ["one"], ["one", "two"]])
def test_a_fan_out_nested_in_a_branch_joins_once_whatever_its_length(session, root, items):
    process = NestedEmptyFlow.start.run(items=items)
    session.commit()
    for _ in items:
        complete(session, process, "x", root)
    inner_join = [(status, token) for node, status, token in rows(session, process) if node == "inner_join"]
    assert len(inner_join) == 1 and inner_join[0][0] == STATUS.DONE
    assert inner_join[0][1].count("/") == 1  # on the outer branch's token, not the process's
    assert [s for n, s, _ in rows(session, process) if n == "outer_join"] == [STATUS.STARTED]
    complete(session, process, "b", root)
    assert [s for n, s, _ in rows(session, process) if n == "outer_join"] == [STATUS.DONE]
    assert [s for n, s, _ in rows(session, process) if n == "after"] == [STATUS.NEW]
    complete(session, process, "after", root)
    assert process.status == STATUS.DONE


def test_a_join_undone_before_the_last_branch_waits_again_and_the_process_ends(session, root):
    process = TwoViewsFlow.start.run()
    session.commit()
    complete(session, process, "a", root)

    def task(node: str) -> Any:
        session.expire_all()
        return max((t for t in process.tasks if t.node_name == node), key=lambda t: t.id)

    task("join").activate().perform()           # a manager runs it now, b still open
    task("c").activate().cancel()               # then takes it back
    task("join").activate().undo()
    session.commit()
    assert task("join").status == STATUS.NEW
    complete(session, process, "b", root)       # the late branch arrives at that join
    joins = [s for n, s, _ in rows(session, process) if n == "join"]
    assert joins == [STATUS.DONE]               # the same join fired again; no second one
    complete(session, process, "c", root)
    assert process.status == STATUS.DONE
    trail = session.scalars(sa.select(TaskEvent.transition).where(TaskEvent.task_id == task("join").id)
                            .order_by(TaskEvent.id)).all()
    assert trail == ["start", "perform", "undo", "start", "done"]


def test_a_failing_subprocess_data_fails_the_subprocess_not_the_persons_done(session, root):
    process = BadDataFlow.start.run()
    session.commit()
    with Context(propagate_exception=False):
        complete(session, process, "v", root)
    states = {n: s for n, s, _ in rows(session, process)}
    assert states["v"] == STATUS.DONE and states["sub"] == STATUS.ERROR
    sub = next(t for t in process.tasks if t.node_name == "sub")
    assert "the callable failed" in sub.comments
    assert session.scalar(sa.select(sa.func.count()).select_from(Process)
                          .where(Process.parent_task_id == sub.id)) == 0  # no child half-started


def test_a_failing_subprocess_data_still_raises_under_the_code_policy(session, root):
    process = BadDataFlow.start.run()
    session.commit()
    with pytest.raises(RuntimeError, match="the callable failed"):
        complete(session, process, "v", root)
    session.rollback()
    assert {n: s for n, s, _ in rows(session, process)}["v"] == STATUS.ASSIGNED  # the done: all or nothing


def test_a_failing_until_fails_the_join_and_a_late_branch_waits_for_the_retry(session, root):
    process = BadUntilFlow.start.run()
    session.commit()
    with Context(propagate_exception=False):
        complete(session, process, "a", root)
        states = rows(session, process)
        assert any(n == "a" and s == STATUS.DONE for n, s, _ in states)
        join = next(t for t in process.tasks if t.node_name == "join")
        assert join.status == STATUS.ERROR and "the callable failed" in join.comments
        complete(session, process, "b", root)   # joins the failed join: no second join
        assert [s for n, s, _ in rows(session, process) if n == "join"] == [STATUS.ERROR]
        join.activate().retry()
        session.commit()
    assert process.status == STATUS.DONE
    assert [s for n, s, _ in rows(session, process) if n == "join"] == [STATUS.DONE]


SEEN_BRANCHES: list[tuple[int, int]] = []


def majority(activation: Any) -> bool:
    SEEN_BRANCHES.append((len(activation.arrived), len(activation.branches)))
    return len(activation.arrived) * 2 > len(activation.branches)


class RedoVoteFlow(Flow):
    start = flow.StartFunction().Next(this.fan)
    fan = flow.Split().Each(this.review, items=lambda act: act.process.data["items"])
    review = flow.View().Next(this.join)
    join = flow.Join(until=majority, cancel_rest=True).Next(this.after)
    after = flow.View().Next(this.end)
    end = flow.End()


def test_branches_after_the_split_was_undone_and_performed_are_this_runs(session, root):
    """The first run's canceled branches share the tokens of the second run's: ``branches``
    names one task per item of the run that counts, so a majority of three is two."""
    SEEN_BRANCHES.clear()
    process = RedoVoteFlow.start.run(items=["x", "y", "z"])
    session.commit()
    session.expire_all()
    for task in [t for t in process.tasks if t.node_name == "review"]:
        task.activate().cancel()
    session.expire_all()
    fan = next(t for t in process.tasks if t.node_name == "fan")
    fan.activate().undo()
    session.expire_all()
    fan.activate().perform()
    session.commit()
    assert len([t for t in rows(session, process) if t[0] == "review"]) == 6
    complete(session, process, "review", root)
    complete(session, process, "review", root)
    assert SEEN_BRANCHES[-1] == (2, 3)
    states = [s for n, s, _ in rows(session, process) if n == "review"]
    assert states.count(STATUS.DONE) == 2 and states.count(STATUS.CANCELED) == 4  # the third canceled
    assert [s for n, s, _ in rows(session, process) if n == "after"] == [STATUS.NEW]


def test_a_join_undone_after_every_branch_arrived_is_stalled_not_stranded(session, root):
    """Every branch reached the join, it fired, and a manager canceled the task after it
    and undid the join: nothing will reach the join again, and its only transition is
    cancel. The process is listed as stalled (it used to look alive forever), with the
    undo as the reason; cancel the join, undo a branch, redo it, and it goes on to the end."""
    from webflow.core.engine import stall_reason

    with Context(user=root):
        process = TwoViewsFlow.start.run()
        session.commit()
        complete(session, process, "a", root)
        complete(session, process, "b", root)
        by_node = {t.node_name: t for t in process.tasks}
        by_node["c"].activate().cancel()
        session.commit()
        assert process.stalled is not None
        by_node["join"].activate().undo()
        session.commit()
    session.expire_all()
    assert by_node["join"].status == STATUS.NEW and process.status == STATUS.NEW
    assert process.stalled is not None
    reason = stall_reason(session, process)
    assert reason is not None and reason.task.node_name == "join" and reason.transition == "undo"

    with Context(user=root):
        by_node["join"].activate().cancel()
        session.commit()
        assert process.stalled is not None
        by_node["a"].activate().undo()
        session.commit()
        assert process.stalled is None  # a branch is back at work
        complete(session, process, "a", root)
        complete(session, process, "c", root)
    session.expire_all()
    assert process.status == STATUS.DONE
    fired = session.scalars(sa.select(TaskEvent).where(
        TaskEvent.process_id == process.id, TaskEvent.transition == "done",
        TaskEvent.task_id.in_([t.id for t in process.tasks if t.node_name == "join"]))).all()
    assert len(fired) == 2  # the first run, then the repair
