"""Forms of every WTForms field type on the built-in start and task pages: valid, invalid and
hostile input, what process.data keeps, the data cards, and drafts (tests/web/test_tasks.py
and test_collab_pages.py cover one or two field kinds; this covers the rest)."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from typing import Any

import pytest
from app_support import in_app_context, make_test_app
from flask import Flask
from flask_wtf import FlaskForm
from flask_wtf.file import FileField as FlaskFileField
from flask_wtf.file import MultipleFileField
from web_support import AuthActions, task_of, task_url
from wtforms import (
    BooleanField,
    DateField,
    DateTimeLocalField,
    DecimalField,
    FieldList,
    FileField,
    FloatField,
    Form,
    FormField,
    HiddenField,
    IntegerField,
    MonthField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
    TimeField,
)
from wtforms.validators import DataRequired, Optional

from webflow import Flow, db, flow, this
from webflow.core.models import TaskDraft
from webflow.datarows import data_rows
from webflow.models import Process, User


class Line(Form):
    item = StringField("Item")
    qty = IntegerField("Qty", validators=[Optional()])


class AllFields(FlaskForm):
    title = StringField("Title", validators=[DataRequired()], render_kw={"placeholder": "Name it"})
    day = DateField("Day", validators=[Optional()])
    moment = DateTimeLocalField("Moment", format="%Y-%m-%dT%H:%M", validators=[Optional()])
    at = TimeField("At", validators=[Optional()])
    amount = DecimalField("Amount", places=2, validators=[Optional()])
    ratio = FloatField("Ratio", validators=[Optional()])
    count = IntegerField("Count", validators=[Optional()])
    urgent = BooleanField("Urgent")
    color = SelectField("Color", choices=[("r", "Red"), ("g", "Green")], default="g")
    level = SelectField("Level", choices=[(1, "One"), (2, "Two")], coerce=int, validate_choice=True)
    tags = SelectMultipleField("Tags", choices=[("a", "Alpha"), ("b", "Beta")])
    size = RadioField("Size", choices=[("s", "Small"), ("l", "Large")], validators=[Optional()])
    lines = FieldList(FormField(Line), min_entries=1, max_entries=3)
    secret = HiddenField(default="h1")
    notes = TextAreaField("Notes")


class FieldsAuditFlow(Flow):
    """Fields audit"""

    start = flow.Start(form=AllFields).Permission(auto_create=True).Next(this.fill)
    fill = (flow.View(form=AllFields).Permission(auto_create=True)
            .Assign(lambda act: act.process.created_by).Next(this.end))
    end = flow.End()


class Attachment(Form):
    note = StringField("Note")
    file = FileField("File")


class Upload(FlaskForm):
    title = StringField("Title")
    scan = FileField("Scan")
    receipt = FlaskFileField("Receipt")
    photos = MultipleFileField("Photos")
    extra = FieldList(FormField(Attachment), min_entries=1)


class UploadFlow(Flow):
    """Upload"""

    start = flow.Start(form=Upload).Permission(auto_create=True).Next(this.end)
    end = flow.End()


PERMS = ["fields_audit.view", "fields_audit.can_start", "fields_audit.can_fill"]


@pytest.fixture
def app(db_url: str) -> Iterator[Flask]:
    with in_app_context(make_test_app(db_url, [FieldsAuditFlow, UploadFlow],
                                      {"alice": [*PERMS, "upload.can_start", "upload.view"], "bob": []},
                                      "secret")) as app:
        yield app


START = "/flows/fields_audit/start/start/"

VALID = {"title": "Trip", "day": "2026-03-04", "moment": "2026-03-04T10:30", "at": "09:15",
         "amount": "12.50", "ratio": "0.25", "count": "7", "urgent": "y", "color": "r", "level": "2",
         "tags": ["a", "b"], "size": "l", "lines-0-item": "pen", "lines-0-qty": "3", "secret": "h1",
         "notes": "two\nlines"}


def latest() -> Process:
    db.session.commit()
    db.session.expire_all()
    return db.session.scalars(db.select(Process).order_by(Process.id.desc())).first()


def count() -> int:
    db.session.commit()
    return db.session.scalar(db.select(db.func.count()).select_from(Process)) or 0


def started(alice: AuthActions, **changes: Any) -> Any:
    alice.get(START)
    return alice.post(START, {**VALID, **changes})


def test_every_field_type_is_stored_as_json_and_shown_on_both_pages(app: Flask) -> None:
    alice = AuthActions(app).enter_as("alice")
    page = alice.get(START).get_data(as_text=True)
    assert 'placeholder="Name it"' in page and 'value="h1"' in page        # render_kw, a default
    assert started(alice).status_code == 303
    process = latest()
    # What a job function reads back: dates, times and decimals as their ISO / exact text.
    assert dict(process.data) == {
        "title": "Trip", "day": "2026-03-04", "moment": "2026-03-04T10:30:00", "at": "09:15:00",
        "amount": "12.50", "ratio": 0.25, "count": 7, "urgent": True, "color": "r", "level": 2,
        "tags": ["a", "b"], "size": "l", "lines": [{"item": "pen", "qty": 3}], "secret": "h1",
        "notes": "two\nlines"}
    shown = alice.get(f"/flows/fields_audit/{process.id}/")
    text = shown.get_data(as_text=True)
    assert shown.status_code == 200 and "Red" in text and "Two" in text and "Alpha, Beta" in text
    # (PostgreSQL's JSONB orders a nested dict's keys its own way: qty before item.)
    assert "2026-03-04 10:30" in text and "Item: pen" in text and "Qty: 3" in text
    assert alice.get(task_url(task_of(process, "fill"))).status_code == 200


@pytest.mark.parametrize("changes", [{"level": "3"}, {"level": "x"}, {"color": "zz"}, {"tags": ["a", "q"]},
                                     {"size": "q"}, {"lines-0-qty": "x"}, {"day": "2026-02-30"},
                                     {"at": "25:00"}, {"count": "1.5"}, {"amount": "ten"}])
def test_a_value_outside_the_fields_rules_is_422_with_what_was_typed(app: Flask,
                                                                     changes: dict[str, Any]) -> None:
    alice = AuthActions(app).enter_as("alice")
    response = started(alice, **changes, notes="typed <b>here</b>")
    text = response.get_data(as_text=True)
    assert response.status_code == 422 and count() == 0
    assert "typed &lt;b&gt;here&lt;/b&gt;" in text and 'value="Trip"' in text


@pytest.mark.parametrize("typed", ["nan", "inf", "-Infinity"])
def test_a_float_field_given_nan_or_infinity_is_422_with_the_form_kept(app: Flask, typed: str) -> None:
    """FloatField takes "nan" and "inf" as valid; process.data cannot hold them. It was a
    409 error page ("Not possible now: process.data cannot hold nan ...") after the form
    was accepted, the typed form gone; now the field is marked, 422, nothing stored."""
    alice = AuthActions(app).enter_as("alice")
    response = started(alice, ratio=typed, notes="keep me")
    text = response.get_data(as_text=True)
    assert response.status_code == 422 and count() == 0
    assert "not NaN or an infinity" in text and "keep me" in text and 'aria-invalid="true"' in text
    # The task's form too.
    assert started(alice).status_code == 303
    fill = task_of(latest(), "fill")
    alice.get(task_url(fill))
    done = alice.post(task_url(fill), {**VALID, "ratio": typed, "notes": "keep me"})
    assert done.status_code == 422 and "keep me" in done.get_data(as_text=True)
    assert fresh_task(fill).status.value == "ASSIGNED"


def test_a_decimal_field_given_nan_or_infinity_is_refused_as_the_float_field_is(app: Flask) -> None:
    alice = AuthActions(app).enter_as("alice")
    for typed in ("NaN", "Infinity", "-inf", "sNaN"):
        response = started(alice, amount=typed)
        assert response.status_code == 422, typed
    assert count() == 0
    assert started(alice, amount="1e400").status_code == 303        # finite: exact text
    assert latest().data["amount"] == "1E+400"           # str(Decimal): the exact number typed


def test_huge_integers_and_a_megabyte_of_text_are_stored_and_shown(app: Flask) -> None:
    alice = AuthActions(app).enter_as("alice")
    big = 2**70
    assert started(alice, count=str(big), notes="x" * 900_000).status_code == 303
    process = latest()
    assert process.data["count"] == big and len(process.data["notes"]) == 900_000
    assert alice.get(f"/flows/fields_audit/{process.id}/").status_code == 200
    assert alice.get(task_url(task_of(process, "fill"))).status_code == 200


def fresh_task(task: Any) -> Any:
    db.session.commit()
    db.session.expire_all()
    return db.session.get(type(task), task.id)


@pytest.mark.parametrize("field", ["scan", "receipt", "photos", "extra-0-file"])
def test_a_file_is_refused_with_422_never_kept_as_its_name_or_dropped(app: Flask, field: str) -> None:
    """process.data is JSON: a file has no place in it. A wtforms FileField's upload was
    stored as the text "<FileStorage: 'a.txt' ('text/plain')>", Flask-WTF's dropped unseen
    (the form is not multipart: the browser sends the file's name only): now 422, the
    field marked, nothing stored."""
    alice = AuthActions(app).enter_as("alice")
    url = "/flows/upload/start/start/"
    alice.get(url)
    upload = alice.client.post(url, data={"csrf_token": alice.token, "title": "t",
                                          field: (io.BytesIO(b"hello"), "a.txt")},
                               content_type="multipart/form-data")
    assert upload.status_code == 422 and "A file cannot be kept here" in upload.get_data(as_text=True)
    named = alice.post(url, {"title": "t", field: "a.txt"})     # as a browser sends it without multipart
    assert named.status_code == 422 and count() == 0
    # No file chosen: started, the field empty.
    assert alice.post(url, {"title": "t", field: ""}).status_code == 303
    assert latest().data["title"] == "t" and "FileStorage" not in str(latest().data)


def test_a_draft_keeps_the_entries_of_a_field_list_and_every_field_type(app: Flask) -> None:
    """Save draft kept only posted names equal to a field's name: a FieldList's or
    FormField's inputs (``lines-0-item``) were dropped and came back empty."""
    alice = AuthActions(app).enter_as("alice")
    assert started(alice).status_code == 303
    url = task_url(task_of(latest(), "fill"))
    alice.get(url)
    typed = {**VALID, "title": "Half", "lines-0-item": "pen", "lines-1-item": "cup", "lines-1-qty": "4",
             "tags": ["b"], "ratio": "nan?", "day": "2026-0", "sneaky": "x"}
    assert alice.post(url + "draft/", typed).status_code == 303
    page = alice.get(url).get_data(as_text=True)
    for name, value in (("title", "Half"), ("lines-0-item", "pen"), ("lines-1-item", "cup"),
                        ("lines-1-qty", "4"), ("ratio", "nan?"), ("day", "2026-0")):
        assert re.search(rf'<input[^>]*name="{name}"[^>]*value="{re.escape(value)}"', page), name
    assert re.search(r'<option selected value="b">', page) and 'name="sneaky"' not in page
    assert "sneaky" not in dict(draft_row().data)


def test_a_draft_of_an_earlier_form_still_opens(app: Flask) -> None:
    """A draft saved before the form class changed (a field removed, a FieldList now a
    number field): the page opens with what still fits."""
    alice = AuthActions(app).enter_as("alice")
    assert started(alice).status_code == 303
    url = task_url(task_of(latest(), "fill"))
    alice.get(url)
    assert alice.post(url + "draft/", {**VALID, "title": "Kept"}).status_code == 303
    row = draft_row()
    row.data = {**row.data, "gone": ["old"], "count": ["not a number"], "level": ["nine"],
                "lines-0-qty": ["x"], "day": ["yesterday"], "urgent": ["maybe"]}
    db.session.commit()
    page = alice.get(url)
    assert page.status_code == 200 and 'value="Kept"' in page.get_data(as_text=True)


@pytest.mark.parametrize("name", [pytest.param("lines-" + "9" * 5000 + "-item", id="5000-digits"),
                                  pytest.param("lines-\u00b2-item", id="superscript"),
                                  pytest.param("lines-\u0663-qty", id="arabic-digit")])
def test_a_field_list_index_no_int_reads_is_400_not_500(app: Flask, name: str) -> None:
    """WTForms reads every part of a posted name that ``str.isdigit`` calls a number as a
    FieldList index, and ``int()`` raised ValueError (a 500) on ``lines-\u00b2-item`` or an
    index of 5,000 digits: the start form, the Complete and the Save draft of any form
    with a FieldList. Now 400, nothing stored."""
    alice = AuthActions(app).enter_as("alice")
    alice.get(START)
    assert alice.post(START, {**VALID, name: "x"}).status_code == 400 and count() == 0
    assert started(alice).status_code == 303
    fill = task_of(latest(), "fill")
    url = task_url(fill)
    alice.get(url)
    assert alice.post(url, {**VALID, name: "x"}).status_code == 400
    assert alice.post(url + "draft/", {**VALID, name: "x"}).status_code == 400
    assert draft_row() is None and fresh_task(fill).status.value == "ASSIGNED"
    assert alice.get(url).status_code == 200


def draft_row() -> Any:
    db.session.commit()
    db.session.expire_all()
    return db.session.scalars(db.select(TaskDraft)).first()


def test_errors_inside_a_field_list_read_as_words_not_python(app: Flask) -> None:
    """A FieldList's or FormField's errors are lists and dicts: the page printed them as
    Python (``{'qty': ['Not a valid integer value.']}``); now one item each, named by where."""
    alice = AuthActions(app).enter_as("alice")
    response = started(alice, **{"lines-1-item": "cup", "lines-1-qty": "x", "count": "y"})
    text = response.get_data(as_text=True)
    assert response.status_code == 422 and "{&#39;" not in text and "[&#39;" not in text
    assert "<li>Lines 2 · Qty: Not a valid integer value.</li>" in text
    assert "<li>Not a valid integer value.</li>" in text           # the plain field's own
    assert 'value="cup"' in text and 'value="x"' in text


class Dates(FlaskForm):
    month = MonthField("Month")
    region = SelectField("Region", choices={"North": [("n", "Northland")], "South": [("s", "Southland")]})


class DatesFlow(Flow):
    """Dates"""

    start = flow.Start(form=Dates).Permission(auto_create=True).Next(this.end)
    end = flow.End()


def test_the_data_card_shows_dates_times_and_months_as_their_fields_asked(app: Flask) -> None:
    """WTForms' DateField, TimeField and MonthField are DateTimeFields: a date was shown
    "2026-03-04 00:00" (a time never asked for), a month "2026-03-01 00:00", a year below
    1000 as "1-01-01"; option groups' labels were not looked up."""
    alice = AuthActions(app).enter_as("alice")
    assert started(alice, day="0999-03-04").status_code == 303
    text = alice.get(f"/flows/fields_audit/{latest().id}/").get_data(as_text=True)
    assert "0999-03-04" in text and "0999-03-04 00:00" not in text
    assert "2026-03-04 10:30" in text and "09:15" in text and "09:15:00" not in text
    rows = {row.key: row.value for row in data_rows(DatesFlow, {"month": "2026-03-01", "region": "s"})}
    assert rows == {"month": "2026-03", "region": "Southland"}


class Address(FlaskForm):
    street = StringField("Street")


class Nested(FlaskForm):
    title = StringField("Title")
    home = FormField(Address)
    stops = FieldList(FormField(Address), min_entries=1)


class NestedFlow(Flow):
    """Nested"""

    start = flow.Start(form=Nested).Permission(auto_create=True).Next(this.end)
    end = flow.End()


def test_the_csrf_token_of_a_nested_flask_form_is_never_stored_nor_shown(db_url: str) -> None:
    """A FlaskForm nested in a FormField (in a FieldList too) has a CSRF token of its own,
    which went into process.data and onto the data card, where every viewer of the process
    read the starter's live token."""
    with in_app_context(make_test_app(db_url, [NestedFlow], {"alice": ["nested.view", "nested.can_start"],
                                                             "bob": ["nested.view"]}, "secret")) as app:
        alice = AuthActions(app).enter_as("alice")
        page = alice.get("/flows/nested/start/start/").get_data(as_text=True)
        tokens = dict(re.findall(r'name="([^"]+-csrf_token)"[^>]*value="([^"]+)"', page))
        assert set(tokens) == {"home-csrf_token", "stops-0-csrf_token"}
        response = alice.post("/flows/nested/start/start/",
                              {"title": "t", "home-street": "a", "stops-0-street": "b", **tokens})
        assert response.status_code == 303
        process = latest()
        assert dict(process.data) == {"title": "t", "home": {"street": "a"}, "stops": [{"street": "b"}]}
        shown = AuthActions(app).enter_as("bob").get(f"/flows/nested/{process.id}/").get_data(as_text=True)
        assert alice.token not in shown and "Csrf" not in shown


class NeedsArgs(FlaskForm):
    name = StringField("Name")

    def __init__(self, required_thing: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)


class Raises(FlaskForm):
    name = StringField("Name")

    def validate(self, extra_validators: Any = None) -> bool:
        raise RuntimeError("boom")


class OddFlow(Flow):
    """Odd forms"""

    start = flow.Start(form=Raises).Permission(auto_create=True).Next(this.fill)
    fill = (flow.View(form=NeedsArgs).Permission(auto_create=True)
            .Assign(lambda act: act.process.created_by).Next(this.end))
    end = flow.End()


def test_a_form_that_raises_is_a_500_that_stores_nothing_and_breaks_no_other_page(db_url: str) -> None:
    """A developer's bug (validate raises; __init__ wants an argument webflow cannot give):
    the 500 page, nothing stored, and the pages that do not build the form still open."""
    odd = ["odd.view", "odd.can_start", "odd.can_fill"]
    with in_app_context(make_test_app(db_url, [OddFlow], {"alice": odd, "bob": ["odd.view"]}, "secret",
                                      PROPAGATE_EXCEPTIONS=False)) as app:
        alice = AuthActions(app).enter_as("alice")
        assert alice.get("/flows/odd/start/start/").status_code == 200
        response = alice.post("/flows/odd/start/start/", {"name": "x"})
        assert response.status_code == 500 and "boom" not in response.get_data(as_text=True)
        assert count() == 0
        process = OddFlow.start.run(data={"name": "x"}, user=db.session.scalar(
            db.select(User).where(User.username == "alice")))
        fill = task_of(process, "fill")
        assert alice.get(task_url(fill)).status_code == 500       # the owner's form cannot be built
        bob = AuthActions(app).enter_as("bob")
        assert bob.get(task_url(fill)).status_code == 200          # everyone else's page opens
        assert bob.get(f"/flows/odd/{process.id}/").status_code == 200
        assert fresh_task(fill).status.value == "ASSIGNED"


FIELDS = ["title", "day", "moment", "at", "amount", "ratio", "count", "urgent", "color", "level", "tags",
          "size", "lines-0-item", "lines-0-qty", "secret", "notes"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_any_text_in_any_field_is_stored_or_refused_never_a_500(app: Flask) -> None:
    """Hypothesis: text of every plane (not NUL: 400 before any view) in each field of the
    start form: 303 with what reads back as JSON, or 422 with nothing stored."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    alice = AuthActions(app).enter_as("alice")
    alice.get(START)
    text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30)
    numberish = st.sampled_from(["1e309", "-0", "0x10", "1_000", "٣", "１", "+5", "1e-400", "9" * 40, " 7 ",
                                 "2026-02-29", "9999-12-31T23:59", "24:00", "NaN", "-inf", "1.5e3"])

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(changes=st.dictionaries(st.sampled_from(FIELDS), text | numberish, min_size=1, max_size=4))
    def check(changes: dict[str, str]) -> None:
        before = count()
        response = alice.post(START, {**VALID, **changes})
        assert response.status_code in (303, 422), (changes, response.status_code)
        assert count() == before + (response.status_code == 303)

    check()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_any_draft_reopens(app: Flask) -> None:
    """Hypothesis: whatever text a draft keeps in any field (a FieldList's inputs too), the
    task page opens with it (200), or the draft is refused (422)."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    alice = AuthActions(app).enter_as("alice")
    assert started(alice).status_code == 303
    url = task_url(task_of(latest(), "fill"))
    alice.get(url)
    names = st.sampled_from([*FIELDS, "lines-1-qty", "lines-7-item", "lines-x", "lines--", "tags"])
    text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30)

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(changes=st.dictionaries(names, text, min_size=1, max_size=5))
    def check(changes: dict[str, str]) -> None:
        saved = alice.post(url + "draft/", changes)
        assert saved.status_code in (303, 422), changes
        assert alice.get(url).status_code == 200, changes

    check()
