"""Pages without Redis poll ``/events/poll`` with the ETag of what they have seen: 304 while
nothing changed, else the events to fire (the same names a stream sends); the banner on a
stale task page says who changed the task. SQLite and PostgreSQL."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from web_support import AuthActions, hello, task_of, task_url, user

from webflow import db
from webflow.core.transaction import unit_of_work

POLL = "/events/poll"


def page_etag(person: AuthActions, url: str = "/queue/") -> str:
    """The ETag a page starts polling with (drawn into its <body>)."""
    html = person.get(url).get_data(as_text=True)
    match = re.search(r'data-live-etag="([^"]+)"', html)
    assert match, "the page does not poll"
    return f'"{match.group(1)}"'


def poll(person: AuthActions, etag: str, task: int | None = None) -> tuple[int, str, list[str]]:
    url = POLL + (f"?task={task}" if task else "")
    response = person.get(url, **{"If-None-Match": etag})
    events = [e["event"] for e in response.get_json()["events"]] if response.status_code == 200 else []
    return response.status_code, response.headers.get("ETag", ""), events


def test_nothing_changed_is_304_and_a_new_task_tells_the_queue(app: Flask, people) -> None:  # type: ignore[no-untyped-def]
    alice = people("alice")
    etag = page_etag(alice)
    assert poll(alice, etag)[0] == 304
    assert poll(alice, etag)[0] == 304

    hello("new work")
    status, etag, events = poll(alice, etag)
    assert status == 200 and "queue" in events
    # From now on the ETag says what each list held: the same again is 304.
    assert poll(alice, etag)[:2] == (304, etag)

    hello("more work")
    status, etag2, events = poll(alice, etag)
    assert (status, events) == (200, ["queue"])  # her inbox did not change
    assert etag2 != etag


def test_a_change_someone_cannot_see_is_not_news_to_them(app: Flask, people) -> None:  # type: ignore[no-untyped-def]
    carol = people("carol")  # may take no task
    etag = page_etag(carol)
    hello("first")
    status, etag, _ = poll(carol, etag)
    assert status == 200  # the page knew only a version: it looks once at everything
    hello("second")
    status, etag2, events = poll(carol, etag)
    assert (status, events) == (304, [])  # something changed, nothing of hers
    assert etag2 != etag  # the next poll starts from the new version: one cheap lookup


def test_the_task_page_hears_of_its_task_and_the_banner_says_who(app: Flask, people) -> None:  # type: ignore[no-untyped-def]
    alice, bob = people("alice"), people("bob")
    task = task_of(hello(), "approve")
    page = alice.get(task_url(task)).get_data(as_text=True)
    banner_url = re.search(r'id="live-banner"[^>]*hx-get="([^"]+)"', page).group(1).replace("&amp;", "&")
    status, etag, _ = poll(alice, page_etag(alice, task_url(task)), task.id)
    assert alice.get(banner_url, hx=True).get_data(as_text=True).strip() == ""  # nothing yet

    assert bob.post(task_url(task, "assign/"), hx=True).status_code == 200
    status, etag, events = poll(alice, etag, task.id)
    assert status == 200 and f"task-{task.id}" in events and "queue" in events
    assert "bob took this task" in alice.get(banner_url, hx=True).get_data(as_text=True)

    bob.get(task_url(task))
    assert bob.post(task_url(task), {"approved": "y"}, hx=True).status_code == 200
    status, etag, events = poll(alice, etag, task.id)
    assert f"task-{task.id}" in events
    banner = alice.get(banner_url, hx=True).get_data(as_text=True)
    assert "bob completed this task" in banner and "Reload" in banner
    # Bob's own page does not tell him what he did himself.
    assert bob.get(banner_url, hx=True).get_data(as_text=True).strip() == ""
    # A plain request for the banner gets the task page.
    assert alice.get(banner_url).status_code == 303


def test_the_banner_and_the_poll_refuse_whoever_may_not_see(app: Flask, people) -> None:  # type: ignore[no-untyped-def]
    task = task_of(hello(), "approve")
    carol = people("carol")
    assert carol.get(task_url(task, "banner/?since=0"), hx=True).status_code == 403
    # A task she may not see is ignored: no event of it, ever.
    status, etag, _ = poll(carol, '"0"', task.id)
    people("bob").post(task_url(task, "assign/"), hx=True)
    assert poll(carol, etag, task.id)[2] == []
    anonymous = AuthActions(app)
    assert anonymous.get(POLL).status_code == 302
    assert anonymous.get(POLL, hx=True).status_code == 401


def test_hostile_input_is_harmless(app: Flask, people) -> None:  # type: ignore[no-untyped-def]
    alice = people("alice")
    for query in ["?task=abc", "?task=99999999999999999999999", "?task=-1&task=0",
                  "?" + "&".join(["task=1"] * 50)]:
        for etag in ['"x.y.z"', "garbage", 'W/"1"', '"' + "9" * 500 + '"', ""]:
            response = alice.get(POLL + query, **{"If-None-Match": etag})
            assert response.status_code in (200, 304), (query, etag)
    assert alice.get(POLL + "?task=%00").status_code == 400  # the app's rule for NUL bytes


def test_a_rolled_back_change_is_no_news(app: Flask, people) -> None:  # type: ignore[no-untyped-def]
    alice = people("alice")
    hello("first")
    status, etag, _ = poll(alice, page_etag(alice))
    with pytest.raises(RuntimeError), unit_of_work(db.session()):
        hello("never stored")
        raise RuntimeError("rolled back")
    assert poll(alice, etag)[0] == 304
    assert user("alice") is not None
