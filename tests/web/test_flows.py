"""The flows page, process lists, start forms and the process page."""

from __future__ import annotations

from web_support import hello, task_of, task_url, user

from webflow import db
from webflow.models import Process

START = "/flows/hello_world/start/start/"


def processes() -> int:
    db.session.commit()
    return db.session.scalar(db.select(db.func.count()).select_from(Process))


def test_flows_page_lists_what_i_may_see_and_start(app, people) -> None:  # type: ignore[no-untyped-def]
    alice = people("alice").get("/flows/").get_data(as_text=True)
    assert "Hello world" in alice and START in alice and "/flows/label/start/start/" in alice
    bob = people("bob").get("/flows/").get_data(as_text=True)
    assert START in bob and "/flows/label/start/start/" not in bob
    assert "There is no flow" in people("carol").get("/flows/").get_data(as_text=True)
    manager = people("manager").get("/flows/").get_data(as_text=True)
    assert "Hello world" in manager and START not in manager and 'href="/admin/"' in manager
    assert 'href="/admin/"' not in alice


def test_start_form_validates_and_stores_nothing_on_bad_input(app, people) -> None:  # type: ignore[no-untyped-def]
    alice = people("alice")
    assert 'name="text"' in alice.get(START).get_data(as_text=True)
    response = alice.post(START, {"text": ""})
    html = response.get_data(as_text=True)
    assert response.status_code == 422 and "This field is required." in html
    assert "Please correct the marked fields." in html and processes() == 0
    response = alice.post("/flows/label/start/start/", {"amount": "500"})
    assert response.status_code == 422
    assert "Number must be between 1 and 100." in response.get_data(as_text=True)
    assert processes() == 0


def test_start_creates_the_process_and_redirects(app, people) -> None:  # type: ignore[no-untyped-def]
    alice = people("alice")
    alice.get(START)
    response = alice.post(START, {"text": "<script>alert(1)</script>"})
    assert response.status_code == 303 and processes() == 1
    process = db.session.scalars(db.select(Process)).one()
    assert process.created_by_id == user("alice").id and process.data == {"text": "<script>alert(1)</script>"}
    assert response.headers["Location"] == f"/flows/hello_world/{process.id}/"
    page = alice.get(response.headers["Location"]).get_data(as_text=True)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert(1)" not in page
    assert f"Hello world #{process.id} is started." in page


def test_start_refuses_strangers_and_unknown_nodes(app, people) -> None:  # type: ignore[no-untyped-def]
    assert people("carol").get(START).status_code == 403
    assert people("carol").post(START, {"text": "x"}).status_code == 403
    assert people("bob").get("/flows/label/start/start/").status_code == 403
    assert people("alice").get("/flows/hello_world/start/approve/").status_code == 404
    assert people("alice").get("/flows/nope/start/start/").status_code == 404
    assert people("alice").post(START, {"text": "x"}, csrf=False).status_code == 400
    assert processes() == 0


def test_process_list_by_permission(app, people) -> None:  # type: ignore[no-untyped-def]
    mine, other = hello("from alice"), hello("from bob", by="bob")
    page = people("alice").get("/flows/hello_world/").get_data(as_text=True)
    assert f"/flows/hello_world/{mine.id}/" in page and f"/flows/hello_world/{other.id}/" in page
    assert people("carol").get("/flows/hello_world/").status_code == 403
    fragment = people("alice").get("/flows/hello_world/?q=bob&status=NEW", hx=True).get_data(as_text=True)
    assert "<html" not in fragment and f"/flows/hello_world/{other.id}/" in fragment
    assert f"/flows/hello_world/{mine.id}/" not in fragment


def test_process_page_for_viewers_and_the_starter(app, people) -> None:  # type: ignore[no-untyped-def]
    process = hello()
    url = f"/flows/hello_world/{process.id}/"
    assert people("alice").get(url).status_code == 200
    assert people("carol").get(url).status_code == 403
    assert people("alice").get(f"/flows/label/{process.id}/").status_code == 404
    assert task_url(task_of(process, "approve")) in people("manager").get(url).get_data(as_text=True)
