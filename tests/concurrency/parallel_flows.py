"""Flows and child-process drivers for the concurrency tests.

A module of its own (on ``sys.path`` next to the tests, like ``job_flows``), so processes
started with the ``spawn`` context import the very same flow classes as the test.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from webflow import STATUS, Flow, FlowLockFailed, TransitionNotAllowed, flow, this
from webflow.core import create_engine, use_session
from webflow.core.flow import import_flow
from webflow.models import Process, Task

WORKER = "worker"  # the user every View branch is assigned to
BARRIER_TIMEOUT = 30  # seconds: a child waiting longer than this fails instead of hanging
LOCK_RETRIES = 5


def finish(activation: Any) -> None:
    """The Function branches' body: nothing to do but finish."""
    activation.prepare()
    activation.done()


class FanOutFlow(Flow):
    """Eight Function branches into one join"""

    start = flow.StartFunction().Next(this.split)
    split = (flow.Split().Next(this.b1).Next(this.b2).Next(this.b3).Next(this.b4)
             .Next(this.b5).Next(this.b6).Next(this.b7).Next(this.b8))
    b1 = flow.Function(finish).Next(this.join)
    b2 = flow.Function(finish).Next(this.join)
    b3 = flow.Function(finish).Next(this.join)
    b4 = flow.Function(finish).Next(this.join)
    b5 = flow.Function(finish).Next(this.join)
    b6 = flow.Function(finish).Next(this.join)
    b7 = flow.Function(finish).Next(this.join)
    b8 = flow.Function(finish).Next(this.join)
    join = flow.Join().Next(this.end)
    end = flow.End()


class NestedFanOutFlow(Flow):
    """Four Function branches and a nested split of four more, each with its join"""

    start = flow.StartFunction().Next(this.outer)
    outer = (flow.Split().Next(this.a1).Next(this.a2).Next(this.a3).Next(this.a4)
             .Next(this.inner))
    a1 = flow.Function(finish).Next(this.outer_join)
    a2 = flow.Function(finish).Next(this.outer_join)
    a3 = flow.Function(finish).Next(this.outer_join)
    a4 = flow.Function(finish).Next(this.outer_join)
    inner = flow.Split().Next(this.i1).Next(this.i2).Next(this.i3).Next(this.i4)
    i1 = flow.Function(finish).Next(this.inner_join)
    i2 = flow.Function(finish).Next(this.inner_join)
    i3 = flow.Function(finish).Next(this.inner_join)
    i4 = flow.Function(finish).Next(this.inner_join)
    inner_join = flow.Join().Next(this.outer_join)
    outer_join = flow.Join().Next(this.end)
    end = flow.End()


class ViewFanOutFlow(Flow):
    """Eight View branches, assigned at once, into one join"""

    start = flow.StartFunction().Next(this.split)
    split = (flow.Split().Next(this.v1).Next(this.v2).Next(this.v3).Next(this.v4)
             .Next(this.v5).Next(this.v6).Next(this.v7).Next(this.v8))
    v1 = flow.View().Assign(username=WORKER).Next(this.join)
    v2 = flow.View().Assign(username=WORKER).Next(this.join)
    v3 = flow.View().Assign(username=WORKER).Next(this.join)
    v4 = flow.View().Assign(username=WORKER).Next(this.join)
    v5 = flow.View().Assign(username=WORKER).Next(this.join)
    v6 = flow.View().Assign(username=WORKER).Next(this.join)
    v7 = flow.View().Assign(username=WORKER).Next(this.join)
    v8 = flow.View().Assign(username=WORKER).Next(this.join)
    join = flow.Join().Next(this.end)
    end = flow.End()


class QuorumFanOutFlow(Flow):
    """Eight reviewers from a list; the join goes on after three answers, the rest run on"""

    start = flow.StartFunction().Next(this.fan_out)
    fan_out = flow.Split().Each(this.review, items=lambda act: [f"r{n}" for n in range(8)])
    review = flow.View().Assign(username=WORKER).Next(this.join)
    join = flow.Join(until=lambda act: len(act.arrived) >= 3).Next(this.end)
    end = flow.End()


class QuorumCancelFlow(Flow):
    """As QuorumFanOutFlow, but the join cancels the reviews still open when it goes on"""

    start = flow.StartFunction().Next(this.fan_out)
    fan_out = flow.Split().Each(this.review, items=lambda act: [f"r{n}" for n in range(8)])
    review = flow.View().Assign(username=WORKER).Next(this.join)
    join = flow.Join(until=lambda act: len(act.arrived) >= 3, cancel_rest=True).Next(this.end)
    end = flow.End()


class ChildFlow(Flow):
    """A child process with one task"""

    start = flow.StartFunction().Next(this.buy)
    buy = flow.View().Assign(username=WORKER).Next(this.end)
    end = flow.End()


class ParentFlow(Flow):
    """A parent waiting for its child, then a task of its own"""

    start = flow.StartFunction().Next(this.purchase)
    purchase = flow.Subprocess(ChildFlow.start).Next(this.receive)
    receive = flow.View().Next(this.end)
    end = flow.End()


