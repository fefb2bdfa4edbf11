"""``view=`` on Start and View nodes: the flow's own page serves the work, the rest is built in."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from app_support import in_app_context
from flask import Flask
from web_flows import ReviewFlow
from web_support import AuthActions, make_app, snapshot, task_of, task_url, user

from webflow import STATUS, db
from webflow.models import Process

REVIEW = ["review.can_start", "review.can_review", "review.view"]


@pytest.fixture
def app(db_url: str) -> Iterator[Flask]:
    with in_app_context(make_app(db_url, WEBFLOW_FLOWS=[ReviewFlow])) as app:
        for name in ("alice", "bob"):
            person = user(name)
            person.permissions = [*person.permissions, *REVIEW]
        db.session.commit()
        yield app


def start(alice: AuthActions, topic: str = "the <b>budget</b>") -> Process:
    page = alice.get("/flows/review/start/start/")
    assert page.status_code == 200 and "Custom start" in page.get_data(as_text=True)
    response = alice.post("/flows/review/start/start/", {"topic": topic})
    assert response.status_code == 303
    db.session.commit()
    return db.session.scalars(db.select(Process).order_by(Process.id.desc())).first()


def test_a_custom_start_view_starts_the_process(app: Flask) -> None:
    alice = AuthActions(app).enter_as("alice")
    process = start(alice)
    assert process.data == {"topic": "the <b>budget</b>"} and process.created_by_id == user("alice").id
    review = task_of(process, "review")
    assert review.status == STATUS.ASSIGNED and review.owner_id == user("alice").id


def test_bad_input_to_a_custom_start_view_stores_nothing(app: Flask) -> None:
    alice = AuthActions(app).enter_as("alice")
    alice.get("/flows/review/start/start/")
    response = alice.post("/flows/review/start/start/", {"topic": "  "})
    assert response.status_code == 422 and "Name the topic." in response.get_data(as_text=True)
    assert db.session.scalar(db.select(db.func.count()).select_from(Process)) == 0


def test_a_custom_start_view_still_checks_permission(app: Flask) -> None:
    carol = AuthActions(app).enter_as("carol")
    assert carol.get("/flows/review/start/start/").status_code == 403
    assert carol.post("/flows/review/start/start/", {"topic": "x"}).status_code == 403
    assert db.session.scalar(db.select(db.func.count()).select_from(Process)) == 0


def test_the_owner_works_in_the_custom_view_and_completes_once(app: Flask) -> None:
    alice = AuthActions(app).enter_as("alice")
    process = start(alice)
    review = task_of(process, "review")
    page = alice.get(task_url(review)).get_data(as_text=True)
    assert "Custom review of the &lt;b&gt;budget&lt;/b&gt;" in page      # escaped by Jinja
    bad = alice.post(task_url(review), {"verdict": "maybe"})
    assert bad.status_code == 422 and task_of(process, "review").status == STATUS.ASSIGNED
    done = alice.post(task_url(review), {"verdict": "yes"})
    assert done.status_code == 303 and done.headers["Location"] == "/inbox/"
    after = snapshot(process)
    assert after[0] == STATUS.DONE and after[1]["verdict"] == "yes"
    again = alice.post(task_url(review), {"verdict": "no"})
    assert again.status_code == 409 and "nothing was saved" in again.get_data(as_text=True)
    assert snapshot(process) == after


def test_others_get_the_built_in_task_page(app: Flask) -> None:
    alice, bob = AuthActions(app).enter_as("alice"), AuthActions(app).enter_as("bob")
    process = start(alice)
    review = task_of(process, "review")
    page = bob.get(task_url(review))
    assert page.status_code == 200 and "Custom review" not in page.get_data(as_text=True)
    assert bob.post(task_url(review), {"verdict": "yes"}).status_code == 403
    assert task_of(process, "review").status == STATUS.ASSIGNED
