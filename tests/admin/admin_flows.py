"""Flows the admin tests repair: a review, then a handler that can fail on bad data."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import BooleanField

from webflow import Flow, flow, this


class ReviewForm(FlaskForm):
    approved = BooleanField("Approved")


class RepairFlow(Flow):
    """Repair order

    A clerk reviews the order, then the engine charges the card."""

    start = flow.StartFunction().Next(this.review)
    review = flow.View(form=ReviewForm).Permission(auto_create=True).Next(this.charge)
    charge = flow.Handler(this.charge_card).Next(this.end)
    end = flow.End()

    def charge_card(self, activation: Any) -> None:
        card = activation.process.data.get("card")
        if card == "expired":
            raise ValueError(f"card {card!r} was refused by the bank")
        activation.process.data = {**activation.process.data, "charged": True}


class OtherFlow(Flow):
    """Other business"""

    start = flow.StartFunction().Next(this.work)
    work = flow.View().Permission(auto_create=True).Next(this.end)
    end = flow.End()
