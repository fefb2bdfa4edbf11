"""Hello world: somebody asks, somebody approves, the engine sends it."""

from __future__ import annotations

import logging
from datetime import timedelta

import sqlalchemy as sa
from flask_wtf import FlaskForm
from wtforms import BooleanField, TextAreaField
from wtforms.validators import DataRequired, Length

from webflow import Flow, flow, this
from webflow.models import User

log = logging.getLogger(__name__)


class HelloWorldForm(FlaskForm):
    text = TextAreaField("Message", validators=[
        DataRequired(),
        # Said, never cut: the page tells the limit, and a longer text is refused with its length.
        Length(max=500, message="The message may have at most %(max)d characters; this one has %(length)d.")])


class ApproveForm(FlaskForm):
    approved = BooleanField("Approve this message")


def first_administrator(activation):  # type: ignore[no-untyped-def]
    """The first active superuser; with none, managers take the task from the queue."""
    return activation.session.scalar(
        sa.select(User).where(User.is_superuser.is_(True), User.is_active.is_(True)).order_by(User.id))


class HelloWorldFlow(Flow):
    """Hello world

    Somebody writes a message, somebody else approves it, and the engine sends it."""

    start = (flow.Start(form=HelloWorldForm)
             .Permission(auto_create=True)
             .Next(this.approve))
    approve = (flow.View(form=ApproveForm)
               .Permission(auto_create=True)
               .Due(timedelta(days=1))
               # Nobody approved within two minutes: the administrator gets it instead.
               .OnTimeout(this.escalate, after=timedelta(minutes=2))
               .Next(this.check_approve))
    escalate = (flow.View(form=ApproveForm)
                .Annotation("Nobody approved this message in time: please decide.")
                .Permission("hello_world.manage")
                .Assign(first_administrator)
                .Due(timedelta(hours=4))
                .Priority(10)
                .Next(this.check_approve))
    check_approve = (flow.If(lambda act: act.process.data.get("approved"))
                     .Then(this.send)
                     .Else(this.end))
    send = flow.Handler(this.send_hello_world).Next(this.end)
    end = flow.End()

    def send_hello_world(self, activation):  # type: ignore[no-untyped-def]
        data = dict(activation.process.data)
        data["sent"] = True
        activation.process.data = data
        log.info("hello world: %s", data.get("text"))

    def summary(self, process):  # type: ignore[no-untyped-def]
        return str((process.data or {}).get("text", ""))[:200]
