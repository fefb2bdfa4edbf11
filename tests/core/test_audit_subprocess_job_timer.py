"""Audit findings on subprocesses, job restarts and boundary timers (D3, D7, D9, D11).

Each test drives the engine from code as a caller would and asserts what the caller sees:
statuses, data and the audit trail. The ``session`` fixture runs each on SQLite and
PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from webflow import STATUS, Flow, TransitionNotAllowed, fire_due_timers, flow, this
from webflow.core import jobs as core_jobs
from webflow.core.jobs import run_job
from webflow.core.nodes.end import EndActivation
from webflow.core.nodes.timer import aware_utc
from webflow.models import Process, Task, TaskEvent, User


def of(session: Session, process: Process, node: str) -> list[Task]:
    session.expire_all()
    return list(session.scalars(sa.select(Task).where(Task.process_id == process.id, Task.node_name == node)
                                .order_by(Task.id)))


def statuses(session: Session, process: Process) -> dict[str, list[str]]:
    session.expire_all()
    found: dict[str, list[str]] = {}
    for task in session.scalars(sa.select(Task).where(Task.process_id == process.id).order_by(Task.id)):
        found.setdefault(task.node_name, []).append(task.status.value)
    return found


def trail(session: Session, task: Task) -> list[tuple[str, str | None, str | None]]:
    session.expire_all()
    return [(e.transition, e.from_status and e.from_status.value, e.to_status and e.to_status.value)
            for e in session.scalars(sa.select(TaskEvent).where(TaskEvent.task_id == task.id)
                                     .order_by(TaskEvent.id))]


def do_view(session: Session, task: Task, user: User, data: dict[str, Any] | None = None) -> None:
    session.expire_all()
    activation = task.activate()
    if task.status == STATUS.NEW:
        activation.assign(user)
    activation.prepare(data=data or {}, user=user)
    activation.done()


# -- D3: only the subprocess task's current child decides it -----------------------------------


class ChildFlow(Flow):
    start = flow.StartFunction().Next(this.buy)
    buy = flow.View().Next(this.end)
    end = flow.End()


class ParentFlow(Flow):
    start = flow.StartFunction().Next(this.sub)
    sub = (flow.Subprocess(ChildFlow.start, data=lambda act: {"n": act.process.data.get("n", 0)})
           .Next(this.after))
    after = flow.View().Next(this.end)
    end = flow.End()


def children(session: Session, task: Task) -> list[Process]:
    session.expire_all()
    return list(session.scalars(sa.select(Process).where(Process.parent_task_id == task.id)
                                .order_by(Process.id)))


def test_an_old_canceled_child_cannot_fail_the_task_after_retry_started_a_new_one(session, users):
    process = ParentFlow.start.run(n=1)
    (sub,) = of(session, process, "sub")
    (old,) = children(session, sub)
    old.cancel()
    session.expire_all()
    assert sub.status == STATUS.ERROR
    sub.activate().retry()
    old, new = children(session, sub)
    assert (old.status, new.status, sub.status) == (STATUS.CANCELED, STATUS.NEW, STATUS.STARTED)

    # A manager tries to bring the old child back: refused, or (if it ends again) ignored.
    (old_start,) = of(session, old, "start")
    try:
        old_start.activate().undo()
    except TransitionNotAllowed:
        pass
    session.expire_all()
    assert (sub.status, sub.comments) == (STATUS.STARTED, None)

    (buy,) = of(session, new, "buy")
    do_view(session, buy, users["root"], {"vendor": "NEW"})
    session.expire_all()
    assert new.status == STATUS.DONE
    assert sub.status == STATUS.DONE and sub.data == {"result": {"n": 1, "vendor": "NEW"}}
    assert [t.status for t in of(session, process, "after")] == [STATUS.NEW]
    assert [name for name, *_ in trail(session, sub)] == ["perform", "error", "retry", "done"]


def test_an_old_child_finishing_again_does_not_decide_the_task_after_undo_and_perform(session, users):
    process = ParentFlow.start.run(n=1)
    (sub,) = of(session, process, "sub")
    (old,) = children(session, sub)
    do_view(session, of(session, old, "buy")[0], users["root"], {"vendor": "OLD"})
    session.expire_all()
    assert sub.status == STATUS.DONE and sub.data == {"result": {"n": 1, "vendor": "OLD"}}
    of(session, process, "after")[0].activate().cancel()
    session.expire_all()
    sub.activate().undo()
    session.expire_all()
    sub.activate().perform()
    old, new = children(session, sub)
    assert (old.status, new.status, sub.status) == (STATUS.DONE, STATUS.NEW, STATUS.STARTED)
    assert sub.data == {}  # the old child's result went with it

    # The old child's End is undone and performed again: the parent's task is not its own any more.
    (old_end,) = of(session, old, "end")
    old_end.activate().undo()
    of(session, old, "end")[0].activate().perform()
    session.expire_all()
    assert old.status == STATUS.DONE
    assert sub.status == STATUS.STARTED and sub.data == {}
    assert [t.status for t in of(session, process, "after")] == [STATUS.CANCELED]

    do_view(session, of(session, new, "buy")[0], users["root"], {"vendor": "NEW"})
    session.expire_all()
    assert sub.status == STATUS.DONE and sub.data == {"result": {"n": 1, "vendor": "NEW"}}
    assert [t.status for t in of(session, process, "after")] == [STATUS.CANCELED, STATUS.NEW]
    assert [name for name, *_ in trail(session, sub)] == ["perform", "done", "undo", "perform", "note", "done"]
    ignored = session.scalars(sa.select(TaskEvent.comments).where(
        TaskEvent.task_id == sub.id, TaskEvent.transition == "note")).one()
    assert ignored == (f"subprocess {ChildFlow.process_title} #{old.id} ended (done) "
                       "after a newer one replaced it: ignored")


def test_a_reopened_old_child_is_canceled_when_perform_starts_a_new_one(session, users):
    process = ParentFlow.start.run(n=2)
    (sub,) = of(session, process, "sub")
    (old,) = children(session, sub)
    do_view(session, of(session, old, "buy")[0], users["root"], {"vendor": "OLD"})
    of(session, process, "after")[0].activate().cancel()
    of(session, old, "end")[0].activate().undo()  # the old child runs again (its End reopened)
    session.expire_all()
    assert old.status == STATUS.NEW and sub.status == STATUS.DONE
    sub.activate().undo()
    session.expire_all()
    sub.activate().perform()
    old, new = children(session, sub)
    assert (old.status, new.status, sub.status) == (STATUS.CANCELED, STATUS.NEW, STATUS.STARTED)
    assert sub.comments is None
    do_view(session, of(session, new, "buy")[0], users["root"], {"vendor": "NEW"})
    session.expire_all()
    assert sub.status == STATUS.DONE and sub.data == {"result": {"n": 2, "vendor": "NEW"}}


# -- D7: restart() of a job in ERROR runs it again ----------------------------------------------

FAIL = {"on": True}


def flaky(activation: Any) -> dict[str, Any]:
    if FAIL["on"]:
        raise RuntimeError("job failed")
    return {"ran": True}


class JobFlow(Flow):
    start = flow.StartFunction().Next(this.job)
    job = flow.Job(flaky).Next(this.end)
    end = flow.End()


def test_restart_of_a_job_in_error_runs_it_again_inline(session):
    FAIL["on"] = True
    process = JobFlow.start.run()  # inline: the job runs after the commit, and fails
    (job,) = of(session, process, "job")
    assert (job.status, job.attempts) == (STATUS.ERROR, 1)
    FAIL["on"] = False
    job.activate().restart()  # queued again; inline, it runs after the commit
    session.expire_all()
    assert (job.status, job.attempts) == (STATUS.DONE, 2)
    assert process.status == STATUS.DONE and process.data == {"ran": True}
    assert [name for name, *_ in trail(session, job)] == [
        "assign", "schedule", "start", "error", "retry", "start", "done"]


def test_restart_of_a_job_in_error_dispatches_a_new_job_id_after_commit(session):
    dispatched: list[tuple[int, str]] = []
    core_jobs.set_dispatcher(lambda task_id, job_id, *rest: dispatched.append((task_id, job_id)))
    FAIL["on"] = True
    process = JobFlow.start.run()
    (task_id, first), = dispatched
    assert run_job(task_id, token=first) == "error"
    FAIL["on"] = False
    (job,) = of(session, process, "job")
    job.activate().restart()
    session.expire_all()
    assert job.status == STATUS.SCHEDULED and job.attempts == 1
    assert len(dispatched) == 2 and dispatched[1] == (job.id, job.external_task_id)
    assert dispatched[1][1] != first
    assert run_job(task_id, token=first) == f"skipped: job {first} is not the task's current job " \
        f"{job.external_task_id}"
    assert run_job(task_id, token=dispatched[1][1]) == "done"
    session.expire_all()
    assert (job.status, job.attempts, process.status) == (STATUS.DONE, 2, STATUS.DONE)


def test_a_redelivered_running_job_still_restarts_in_place(session, held_jobs):
    """The queue ran the current job again after its run died: restart, as a new attempt."""
    FAIL["on"] = False

    class RetryFlow(Flow):
        start = flow.StartFunction().Next(this.job)
        job = flow.Job(flaky, retries=1).Next(this.end)
        end = flow.End()

    process = RetryFlow.start.run()
    (job,) = of(session, process, "job")
    job.activate().start()  # the first run died after it started
    session.expire_all()
    assert run_job(job.id, token=job.external_task_id) == "done"
    session.expire_all()
    assert (job.status, job.attempts) == (STATUS.DONE, 2)
    assert held_jobs == [job.id]  # the redelivery ran here: nothing queued again
    assert [name for name, *_ in trail(session, job)] == [
        "assign", "schedule", "start", "retry", "start", "done"]


# -- D9: a boundary timer in ERROR does not block its view task ---------------------------------


class BrokenEndActivation(EndActivation):
    def run_automatic(self) -> None:
        raise RuntimeError("what came after the timer failed")


class BrokenEnd(flow.End):
    """Fails when created, inside the timer's guard (a View's own callables fail softly)."""

    activation_class = BrokenEndActivation


class RemindFlow(Flow):
    start = flow.StartFunction().Next(this.approve)
    approve = flow.View().OnTimeout(this.nudge, after=timedelta(minutes=1), cancel=False).Next(this.end)
    nudge = BrokenEnd()
    end = flow.End()


def remind_with_failed_timer(session: Session) -> tuple[Process, Task, Task]:
    process = RemindFlow.start.run()
    (approve,) = of(session, process, "approve")
    assert fire_due_timers(now=aware_utc(approve.created) + timedelta(minutes=2), session=session) == 1
    (timer,) = of(session, process, "approve_timeout")
    assert timer.status == STATUS.ERROR and of(session, process, "nudge") == []
    return process, approve, timer


def test_a_view_whose_timer_is_in_error_can_still_be_completed(session, users):
    process, approve, timer = remind_with_failed_timer(session)
    do_view(session, approve, users["ann"])
    session.expire_all()
    assert (approve.status, timer.status, process.status) == (STATUS.DONE, STATUS.CANCELED, STATUS.DONE)
    assert trail(session, timer)[-2:] == [("undo", "ERROR", "NEW"), ("cancel", "NEW", "CANCELED")]


def test_a_view_whose_timer_is_in_error_can_still_be_canceled(session, users):
    process, approve, timer = remind_with_failed_timer(session)
    approve.activate().cancel()
    session.expire_all()
    assert (approve.status, timer.status) == (STATUS.CANCELED, STATUS.CANCELED)
    assert trail(session, timer)[-2:] == [("undo", "ERROR", "NEW"), ("cancel", "NEW", "CANCELED")]
    assert fire_due_timers(now=aware_utc(approve.created) + timedelta(days=1), session=session) == 0


# -- D11: a view reopened by undo times out again ----------------------------------------------


class EscalateFlow(Flow):
    start = flow.StartFunction().Next(this.approve)
    approve = flow.View().OnTimeout(this.boss, after=timedelta(minutes=2)).Next(this.after)
    after = flow.View().Next(this.end)
    boss = flow.View().Next(this.end)
    end = flow.End()


class RearmingEscalateFlow(EscalateFlow):
    """Until ``ViewActivation.undo`` re-arms the timers itself, a flow's undo hook can."""

    def approve_undo(self, activation: Any) -> None:
        self.approve.rearm_timers(activation)


