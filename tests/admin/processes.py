"""Processes of the repair flow in the states the admin tests start from."""

from __future__ import annotations

from typing import Any

from admin_flows import RepairFlow

from webflow import STATUS, Context, db
from webflow.models import Process, Task, TaskEvent, User


def _user(name: str) -> User:
    return db.session.scalar(db.select(User).where(User.username == name))


def review_new() -> Process:
    """A process whose review task waits in the queue."""
    return RepairFlow.start.run(card="valid")


def review_assigned() -> Process:
    """A process whose review task is assigned to the clerk."""
    process = review_new()
    process.get_task(RepairFlow.review).activate().assign(_user("clerk"))
    return process


def charge_error() -> Process:
    """A process whose charge handler failed on an expired card (the review is done)."""
    process = RepairFlow.start.run(card="expired")
    clerk = _user("clerk")
    with Context(propagate_exception=False, user=clerk):
        activation = process.get_task(RepairFlow.review).activate()
        activation.assign(clerk)
        activation.prepare(data={"approved": True}, user=clerk)
        activation.done()
    return process


def fix_card(process: Process) -> None:
    """What the administrator does about the expired card: put a valid one in the data."""
    process.data = {**process.data, "card": "valid"}
    db.session.commit()


def charge_fixed() -> Process:
    """A failed charge whose data is fixed: ready to retry."""
    process = charge_error()
    fix_card(process)
    return process


def charge_new() -> Process:
    """A failed charge undone back to NEW, data fixed: ready to perform."""
    process = charge_fixed()
    process.get_task(RepairFlow.charge).activate().undo()
    return process


def charge_canceled() -> Process:
    """A failed charge undone and canceled, data fixed: the review may activate it again."""
    process = charge_new()
    process.get_task(RepairFlow.charge).activate().cancel()
    return process


def finished() -> Process:
    """A process run to its end."""
    process = review_new()
    clerk = _user("clerk")
    activation = process.get_task(RepairFlow.review).activate()
    activation.assign(clerk)
    activation.prepare(data={"approved": True}, user=clerk)
    activation.done()
    return process


def snapshot(process: Process) -> tuple[Any, ...]:
    """Everything an action could change: process status and data, tasks, audit trail."""
    db.session.commit()  # end the read snapshot: see what the requests committed
    tasks = db.session.scalars(db.select(Task).where(Task.process_id == process.id).order_by(Task.id))
    events = db.session.scalar(db.select(db.func.count()).select_from(TaskEvent)
                               .where(TaskEvent.process_id == process.id))
    fresh = db.session.get(Process, process.id)
    return (fresh.status, dict(fresh.data),
            [(t.id, t.node_name, t.status, t.owner_id) for t in tasks], events)


def task(process: Process, node: str, status: STATUS | None = None) -> Task:
    """The latest task of the node in the process."""
    db.session.commit()  # end the read snapshot: see what the requests committed
    query = db.select(Task).where(Task.process_id == process.id, Task.node_name == node)
    if status is not None:
        query = query.where(Task.status == status)
    return db.session.scalars(query.order_by(Task.id.desc())).first()
