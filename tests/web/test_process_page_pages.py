"""The process page of a large fan-out shows its tasks a page at a time (100 rows), oldest
first, with the graph and the links still drawn from every task; a link to a task on
another page opens that task; a bad page number is page 1 and one past the end is the
last page, never an error. Its audit trail is paged on its own (``?trail=``, 200 rows),
the newest page first."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from app_support import in_app_context, make_test_app
from flask import Flask
from web_support import PASSWORD, AuthActions

from webflow import Flow, db, flow, this
from webflow.blueprints import flows
from webflow.blueprints.flows import PROCESS_TASKS_PER_PAGE
from webflow.models import Process, TaskEvent, User


class ManyReviewsFlow(Flow):
    """Many reviews"""

    start = flow.StartFunction().Next(this.fan)
    fan = flow.Split().Each(this.review, items=lambda act: act.process.data["items"])
    review = flow.View().Permission(auto_create=True).Next(this.collect)
    collect = flow.Join().Next(this.end)
    end = flow.End()


ITEMS = 230  # with the start and the split: 232 tasks, three pages


@pytest.fixture
def app(db_url: str) -> Iterator[Flask]:
    people = {"boss": ["many_reviews.manage", "many_reviews.can_review"], "rita": ["many_reviews.can_review"]}
    with in_app_context(make_test_app(db_url, [ManyReviewsFlow], people, PASSWORD)) as app:
        yield app


@pytest.fixture
def process(app: Flask) -> Process:
    started = ManyReviewsFlow.start.run(items=list(range(ITEMS)))  # type: ignore[attr-defined]
    db.session.commit()
    return started  # type: ignore[no-any-return]


def rows(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'<tr id="task-(\d+)"', html)]


def page(person: AuthActions, process: Process, query: str = "") -> str:
    response = person.get(f"/flows/many_reviews/{process.id}/{query}")
    assert response.status_code == 200, query
    return response.get_data(as_text=True)


def test_the_tasks_come_a_page_at_a_time(app, process):
    boss = AuthActions(app).enter_as("boss")
    ids = sorted(t.id for t in process.tasks)
    assert len(ids) == ITEMS + 2
    seen = []
    for number in (1, 2, 3):
        html = page(boss, process, f"?page={number}")
        assert f"Page {number} of 3" in html
        first = (number - 1) * PROCESS_TASKS_PER_PAGE
        shown = ids[first:first + PROCESS_TASKS_PER_PAGE]
        assert rows(html) == shown
        assert f"Tasks {first + 1}-{first + len(shown)} of {len(ids)}, oldest first." in html
        assert "<svg" in html  # the graph, drawn from every task
        seen += rows(html)
    assert seen == ids
    assert ('rel="next"' in page(boss, process)) and ('rel="next"' not in page(boss, process, "?page=3"))


@pytest.mark.parametrize("query", ["?page=abc", "?page=-1", "?page=0", "?page=", "?page=1.5",
                                   "?page=99999999999999999999999", "?page=%F0%9F%98%80"])
def test_a_bad_page_number_is_the_first_page(app, process, query):
    boss = AuthActions(app).enter_as("boss")
    assert rows(page(boss, process, query)) == rows(page(boss, process))


def test_a_nul_byte_is_refused_as_everywhere(app, process):
    boss = AuthActions(app).enter_as("boss")
    assert boss.get(f"/flows/many_reviews/{process.id}/?page=%00").status_code == 400


def test_a_page_past_the_end_is_the_last_page(app, process):
    boss = AuthActions(app).enter_as("boss")
    assert rows(page(boss, process, "?page=4")) == rows(page(boss, process, "?page=3"))
    assert rows(page(boss, process, "?page=1000000")) == rows(page(boss, process, "?page=3"))


def test_links_to_tasks_on_other_pages_open_them(app, process):
    boss = AuthActions(app).enter_as("boss")
    split = next(t for t in process.tasks if t.node_name == "fan")
    first = page(boss, process)
    # The split led to every review: a dozen are named, the rest counted.
    assert f"and {ITEMS - 12} more" in first
    assert f'href="#task-{split.id + 1}"' in first  # a review on this page
    later = page(boss, process, "?page=2")
    assert f'href="#task-{split.id}"' not in later
    assert f'href="/flows/many_reviews/{process.id}/fan/{split.id}/"' in later


def test_a_small_process_has_no_pager(app):
    boss = AuthActions(app).enter_as("boss")
    small = ManyReviewsFlow.start.run(items=[1, 2])  # type: ignore[attr-defined]
    db.session.commit()
    html = page(boss, small)
    assert len(rows(html)) == 4 and "Page 1 of" not in html and "oldest first" not in html


@pytest.mark.parametrize("query", ["?page=2", "?trail=2", "?comments=2", "?page=2&trail=1&comments=3",
                                   "?trail=x"])
def test_someone_who_may_not_see_the_process_still_gets_403(app, process, query):
    rita = AuthActions(app).enter_as("rita")
    answer = rita.get(f"/flows/many_reviews/{process.id}/{query}")
    assert answer.status_code == 403
    assert rows(answer.get_data(as_text=True)) == []  # no task of the process on the page


# -- the audit trail ---------------------------------------------------------------------


def entries(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'<li class="wf-event" id="event-(\d+)"', html)]


@pytest.fixture
def busy(app: Flask, process: Process, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Five audit rows a page; reviews taken and given back until the trail has three
    pages. The audit rows' ids, oldest first."""
    monkeypatch.setattr(flows, "PROCESS_EVENTS_PER_PAGE", 5)
    boss = db.session.scalar(sa.select(User).where(User.username == "boss"))
    for task in [t for t in process.tasks if t.node_name == "review"][:5]:
        task.activate().assign(boss)
        task.activate().unassign()
    db.session.commit()
    ids = list(db.session.scalars(sa.select(TaskEvent.id).where(TaskEvent.process_id == process.id)
                                  .order_by(TaskEvent.created, TaskEvent.id)))
    assert 10 < len(ids) <= 15, len(ids)  # three pages
    return ids


