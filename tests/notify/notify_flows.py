"""Flows of the notification tests: a review with a due date, an assignment at creation,
and an assignment that a failing node after it rolls back."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from webflow import Flow, flow, this
from webflow.core.context import get_session
from webflow.models import User


def user_named(name: str) -> User:
    return get_session().scalar(sa.select(User).where(User.username == name))


class NoticeFlow(Flow):
    """Notice review

    A review task in the queue, due an hour after it was created."""

    start = flow.StartFunction().Next(this.review)
    review = flow.View().Permission(auto_create=True).Due(timedelta(hours=1)).Next(this.end)
    end = flow.End()


class AutoAssignFlow(Flow):
    """Auto assign

    The approval goes straight to the user named in the process data."""

    start = flow.StartFunction().Next(this.approve)
    approve = (flow.View().Permission(auto_create=True)
               .Assign(lambda act: user_named(act.process.data["approver"])).Next(this.end))
    end = flow.End()


def explode(activation: object) -> None:
    raise RuntimeError("onCreate failed after the assignment")


class BrokenAfterAssignFlow(Flow):
    """Broken after assign

    A handler whose next task is assigned and then its onCreate fails: the task's own
    savepoint rolls the assignment back and the task waits unassigned in the queue."""

    start = flow.StartFunction().Next(this.prepare_it)
    prepare_it = flow.Handler(this.noop).Next(this.approve)
    approve = (flow.View().Permission(auto_create=True).Assign(username="bob")
               .onCreate(explode).Next(this.end))
    end = flow.End()

    def noop(self, activation: object) -> None:
        return None


FLOWS = ["notify_flows:NoticeFlow", "notify_flows:AutoAssignFlow", "notify_flows:BrokenAfterAssignFlow"]