def complete(task: Task, marker: str) -> None:
    """Finish one waiting branch task: run the Function, or submit the View."""
    if task.flow_task_type == "FUNCTION":
        task.flow_task.run(task)  # type: ignore[attr-defined]
    else:
        activation = task.activate()
        activation.prepare(data={task.node_name: marker}, user=task.owner)
        activation.done()


def with_lock_retries(action: Callable[[], None], stats: dict[str, int]) -> None:
    """A client's answer to FlowLockFailed: try again, a bounded number of times."""
    for attempt in range(LOCK_RETRIES):
        try:
            action()
            return
        except FlowLockFailed:
            stats["lock_failed"] += 1
            if attempt == LOCK_RETRIES - 1:
                raise


def cancel(task: Task) -> None:
    """Cancel one waiting branch task (putting an assigned one back in the queue first)."""
    activation = task.activate()
    if task.status == STATUS.ASSIGNED:
        activation.unassign()
    activation.cancel()


def complete_branches(url: str, flow_path: str, process_ids: list[int], worker: int, workers: int,
                      barrier: Any, results: Any, cancel_odd_workers: bool = False) -> None:
    """Child process: for each process in turn, wait for the others, then finish my share.

    My share is every waiting branch task whose id is ``worker`` modulo ``workers``, so
    each process's branches are finished by all the children at the same moment.
    """
    stats = {"worker": worker, "completed": 0, "lock_failed": 0, "refused": 0}
    engine = create_engine(url)
    try:
        flow_class = import_flow(flow_path)
        with Session(engine) as session, use_session(session):
            for process_id in process_ids:
                tasks = session.scalars(
                    sa.select(Task)
                    .where(Task.process_id == process_id,
                           Task.flow_task_type.in_(["FUNCTION", "HUMAN"]),
                           Task.status.in_([STATUS.NEW, STATUS.ASSIGNED]))
                    .order_by(Task.id)
                ).all()
                mine = [task for task in tasks if task.id % workers == worker]
                assert all(task.flow_class is flow_class for task in mine)
                session.commit()
                barrier.wait(BARRIER_TIMEOUT)
                for task in mine:
                    try:
                        if cancel_odd_workers and worker % 2:
                            with_lock_retries(lambda task=task: cancel(task), stats)
                        else:
                            with_lock_retries(lambda task=task: complete(task, f"w{worker}"), stats)
                    except TransitionNotAllowed:
                        stats["refused"] += 1  # canceled meanwhile by a join's cancel_rest
                        session.rollback()
                        continue
                    stats["completed"] += 1
        results.put(("ok", stats))
    except BaseException:
        barrier.abort()  # the others fail fast instead of waiting for me
        results.put(("error", traceback.format_exc()))
    finally:
        engine.dispose()


def race_for_task(url: str, task_ids: list[int], worker: int, barrier: Any, results: Any) -> None:
    """Child process: complete each task at the same moment as the other child does."""
    outcome: list[str] = []
    engine = create_engine(url)
    try:
        with Session(engine) as session, use_session(session):
            for task_id in task_ids:
                task = session.get(Task, task_id)
                assert task is not None
                activation = task.activate()
                activation.prepare(data={"winner": f"w{worker}"}, user=task.owner)
                session.commit()
                barrier.wait(BARRIER_TIMEOUT)
                try:
                    activation.done()
                    outcome.append("done")
                except TransitionNotAllowed:
                    outcome.append("refused")
        results.put(("ok", {"worker": worker, "outcome": outcome}))
    except BaseException:
        barrier.abort()
        results.put(("error", traceback.format_exc()))
    finally:
        engine.dispose()


def child_finish_or_parent_cancel(url: str, parent_ids: list[int], worker: int, barrier: Any,
                                  results: Any) -> None:
    """Child process: worker 0 completes each child's task while worker 1 cancels its parent,
    both at the same moment; each reports what happened."""
    outcome: list[str] = []
    engine = create_engine(url)
    try:
        with Session(engine) as session, use_session(session):
            for parent_id in parent_ids:
                parent = session.get(Process, parent_id)
                assert parent is not None
                (sub,) = [t for t in parent.tasks if t.node_name == "purchase"]
                (child,) = session.scalars(sa.select(Process).where(Process.parent_task_id == sub.id)).all()
                (buy,) = [t for t in child.tasks if t.node_name == "buy"]
                session.commit()
                barrier.wait(BARRIER_TIMEOUT)
                try:
                    if worker == 0:
                        activation = buy.activate()
                        activation.prepare(data={"bought": True}, user=buy.owner)
                        activation.done()
                    else:
                        parent.cancel()
                    outcome.append("done")
                except TransitionNotAllowed:
                    session.rollback()
                    outcome.append("refused")
        results.put(("ok", {"worker": worker, "outcome": outcome}))
    except BaseException:
        barrier.abort()
        results.put(("error", traceback.format_exc()))
    finally:
        engine.dispose()


