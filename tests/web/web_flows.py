"""Flows the web tests drive besides the demo: a job, and a handler that fails."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import IntegerField
from wtforms.validators import DataRequired, NumberRange

from webflow import Flow, flow, this


class AmountForm(FlaskForm):
    amount = IntegerField("Amount", validators=[DataRequired(), NumberRange(min=1, max=100)])


def print_amount(activation: Any) -> None:
    """A job that fails when the process says so."""
    if activation.process.data.get("amount") == 13:
        raise RuntimeError("printer on fire")


class LabelFlow(Flow):
    """Label

    A person enters an amount; a job prints it; a handler checks it."""

    start = flow.Start(form=AmountForm).Permission(auto_create=True).Next(this.confirm)
    confirm = flow.View(form=AmountForm).Permission(auto_create=True).Next(this.print_label)
    print_label = flow.Job(print_amount).Next(this.check)
    check = flow.Handler(this.check_amount).Next(this.end)
    end = flow.End()

    def check_amount(self, activation: Any) -> None:
        if activation.process.data.get("amount") == 99:
            raise ValueError("amount 99 is refused")
