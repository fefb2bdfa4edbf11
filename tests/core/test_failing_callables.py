"""A flow's callable that fails while the engine creates the next task (``.Assign``,
``.onCreate``, ``.Due``/``.Priority``, a Timer's ``wait``) is the flow's bug, not the work
of the person who finished the task before: under the web policy their task is done, and
the failure lands on the new task (a Timer in ERROR; a View, which has no ERROR, waits
unassigned in the queue with the traceback in its trail). Under the code policy the call
raises and nothing is written."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from webflow import STATUS, Context, Flow, flow, this
from webflow.core.models import utcnow
from webflow.core.timers import fire_due_timers
from webflow.models import Process, TaskEvent, User


def boom(activation: Any) -> Any:
    raise RuntimeError("the flow's callable failed")


class AssignFlow(Flow):
    start = flow.StartFunction().Next(this.v)
    v = flow.View().Next(this.w)
    w = flow.View().Assign(boom).Next(this.end)
    end = flow.End()


class OnCreateFlow(Flow):
    start = flow.StartFunction().Next(this.v)
    v = flow.View().Next(this.w)
    w = flow.View().onCreate(boom).Next(this.end)
    end = flow.End()


class DueFlow(Flow):
    start = flow.StartFunction().Next(this.v)
    v = flow.View().Next(this.w)
    w = flow.View().Due(boom).Priority(3).Next(this.end)
    end = flow.End()


class PriorityFlow(Flow):
    start = flow.StartFunction().Next(this.v)
    v = flow.View().Next(this.w)
    w = flow.View().Due(timedelta(days=1)).Priority(boom).Next(this.end)
    end = flow.End()


class WaitFlow(Flow):
    start = flow.StartFunction().Next(this.v)
    v = flow.View().Next(this.w)
    w = flow.Timer(boom).Next(this.end)
    end = flow.End()


def finish_v(session: Any, process: Process, user: User) -> None:
    session.expire_all()
    task = next(t for t in process.tasks if t.node_name == "v")
    activation = task.activate()
    activation.assign(user)
    activation.prepare(data={}, user=user)
    activation.done()
    session.commit()
    session.expire_all()


def task_w(process: Process) -> Any:
    return next(t for t in process.tasks if t.node_name == "w")


def errors_of(session: Any, task: Any) -> list[str]:
    return list(session.scalars(sa.select(TaskEvent.comments).where(
        TaskEvent.task_id == task.id, TaskEvent.transition == "error")))


@pytest.mark.parametrize("flow_class", [AssignFlow, OnCreateFlow, DueFlow, PriorityFlow])
def test_a_views_callable_fails_softly_under_the_web_policy(session, root, flow_class):
    process = flow_class.start.run()
    session.commit()
    with Context(propagate_exception=False):
        finish_v(session, process, root)
    assert {t.node_name: t.status for t in process.tasks}["v"] == STATUS.DONE
    w = task_w(process)
    assert (w.status, w.owner_id) == (STATUS.NEW, None)  # in the queue for whoever may take it
    if flow_class is DueFlow:
        assert (w.due, w.priority) == (None, 0)          # nothing half-applied
    [trace] = errors_of(session, w)
    assert "the flow's callable failed" in trace and "Traceback" in trace


@pytest.mark.parametrize("flow_class", [AssignFlow, OnCreateFlow, DueFlow, WaitFlow])
def test_under_the_code_policy_the_failure_raises_and_nothing_is_written(session, root, flow_class):
    process = flow_class.start.run()
    session.commit()
    with pytest.raises(RuntimeError, match="the flow's callable failed"):
        finish_v(session, process, root)
    session.rollback()
    session.expire_all()
    assert [t.node_name for t in process.tasks if t.node_name == "w"] == []
    assert {t.node_name: t.status for t in process.tasks}["v"] == STATUS.ASSIGNED


def test_a_timers_failing_wait_is_the_timers_error_and_retry_fires_it(session, root):
    process = WaitFlow.start.run()
    session.commit()
    with Context(propagate_exception=False):
        finish_v(session, process, root)
        w = task_w(process)
        assert w.status == STATUS.ERROR and "the flow's callable failed" in w.comments
        assert fire_due_timers(now=utcnow() + timedelta(days=365), session=session) == 0  # not due: failed
        w.activate().retry()
        session.commit()
    session.expire_all()
    assert task_w(process).status == STATUS.DONE and process.status == STATUS.DONE
