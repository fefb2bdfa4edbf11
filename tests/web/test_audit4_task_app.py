"""Audit of the task app on the unhappy path (start and task forms, lists, login, live
refresh): each test is what a person saw go wrong, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from app_support import in_app_context, make_test_app
from flask import Flask
from flask_wtf import FlaskForm
from web_support import AuthActions
from wtforms import DecimalField, FieldList, FloatField, Form, FormField, StringField
from wtforms.validators import NumberRange, Optional, ValidationError

from webflow import Flow, db, flow, this
from webflow.models import Process


class Part(Form):
    name = StringField("Name")
    price = DecimalField("Price", validators=[Optional()])
    weight = FloatField("Weight", validators=[Optional()])


class Order(FlaskForm):
    title = StringField("Title")
    # A range, and a check of the form's own, as flow authors write them.
    discount = DecimalField("Discount", validators=[Optional(), NumberRange(min=0, max=50)])
    budget = DecimalField("Budget", validators=[Optional()])
    parts = FieldList(FormField(Part), min_entries=1)

    def validate_budget(self, field: Any) -> None:
        if field.data is not None and field.data < 0:
            raise ValidationError("A budget is not negative.")


class OrderFlow(Flow):
    """Order"""

    start = flow.Start(form=Order).Permission(auto_create=True).Next(this.check)
    check = (flow.View(form=Order).Permission(auto_create=True)
             .Assign(lambda act: act.process.created_by).Next(this.end))
    end = flow.End()


PERMS = ["order.view", "order.can_start", "order.can_check"]
START = "/flows/order/start/start/"


@pytest.fixture
def app(db_url: str) -> Iterator[Flask]:
    with in_app_context(make_test_app(db_url, [OrderFlow], {"alice": PERMS, "bob": PERMS}, "secret")) as app:
        yield app


def processes() -> int:
    db.session.commit()
    return db.session.scalar(db.select(db.func.count()).select_from(Process)) or 0


# -- numbers that are no numbers -------------------------------------------------------------


@pytest.mark.parametrize(("field", "typed"), [
    ("discount", "snan"), ("discount", "sNaN"), ("budget", "NaN"), ("budget", "snan"),
    ("parts-0-price", "NaN"), ("parts-0-price", "Infinity"), ("parts-0-price", "-inf"),
    ("parts-0-weight", "nan"),
])
def test_a_decimal_that_is_no_number_is_422_with_the_text_kept_never_a_500_nor_stored(
        app: Flask, field: str, typed: str) -> None:
    """"snan" in a DecimalField with a range was a 500 (WTForms' NumberRange asks
    math.isnan, which raises for a signaling NaN), and so was "nan" in a field the form
    checks itself (Decimal NaN refuses < ); in a FieldList's DecimalField "NaN" or
    "Infinity" was stored as the text "NaN" where a number belongs."""
    alice = AuthActions(app).enter_as("alice")
    alice.get(START)
    answer = alice.post(START, {"title": "Chairs", "parts-0-name": "leg", field: typed})
    html = answer.get_data(as_text=True)
    assert answer.status_code == 422, html[:300]
    assert "Give a number (not NaN or an infinity)" in html
    assert f'value="{typed}"' in html  # what was typed is still in the field
    assert processes() == 0
