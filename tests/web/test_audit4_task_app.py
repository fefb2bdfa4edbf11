"""Audit of the task app on the unhappy path (start and task forms, lists, login, live
refresh): each test is what a person saw go wrong, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from app_support import in_app_context, make_test_app
from flask import Flask
from flask_wtf import FlaskForm
from web_flows import ReviewFlow
from web_support import AuthActions, fresh, hello, make_app, snapshot, task_of, task_url, user
from wtforms import DecimalField, FieldList, FloatField, Form, FormField, StringField
from wtforms.validators import Length, NumberRange, Optional, ValidationError

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
    tags = FieldList(StringField("Tag", validators=[Length(max=20)]), label="Tags", min_entries=2)

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
REVIEW = ["review.can_start", "review.can_review", "review.view"]


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


# -- a FieldList or FormField on the page ------------------------------------------------------


def test_a_field_list_is_drawn_as_the_sites_fields_named_by_place_not_by_input_name(app: Flask) -> None:
    """WTForms' own widgets drew each entry of a FieldList labelled by its input name
    ("Parts-0", where its errors said "Parts 1") with its inputs squeezed into a table. Each
    entry is a group of the site's fields now, named "Parts 1", its errors listed once under
    the list and each invalid input marked and pointing at them."""
    alice = AuthActions(app).enter_as("alice")
    page = alice.get(START).get_data(as_text=True)
    assert "Parts-0" not in page and "Tags-0" not in page
    assert "<legend>Parts</legend>" in page and "<legend>Parts 1</legend>" in page
    assert '<label for="parts-0-price">Price</label>' in page
    assert '<label for="tags-0">Tags 1</label>' in page and '<label for="tags-1">Tags 2</label>' in page

    answer = alice.post(START, {"title": "Chairs", "parts-0-price": "cheap", "tags-1": "x" * 30})
    html = answer.get_data(as_text=True)
    assert answer.status_code == 422
    assert "<li>Parts 1 · Price: Not a valid decimal value.</li>" in html
    assert html.count("Not a valid decimal value.") == 1  # listed once, not beside the input too
    assert "<li>Tags 2: Field cannot be longer than 20 characters.</li>" in html
    price = re.search(r'<input[^>]*id="parts-0-price"[^>]*>', html)
    assert price and 'aria-invalid="true"' in price[0] and 'aria-describedby="parts-errors"' in price[0]
    assert 'value="cheap"' in price[0] and "autofocus" in price[0]  # the first field at fault


# -- logging in ------------------------------------------------------------------------------


def test_a_login_form_open_too_long_asks_for_the_password_again_not_a_lost_session(app: Flask) -> None:
    """The login page left open longer than its form's token lives (an hour): Log in said
    "Your session has ended" to someone who had none, emptied the form and led through
    ``/login?next=/login?next=/queue/``. The form comes back with the name kept, at the
    same address, saying to enter the password again; then it leads where it led."""
    anon = AuthActions(app)
    anon.client.get("/login?next=/queue/")
    answer = anon.client.post("/login?next=/queue/", data={"username": "alice", "password": "secret",
                                                           "csrf_token": "an-expired-token"},
                              headers={"Referer": "http://localhost/login?next=/queue/"})
    html = answer.get_data(as_text=True)
    assert answer.status_code == 400
    assert "open a long time, so it was not sent. Enter your password again." in html
    assert "session has ended" not in html
    assert re.search(r'<input[^>]*name="username"[^>]*value="alice"', html)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html)
    assert token
    again = anon.client.post("/login?next=/queue/", data={"username": "alice", "password": "secret",
                                                          "csrf_token": token[1]})
    assert again.status_code == 303 and again.headers["Location"] == "/queue/"


# -- a node's own view (view=), sent from a page drawn before someone changed the task ----------


@pytest.fixture
def review_app(db_url: str) -> Iterator[Flask]:
    people = {"alice": REVIEW, "bob": REVIEW, "carol": ["review.view"], "manager": ["review.manage"]}
    with in_app_context(make_test_app(db_url, [ReviewFlow], people, "secret")) as app:
        yield app


def test_a_custom_view_sent_after_its_task_went_to_someone_else_says_so(review_app: Flask) -> None:
    """alice had the flow's own review page (``view=``) open; a manager gave the task to bob
    meanwhile. Her Yes was a 403 "You do not have permission to do that": the node's own form
    cannot carry the ``shown`` the built-in form sends. A POST from the task's own page (its
    address is the referrer) is refused in the built-in page's words now (409), nothing
    changed; someone who never had the page still gets the rule's 403."""
    alice = AuthActions(review_app).enter_as("alice")
    alice.get("/flows/review/start/start/")
    assert alice.post("/flows/review/start/start/", {"topic": "budget"}).status_code == 303
    review = task_of(db.session.scalars(db.select(Process)).one(), "review")
    url = task_url(review)
    assert "Custom review of budget" in alice.get(url).get_data(as_text=True)
    manager = AuthActions(review_app).enter_as("manager")
    manager.get(url)
    assert manager.post(url + "reassign/", {"user_id": str(user("bob").id)}).status_code == 303
    before = snapshot(review.process)

    sent = alice.client.post(url, data={"verdict": "yes", "csrf_token": alice.token},
                             headers={"Referer": f"http://localhost{url}"})
    assert sent.status_code == 409
    assert "This task is with bob now: nothing was saved." in sent.get_data(as_text=True)
    assert snapshot(review.process) == before
    carol = AuthActions(review_app).enter_as("carol")
    carol.get(url)
    assert carol.post(url, {"verdict": "yes"}).status_code == 403
    assert snapshot(review.process) == before


