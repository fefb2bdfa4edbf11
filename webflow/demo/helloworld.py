"""Hello world: somebody asks, somebody approves, the engine sends it."""

from __future__ import annotations

import logging

from flask_wtf import FlaskForm
from wtforms import BooleanField, TextAreaField
from wtforms.validators import DataRequired, Length

from webflow import Flow, flow, this

log = logging.getLogger(__name__)


class HelloWorldForm(FlaskForm):
    text = TextAreaField("Message", validators=[DataRequired(), Length(max=500)])


class ApproveForm(FlaskForm):
    approved = BooleanField("Approve this message")


class HelloWorldFlow(Flow):
    """Hello world

    Somebody writes a message, somebody else approves it, and the engine sends it."""

    start = (flow.Start(form=HelloWorldForm)
             .Permission(auto_create=True)
             .Next(this.approve))
    approve = (flow.View(form=ApproveForm)
               .Permission(auto_create=True)
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
