"""A queued or failed task in a region whose join fired can still be canceled (undone on
its way to CANCELED: it never reached the join): by the join's ``cancel_rest``, by a
terminating End, and by a process cancel. Before, the rule that keeps a reopened task
from reaching a fired join twice refused it, and each of the three failed."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from webflow import STATUS, Context, Flow, flow, this
from webflow.models import Process, TaskEvent, User


def job(activation: Any) -> None:
    activation.process.data = {**activation.process.data, "job ran": True}


class CancelRestFlow(Flow):
    start = flow.StartFunction().Next(this.split)
    split = flow.Split().Next(this.approve).Next(this.auto)
    approve = flow.View().Next(this.join)
    auto = flow.Job(job).Next(this.join)
    join = flow.Join(wait_all=False, cancel_rest=True).Next(this.end)
    end = flow.End()


class TerminateFlow(Flow):
    start = flow.StartFunction().Next(this.split)
    split = flow.Split().Next(this.approve).Next(this.auto)
    approve = flow.View().Next(this.join)
    auto = flow.Job(job).Next(this.join)
    join = flow.Join(wait_all=False).Next(this.end)
    end = flow.End(terminate=True)


class FirstWinsFlow(Flow):
    start = flow.StartFunction().Next(this.split)
    split = flow.Split().Next(this.approve).Next(this.auto)
    approve = flow.View().Next(this.join)
    auto = flow.Job(job).Next(this.join)
    join = flow.Join(wait_all=False).Next(this.after)
    after = flow.View().Next(this.end)
    end = flow.End()


def approve(session: Any, process: Process, user: User, propagate: bool) -> None:
    session.expire_all()
    task = next(t for t in process.tasks if t.node_name == "approve")
    with Context(propagate_exception=propagate):
        activation = task.activate()
        activation.assign(user)
        activation.prepare(data={}, user=user)
        activation.done()
    session.commit()
    session.expire_all()


def statuses(process: Process) -> dict[str, STATUS]:
    return {t.node_name: t.status for t in process.tasks}


@pytest.mark.parametrize("propagate", [True, False])
@pytest.mark.parametrize("flow_class", [CancelRestFlow, TerminateFlow])
def test_the_queued_job_is_canceled_and_the_process_ends(session, root, held_jobs, flow_class, propagate):
    process = flow_class.start.run()
    session.commit()
    assert statuses(process)["auto"] == STATUS.SCHEDULED and len(held_jobs) == 1
    approve(session, process, root, propagate)
    assert process.status == STATUS.DONE
    assert statuses(process) == {"start": STATUS.DONE, "split": STATUS.DONE, "approve": STATUS.DONE,
                                 "auto": STATUS.CANCELED, "join": STATUS.DONE, "end": STATUS.DONE}
    auto = next(t for t in process.tasks if t.node_name == "auto")
    trail = session.scalars(sa.select(TaskEvent.transition).where(TaskEvent.task_id == auto.id)
                            .order_by(TaskEvent.id)).all()
    assert trail[-2:] == ["undo", "cancel"]
    assert "job ran" not in process.data


def test_a_process_whose_first_wins_join_fired_can_be_canceled(session, root, held_jobs):
    process = FirstWinsFlow.start.run()
    session.commit()
    approve(session, process, root, True)
    assert statuses(process)["after"] == STATUS.NEW and statuses(process)["auto"] == STATUS.SCHEDULED
    process.cancel()
    session.commit()
    session.expire_all()
    assert process.status == STATUS.CANCELED
    assert statuses(process)["auto"] == STATUS.CANCELED and statuses(process)["after"] == STATUS.CANCELED
