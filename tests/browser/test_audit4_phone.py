"""The task app's forms on a 390 px phone in headless Chromium: every kind of field a flow's
start or task form may have is a control of the same height as a text box (a thumb can hit
it), and nothing scrolls sideways."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from app_support import in_app_context, make_test_app, serving
from flask import Flask
from flask_wtf import FlaskForm
from screens import log_in, overflow
from wtforms import (
    DateField,
    FieldList,
    Form,
    FormField,
    IntegerField,
    MonthField,
    RadioField,
    SearchField,
    StringField,
    TelField,
    TimeField,
    URLField,
)
from wtforms.validators import DataRequired, Optional

from webflow import Flow, flow, this

pytestmark = pytest.mark.browser
PHONE = {"width": 390, "height": 844}
PASSWORD = "pw"


class Stop(Form):
    place = StringField("Place", validators=[DataRequired()])
    minutes = IntegerField("Minutes", validators=[Optional()])


class Visit(FlaskForm):
    title = StringField("Title", validators=[DataRequired()])
    day = DateField("Day", validators=[Optional()])
    at = TimeField("At", validators=[Optional()])
    month = MonthField("Month", validators=[Optional()])
    site = URLField("Web site", validators=[Optional()])
    phone = TelField("Phone", validators=[Optional()])
    lookup = SearchField("Look up", validators=[Optional()])
    size = RadioField("Size", choices=[("s", "Small"), ("l", "Large")], validators=[DataRequired()])
    stops = FieldList(FormField(Stop), min_entries=2)


class VisitFlow(Flow):
    """Visit"""

    start = flow.Start(form=Visit).Permission(auto_create=True).Next(this.end)
    end = flow.End()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Flask, str]]:
    tmp = tmp_path_factory.mktemp("audit4_phone")
    app = make_test_app(f"sqlite:///{tmp / 'phone.sqlite'}", [VisitFlow],
                        {"alice": ["visit.view", "visit.can_start"]}, PASSWORD,
                        SERVER_NAME=None, WEBFLOW_LIVE_POLL_SECONDS=3600)
    with in_app_context(app), serving(app) as base:
        yield app, base


def widths(page: Any) -> dict[str, float]:
    """The width of each text-like input of the form, by its id."""
    return dict(page.evaluate("""() => Object.fromEntries(
        [...document.querySelectorAll('#content form.wf-form :is(input[type=text], input[type=number])')]
            .map(e => [e.id, e.getBoundingClientRect().width]))"""))


def heights(page: Any) -> dict[str, float]:
    """The height of each field's control (a radio: of each choice's row), by its id."""
    return dict(page.evaluate("""() => {
        const form = document.querySelector('#content form.wf-form');
        const found = {};
        for (const e of form.querySelectorAll('input:not([type=hidden]):not([type=radio]), select, textarea')) {
            found[e.id] = e.getBoundingClientRect().height;
        }
        for (const e of form.querySelectorAll('input[type=radio]')) {
            found[e.id] = (e.closest('li') || e).getBoundingClientRect().height;
        }
        return found;
    }"""))


@pytest.mark.parametrize("width", [390, 320])
def test_every_kind_of_field_is_a_thumb_sized_control_on_a_phone(module_browser: Any, site: Any,
                                                                  width: int) -> None:
    """A TimeField, MonthField, URLField or TelField was drawn as the browser's bare input,
    21-24 px high beside 44 px text boxes, and a RadioField's choices were 13 px circles in
    a bulleted list: hard to hit with a thumb. Each is as tall as a text box now, on the
    page and after a refusal (422); the inputs of a FieldList's entries are as wide as the
    others (WTForms' table put them beside right-aligned labels, a third as wide)."""
    _, base = site
    page = log_in(module_browser.new_context(viewport={**PHONE, "width": width}), base, "alice", PASSWORD)
    page.goto(f"{base}/flows/visit/start/start/")
    for when in ("drawn", "refused"):
        found = heights(page)
        text_box = found.pop("title")
        assert text_box >= 36, found
        small = {name: round(h) for name, h in found.items() if h < text_box - 0.5}
        assert not small, f"{when}: controls lower than a text box ({round(text_box)} px): {small}"
        assert overflow(page) is None
        found = widths(page)
        narrow = {name: round(w) for name, w in found.items() if w < found["title"] * 0.85}
        assert not narrow, f"{when}: inputs of a FieldList squeezed beside their labels: {narrow}"
        page.click("#content form.wf-form button[type=submit]")  # empty: refused (422)
        page.wait_for_selector("#content .wf-invalid")
