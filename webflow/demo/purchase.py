"""Purchase request: reviewers from a list, two approvals enough, a rejection stops it,
and purchasing runs as a process of its own."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask_wtf import FlaskForm
from wtforms import BooleanField, IntegerField, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange

from webflow import Flow, flow, this
from webflow.core.context import get_session
from webflow.models import User

APPROVALS_NEEDED = 2


class PurchaseRequestForm(FlaskForm):
    item = StringField("What to buy", validators=[DataRequired(), Length(max=200)])
    amount = IntegerField("Amount (EUR)", validators=[
        InputRequired("Give the amount."),
        NumberRange(min=1, max=1_000_000, message="The amount is from 1 to 1,000,000 EUR.")])
    reviewers = StringField("Reviewers (user names, comma separated)", default="alice, bob, admin",
                            validators=[DataRequired(), Length(max=500)])


class ReviewForm(FlaskForm):
    approved = BooleanField("I approve this purchase")
    comment = TextAreaField("Comment", validators=[Length(max=2000)])


class PlaceOrderForm(FlaskForm):
    supplier = StringField("Supplier", validators=[DataRequired(), Length(max=200)])
    reference = StringField("Order reference", validators=[DataRequired(), Length(max=100)])


def reviewer_names(activation: Any) -> list[str]:
    """The reviewers named on the request, each once, in the order given."""
    names = [name.strip() for name in str(activation.process.data.get("reviewers", "")).split(",")]
    return list(dict.fromkeys(name for name in names if name))


def the_reviewer(activation: Any) -> User | None:
    """The user a review branch is for (None: the task waits in the queue)."""
    return get_session().scalar(sa.select(User).where(User.username == activation.task.data["item"]))


def needed(reviewers: int) -> int:
    """Two approvals, or every reviewer's when fewer are asked (and at least one)."""
    return max(1, min(APPROVALS_NEEDED, reviewers))


def decided(activation: Any) -> bool:
    """Enough approvals, or one rejection: the other reviews are then canceled."""
    answers = [bool(task.data.get("approved")) for task in activation.arrived]
    return answers.count(True) >= needed(len(activation.branches)) or False in answers


def approved(activation: Any) -> bool:
    reviews = [t for t in activation.process.tasks if t.node_name == "review" and t.status.value != "CANCELED"]
    answers = [bool(t.data.get("approved")) for t in reviews if t.status.value == "DONE"]
    return answers.count(True) >= needed(len(reviews)) and False not in answers


class PurchasingFlow(Flow):
    """Purchasing

    The purchasing department places an approved order with a supplier."""

    start = flow.StartFunction().Next(this.place_order)
    place_order = (flow.View(form=PlaceOrderForm)
                   .Permission(auto_create=True)
                   .Next(this.end))
    end = flow.End()

    def summary(self, process):  # type: ignore[no-untyped-def]
        data = process.data or {}
        return f"{data.get('item', '')} ({data.get('amount', '?')} EUR)"[:200]


class PurchaseRequestFlow(Flow):
    """Purchase request

    Every reviewer on the list is asked at once; two approvals are enough, a rejection
    stops the request, and an approved purchase is handed to purchasing."""

    start = (flow.Start(form=PurchaseRequestForm)
             .Permission(auto_create=True)
             .Next(this.ask_reviewers))
    ask_reviewers = flow.Split().Each(this.review, items=reviewer_names)
    review = (flow.View(form=ReviewForm)
              .Permission(auto_create=True)
              .Assign(the_reviewer)
              .Next(this.collect))
    collect = flow.Join(until=decided, cancel_rest=True).Next(this.check)
    check = flow.If(approved).Then(this.purchase).Else(this.rejected)
    purchase = (flow.Subprocess(PurchasingFlow.start,
                                data=lambda act: {"item": act.process.data["item"],
                                                  "amount": act.process.data["amount"]})
                .Next(this.end))
    rejected = flow.End(terminate=True)
    end = flow.End()

    def summary(self, process):  # type: ignore[no-untyped-def]
        data = process.data or {}
        return f"{data.get('item', '')} ({data.get('amount', '?')} EUR)"[:200]
