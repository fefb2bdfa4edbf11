"""No process is ever stranded: joins and the process end are evaluated on every way a
branch can end (arrival, cancel, undo, leaving the region, a node without ``.Next``), in
each order of events; stalled processes are marked for repair; signals see saved rows."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.orm import Session

from webflow import STATUS, Flow, TransitionNotAllowed, flow, this
from webflow import signals as webflow_signals
from webflow.core import Context
from webflow.core.engine import stalled_processes
from webflow.models import Process, Task, User


def open_task(process: Process, name: str) -> Any:
    return next(t for t in process.tasks if t.node_name == name and t.status not in (STATUS.DONE,
                                                                                      STATUS.CANCELED))


def complete(session: Session, process: Process, name: str, user: User,
             data: dict[str, Any] | None = None) -> None:
    session.expire_all()
    activation = open_task(process, name).activate()
    if activation.task.status == STATUS.NEW:
        activation.assign(user)
    activation.prepare(data=data or {}, user=user)
    activation.done()


def cancel(session: Session, process: Process, name: str) -> None:
    session.expire_all()
    activation = open_task(process, name).activate()
    if activation.task.status == STATUS.ASSIGNED:
        activation.unassign()
    activation.cancel()


def statuses(session: Session, process: Process) -> list[tuple[str, str]]:
    session.expire_all()
    return [(t.node_name, t.status.value) for t in process.tasks]


def assert_no_duplicates(process: Process) -> None:
    seen = [(t.node_name, t.token) for t in process.tasks
            if t.status != STATUS.CANCELED and t.flow_task_type != "JOIN"]
    joins = [(t.node_name, t.token) for t in process.tasks if t.flow_task_type == "JOIN"]
    assert len(joins) == len(set(joins)), joins
    assert len(seen) == len(set(seen)), seen


@pytest.fixture
def worker(session: Session, users: dict[str, User]) -> User:
    return users["root"]


# -- a canceled branch after its sibling arrived ------------------------------------------------


class TwoViewsFlow(Flow):
    start = flow.StartFunction().Next(this.split)
    split = flow.Split().Next(this.a).Next(this.b)
    a = flow.View().Next(this.join)
    b = flow.View().Next(this.join)
    join = flow.Join().Next(this.c)
    c = flow.View().Next(this.end)
    end = flow.End()


@pytest.mark.parametrize("order", [("complete_a", "cancel_b"), ("cancel_b", "complete_a"),
                                   ("complete_b", "cancel_a"), ("cancel_a", "complete_b")])
def test_a_canceled_branch_lets_the_join_fire_in_either_order(session, worker, order):
    process = TwoViewsFlow.start.run()
    for step in order:
        verb, name = step.split("_")
        if verb == "complete":
            complete(session, process, name, worker)
        else:
            cancel(session, process, name)
    result = dict(statuses(session, process))
    assert result["join"] == "DONE"
    assert result["c"] == "NEW"
    assert process.status == STATUS.NEW
    assert_no_duplicates(process)
    complete(session, process, "c", worker)
    session.expire_all()
    assert process.status == STATUS.DONE
    assert [name for name, status in statuses(session, process) if status == "DONE"].count("join") == 1


@pytest.mark.parametrize("order", [("a", "b"), ("b", "a")])
def test_every_branch_canceled_stalls_the_process(session, worker, order):
    process = TwoViewsFlow.start.run()
    for name in order:
        cancel(session, process, name)
    session.expire_all()
    assert [n for n, _ in statuses(session, process)] == ["start", "split", "a", "b"]
    assert process.status == STATUS.NEW
    assert process.stalled is not None
    assert [p.id for p, _ in stalled_processes(session, [TwoViewsFlow])] == [process.id]


# -- a branch that leaves the split region through an End ----------------------------------------


class LeavingBranchFlow(Flow):
    start = flow.StartFunction().Next(this.split)
    split = flow.Split().Next(this.a).Next(this.b)
    a = flow.View().Next(this.check)
    check = flow.If(lambda act: act.process.data.get("stop")).Then(this.early_end).Else(this.join)
    early_end = flow.End()
    b = flow.View().Next(this.join)
    join = flow.Join().Next(this.c)
    c = flow.View().Next(this.end)
    end = flow.End()


@pytest.mark.parametrize("first", ["a", "b"])
def test_a_branch_that_leaves_the_region_no_longer_holds_the_join(session, worker, first):
    process = LeavingBranchFlow.start.run()
    second = "b" if first == "a" else "a"
    for name in (first, second):
        complete(session, process, name, worker, {"stop": True} if name == "a" else {})
    result = dict(statuses(session, process))
    assert result["early_end"] == "DONE"
    assert result["join"] == "DONE", statuses(session, process)
    assert result["c"] == "NEW"
    assert process.status == STATUS.NEW  # c is still to do, although an End was reached
    complete(session, process, "c", worker)
    session.expire_all()
    assert process.status == STATUS.DONE
    assert_no_duplicates(process)


# -- a branch with no .Next after the other reached the End ---------------------------------------


class DeadEndFlow(Flow):
    start = flow.StartFunction().Next(this.split)
    split = flow.Split().Next(this.a).Next(this.b)
    a = flow.View().Next(this.end)
    b = flow.View()
    end = flow.End()


@pytest.mark.parametrize("order", [("a", "b"), ("b", "a")])
@pytest.mark.parametrize("how", ["complete", "cancel"])
def test_the_process_ends_whichever_task_ends_last(session, worker, order, how):
    process = DeadEndFlow.start.run()
    for name in order:
        if name == "b" and how == "cancel":
            cancel(session, process, "b")
        else:
            complete(session, process, name, worker)
    session.expire_all()
    assert process.status == STATUS.DONE
    assert process.finished is not None
    assert process.stalled is None
    assert dict(statuses(session, process))["end"] == "DONE"


# -- stalled processes -----------------------------------------------------------------------------


class SingleViewFlow(Flow):
    start = flow.StartFunction().Next(this.work)
    work = flow.View().Next(this.end)
    end = flow.End()


def test_canceling_the_last_open_task_stalls_the_process_for_repair(session, worker):
    process = SingleViewFlow.start.run()
    with Context(user=worker):
        cancel(session, process, "work")
    session.expire_all()
    assert process.status == STATUS.NEW
    assert process.stalled is not None
    listed = stalled_processes(session, [SingleViewFlow])
    assert [(p.id, reason.task.node_name, reason.user) for p, reason in listed] == [
        (process.id, "work", worker)]
    # Repair: undo back to the start cancels the process.
    session.expire_all()
    start = process.get_task(SingleViewFlow.start)
    start.activate().undo()
    session.expire_all()
    assert process.status == STATUS.CANCELED
    assert stalled_processes(session, [SingleViewFlow]) == []


class TwoStepFlow(Flow):
    start = flow.StartFunction().Next(this.first)
    first = flow.View().Next(this.second)
    second = flow.View().Next(this.end)
    end = flow.End()


def test_undo_backwards_reopens_a_stalled_process(session, worker):
    process = TwoStepFlow.start.run()
    complete(session, process, "first", worker)
    cancel(session, process, "second")
    session.expire_all()
    assert process.stalled is not None
    process.get_task(TwoStepFlow.first).activate().undo()
    session.expire_all()
    assert process.stalled is None
    assert stalled_processes(session, [TwoStepFlow]) == []
    complete(session, process, "first", worker)
    complete(session, process, "second", worker)
    session.expire_all()
    assert process.status == STATUS.DONE
    assert [s for n, s in statuses(session, process) if n == "second"] == ["CANCELED", "DONE"]


# -- activate_next is idempotent or refused ---------------------------------------------------------


class JobIntoJoinFlow(Flow):
    start = flow.StartFunction().Next(this.split)
    split = flow.Split().Next(this.job).Next(this.b)
    job = flow.Handler(lambda act: None).Next(this.join)
    b = flow.View().Next(this.join)
    join = flow.Join().Next(this.end)
    end = flow.End()


def test_activate_next_into_a_waiting_join_is_refused_and_changes_nothing(session, worker, stored):
    process = JobIntoJoinFlow.start.run()
    session.expire_all()
    handler = process.get_task(JobIntoJoinFlow.job)
    assert dict(statuses(session, process))["join"] == "STARTED"
    activation = handler.activate()
    assert "activate_next" not in [t.name for t in activation.get_available_transitions()]
    before = stored()
    with pytest.raises(TransitionNotAllowed, match="already"):
        activation.activate_next()
    assert stored() == before
    complete(session, process, "b", worker)
    session.expire_all()
    assert process.status == STATUS.DONE
    assert_no_duplicates(process)


# -- signals and callables see saved rows ----------------------------------------------------------

seen: list[tuple[str, Any, Any]] = []


class SignalFlow(Flow):
    start = flow.StartFunction().Next(this.work)
    work = (flow.View().Assign(lambda act: seen.append(("assign", act.process.id, act.task.id)) or None)
            .onCreate(lambda act: seen.append(("create", act.process.id, act.task.id))).Next(this.check))
    check = flow.If(lambda act: seen.append(("cond", act.process.id, act.task.id)) or True
                    ).Then(this.end).Else(this.end)
    end = flow.End()


def test_signals_and_node_callables_see_ids(session, worker):
    seen.clear()

    def receiver(name: str):
        def receive(sender: Any, process: Process, task: Task | None = None, **kw: Any) -> None:
            seen.append((name, process.id, task.id if task is not None else None))
        return receive

    receivers = {name: receiver(name) for name in ("flow_started", "flow_finished", "task_finished")}
    for name, func in receivers.items():
        getattr(webflow_signals, name).connect(func, sender=SignalFlow)
    try:
        process = SignalFlow.start.run()
        complete(session, process, "work", worker)
    finally:
        for name, func in receivers.items():
            getattr(webflow_signals, name).disconnect(func, sender=SignalFlow)
    assert seen, "nothing was received"
    assert all(pid is not None and tid is not None for _, pid, tid in seen), seen
    names = [name for name, _, _ in seen]
    for expected in ("flow_started", "assign", "create", "cond", "flow_finished"):
        assert expected in names
