"""A canceled process is final: none of its tasks moves again but to CANCELED, and undoing
the start (which cancels the process) is refused while other tasks of it are alive."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from webflow import STATUS, Flow, TransitionNotAllowed, flow, this
from webflow.core.models import utcnow
from webflow.core.timers import fire_due_timers
from webflow.models import Process, Task, TaskEvent, User


class TwoEndsFlow(Flow):
    start = flow.StartFunction().Next(this.split)
    split = flow.Split().Next(this.a).Next(this.b)
    a = flow.View().Next(this.end_a)
    end_a = flow.End()
    b = flow.View().Next(this.end_b)
    end_b = flow.End()


class LineFlow(Flow):
    start = flow.StartFunction().Next(this.v)
    v = flow.View().Next(this.w)
    w = flow.View().Next(this.end)
    end = flow.End()


class EscalationFlow(Flow):
    start = flow.StartFunction().Next(this.approve)
    approve = flow.View().OnTimeout(this.boss, after=timedelta(minutes=2)).Next(this.end)
    boss = flow.View().Next(this.end)
    end = flow.End()


def task_of(session: Any, process: Process, node: str) -> Task:
    session.expire_all()
    return max((t for t in process.tasks if t.node_name == node), key=lambda t: t.id)


def complete(session: Any, process: Process, node: str, user: User) -> None:
    activation = task_of(session, process, node).activate()
    activation.assign(user)
    activation.prepare(data={}, user=user)
    activation.done()


def snapshot(session: Any, process: Process) -> tuple[Any, ...]:
    session.expire_all()
    return (process.status, sorted((t.id, t.node_name, t.status) for t in process.tasks),
            session.scalar(sa.select(sa.func.count()).select_from(TaskEvent)
                           .where(TaskEvent.process_id == process.id)))


def test_an_end_reached_before_the_cancel_cannot_be_undone_or_performed(session, root):
    process = TwoEndsFlow.start.run()
    complete(session, process, "a", root)   # branch a reaches its End, b is still open
    session.expire_all()
    process.cancel()
    before = snapshot(session, process)
    end_a = task_of(session, process, "end_a")
    assert end_a.status == STATUS.DONE
    assert end_a.activate().get_available_transitions() == []
    with pytest.raises(TransitionNotAllowed, match="its process was canceled"):
        end_a.activate().undo()
    assert snapshot(session, process) == before  # still CANCELED, nothing reopened


def test_a_done_task_of_a_canceled_process_is_not_reopened_nor_continued(session, root):
    process = LineFlow.start.run()
    complete(session, process, "v", root)
    session.expire_all()
    process.cancel()
    before = snapshot(session, process)
    v = task_of(session, process, "v")
    for step in ("undo", "activate_next"):
        with pytest.raises(TransitionNotAllowed, match="its process was canceled"):
            getattr(v.activate(), step)()
    assert snapshot(session, process) == before


def test_an_undone_start_of_a_canceled_process_can_only_be_canceled(session, root):
    process = LineFlow.start.run()
    task_of(session, process, "v").activate().cancel()
    task_of(session, process, "start").activate().undo()   # cancels the process
    session.expire_all()
    assert process.status == STATUS.CANCELED
    start = task_of(session, process, "start")
    assert [t.name for t in start.activate().get_available_transitions()] == ["cancel"]
    before = snapshot(session, process)
    with pytest.raises(TransitionNotAllowed, match="its process was canceled"):
        start.activate().prepare(data={"again": 1})
    assert snapshot(session, process) == before
    start.activate().cancel()                               # tidying is allowed
    session.expire_all()
    assert process.status == STATUS.CANCELED
    assert {t.status for t in process.tasks} == {STATUS.CANCELED}


def test_canceling_a_process_still_cancels_each_task_through_its_transitions(session, root):
    process = TwoEndsFlow.start.run()
    task_of(session, process, "a").activate().assign(root)
    session.expire_all()
    process.cancel()
    session.expire_all()
    assert process.status == STATUS.CANCELED
    assert {t.node_name: t.status for t in process.tasks if t.node_name in ("a", "b")} == {
        "a": STATUS.CANCELED, "b": STATUS.CANCELED}


@pytest.mark.parametrize("escalated_first", [True, False])
def test_undo_of_the_start_is_refused_while_another_task_is_alive(session, root, escalated_first):
    process = EscalationFlow.start.run()
    if escalated_first:
        # The timeout cancels approve and opens boss: the start's only next task is
        # canceled, but the process is not empty.
        assert fire_due_timers(now=utcnow() + timedelta(minutes=3), session=session) == 1
    else:
        task_of(session, process, "approve").activate().cancel()
    start = task_of(session, process, "start")
    if escalated_first:
        assert "undo" not in [t.name for t in start.activate().get_available_transitions()]
        before = snapshot(session, process)
        with pytest.raises(TransitionNotAllowed, match="other unfinished tasks: cancel the process instead"):
            start.activate().undo()
        assert snapshot(session, process) == before
        session.expire_all()
        process.cancel()                                    # what the message says to do
        session.expire_all()
        assert {t.status for t in process.tasks} <= {STATUS.DONE, STATUS.CANCELED}
    else:
        start.activate().undo()                             # nothing else alive: allowed
        session.expire_all()
        assert process.status == STATUS.CANCELED