def test_the_audit_trail_comes_a_page_at_a_time_the_newest_first(app, process, busy):
    boss = AuthActions(app).enter_as("boss")
    newest = page(boss, process)
    assert entries(newest) == busy[10:]  # no page asked for: the last, what happened last
    assert f"Entries 11-{len(busy)} of {len(busy)}, oldest first." in newest
    seen = []
    for number in (1, 2, 3):
        html = page(boss, process, f"?trail={number}")
        assert entries(html) == busy[(number - 1) * 5:number * 5]
        seen += entries(html)
        if number < 3:
            assert "the newest are on the last page" in html
    assert seen == busy
    # The tasks are paged on their own: both pagers, each keeping the other's page.
    html = page(boss, process, "?page=2&trail=1")
    assert entries(html) == busy[:5] and "Page 2 of 3" in html
    assert f'href="/flows/many_reviews/{process.id}/?page=3&amp;trail=1"' in html
    assert f'href="/flows/many_reviews/{process.id}/?page=2&amp;trail=2#history"' in html
    assert 'aria-label="Pages of the audit trail"' in html and 'aria-label="Pages of tasks"' in html


@pytest.mark.parametrize("query", ["?trail=abc", "?trail=-1", "?trail=0", "?trail=", "?trail=1.5",
                                   "?trail=99999999999999999999999", "?trail=%F0%9F%98%80", "?trail=4",
                                   "?trail=1000000"])
def test_a_bad_or_past_the_end_trail_page_is_the_newest(app, process, busy, query):
    boss = AuthActions(app).enter_as("boss")
    assert entries(page(boss, process, query)) == busy[10:]


def test_a_nul_byte_in_the_trail_page_is_refused(app, process, busy):
    boss = AuthActions(app).enter_as("boss")
    assert boss.get(f"/flows/many_reviews/{process.id}/?trail=%00").status_code == 400


def test_a_short_trail_has_no_pager(app, process):
    boss = AuthActions(app).enter_as("boss")
    html = page(boss, process)
    assert entries(html) and "Pages of the audit trail" not in html and "Entries " not in html


# -- the comments -------------------------------------------------------------------------


def comment_ids(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'<li class="wf-comment" id="comment-(\d+)"', html)]


@pytest.fixture
def discussed(app: Flask, process: Process, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Three comments a page; seven of them, on reviews and on the process. Their ids,
    oldest first."""
    from webflow.core.comments import post_comment

    monkeypatch.setattr(flows, "PROCESS_COMMENTS_PER_PAGE", 3)
    boss = db.session.scalar(sa.select(User).where(User.username == "boss"))
    reviews = [t for t in process.tasks if t.node_name == "review"]
    ids = [post_comment(db.session(), process, boss, f"note {n}", reviews[n] if n % 3 else None).id
           for n in range(7)]
    db.session.commit()
    return ids


def test_the_comments_come_a_page_at_a_time_the_newest_first(app, process, discussed):
    boss = AuthActions(app).enter_as("boss")
    newest = page(boss, process)
    assert comment_ids(newest) == discussed[6:]
    assert "Comments 7-7 of 7, oldest first." in newest
    seen = []
    for number in (1, 2, 3):
        html = page(boss, process, f"?comments={number}")
        assert comment_ids(html) == discussed[(number - 1) * 3:number * 3]
        seen += comment_ids(html)
    assert seen == discussed
    html = page(boss, process, "?page=2&comments=1")
    assert "Page 2 of 3" in html and comment_ids(html) == discussed[:3]
    assert f'href="/flows/many_reviews/{process.id}/?page=2&amp;comments=2#comments"' in html
    assert 'aria-label="Pages of comments"' in html


@pytest.mark.parametrize("query", ["?comments=abc", "?comments=0", "?comments=-1", "?comments=4",
                                   "?comments=99999999999999999999999", "?comments=%F0%9F%98%80"])
def test_a_bad_or_past_the_end_comments_page_is_the_newest(app, process, discussed, query):
    boss = AuthActions(app).enter_as("boss")
    assert comment_ids(page(boss, process, query)) == discussed[6:]
    assert boss.get(f"/flows/many_reviews/{process.id}/?comments=%00").status_code == 400


def test_a_comment_posted_from_the_page_shows_on_the_newest_page(app, process, discussed):
    boss = AuthActions(app).enter_as("boss")
    response = boss.post(f"/flows/many_reviews/{process.id}/comments/", {"text": "the eighth"}, hx=True)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "the eighth" in html and "Comments 7-8 of 8, oldest first." in html
