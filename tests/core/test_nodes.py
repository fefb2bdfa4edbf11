"""Each node type, run from code on a real database, as a caller sees it."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from webflow import STATUS, Context, Flow, FlowRuntimeError, flow, this
from webflow.core import PermissionDenied
from webflow.core import jobs as core_jobs
from webflow.core.jobs import run_job
from webflow.models import Process, Task, User


def count(session: Any, model: type) -> int:
    return session.scalar(sa.select(sa.func.count()).select_from(model))


def do_view(process: Process, node: Any, user: User, data: dict[str, Any] | None = None) -> Task:
    task = process.get_task(node, status=[STATUS.NEW, STATUS.ASSIGNED])
    activation = task.activate()
    if task.status == STATUS.NEW:
        activation.assign(user)
    activation.prepare(data=data or {}, user=user)
    activation.done()
    return task


def statuses(process: Process) -> dict[str, str]:
    return {t.node_name: t.status.value for t in process.tasks}


# -- Start and StartFunction -------------------------------------------------------------


def double_amount(activation: Any, amount: int) -> tuple[str, int]:
    activation.prepare(data={"amount": amount * 2})
    activation.done()
    return ("started", activation.process.id)


def refuse_to_start(activation: Any, **kwargs: Any) -> None:
    activation.prepare(data=kwargs)
    activation.done()
    raise RuntimeError("changed my mind")


class StartingFlow(Flow):
    start = flow.Start().Permission(auto_create=True).Next(this.end)
    start_code = flow.StartFunction().Next(this.end)
    start_custom = flow.StartFunction(double_amount).Next(this.end)
    start_failing = flow.StartFunction(refuse_to_start).Next(this.end)
    end = flow.End()


def test_start_function_stores_its_kwargs_and_returns_the_process(session):
    process = StartingFlow.start_code.run(customer="ACME", items=3)
    assert isinstance(process, Process)
    session.expire_all()
    stored = session.get(Process, process.id)
    assert stored.data == {"customer": "ACME", "items": 3}
    assert stored.status == STATUS.DONE
    assert [(t.node_name, t.status, t.token) for t in stored.tasks] == [
        ("start_code", STATUS.DONE, "start"), ("end", STATUS.DONE, "start"),
    ]
    assert stored.tasks[1].previous == [stored.tasks[0]]


def test_a_custom_start_function_is_called_with_the_activation_and_its_value_returned(session):
    result = StartingFlow.start_custom.run(amount=21)
    assert result[0] == "started"
    process = session.get(Process, result[1])
    assert process.data == {"amount": 42}
    assert process.status == STATUS.DONE


def test_a_failing_start_function_stores_nothing(session):
    with pytest.raises(RuntimeError, match="changed my mind"):
        StartingFlow.start_failing.run(amount=1)
    assert count(session, Process) == 0
    assert count(session, Task) == 0


def test_start_needs_the_auto_created_permission(session, users):
    ann = users["ann"]
    assert StartingFlow.start.permission_name == "starting.can_start"
    with pytest.raises(PermissionDenied):
        StartingFlow.start.run(data={"a": 1}, user=ann)
    assert count(session, Process) == 0

    ann.permissions = ["starting.can_start"]
    session.commit()
    process = StartingFlow.start.run(data={"a": 1}, user=ann)
    session.expire_all()
    assert process.created_by == ann
    assert process.get_task(StartingFlow.start).owner == ann
    assert process.data == {"a": 1}
    assert StartingFlow.start.can_execute(users["bob"]) is False
    assert StartingFlow.start.can_execute(users["root"]) is True
    assert StartingFlow.start_code.can_execute(users["root"]) is False


def test_start_available_hides_the_start_from_some_users(session, users):
    class PickyFlow(Flow):
        start = (flow.Start().Permission(auto_create=True)
                 .Available(lambda u: u.username == "ann").Next(this.end))
        end = flow.End()

    users["ann"].permissions = users["bob"].permissions = ["picky.can_start"]
    session.commit()
    assert PickyFlow.start.can_execute(users["ann"]) is True
    assert PickyFlow.start.can_execute(users["bob"]) is False


# -- View ---------------------------------------------------------------------------------


created_log: list[tuple[str, int]] = []


def first_superuser(activation: Any) -> User:
    return activation.session.scalar(sa.select(User).where(User.is_superuser.is_(True)))


class ViewsFlow(Flow):
    start = flow.StartFunction().Next(this.split)
    split = flow.Split().Next(this.by_callable).Next(this.by_name).Next(this.by_queue)
    by_callable = flow.View().Assign(first_superuser).Next(this.join)
    by_name = flow.View().Assign(username="bob").Next(this.join)
    by_queue = (flow.View().Permission(auto_create=True)
                .onCreate(lambda act: created_log.append((act.task.node_name, act.task.id)))
                .Next(this.join))
    join = flow.Join().Next(this.end)
    end = flow.End()


class MissingAssigneeFlow(Flow):
    start = flow.StartFunction().Next(this.approve)
    approve = flow.View().Assign(username="nobody").Next(this.end)
    end = flow.End()


def test_view_assign_by_callable_and_by_username(session, users):
    process = ViewsFlow.start.run()
    by_callable = process.get_task(ViewsFlow.by_callable)
    by_name = process.get_task(ViewsFlow.by_name)
    assert (by_callable.status, by_callable.owner) == (STATUS.ASSIGNED, users["root"])
    assert (by_name.status, by_name.owner) == (STATUS.ASSIGNED, users["bob"])
    assert by_callable.assigned is not None
    assert by_name.activate().has_perm(users["bob"]) is True
    assert by_name.activate().has_perm(users["ann"]) is False


def test_view_on_create_and_auto_created_permission(session, users):
    created_log.clear()
    process = ViewsFlow.start.run()
    queued = process.get_task(ViewsFlow.by_queue)
    assert created_log == [("by_queue", queued.id)]
    assert queued.status == STATUS.NEW
    assert queued.owner is None
    assert queued.owner_permission == "views.can_by_queue"
    assert "views.can_by_queue" in ViewsFlow.permissions()

    ann, bob = users["ann"], users["bob"]
    ann.permissions = ["views.can_by_queue"]
    session.commit()
    activation = queued.activate()
    assert activation.has_perm(ann) is True
    assert activation.has_perm(bob) is False
    activation.assign(ann)
    with pytest.raises(PermissionDenied):
        activation.prepare(data={"x": 1}, user=bob)
    activation.prepare(data={"packages": 2}, user=ann)
    activation.done()
    session.expire_all()
    assert queued.status == STATUS.DONE
    assert queued.data == {"packages": 2}
    assert process.data == {"packages": 2}
    assert queued.finished is not None


def test_view_assign_to_an_unknown_username_stores_nothing(session):
    with pytest.raises(FlowRuntimeError, match="nobody"):
        MissingAssigneeFlow.start.run()
    assert count(session, Process) == 0


def test_view_unassign_and_reassign(session, users):
    process = ViewsFlow.start.run()
    task = process.get_task(ViewsFlow.by_name)
    activation = task.activate()
    activation.reassign(users["ann"])
    assert task.owner == users["ann"]
    activation.unassign()
    session.expire_all()
    assert (task.status, task.owner, task.assigned) == (STATUS.NEW, None, None)


# -- Function and Handler -------------------------------------------------------------------


def _task_of(process_id: int, flow_task: Any) -> Task:
    from webflow.core import get_session

    return get_session().scalars(
        sa.select(Task).where(Task.process_id == process_id, Task.node_name == flow_task.name)
    ).one()


class CodeFlow(Flow):
    start = flow.StartFunction().Next(this.calculate)
    calculate = flow.Function(this.add_total).Next(this.load)
    load = flow.Function(this.mark_loaded, task_loader=lambda node, process_id: _task_of(process_id, node)
                         ).Next(this.notify)
    notify = flow.Handler(this.send_notice).Next(this.end)
    end = flow.End()

    def add_total(self, activation: Any, price: int, items: int) -> int:
        activation.prepare()
        activation.process.data = {**activation.process.data, "total": price * items}
        activation.done()
        return price * items

    def mark_loaded(self, activation: Any, process_id: int) -> str:
        activation.prepare()
        activation.process.data = {**activation.process.data, "loaded": True}
        activation.done()
        return "loaded"

    def send_notice(self, activation: Any) -> None:
        activation.process.data = {**activation.process.data, "notified": activation.task.node_name}


def test_function_runs_on_its_task_with_kwargs(session):
    process = CodeFlow.start.run()
    task = process.get_task(CodeFlow.calculate)
    assert task.status == STATUS.NEW  # waits for code
    assert CodeFlow.calculate.run(task, price=5, items=3) == 15
    session.expire_all()
    assert task.status == STATUS.DONE
    assert task.started is not None and task.finished is not None
    assert process.data == {"total": 15}
    assert process.get_task(CodeFlow.load).status == STATUS.NEW


def test_function_found_by_its_task_loader_and_handler_method(session):
    process = CodeFlow.start.run()
    CodeFlow.calculate.run(process.get_task(CodeFlow.calculate), price=1, items=1)
    assert CodeFlow.load.run(process_id=process.id) == "loaded"
    session.expire_all()
    assert process.data == {"total": 1, "loaded": True, "notified": "notify"}
    assert statuses(process) == {"start": "DONE", "calculate": "DONE", "load": "DONE",
                                 "notify": "DONE", "end": "DONE"}
    assert process.status == STATUS.DONE


def test_function_refuses_a_task_of_another_node(session):
    process = CodeFlow.start.run()
    with pytest.raises(FlowRuntimeError):
        CodeFlow.load.run(process.get_task(CodeFlow.calculate), process_id=process.id)
    with pytest.raises(FlowRuntimeError, match="needs the task"):
        CodeFlow.calculate.run(price=1, items=1)
    session.expire_all()
    assert process.get_task(CodeFlow.calculate).status == STATUS.NEW


# -- If and Switch -------------------------------------------------------------------------


class GatesFlow(Flow):
    start = flow.StartFunction().Next(this.check)
    check = flow.If(lambda act: act.process.data["amount"] > 100).Then(this.route).Else(this.small)
    route = (flow.Switch()
             .Case(this.big, lambda act: act.process.data["amount"] > 1000)
             .Case(this.medium, lambda act: act.process.data["amount"] > 500)
             .Default(this.other))
    small = flow.Handler(lambda act: None).Next(this.end)
    big = flow.Handler(lambda act: None).Next(this.end)
    medium = flow.Handler(lambda act: None).Next(this.end)
    other = flow.Handler(lambda act: None).Next(this.end)
    end = flow.End()


class StrictSwitchFlow(Flow):
    start = flow.StartFunction().Next(this.route)
    route = flow.Switch().Case(this.end, lambda act: act.process.data.get("go"))
    end = flow.End()


@pytest.mark.parametrize(("amount", "path"), [
    (5, ["start", "check", "small", "end"]),
    (5000, ["start", "check", "route", "big", "end"]),
    (700, ["start", "check", "route", "medium", "end"]),
    (200, ["start", "check", "route", "other", "end"]),
])
def test_if_and_switch_take_one_path(session, amount, path):
    process = GatesFlow.start.run(amount=amount)
    session.expire_all()
    assert [t.node_name for t in process.tasks] == path
    assert all(t.status == STATUS.DONE and t.token == "start" for t in process.tasks)
    assert process.status == STATUS.DONE


def test_switch_without_a_match_or_default_fails(session):
    with pytest.raises(FlowRuntimeError, match="no case matched"):
        StrictSwitchFlow.start.run(go=False)
    assert count(session, Process) == 0

    with Context(propagate_exception=False):
        process = StrictSwitchFlow.start.run(go=False)
    route = process.get_task(StrictSwitchFlow.route)
    assert route.status == STATUS.ERROR
    assert "no case matched" in route.comments
    assert [t.node_name for t in process.tasks] == ["start", "route"]


# -- Split and Join ------------------------------------------------------------------------


class SplitsFlow(Flow):
    start = flow.StartFunction().Next(this.split)
    split = (flow.Split()
             .Next(this.a)
             .Next(this.b, cond=lambda act: act.process.data.get("with_b"))
             .Always(this.c))
    a = flow.View().Next(this.join)
    b = flow.View().Next(this.join)
    c = flow.View().Next(this.join)
    join = flow.Join().Next(this.end)
    end = flow.End()


class FirstWinsFlow(Flow):
    start = flow.StartFunction().Next(this.split)
    split = flow.Split().Next(this.fast).Next(this.slow)
    fast = flow.View().Next(this.join)
    slow = flow.View().Next(this.join)
    join = flow.Join(wait_all=False).Next(this.after)
    after = flow.View().Next(this.end)
    end = flow.End()


@pytest.mark.parametrize(("with_b", "branches"), [(True, ["a", "b", "c"]), (False, ["a", "c"])])
def test_split_creates_the_enabled_branches_with_their_tokens(session, users, with_b, branches):
    process = SplitsFlow.start.run(with_b=with_b)
    split = process.get_task(SplitsFlow.split)
    created = [t for t in process.tasks if t.node_name in ("a", "b", "c")]
    assert [t.node_name for t in created] == branches
    assert [t.token for t in created] == [f"start/{split.id}_{n}" for n in range(1, len(branches) + 1)]
    assert all(t.previous == [split] for t in created)

    for name in branches:
        assert process.status == STATUS.NEW
        assert [t.node_name for t in process.tasks].count("end") == 0
        do_view(process, SplitsFlow.node(name), users["ann"])
    session.expire_all()
    join = process.get_task(SplitsFlow.join)
    assert (join.status, join.token) == (STATUS.DONE, "start")
    assert sorted(t.node_name for t in join.previous) == branches
    assert process.status == STATUS.DONE


def test_join_waits_for_every_branch(session, users):
    process = SplitsFlow.start.run(with_b=True)
    do_view(process, SplitsFlow.a, users["ann"])
    do_view(process, SplitsFlow.b, users["ann"])
    join = process.get_task(SplitsFlow.join)
    assert join.status == STATUS.STARTED
    assert join.activate().is_done() is False


def test_join_without_wait_all_continues_with_the_first_branch(session, users):
    process = FirstWinsFlow.start.run()
    do_view(process, FirstWinsFlow.fast, users["ann"])
    session.expire_all()
    join = process.get_task(FirstWinsFlow.join)
    assert join.status == STATUS.DONE
    after = process.get_task(FirstWinsFlow.after)
    assert (after.status, after.token) == (STATUS.NEW, "start")

    do_view(process, FirstWinsFlow.slow, users["ann"])
    session.expire_all()
    # The late branch ends in the join that already fired: no second join, no second `after`.
    assert [t.node_name for t in process.tasks].count("join") == 1
    assert [t.node_name for t in process.tasks].count("after") == 1
    assert sorted(t.node_name for t in process.get_task(FirstWinsFlow.join).previous) == ["fast", "slow"]


# -- Job ----------------------------------------------------------------------------------


job_calls: list[tuple[int, str]] = []


def pack(activation: Any) -> None:
    job_calls.append((activation.task.id, activation.get_status().value))
    if activation.process.data.get("broken"):
        raise ValueError("the printer is out of paper")


class JobsFlow(Flow):
    start = flow.StartFunction().Next(this.pack)
    pack = flow.Job(pack).Next(this.end)
    end = flow.End()


def test_a_job_runs_inline_after_commit_and_continues_the_flow(session):
    job_calls.clear()
    process = JobsFlow.start.run()
    session.expire_all()
    job = process.get_task(JobsFlow.pack)
    assert job_calls == [(job.id, "STARTED")]
    assert job.status == STATUS.DONE
    assert job.external_task_id == f"webflow-task-{job.id}"
    assert job.attempts == 1
    assert job.started is not None and job.finished is not None
    assert process.get_task(JobsFlow.end).status == STATUS.DONE
    assert process.status == STATUS.DONE


def test_a_job_is_dispatched_only_once_its_transaction_committed(session, engine):
    seen: list[tuple[int, str]] = []

    def dispatcher(task_id: int, *rest: Any) -> None:
        with engine.connect() as conn:  # another connection sees only committed rows
            status = conn.scalar(sa.select(Task.status).where(Task.id == task_id))
        seen.append((task_id, status))

    core_jobs.set_dispatcher(dispatcher)
    process = JobsFlow.start.run()
    job = process.get_task(JobsFlow.pack)
    assert seen == [(job.id, STATUS.SCHEDULED)]
    assert run_job(job.id) == "done"
    assert run_job(job.id) == "skipped: task is DONE"
    assert run_job(10_000) == "missing"


def test_a_job_rolled_back_with_its_transaction_is_never_dispatched(session, held_jobs):
    class JobThenFailFlow(Flow):
        start = flow.StartFunction().Next(this.split)
        split = flow.Split().Next(this.pack).Next(this.boom)
        pack = flow.Job(pack).Next(this.join)
        boom = flow.Handler(lambda act: 1 / 0).Next(this.join)
        join = flow.Join().Next(this.end)
        end = flow.End()

    with pytest.raises(ZeroDivisionError):
        JobThenFailFlow.start.run()
    assert held_jobs == []
    assert count(session, Task) == 0


def test_a_failing_job_is_stored_as_error_and_can_be_retried(session):
    job_calls.clear()
    process = JobsFlow.start.run(broken=True)
    session.expire_all()
    job = process.get_task(JobsFlow.pack)
    assert job.status == STATUS.ERROR
    assert "the printer is out of paper" in job.comments
    assert "Traceback" in job.comments
    assert process.status == STATUS.NEW

    process.data = {"broken": False}
    session.commit()
    job.activate().retry()  # enqueued again; inline, it runs after the commit
    session.expire_all()
    assert job.status == STATUS.DONE
    assert job.attempts == 2
    assert process.status == STATUS.DONE


def test_a_canceled_job_is_skipped_by_the_worker(session, held_jobs):
    process = JobsFlow.start.run()
    job = process.get_task(JobsFlow.pack)
    assert held_jobs == [job.id]
    activation = job.activate()
    activation.undo()
    activation.cancel()
    job_calls.clear()
    assert run_job(job.id) == "skipped: task is CANCELED"
    assert job_calls == []


# -- End ----------------------------------------------------------------------------------


class EarlyEndFlow(Flow):
    start = flow.StartFunction().Next(this.split)
    split = flow.Split().Next(this.end).Next(this.review)
    review = flow.View().Next(this.end)
    end = flow.End()


def test_end_finishes_the_process_only_when_nothing_else_is_open(session, users):
    process = EarlyEndFlow.start.run()
    session.expire_all()
    end = process.get_task(EarlyEndFlow.end)
    assert end.status == STATUS.DONE
    assert process.status == STATUS.NEW  # the review is still open
    assert process.finished is None

    do_view(process, EarlyEndFlow.review, users["ann"])
    session.expire_all()
    ends = [t for t in process.tasks if t.node_name == "end"]
    assert [t.status for t in ends] == [STATUS.DONE, STATUS.DONE]
    assert process.status == STATUS.DONE
    assert process.finished is not None