def mark(activation: Any) -> None:
    """A handler's work: a change of process.data in place."""
    activation.process.data[activation.task.node_name] = activation.task.id


class AutomaticFlow(Flow):
    """Automatic nodes only, run through in the call that starts it"""

    start = flow.StartFunction().Next(this.split)
    split = flow.Split().Next(this.left).Next(this.right)
    left = flow.Handler(mark).Next(this.join)
    right = flow.Handler(mark).Next(this.join)
    join = flow.Join().Next(this.check)
    check = flow.If(lambda act: "left" in act.process.data).Then(this.last).Else(this.end)
    last = flow.Handler(mark).Next(this.end)
    end = flow.End()


def mark_or_fail(activation: Any) -> None:
    """``mark``, then for an odd ``n``: a query (it flushes the rows the node's guard left
    unsaved, inside its savepoint) and a failure, which must take all of that back."""
    mark(activation)
    if activation.process.data["n"] % 2:
        activation.session.scalar(sa.select(sa.func.count()).select_from(Task)
                                  .where(Task.process_id == activation.process.id))
        raise RuntimeError("odd processes fail here")


class FailingRightFlow(AutomaticFlow):
    """The automatic flow whose right branch fails in every other process"""

    right = flow.Handler(mark_or_fail).Next(this.join)


def start_automatic(url: str, flow_path: str, count: int, propagate: bool, worker: int,
                    barrier: Any, results: Any) -> None:
    """Child process: wait for the others, then start ``count`` processes one after another."""
    from webflow import Context

    stats: dict[str, Any] = {"worker": worker, "lock_failed": 0, "started": []}
    engine = create_engine(url)
    try:
        flow_class = import_flow(flow_path)
        with Session(engine) as session, use_session(session), Context(propagate_exception=propagate):
            barrier.wait(BARRIER_TIMEOUT)
            for n in range(count):
                with_lock_retries(
                    lambda n=n: stats["started"].append(flow_class.start.run(w=worker, n=n).id), stats)
        results.put(("ok", stats))
    except Exception:
        results.put(("error", traceback.format_exc()))
    finally:
        engine.dispose()


def read_then_write(url: str, rounds: int, worker: int, barrier: Any, results: Any) -> None:
    """Child process: even workers start automatic processes (the engine writing); odd
    ones save a filter ``rounds`` times the way the web app's form does it, in one session
    transaction: read the user and how many filters they have, then INSERT and commit.
    Reports each failed commit's error, not raised: the test counts them."""
    from webflow.models import SavedFilter, User

    stats: dict[str, Any] = {"worker": worker, "errors": [], "saved": 0, "started": 0}
    engine = create_engine(url)
    try:
        with Session(engine) as session, use_session(session):
            user_id = session.scalar(sa.select(User.id).where(User.username == WORKER))
            barrier.wait(BARRIER_TIMEOUT)
            for n in range(rounds):
                if worker % 2 == 0:
                    AutomaticFlow.start.run(w=worker, n=n)  # type: ignore[attr-defined]
                    stats["started"] += 1
                    continue
                user = session.get(User, user_id)
                assert user is not None
                kept = session.scalar(sa.select(sa.func.count()).select_from(SavedFilter)
                                      .where(SavedFilter.user_id == user_id))
                session.add(SavedFilter(user_id=user.id, list_name="inbox", name=f"w{worker} n{n}",
                                        query=f"page={kept}"))
                try:
                    session.commit()
                    stats["saved"] += 1
                except sa.exc.OperationalError as exc:
                    session.rollback()
                    stats["errors"].append(str(exc.orig))
        results.put(("ok", stats))
    except Exception:
        results.put(("error", traceback.format_exc()))
    finally:
        engine.dispose()


def record_group(activation: Any) -> None:
    """A handler's own row: a group named by the process, which another process may take."""
    from webflow.models import Group

    activation.session.add(Group(name=activation.process.data["group"]))


class RecordGroupFlow(Flow):
    start = flow.StartFunction().Next(this.record)
    record = flow.Handler(record_group).Next(this.end)
    end = flow.End()


def start_recording(url: str, names: list[str], worker: int, barrier: Any, results: Any) -> None:
    """Child process: under the web policy, start a RecordGroupFlow for each name (the other
    children start the same names at the same moment). Reports what each start raised."""
    from webflow import Context

    stats: dict[str, Any] = {"worker": worker, "raised": []}
    engine = create_engine(url)
    try:
        with Session(engine) as session, use_session(session):
            barrier.wait(BARRIER_TIMEOUT)
            for name in names:
                try:
                    with Context(propagate_exception=False):
                        RecordGroupFlow.start.run(group=name)  # type: ignore[attr-defined]
                except Exception as exc:  # the test wants none
                    session.rollback()
                    stats["raised"].append(f"{type(exc).__name__}: {exc}")
        results.put(("ok", stats))
    except Exception:
        results.put(("error", traceback.format_exc()))
    finally:
        engine.dispose()
