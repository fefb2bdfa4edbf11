"""Time, driven by ``fire_due_timers(now=...)``: due dates, priorities, Timer, OnTimeout."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from webflow import STATUS, Context, Flow, FlowRuntimeError, TransitionNotAllowed, fire_due_timers, flow, this
from webflow.core.nodes.timer import aware_utc
from webflow.models import Process, Task, TaskEvent, User

HOUR = timedelta(hours=1)


def tasks_of(session: Any, process: Process) -> list[tuple[str, str]]:
    session.expire_all()
    return [(t.node_name, t.status.value) for t in session.get(Process, process.id).tasks]


def only(session: Any, process: Process, node: str) -> Task:
    rows = session.scalars(sa.select(Task).where(Task.process_id == process.id, Task.node_name == node)
                           .order_by(Task.id)).all()
    assert len(rows) == 1, rows
    return rows[0]


def created_at(task: Task) -> datetime:
    return aware_utc(task.created)


def do_view(task: Task, user: User, data: dict[str, Any] | None = None) -> None:
    activation = task.activate()
    if task.status == STATUS.NEW:
        activation.assign(user)
    activation.prepare(data=data or {}, user=user)
    activation.done()


class WaitFlow(Flow):
    start = flow.StartFunction().Next(this.wait)
    wait = flow.Timer(HOUR).Next(this.after)
    after = flow.Handler(this.note).Next(this.end)
    end = flow.End()

    def note(self, activation: Any) -> None:
        activation.process.data = {**activation.process.data, "ran": activation.process.data.get("ran", 0) + 1}


def until_first_of_next_month(activation: Any) -> datetime:
    created = aware_utc(activation.task.created)
    return datetime(created.year + created.month // 12, created.month % 12 + 1, 1, tzinfo=UTC)


class CalendarFlow(Flow):
    start = flow.StartFunction().Next(this.wait)
    wait = flow.Timer(until_first_of_next_month).Next(this.end)
    end = flow.End()


class ApprovalFlow(Flow):
    start = flow.StartFunction().Next(this.approve)
    approve = (flow.View().Permission(auto_create=True)
               .Due(lambda act: timedelta(days=act.process.data.get("days", 2)))
               .Priority(lambda act: act.process.data.get("priority", 0))
               .OnTimeout(this.escalate, after=timedelta(minutes=5))
               .OnTimeout(this.remind, after=timedelta(minutes=2), cancel=False)
               .Next(this.end))
    escalate = flow.View().Assign(username="root").Priority(10).Next(this.end)
    remind = flow.Handler(this.send_reminder)
    end = flow.End()

    def send_reminder(self, activation: Any) -> None:
        activation.process.data = {**activation.process.data, "reminded": True}


class DueTimeoutFlow(Flow):
    start = flow.StartFunction().Next(this.approve)
    approve = flow.View().Due(timedelta(hours=3)).OnTimeout(this.escalate).Next(this.end)
    escalate = flow.Handler(lambda act: None).Next(this.end)
    end = flow.End()


# -- due dates and priorities ---------------------------------------------------------------


def test_due_and_priority_are_stored_when_the_task_is_created(session, users):
    process = ApprovalFlow.start.run(days=3, priority=7)
    task = only(session, process, "approve")
    assert aware_utc(task.due) - created_at(task) == timedelta(days=3)
    assert task.priority == 7
    plain = WaitFlow.start.run()
    assert only(session, plain, "wait").priority == 0


def test_bad_builder_arguments_fail_when_the_flow_is_defined():
    with pytest.raises(FlowRuntimeError, match="Due"):
        flow.View().Due("tomorrow")  # type: ignore[arg-type]
    with pytest.raises(FlowRuntimeError, match="Priority"):
        flow.View().Priority("high")  # type: ignore[arg-type]
    with pytest.raises(FlowRuntimeError, match="Timer"):
        flow.Timer(5)  # type: ignore[arg-type]
    with pytest.raises(FlowRuntimeError, match="after"):
        flow.View().OnTimeout(this.x, after=-HOUR)
    with pytest.raises(FlowRuntimeError, match="needs .Due"):
        class NoDueFlow(Flow):
            start = flow.StartFunction().Next(this.approve)
            approve = flow.View().OnTimeout(this.end).Next(this.end)
            end = flow.End()
    with pytest.raises(FlowRuntimeError, match="unknown node 'nowhere'"):
        class BadTargetFlow(Flow):
            start = flow.StartFunction().Next(this.approve)
            approve = flow.View().OnTimeout(this.nowhere, after=HOUR).Next(this.end)
            end = flow.End()


def test_a_callable_priority_that_is_not_an_int_rolls_the_start_back(session):
    with pytest.raises(FlowRuntimeError, match="priority must be an int"):
        ApprovalFlow.start.run(priority="high")
    assert session.scalar(sa.select(sa.func.count()).select_from(Process)) == 0


# -- Timer ------------------------------------------------------------------------------------


def test_a_timer_waits_scheduled_and_fires_once_at_its_time_not_before(session):
    process = WaitFlow.start.run()
    timer = only(session, process, "wait")
    assert timer.status == STATUS.SCHEDULED
    due = aware_utc(timer.due)
    assert due - created_at(timer) == HOUR

    assert fire_due_timers(now=due - timedelta(seconds=1)) == 0
    assert tasks_of(session, process) == [("start", "DONE"), ("wait", "SCHEDULED")]

    assert fire_due_timers(now=due) == 1
    assert tasks_of(session, process) == [
        ("start", "DONE"), ("wait", "DONE"), ("after", "DONE"), ("end", "DONE")]
    assert session.get(Process, process.id).status == STATUS.DONE
    assert fire_due_timers(now=due + timedelta(days=30)) == 0
    assert session.get(Process, process.id).data == {"ran": 1}
    fires = session.scalars(sa.select(TaskEvent.transition).where(TaskEvent.task_id == timer.id)
                            .order_by(TaskEvent.id)).all()
    assert fires == ["schedule", "fire"]


def test_a_timer_that_fired_late_still_fires_when_something_runs_again(session):
    process = WaitFlow.start.run()
    due = aware_utc(only(session, process, "wait").due)
    # nothing ran for a week
    assert fire_due_timers(now=due + timedelta(days=7)) == 1
    assert session.get(Process, process.id).status == STATUS.DONE


def test_a_timer_wait_can_be_a_callable_returning_a_datetime(session):
    process = CalendarFlow.start.run()
    timer = only(session, process, "wait")
    due = aware_utc(timer.due)
    assert due.day == 1 and due.hour == 0 and due > created_at(timer)
    assert fire_due_timers(now=due - timedelta(minutes=1)) == 0
    assert fire_due_timers(now=due) == 1


def test_many_timers_each_fire_exactly_once_across_batches(session):
    processes = [WaitFlow.start.run() for _ in range(130)]  # more than one batch of 100
    later = datetime.now(UTC) + 2 * HOUR
    assert fire_due_timers(now=later) == 130
    assert fire_due_timers(now=later) == 0
    session.expire_all()
    assert {session.get(Process, p.id).data["ran"] for p in processes} == {1}


def test_a_waiting_timer_can_be_canceled_and_then_never_fires(session):
    process = WaitFlow.start.run()
    timer = only(session, process, "wait")
    assert {t.name for t in timer.activate().get_available_transitions()} == {"fire", "reschedule", "cancel"}
    timer.activate().cancel()
    assert fire_due_timers(now=datetime.now(UTC) + 2 * HOUR) == 0
    assert tasks_of(session, process) == [("start", "DONE"), ("wait", "CANCELED")]


def test_canceling_the_process_drops_its_timers(session, users):
    waiting = WaitFlow.start.run()
    approval = ApprovalFlow.start.run()
    waiting.cancel()
    approval.cancel()
    assert fire_due_timers(now=datetime.now(UTC) + timedelta(days=30)) == 0
    statuses = {name: status for name, status in tasks_of(session, approval)}
    assert statuses == {"start": "DONE", "approve": "CANCELED", "approve_timeout": "CANCELED",
                        "approve_timeout_2": "CANCELED"}
    assert dict(tasks_of(session, waiting))["wait"] == "CANCELED"


def test_reschedule_moves_the_fire_time_and_is_audited(session):
    process = WaitFlow.start.run()
    timer = only(session, process, "wait")
    new_time = datetime.now(UTC) + timedelta(days=2)
    timer.activate().reschedule(new_time)
    session.expire_all()
    timer = session.get(Task, timer.id)
    assert aware_utc(timer.due) == new_time
    assert fire_due_timers(now=new_time - timedelta(minutes=1)) == 0
    assert fire_due_timers(now=new_time) == 1
    comment = session.scalar(sa.select(TaskEvent.comments).where(
        TaskEvent.task_id == timer.id, TaskEvent.transition == "reschedule"))
    assert comment and new_time.isoformat() in comment


def test_undo_of_a_fired_timer_then_schedule_again(session):
    class TimerThenViewFlow(Flow):
        start = flow.StartFunction().Next(this.wait)
        wait = flow.Timer(HOUR).Next(this.work)
        work = flow.View().Next(this.end)
        end = flow.End()

    process = TimerThenViewFlow.start.run()
    timer = only(session, process, "wait")
    assert fire_due_timers(now=aware_utc(timer.due)) == 1
    with pytest.raises(TransitionNotAllowed, match="not canceled"):
        timer.activate().undo()
    only(session, process, "work").activate().cancel()
    timer.activate().undo()
    assert session.get(Task, timer.id).status == STATUS.NEW
    timer.activate().schedule()
    assert session.get(Task, timer.id).status == STATUS.SCHEDULED


def test_a_failing_step_after_a_timer_is_stored_as_error_on_the_timer_and_retried(session):
    class FailingAfterTimerFlow(Flow):
        start = flow.StartFunction().Next(this.wait)
        wait = flow.Timer(HOUR).Next(this.work)
        work = flow.Handler(this.boom).Next(this.end)
        end = flow.End()

        def boom(self, activation: Any) -> None:
            if activation.process.data.get("fail"):
                raise RuntimeError("boom")

    failing = FailingAfterTimerFlow.start.run(fail=True)
    fine = WaitFlow.start.run()
    assert fire_due_timers(now=datetime.now(UTC) + 2 * HOUR) == 2
    assert dict(tasks_of(session, failing)) == {"start": "DONE", "wait": "DONE", "work": "ERROR"}
    assert session.get(Process, fine.id).status == STATUS.DONE


# -- OnTimeout ----------------------------------------------------------------------------------


def test_on_timeout_reminds_with_cancel_false_and_escalates_with_cancel_true(session, users):
    process = ApprovalFlow.start.run()
    view = only(session, process, "approve")
    created = created_at(view)
    view.activate().assign(users["ann"])

    assert fire_due_timers(now=created + timedelta(minutes=1)) == 0
    # the reminder: the view task stays open (and assigned)
    assert fire_due_timers(now=created + timedelta(minutes=2)) == 1
    session.expire_all()
    assert session.get(Task, view.id).status == STATUS.ASSIGNED
    assert session.get(Process, process.id).data == {"reminded": True}
    # the escalation: the view task is canceled, the escalation created on its token
    assert fire_due_timers(now=created + timedelta(minutes=5)) == 1
    session.expire_all()
    assert session.get(Task, view.id).status == STATUS.CANCELED
    escalation = only(session, process, "escalate")
    assert (escalation.status, escalation.token, escalation.owner.username, escalation.priority) == (
        STATUS.ASSIGNED, view.token, "root", 10)
    assert [t.node_name for t in escalation.previous] == ["approve_timeout"]
    do_view(escalation, users["root"])
    assert session.get(Process, process.id).status == STATUS.DONE
    assert fire_due_timers(now=created + timedelta(days=30)) == 0


def test_a_view_done_in_time_never_times_out(session, users):
    process = ApprovalFlow.start.run()
    view = only(session, process, "approve")
    do_view(view, users["ann"])
    assert fire_due_timers(now=created_at(view) + timedelta(days=30)) == 0
    assert dict(tasks_of(session, process)) == {
        "start": "DONE", "approve": "DONE", "approve_timeout": "CANCELED",
        "approve_timeout_2": "CANCELED", "end": "DONE"}
    assert session.get(Process, process.id).data == {}


def test_a_view_canceled_by_a_manager_drops_its_timers(session, users):
    process = ApprovalFlow.start.run()
    view = only(session, process, "approve")
    view.activate().cancel()
    assert fire_due_timers(now=created_at(view) + timedelta(days=30)) == 0
    assert only(session, process, "approve_timeout").status == STATUS.CANCELED


def test_on_timeout_without_after_fires_at_the_due_date(session, users):
    process = DueTimeoutFlow.start.run()
    view = only(session, process, "approve")
    timer = only(session, process, "approve_timeout")
    assert aware_utc(timer.due) == aware_utc(view.due)
    assert fire_due_timers(now=aware_utc(view.due) - timedelta(seconds=1)) == 0
    assert fire_due_timers(now=aware_utc(view.due)) == 1
    assert dict(tasks_of(session, process)) == {
        "start": "DONE", "approve": "CANCELED", "approve_timeout": "DONE", "escalate": "DONE", "end": "DONE"}


def test_undo_of_an_escalation_reopens_the_approval(session, users):
    process = ApprovalFlow.start.run()
    view = only(session, process, "approve")
    created = created_at(view)
    assert fire_due_timers(now=created + timedelta(minutes=5)) == 2  # reminder and escalation
    escalation = only(session, process, "escalate")
    timeout = only(session, process, "approve_timeout")
    with pytest.raises(TransitionNotAllowed):
        timeout.activate().undo()  # the escalation task is still open
    with Context(user=users["root"]):
        escalation.activate().unassign()
        escalation.activate().cancel()
        timeout.activate().undo()
    session.expire_all()
    approvals = session.scalars(sa.select(Task).where(Task.process_id == process.id,
                                                      Task.node_name == "approve").order_by(Task.id)).all()
    assert [a.status for a in approvals] == [STATUS.CANCELED, STATUS.NEW]
    reopened = approvals[1]
    assert reopened.token == view.token and reopened.previous == [session.get(Task, timeout.id)]
    assert session.get(Task, timeout.id).status == STATUS.NEW
    # the reopened approval has timers of its own; done in time, everything is closed
    do_view(reopened, users["ann"])
    assert fire_due_timers(now=datetime.now(UTC) + timedelta(days=30)) == 0
    session.expire_all()
    assert session.get(Process, process.id).status == STATUS.DONE
    open_tasks = session.scalars(sa.select(Task).where(
        Task.process_id == process.id, Task.status.not_in([STATUS.DONE, STATUS.CANCELED]))).all()
    assert open_tasks == []


def test_timeouts_in_parallel_branches_watch_their_own_branch(session, users):
    class ReviewFlow(Flow):
        start = flow.StartFunction().Next(this.split)
        split = flow.Split().Next(this.review).Next(this.review)
        review = flow.View().OnTimeout(this.late, after=HOUR).Next(this.join)
        late = flow.Handler(lambda act: None).Next(this.join)
        join = flow.Join().Next(this.end)
        end = flow.End()

    process = ReviewFlow.start.run()
    reviews = session.scalars(sa.select(Task).where(Task.process_id == process.id,
                                                    Task.node_name == "review").order_by(Task.id)).all()
    do_view(reviews[0], users["ann"])
    assert fire_due_timers(now=datetime.now(UTC) + 2 * HOUR) == 1  # only b's timer was still waiting
    session.expire_all()
    assert session.get(Process, process.id).status == STATUS.DONE
    timers = session.scalars(sa.select(Task).where(Task.process_id == process.id,
                                                   Task.node_name == "review_timeout").order_by(Task.id)).all()
    assert [(t.token, t.status) for t in timers] == [
        (reviews[0].token, STATUS.CANCELED), (reviews[1].token, STATUS.DONE)]


def test_a_timer_task_cannot_be_fired_twice_by_hand(session):
    process = WaitFlow.start.run()
    timer = only(session, process, "wait")
    timer.activate().fire()
    with pytest.raises(TransitionNotAllowed):
        timer.activate().fire()
    assert session.get(Process, process.id).data == {"ran": 1}


def test_a_time_budget_leaves_the_rest_for_the_next_call(session):
    for _ in range(3):
        WaitFlow.start.run()
    later = datetime.now(UTC) + 2 * HOUR
    assert fire_due_timers(now=later, max_seconds=0) == 0
    assert fire_due_timers(now=later) == 3
