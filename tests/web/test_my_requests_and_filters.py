"""My requests (the processes I started, where each stands) and saved filters of the
inbox and the queue (named, per person)."""

from __future__ import annotations

import re

import pytest
from web_support import hello, task_of, task_url

from webflow import db
from webflow.core.models import SavedFilter


def rows(html: str, kind: str = "process") -> list[int]:
    return [int(n) for n in re.findall(rf'id="row-{kind}-(\d+)"', html)]


# -- my requests ----------------------------------------------------------------------------------


def test_my_requests_lists_what_i_started_and_who_has_it(app, people) -> None:  # type: ignore[no-untyped-def]
    mine, theirs = hello("my parcel", by="alice"), hello("bob's parcel", by="bob")
    alice = people("alice")
    page = alice.get("/requests/").get_data(as_text=True)
    assert rows(page) == [mine.id] and "my parcel" in page
    assert "Approve · waiting to be taken" in page
    assert f'href="/flows/hello_world/{mine.id}/"' in page
    assert alice.get(f"/flows/hello_world/{mine.id}/").status_code == 200  # the starter sees it
    bob = people("bob")
    assert bob.post("/queue/", {"take": task_of(mine, "approve").id}).status_code == 303
    page = alice.get("/requests/").get_data(as_text=True)
    assert "Approve · with bob" in page
    assert rows(bob.get("/requests/").get_data(as_text=True)) == [theirs.id]
    carol = people("carol").get("/requests/").get_data(as_text=True)
    assert rows(carol) == [] and "You have not started anything yet." in carol
    assert 'href="/requests/"' in carol  # the navigation's link


def test_my_requests_filter_by_status_and_pages(app, people) -> None:  # type: ignore[no-untyped-def]
    app.config["WEBFLOW_PAGE_SIZE"] = 2
    done = hello("finished one", by="alice")
    bob = people("bob")
    approve = task_of(done, "approve")
    bob.post("/queue/", {"take": approve.id})
    bob.get(task_url(approve))
    assert bob.post(task_url(approve), {"approved": "y"}).status_code == 303
    for n in range(2):
        hello(f"open {n}", by="alice")
    alice = people("alice")
    assert rows(alice.get("/requests/?status=done").get_data(as_text=True)) == [done.id]
    first = alice.get("/requests/?status=open").get_data(as_text=True)
    assert len(rows(first)) == 2 and done.id not in rows(first)
    everything = alice.get("/requests/").get_data(as_text=True)
    assert "Page 1 of 2" in everything and "3 requests" in everything
    assert rows(alice.get("/requests/?page=2").get_data(as_text=True)) == [done.id]
    assert alice.get("/requests/?status=nonsense&page=abc").status_code == 200
    fragment = alice.get("/requests/", hx=True).get_data(as_text=True)
    assert "<html" not in fragment and 'id="requests"' in fragment


# -- saved filters --------------------------------------------------------------------------------


def saved(name: str | None = None) -> list[SavedFilter]:
    db.session.commit()
    query = db.select(SavedFilter).order_by(SavedFilter.id)
    if name:
        query = query.where(SavedFilter.name == name)
    return list(db.session.scalars(query))


@pytest.mark.parametrize("list_name", ["queue", "inbox"])
def test_save_list_use_and_delete_a_filter(app, people, list_name: str) -> None:  # type: ignore[no-untyped-def]
    bob = people("bob")
    bob.get(f"/{list_name}/")
    response = bob.post(f"/{list_name}/filters/?q=apples&sort=-due&flow=hello_world", {"name": "  My  apples "})
    assert response.status_code == 303
    location = response.headers["Location"]
    assert location.startswith(f"/{list_name}/?") and "q=apples" in location
    [row] = saved()
    assert row.name == "My apples" and row.list_name == list_name
    page = bob.get(f"/{list_name}/").get_data(as_text=True)
    assert "My apples" in page and re.search(rf'href="/{list_name}/\?[^"]*q=apples', page)
    other = "inbox" if list_name == "queue" else "queue"
    assert ">My apples</a>" not in bob.get(f"/{other}/").get_data(as_text=True)
    # Saving under the same name again keeps one filter, with the new values.
    assert bob.post(f"/{list_name}/filters/?q=pears", {"name": "My apples"}).status_code == 303
    assert [r.query for r in saved()] == ["q=pears"]
    assert bob.post(f"/filters/{row.id}/delete/").status_code == 303
    assert saved() == [] and ">My apples</a>" not in bob.get(f"/{list_name}/").get_data(as_text=True)


def test_another_person_neither_sees_nor_deletes_my_filter(app, people) -> None:  # type: ignore[no-untyped-def]
    bob, alice = people("bob"), people("alice")
    bob.get("/queue/")
    bob.post("/queue/filters/?q=bob+only", {"name": "Bob's"})
    [row] = saved()
    assert "Bob&#39;s</a>" not in alice.get("/queue/").get_data(as_text=True)
    assert "Bob&#39;s</a>" in bob.get("/queue/").get_data(as_text=True)
    assert alice.post(f"/filters/{row.id}/delete/").status_code == 404
    assert alice.post(f"/filters/{row.id}/delete/", hx=True).status_code == 404
    assert people("carol").post("/filters/99999/delete/").status_code == 404
    assert [r.id for r in saved()] == [row.id]
    # alice may use the same name for her own.
    assert alice.post("/queue/filters/", {"name": "Bob's"}).status_code == 303
    assert len(saved("Bob's")) == 2


@pytest.mark.parametrize(("name", "message"), [
    ("", "Give the filter a name."), ("   ", "Give the filter a name."),
    ("x" * 81, "at most 80 characters"), ("bell\x07", "control characters"),
    ("right\u202eleft", "control characters"),
])
def test_bad_filter_names_are_refused_with_a_message(app, people, name: str, message: str) -> None:  # type: ignore[no-untyped-def]
    bob = people("bob")
    bob.get("/queue/")
    response = bob.post("/queue/filters/?q=apples", {"name": name})
    assert response.status_code == 422 and message in response.get_data(as_text=True)
    fragment = bob.post("/queue/filters/?q=apples", {"name": name}, hx=True)
    assert fragment.status_code == 422 and message in fragment.get_data(as_text=True)
    assert saved() == []


def test_a_nul_in_a_filter_name_is_refused(app, people) -> None:  # type: ignore[no-untyped-def]
    bob = people("bob")
    bob.get("/queue/")
    response = bob.post("/queue/filters/", {"name": "a\x00b"})
    assert response.status_code == 400 and "NUL" in response.get_data(as_text=True)
    assert bob.post("/archive/filters/", {"name": "x"}).status_code == 404  # no filters on the archive
    assert bob.post("/queue/filters/", {"name": "x"}, csrf=False).status_code == 400
    assert saved() == []


def test_my_requests_past_the_last_page_shows_the_last_page(app, people) -> None:  # type: ignore[no-untyped-def]
    """``?page=9`` of two pages said "Page 9 of 2" over "You have not started anything yet."
    (as the other lists did before they showed their last page)."""
    app.config["WEBFLOW_PAGE_SIZE"] = 2
    made = [hello(f"parcel {n}", by="alice") for n in range(3)]
    html = people("alice").get("/requests/?page=9").get_data(as_text=True)
    assert "Page 2 of 2" in html and "Page 9" not in html
    assert rows(html) == [made[0].id] and "not started anything" not in html