def reopen_approval(session: Session, flow_class: type[Flow], users: dict[str, User]) -> tuple[Process, Task]:
    process = flow_class.start.run()  # type: ignore[attr-defined]
    (approve,) = of(session, process, "approve")
    do_view(session, approve, users["ann"])
    of(session, process, "after")[0].activate().cancel()
    session.expire_all()
    approve.activate().undo()
    session.expire_all()
    assert approve.status == STATUS.NEW
    return process, approve


def test_rearm_timers_gives_a_reopened_view_its_timeout_again(session, users):
    process, approve = reopen_approval(session, RearmingEscalateFlow, users)
    old, new = of(session, process, "approve_timeout")
    assert (old.status, new.status) == (STATUS.CANCELED, STATUS.SCHEDULED)
    assert aware_utc(new.due) == aware_utc(approve.created) + timedelta(minutes=2)
    assert [t.id for t in new.previous] == [approve.id]
    assert fire_due_timers(now=aware_utc(approve.created) + timedelta(days=1), session=session) == 1
    session.expire_all()
    assert approve.status == STATUS.CANCELED
    assert [t.status for t in of(session, process, "boss")] == [STATUS.NEW]


def test_rearm_timers_repeats_no_timer_that_still_waits(session, users):
    process = RearmingEscalateFlow.start.run()
    (approve,) = of(session, process, "approve")
    RearmingEscalateFlow.approve.rearm_timers(approve.activate())
    assert [t.status for t in of(session, process, "approve_timeout")] == [STATUS.SCHEDULED]


def test_a_view_reopened_by_undo_times_out_again(session, users):
    process, approve = reopen_approval(session, EscalateFlow, users)
    assert fire_due_timers(now=aware_utc(approve.created) + timedelta(days=1), session=session) == 1
    session.expire_all()
    assert approve.status == STATUS.CANCELED
    assert statuses(session, process)["boss"] == ["NEW"]
