"""Working together at its edges (audit 4): what a demanding user or an attacker sends to
the collaboration pages is refused with a reason and changes nothing, and what the pages
say is what happens."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
import sqlalchemy as sa
from app_support import in_app_context, make_test_app
from flask import Flask
from sqlalchemy.orm import Session
from web_flows import LabelFlow
from web_support import PASSWORD, AuthActions, fresh, task_of, task_url, user

from webflow import Flow, db, flow, this
from webflow.core.away import set_away
from webflow.core.models import Comment, NotificationSetting, OutOfOffice, SavedFilter, utcnow
from webflow.models import Process, User

# -- notification settings: an address the mailer can send to -------------------------------

#: Addresses the settings form took ("Notification settings saved") that no mail could
#: ever go to: the mailer refused each one at every attempt, five times, and the person
#: was never told. A DEL went into the stored address too.
UNSENDABLE = ["bob@example..com", "bob@.example.com", "bob@example.com.",
              "bob@" + "b" * 64 + ".com", "bob@ex\x7fample.com", "bob@exa\x1fmple.com"]


@pytest.mark.parametrize("address", UNSENDABLE, ids=["double-dot", "leading-dot", "trailing-dot",
                                                     "long-label", "del", "control"])
def test_an_address_no_mail_can_go_to_is_refused(app, people, address: str) -> None:  # type: ignore[no-untyped-def]
    bob = people("bob")
    bob.get("/settings/")
    response = bob.post("/settings/notifications", {"email": address, "assigned": "y"})
    assert response.status_code == 422, response.status_code
    assert "like name@example.com" in response.get_data(as_text=True)
    db.session.expire_all()
    assert user("bob").email in (None, "")


def test_an_ordinary_or_international_address_is_still_taken(app, people) -> None:  # type: ignore[no-untyped-def]
    bob = people("bob")
    bob.get("/settings/")
    for address in ("bob.smith+work@example.com", "bob@ex\u00e4mple.co.uk", "bob@b"):
        assert bob.post("/settings/notifications", {"email": address}).status_code == 303, address
        db.session.expire_all()
        assert user("bob").email == address


# -- my requests: a process with thousands of open steps -------------------------------------


#: The open steps My requests names per process (``my_requests.STEPS_SHOWN``).
STEPS_SHOWN = 10


class WideFlow(Flow):
    """Wide

    One step per item, all open at once."""

    start = flow.StartFunction().Next(this.fan)
    fan = flow.Split().Each(this.item, items=lambda act: list(range(act.process.data["n"])))
    item = (flow.View().Permission(auto_create=True).OnTimeout(this.late, after=timedelta(days=9))
            .Next(this.join))
    join = flow.Join().Next(this.end)
    late = flow.End()
    end = flow.End()


@pytest.fixture
def wide_app(db_url: str) -> Iterator[Flask]:
    people = {"ann": ["wide.can_item"], "boss": ["wide.manage"]}
    with in_app_context(make_test_app(db_url, [WideFlow], people, PASSWORD)) as app:
        yield app


def wide(n: int, by: str = "ann") -> Process:
    process = WideFlow.start.run(n=n)
    process.created_by_id = user(by).id
    db.session.commit()
    return process


def test_my_requests_names_a_few_open_steps_of_a_wide_process_and_counts_the_rest(wide_app) -> None:  # type: ignore[no-untyped-def]
    """Every open step was drawn, one line each: a fan-out over 3,000 items made the page
    180 KB and a third of a second per such process (25 of them on a page: seconds and
    megabytes), where the process page shows its tasks 100 at a time."""
    big, small = wide(3 * STEPS_SHOWN), wide(2)
    page = AuthActions(wide_app).enter_as("ann").get("/requests/").get_data(as_text=True)
    big_row = page.split(f'id="row-process-{big.id}"')[1].split("</tr>")[0]
    assert big_row.count("Item ·") == STEPS_SHOWN
    assert f"and {2 * STEPS_SHOWN} more open steps" in big_row
    assert f'<a class="wf-muted" href="/flows/wide/{big.id}/">and {2 * STEPS_SHOWN} more' in big_row
    small_row = page.split(f'id="row-process-{small.id}"')[1].split("</tr>")[0]
    assert small_row.count("Item ·") == 2 and "more open steps" not in small_row


def test_the_deadline_timers_of_my_steps_are_neither_shown_nor_counted(wide_app) -> None:  # type: ignore[no-untyped-def]
    """Each open step here has a deadline timer: the flow's own business, which only its
    managers see on this page, as before; the count of the steps not named leaves it out too."""
    mine, small = wide(3 * STEPS_SHOWN), wide(2)
    managed, managed_small = wide(3 * STEPS_SHOWN, by="boss"), wide(2, by="boss")

    def row(page: str, process: Process) -> str:
        return page.split(f'id="row-process-{process.id}"')[1].split("</tr>")[0]

    page = AuthActions(wide_app).enter_as("ann").get("/requests/").get_data(as_text=True)
    assert f"and {2 * STEPS_SHOWN} more open steps" in row(page, mine)
    assert row(page, small).count("·") == 2
    page = AuthActions(wide_app).enter_as("boss").get("/requests/").get_data(as_text=True)
    assert f"and {5 * STEPS_SHOWN} more open steps" in row(page, managed)
    assert row(page, managed_small).count("·") == 4  # two steps, two timers


# -- comments that hold nothing to read --------------------------------------------------------


@pytest.mark.parametrize("text", ["\u200b", " \u200b\u2060\ufeff ", "\u202e\u200f", "\u00ad\u3000"],
                         ids=["zero-width-space", "joiners-and-bom", "direction-marks", "soft-hyphen"])
def test_a_comment_of_only_invisible_characters_is_empty(app, people, text: str) -> None:  # type: ignore[no-untyped-def]
    """A zero-width space or a direction mark was posted: an empty entry in everyone's
    history, "commented" with nothing under it."""
    process = LabelFlow.start.run(data={"amount": 5}, user=user("alice"))
    confirm = task_of(process, "confirm")
    alice = people("alice")
    alice.get(task_url(confirm))
    for url in (task_url(confirm, "comments/"), f"/flows/label/{process.id}/comments/"):
        response = alice.post(url, {"text": text})
        assert response.status_code == 422 and "the comment is empty" in response.get_data(as_text=True)
    db.session.commit()
    assert db.session.scalars(db.select(Comment)).all() == []
    assert alice.post(task_url(confirm, "comments/"), {"text": "\u200bok\u200b"}).status_code == 303


# -- out of office with a substitute who is gone -----------------------------------------------


def test_the_settings_page_never_says_tasks_go_to_a_deactivated_substitute(app, people) -> None:  # type: ignore[no-untyped-def]
    """bob named alice and alice was deactivated since: tasks given to bob stay with bob
    (an inactive user works on nothing), but his page still said "tasks go to alice"."""
    bob = people("bob")
    bob.get("/settings/")
    assert bob.post("/settings/away/", {"substitute_id": user("alice").id}).status_code == 303
    assert "tasks go to <strong>alice</strong>" in bob.get("/settings/").get_data(as_text=True)
    process = LabelFlow.start.run(data={"amount": 5}, user=user("alice"))
    confirm = task_of(process, "confirm")
    user("alice").is_active = False
    db.session.commit()
    confirm.activate().assign(user("bob"))
    assert fresh(confirm).owner_id == user("bob").id  # the engine's answer: it stays with bob
    for hx in (False, True):
        page = bob.get("/settings/", hx=hx).get_data(as_text=True)
        assert "tasks go to <strong>alice</strong>" not in page
        assert "is no longer active: tasks given to you stay with you" in page


# -- a task with very many comments ------------------------------------------------------------

#: Comments per page of a task's history (``tasks.TASK_COMMENTS_PER_PAGE``).
COMMENTS_PER_PAGE = 100


def test_a_task_page_shows_its_comments_a_page_at_a_time_the_newest_first(app, people) -> None:  # type: ignore[no-untyped-def]
    """Anyone who sees a task may comment, and every comment was drawn on every view of the
    task and after every post: 250 comments of 5,000 characters made the page 1.3 MB."""
    process = LabelFlow.start.run(data={"amount": 5}, user=user("alice"))
    confirm = task_of(process, "confirm")
    alice = user("alice")
    db.session.add_all([Comment(process_id=process.id, task_id=confirm.id, author_id=alice.id,
                                text=f"note {n} " + "x" * 4990, mentions=[]) for n in range(250)])
    db.session.commit()
    page = people("alice").get(task_url(confirm)).get_data(as_text=True)
    assert page.count('class="wf-comment"') == 50 and "note 249 " in page and "note 199 " not in page
    assert "Page 3 of 3" in page and "comments=2#task-history" in page
    assert len(page) < 600_000
    first = people("alice").get(task_url(confirm) + "?comments=1").get_data(as_text=True)
    assert first.count('class="wf-comment"') == COMMENTS_PER_PAGE
    assert "note 0 " in first and "note 100 " not in first
    posted = people("bob").post(task_url(confirm, "comments/"), {"text": "the newest"}, hx=True)
    html = posted.get_data(as_text=True)
    assert posted.status_code == 200 and "the newest" in html and html.count('class="wf-comment"') == 51


# -- the same settings form sent twice at once -------------------------------------------------


@contextmanager
def written_meanwhile(model: type, row: dict[str, object]) -> Iterator[None]:
    """The other copy of a double-clicked form wins the race: just before this request's
    flush inserts its ``model`` row, that row is committed by another connection."""
    if db.engine.dialect.name == "sqlite":
        pytest.skip("SQLite: a request's write transaction begins IMMEDIATE, the copies run one by one")
    done: list[bool] = []

    def insert_first(session, flush_context, instances) -> None:  # type: ignore[no-untyped-def]
        if not done and any(isinstance(obj, model) for obj in session.new):
            done.append(True)
            with db.engine.begin() as other:
                other.execute(sa.insert(model).values(**row))

    sa.event.listen(Session, "before_flush", insert_first)
    try:
        yield
    finally:
        sa.event.remove(Session, "before_flush", insert_first)
    assert done, "the race was not run"


def test_notification_settings_sent_twice_at_once_are_saved_not_a_500(app, people) -> None:  # type: ignore[no-untyped-def]
    """A double click on Save (no JavaScript) before the first answer: both requests found
    no settings row and both inserted one; the second was a 500."""
    bob = people("bob")
    bob.get("/settings/")
    bob_id = user("bob").id
    with written_meanwhile(NotificationSetting, {"user_id": bob_id, "assigned": True, "delegated": True,
                                                 "mentioned": True, "overdue": True}):
        response = bob.post("/settings/notifications", {"email": "", "assigned": "y"})
    assert response.status_code == 303, response.status_code
    db.session.expire_all()
    setting = db.session.get(NotificationSetting, bob_id)
    wanted = [setting.assigned, setting.delegated, setting.mentioned, setting.overdue]
    assert wanted == [True, False, False, False]


def test_out_of_office_sent_twice_at_once_is_saved_not_a_500(app, people) -> None:  # type: ignore[no-untyped-def]
    bob = people("bob")
    bob.get("/settings/")
    bob_id, alice_id = user("bob").id, user("alice").id
    with written_meanwhile(OutOfOffice, {"user_id": bob_id, "substitute_id": alice_id,
                                         "created": utcnow()}):
        response = bob.post("/settings/away/", {"substitute_id": user("carol").id})
    assert response.status_code == 303, response.status_code
    db.session.expire_all()
    assert db.session.get(OutOfOffice, bob_id).substitute_id == user("carol").id


def test_a_substitute_past_the_pickers_first_names_stays_chosen(app, people) -> None:  # type: ignore[no-untyped-def]
    """The picker lists the first 500 colleagues by name: bob's substitute past them was
    not among its options, the form showed "Choose a colleague", and changing only the end
    of his absence was refused (422) for want of a substitute."""
    db.session.add_all(User(username=f"a{n:03}") for n in range(500))  # before alice, bob, carol
    db.session.commit()
    bob = people("bob")
    bob.get("/settings/")
    carol = user("carol")
    set_away(db.session(), user("bob"), carol)
    page = bob.get("/settings/").get_data(as_text=True)
    assert f'<option value="{carol.id}" selected>carol</option>' in page
    assert f'<option value="{user("alice").id}"' not in page  # past the first 500, not chosen


# -- saved filters of an older format --------------------------------------------------------


@pytest.mark.parametrize("list_name", ["x", "", "delete_filter"])
def test_deleting_a_filter_of_another_list_leads_to_the_inbox(app, people, list_name: str) -> None:  # type: ignore[no-untyped-def]
    """A row an older version or an import stored for a list the filters no longer know:
    deleting it was a 500 (url_for of a list page that does not exist)."""
    row = SavedFilter(user_id=user("bob").id, list_name=list_name, name="old", query="q=a")
    db.session.add(row)
    db.session.commit()
    row_id = row.id
    bob = people("bob")
    bob.get("/inbox/")
    response = bob.post(f"/filters/{row_id}/delete/")
    assert response.status_code == 303 and response.headers["Location"].endswith("/inbox/")
    db.session.expire_all()
    assert db.session.get(SavedFilter, row_id) is None


def test_one_comment_token_sent_to_two_processes_at_once_is_refused_not_a_500(app, people) -> None:  # type: ignore[no-untyped-def]
    """Each copy is checked under its own process's lock: both found the token unused, and
    the second insert broke the token's unique index (a 500). Now: "already used", the text kept."""
    process = LabelFlow.start.run(data={"amount": 5}, user=user("alice"))
    other = LabelFlow.start.run(data={"amount": 6}, user=user("alice"))
    alice = people("alice")
    alice.get(f"/flows/label/{process.id}/")
    token = "a" * 32
    with written_meanwhile(Comment, {"process_id": other.id, "author_id": user("alice").id, "text": "there",
                                     "mentions": [], "post_token": token, "created": utcnow()}):
        response = alice.post(f"/flows/label/{process.id}/comments/",
                              {"text": "kept words", "comment_token": token}, hx=True)
    html = response.get_data(as_text=True)
    assert response.status_code == 422 and "already used" in html and "kept words" in html
    db.session.commit()
    assert [c.text for c in db.session.scalars(db.select(Comment))] == ["there"]


def test_the_settings_page_names_the_substitute_of_a_substitute_who_is_away_too(app, people) -> None:  # type: ignore[no-untyped-def]
    """bob named alice, and alice is away too with manager as her substitute: tasks given to
    bob go on to manager (when manager may do them), but bob's page named only alice."""
    set_away(db.session(), user("alice"), user("manager"))
    set_away(db.session(), user("bob"), user("alice"))
    page = people("bob").get("/settings/").get_data(as_text=True)
    assert "tasks go to <strong>alice</strong>" in page
    assert "alice is out of office too: they go on to <strong>manager</strong>." in page
    set_away(db.session(), user("alice"), user("bob"))  # back to bob: a circle, no further hop
    page = people("bob").get("/settings/").get_data(as_text=True)
    assert "tasks go to <strong>alice</strong>" in page and "out of office too" not in page
