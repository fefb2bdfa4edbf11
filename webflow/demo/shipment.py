"""Shipment: the clerk and the warehouse work in parallel; a label prints in the background
(slowly), and notifying the customer fails once, so Retry can be tried."""

from __future__ import annotations

import time
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app, has_app_context
from flask_wtf import FlaskForm
from wtforms import BooleanField, IntegerField, SelectField, StringField
from wtforms.fields import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange

from webflow import Flow, flow, this
from webflow.models import TaskEvent


class ShipmentForm(FlaskForm):
    customer = StringField("Customer", validators=[DataRequired(), Length(max=120)])
    address = StringField("Address", validators=[DataRequired(), Length(max=300)])
    items = IntegerField("Items", validators=[InputRequired("Give the number of items."),
                                              NumberRange(min=1, max=10_000, message="From 1 to 10,000.")])
    insured = BooleanField("Insure the shipment")


class CarrierForm(FlaskForm):
    carrier = SelectField("Carrier", choices=[SelectChoice("post", "Post"), SelectChoice("courier", "Courier")])


class PackageForm(FlaskForm):
    # InputRequired, not DataRequired: 0 is a number typed in, so it gets the range's message.
    packages = IntegerField("Packages", validators=[InputRequired("Give the number of packages."),
                                                    NumberRange(min=1, max=1000,
                                                                message="A shipment has 1 to 1,000 packages.")])


class InsuranceForm(FlaskForm):
    policy = StringField("Policy number", validators=[DataRequired(), Length(max=60)])


def print_label(activation):  # type: ignore[no-untyped-def]
    """The background job: make the shipping label. It takes a few seconds (the printer
    warms up), so the task page's status polling can be seen."""
    seconds = float(current_app.config.get("WEBFLOW_DEMO_JOB_SECONDS", 3)) if has_app_context() else 0
    time.sleep(min(max(seconds, 0), 30))
    data = activation.process.data
    return f"LABEL {data.get('customer')} / {data.get('address')} / {data.get('carrier')}"


class ShipmentFlow(Flow):
    """Shipment

    The starter picks a carrier while the warehouse packs; the label prints in the
    background and insured shipments need a policy number."""

    start = (flow.Start(form=ShipmentForm)
             .Permission(auto_create=True)
             .Next(this.split_work))
    split_work = (flow.Split()
                  .Next(this.set_carrier)
                  .Next(this.package_goods))
    set_carrier = (flow.View(form=CarrierForm)
                   .Assign(lambda act: act.process.created_by)
                   .Permission(auto_create=True)
                   .Due(timedelta(hours=4))
                   .Next(this.split_paperwork))
    split_paperwork = (flow.Split()
                       .Next(this.print_label)
                       .Next(this.take_insurance, cond=lambda act: act.process.data.get("insured")))
    print_label = flow.Job(print_label, retries=2, backoff=1.0).Next(this.join_paperwork)
    take_insurance = (flow.View(form=InsuranceForm)
                      .Assign(lambda act: act.process.created_by)
                      .Permission(auto_create=True)
                      .Due(timedelta(days=1))
                      .Priority(5)
                      .Next(this.join_paperwork))
    join_paperwork = flow.Join().Next(this.join_work)
    package_goods = (flow.View(form=PackageForm)
                     .Permission(auto_create=True)
                     .Due(timedelta(days=2))
                     .Priority(lambda act: 5 if act.process.data.get("insured") else 0)
                     .Next(this.join_work))
    join_work = flow.Join().Next(this.notify)
    notify = flow.Handler(this.notify_customer).Next(this.end)
    end = flow.End()

    def notify_customer(self, activation):  # type: ignore[no-untyped-def]
        """Tell the customer. The demo's mail server never answers the first time, so the
        step fails once: a manager sees it under "Tasks in ERROR" and presses Retry."""
        failed_before = activation.session.scalar(
            sa.select(TaskEvent.id).where(TaskEvent.task_id == activation.task.id,
                                          TaskEvent.transition == "error").limit(1))
        if failed_before is None:
            raise ConnectionError("the customer's mail server did not answer (the demo fails "
                                  "this step once: press Retry)")
        activation.process.data = {**activation.process.data, "notified": True}

    def summary(self, process):  # type: ignore[no-untyped-def]
        data = process.data or {}
        items = data.get("items", "?")
        things = "item" if items == 1 else "items"
        return f"{data.get('customer', '')}, {items} {things} to {data.get('address', '')}"[:400]
