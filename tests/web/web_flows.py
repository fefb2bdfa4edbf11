"""Flows the web tests drive besides the demo: a job, a handler that fails, custom views."""

from __future__ import annotations

from typing import Any

from flask import redirect, render_template_string, request, url_for
from flask_login import current_user
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


def review_page(activation: Any) -> Any:
    """A View's own page: a yes/no verdict, no Flask-WTF form."""
    if request.method == "POST":
        verdict = request.form.get("verdict")
        if verdict not in ("yes", "no"):
            return render_template_string("<p>Say yes or no.</p>"), 422
        activation.prepare(data={"verdict": verdict}, user=current_user)
        activation.done()
        return redirect(url_for("inbox.inbox"), code=303)
    return render_template_string(
        "<h1>Custom review of {{ topic }}</h1><form method=post>"
        "<input type=hidden name=csrf_token value='{{ csrf_token() }}'>"
        "<button name=verdict value=yes>Yes</button></form>",
        topic=activation.process.data["topic"])


class ReviewFlow(Flow):
    """Review

    Start and task pages of the flow's own (``view=``)."""

    start = flow.Start(view=this.start_page).Permission(auto_create=True).Next(this.review)
    review = (flow.View(view=review_page).Permission(auto_create=True)
              .Assign(lambda act: act.process.created_by).Next(this.end))
    end = flow.End()

    def start_page(self, activation: Any) -> Any:
        if request.method == "POST":
            topic = request.form.get("topic", "").strip()
            if not topic:
                return render_template_string("<p>Name the topic.</p>"), 422
            activation.prepare(data={"topic": topic}, user=current_user)
            activation.done()
            return redirect(url_for("flows.process_detail", flow_label="review",
                                    process_id=activation.process.id), code=303)
        return render_template_string(
            "<h1>Custom start</h1><form method=post>"
            "<input type=hidden name=csrf_token value='{{ csrf_token() }}'>"
            "<input name=topic><button>Start</button></form>")