# -- the queue's Take ----------------------------------------------------------------------------


@pytest.mark.parametrize("hx", [False, True], ids=["plain", "htmx"])
def test_a_take_refused_for_one_of_the_chosen_tasks_names_it(db_url: str, hx: bool) -> None:
    """Take with a task the person may not take among those chosen (its permission taken
    away while the queue was open), or one that is not there: the whole take is refused, as
    before, but the answer said only "You do not have permission to do that" or "There is no
    such page". It names the task and says that nothing was taken."""
    with in_app_context(make_app(db_url)) as app:
        first, second = task_of(hello("one"), "approve"), task_of(hello("two"), "approve")
        bob = AuthActions(app).enter_as("bob")
        bob.get("/queue/")
        row = user("bob")
        row.permissions = [p for p in row.permissions if p != "hello_world.can_approve"]
        db.session.commit()
        refused = bob.post("/queue/", {"task_id": [str(first.id), str(second.id)]}, hx=hx)
        assert refused.status_code == 403
        assert f"You may not take Approve #{first.id}: nothing was taken." in refused.get_data(as_text=True)
        gone = bob.post("/queue/", {"task_id": [str(first.id), "999998", "999999"]}, hx=hx)
        assert gone.status_code == 404
        assert ("There is no task #999998 here (nor 1 more of those chosen): nothing was taken."
                in gone.get_data(as_text=True))
        assert fresh(first).owner_id is None and fresh(second).owner_id is None


# -- the data card of a FieldList ------------------------------------------------------------------


def test_the_data_card_names_a_field_list_and_shows_one_entry_a_line(app: Flask) -> None:
    """A FieldList of FormFields on the data card was labelled "<UnboundField(FormField,
    (<class 'Part'>,), {})>" (its first argument taken for a label) and its entries ran
    together ("Name: leg, Price: 2.50, Weight: None, Name: seat, ..."), so nobody could
    tell where one ended. It reads "Parts", each entry on a line of its own under the
    nested form's labels."""
    alice = AuthActions(app).enter_as("alice")
    alice.get(START)
    answer = alice.post(START, {"title": "Chair", "parts-0-name": "leg, short", "parts-0-price": "2.50",
                                "parts-1-name": "seat", "parts-1-weight": "1.5"})
    assert answer.status_code == 303
    process = db.session.scalars(db.select(Process)).one()
    html = alice.get(f"/flows/order/{process.id}/").get_data(as_text=True)
    assert "UnboundField" not in html
    row = re.search(r'<th scope="row">Parts</th>\s*<td class="wf-value wf-multiline">([^<]*)</td>', html)
    assert row, html[html.find("wf-data"):][:1500]
    assert row[1].split("\n") == ["Name: leg, short, Price: 2.50, Weight: –",
                                  "Name: seat, Price: –, Weight: 1.5"]


# -- a list filtered by a flow that is not served -------------------------------------------------


@pytest.mark.parametrize("hx", [False, True], ids=["plain", "htmx"])
@pytest.mark.parametrize("name", ["inbox", "queue", "archive"])
def test_a_list_bookmarked_with_a_flow_no_longer_served_says_so(db_url: str, name: str, hx: bool) -> None:
    """``/queue/?flow=retired`` (a bookmark of a flow taken out of service) silently listed
    every flow's tasks under a page that looked filtered; the list says so now."""
    with in_app_context(make_app(db_url)) as app:
        hello("still here")
        bob = AuthActions(app).enter_as("bob")
        answer = bob.get(f"/{name}/?flow=retired_flow", hx=hx)
        text = answer.get_data(as_text=True)
        assert answer.status_code == 200
        assert "There is no flow “retired_flow” here (any more): the list shows every flow" in text
        if name == "queue":
            assert "still here" in text
        assert "There is no flow" not in bob.get(f"/{name}/?flow=hello_world", hx=hx).get_data(as_text=True)


# -- a live refresh after the session ended ---------------------------------------------------------


@pytest.mark.parametrize("part", ["status/?shown=NEW:", "banner/?since=0"])
def test_a_live_refresh_after_the_session_ended_logs_in_back_to_the_page_not_its_fragment(
        db_url: str, part: str) -> None:
    """A task page's live refresh (its status card's poll, the banner) that found the session
    ended sent the browser to the login form with ``next`` set to the fragment's own address,
    so logging in showed the bare status fragment, without the page around it. The login
    leads back to the page the person had open (``HX-Current-URL``)."""
    with in_app_context(make_app(db_url)) as app:
        approve = task_of(hello("live"), "approve")
        bob = AuthActions(app).enter_as("bob")
        page = task_url(approve)
        bob.get(page)
        with bob.client.session_transaction() as session:
            session.clear()
        answer = bob.client.get(page + part, headers={"HX-Request": "true",
                                                      "HX-Current-URL": f"http://localhost{page}"})
        assert answer.status_code == 401
        assert answer.headers["HX-Redirect"] == f"/login?next={page}"
