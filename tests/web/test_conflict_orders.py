"""Two people (or a person and a timer, a join or a manager) on one task, in awkward orders.

A page drawn before someone else changed the task (it was canceled with its process,
escalated by its timeout, canceled by a partial join, handed to someone else, put back in
the queue, undone) and then submitted gets a clear 409 in a person's words, from what
became of the task: never "You do not have permission", never a 500, nothing changed, and
with HTMX the form keeps what was typed (``HX-Reswap: none``; the status, history and
process cards are redrawn out of band). The page tells the server what it was drawn for
in its hidden ``shown`` field (the task's status and owner); a POST without it (another
program, the permission matrix) keeps the rule book's 403 for a task that is not yours.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from app_support import in_app_context, make_test_app
from flask import Flask
from flask_wtf import FlaskForm
from web_support import PASSWORD, AuthActions, fresh, snapshot, task_of, task_url, user
from wtforms import StringField

from webflow import STATUS, Flow, db, fire_due_timers, flow, this
from webflow.core.context import Context
from webflow.core.engine import cancel_process
from webflow.core.models import TaskDraft, utcnow
from webflow.core.nodes.view import ViewActivation
from webflow.models import Process, Task


class NoteForm(FlaskForm):
    note = StringField("Note")


class AnswerFlow(Flow):
    """Answer

    One answer, escalated to the boss when it waits an hour."""

    start = flow.StartFunction().Next(this.answer)
    answer = (flow.View(form=NoteForm).Permission(auto_create=True)
              .OnTimeout(this.escalated, after=timedelta(hours=1)).Next(this.end))
    escalated = flow.View(form=NoteForm).Permission(auto_create=True).Next(this.end)
    end = flow.End()


class PanelFlow(Flow):
    """Panel

    Three reviews; the first two answers decide and the third is canceled."""

    start = flow.StartFunction().Next(this.fan_out)
    fan_out = flow.Split().Each(this.review, items=lambda act: ["a", "b", "c"])
    review = flow.View(form=NoteForm).Permission(auto_create=True).Next(this.join)
    join = flow.Join(until=lambda act: len(act.arrived) >= 2, cancel_rest=True).Next(this.end)
    end = flow.End()


class QuorumFlow(Flow):
    """Quorum

    Three reviews; the first two answers decide, and the third may still answer."""

    start = flow.StartFunction().Next(this.fan_out)
    fan_out = flow.Split().Each(this.review, items=lambda act: ["a", "b", "c"])
    review = flow.View(form=NoteForm).Permission(auto_create=True).Next(this.join)
    join = flow.Join(until=lambda act: len(act.arrived) >= 2).Next(this.after)
    after = flow.View(form=NoteForm).Permission(auto_create=True).Next(this.end)
    end = flow.End()


WORK = ["answer.can_answer", "answer.can_escalated", "panel.can_review",
        "quorum.can_review", "quorum.can_after"]
USERS = {"ann": WORK, "ben": WORK, "boss": ["answer.manage", "panel.manage"], "viewer": ["answer.view"]}


@pytest.fixture
def app(db_url: str) -> Iterator[Flask]:
    with in_app_context(make_test_app(db_url, [AnswerFlow, PanelFlow, QuorumFlow], USERS, PASSWORD)) as app:
        yield app


@pytest.fixture
def people(app: Flask) -> Callable[[str], AuthActions]:
    logged_in: dict[str, AuthActions] = {}

    def person(name: str) -> AuthActions:
        if name not in logged_in:
            logged_in[name] = AuthActions(app).enter_as(name)
        return logged_in[name]

    return person


def answer_of(owner: str | None = "ann") -> tuple[Process, Task]:
    process = AnswerFlow.start.run()
    if owner:
        task_of(process, "answer").activate().assign(user(owner))
    return process, task_of(process, "answer")


class OpenPage:
    """A task page as one person has it open: the forms it drew, sent later as they are."""

    def __init__(self, person: AuthActions, task: Task) -> None:
        self.person, self.task = person, task
        self.html = person.get(task_url(task)).get_data(as_text=True)

    def shown(self) -> str:
        match = re.search(r'name="shown" value="([^"]*)"', self.html)
        assert match, "the task page's forms do not say what the page was drawn for"
        return match.group(1)

    def send(self, suffix: str = "", data: dict[str, Any] | None = None, hx: bool = False) -> Any:
        return self.person.post(task_url(self.task, suffix), {**(data or {}), "shown": self.shown()}, hx=hx)


def said(response: Any) -> list[str]:
    return re.findall(r'<p class="flash error"[^>]*>(.*?)</p>', response.get_data(as_text=True), re.S)


def assert_refused_in_place(response: Any, words: str, hx: bool, typed: str | None = None) -> None:
    """409 with the words. With HTMX a refused form (``typed``: what was typed into it)
    stays as it is and the cards that say what happened come out of band; a refused button
    redraws the status component with the buttons of now (as every transition does)."""
    html = response.get_data(as_text=True)
    assert response.status_code == 409, (response.status_code, said(response))
    assert any(words in text for text in said(response)), said(response)
    assert "permission" not in html.split('id="messages"', 1)[1][:600]
    if hx:
        assert "<html" not in html and 'id="task-status"' in html and 'hx-swap-oob="true"' in html
        if typed is not None:
            assert response.headers.get("HX-Reswap") == "none"
            assert 'id="task-work"' not in html and typed not in html  # the typed form is left alone


def cancel_by_boss(process: Process) -> None:
    with Context(propagate_exception=False, user=user("boss")):
        cancel_process(db.session.get(Process, process.id))
    db.session.commit()


def escalate(process: Process) -> None:
    assert fire_due_timers(now=utcnow() + timedelta(hours=2)) >= 1
    db.session.commit()


MEANWHILE_CANCELED: dict[str, Callable[[Process], None]] = {"process canceled": cancel_by_boss,
                                                          "escalated by its timeout": escalate}


@pytest.mark.parametrize("hx", [False, True], ids=["plain", "htmx"])
@pytest.mark.parametrize("what", list(MEANWHILE_CANCELED))
def test_an_open_form_of_a_task_canceled_meanwhile_says_so(app, people, what, hx) -> None:  # type: ignore[no-untyped-def]
    process, answer = answer_of("ann")
    complete, draft, back = (OpenPage(people("ann"), answer) for _ in range(3))
    assert back.shown() == f"ASSIGNED:{user('ann').id}"
    MEANWHILE_CANCELED[what](process)
    assert fresh(answer).status == STATUS.CANCELED
    before = snapshot(process)
    words = "canceled meanwhile"
    assert_refused_in_place(complete.send("", {"note": "typed 1"}, hx=hx), words, hx, "typed 1")
    assert_refused_in_place(draft.send("draft/", {"note": "typed 2"}, hx=hx), words, hx, "typed 2")
    assert_refused_in_place(back.send("unassign/", hx=hx), "canceled meanwhile", hx)
    assert_refused_in_place(back.send("reassign/", {"user_id": user("ben").id, "picker": "1"}, hx=hx),
                            "canceled meanwhile", hx)
    assert snapshot(process) == before
    db.session.commit()
    assert db.session.get(TaskDraft, answer.id) is None


@pytest.mark.parametrize("hx", [False, True], ids=["plain", "htmx"])
def test_a_review_canceled_by_a_partial_join_says_so_and_the_join_fires_once(app, people, hx) -> None:  # type: ignore[no-untyped-def]
    process = PanelFlow.start.run()
    reviews = sorted((t for t in process.tasks if t.node_name == "review"), key=lambda t: t.data["index"])
    for review, who in zip(reviews, ("ann", "ben", "ann"), strict=True):
        review.activate().assign(user(who))
    db.session.commit()
    late = OpenPage(people("ann"), reviews[2])
    for review, who in zip(reviews[:2], ("ann", "ben"), strict=True):
        OpenPage(people(who), review)
        assert people(who).post(task_url(review), {"note": f"{who} says yes"}).status_code == 303
    assert fresh(process).status == STATUS.DONE
    before = snapshot(process)
    assert_refused_in_place(late.send("", {"note": "too late"}, hx=hx), "canceled meanwhile", hx, "too late")
    assert snapshot(process) == before
    joins = [t for t in fresh(process).tasks if t.node_name == "join"]
    assert len(joins) == 1 and joins[0].status == STATUS.DONE


def hand_to_ben(task: Task) -> None:
    with Context(propagate_exception=False, user=user("boss")):
        db.session.get(Task, task.id).activate().reassign(user("ben"))
    db.session.commit()


def ann_delegates_to_ben(task: Task) -> None:
    with Context(propagate_exception=False, user=user("ann")):
        db.session.get(Task, task.id).activate().delegate(user("ben"))
    db.session.commit()


def put_back(task: Task) -> None:
    with Context(propagate_exception=False, user=user("boss")):
        db.session.get(Task, task.id).activate().unassign()
    db.session.commit()


#: What someone else did while ann's page was open, and what ann's refused form reads.
CHANGED_HANDS = [(hand_to_ben, "This task is with ben now"),
                 (ann_delegates_to_ben, "This task is with ben now"),
                 (put_back, "waiting in the queue")]


@pytest.mark.parametrize("hx", [False, True], ids=["plain", "htmx"])
@pytest.mark.parametrize(("meanwhile", "words"), CHANGED_HANDS, ids=[m.__name__ for m, _ in CHANGED_HANDS])
def test_a_page_opened_before_the_task_changed_hands_is_refused_with_what_happened(  # type: ignore[no-untyped-def]
        app, people, meanwhile, words, hx) -> None:
    process, answer = answer_of("ann")
    pages = [OpenPage(people("ann"), answer) for _ in range(3)]
    assert pages[1].send("draft/", {"note": "ann's draft"}).status_code == 303
    meanwhile(answer)
    before = snapshot(process)
    complete, draft, back = pages
    assert_refused_in_place(complete.send("", {"note": "typed"}, hx=hx), words, hx, "typed")
    assert_refused_in_place(draft.send("draft/", {"note": "typed again"}, hx=hx), words, hx, "typed again")
    assert_refused_in_place(back.send("unassign/", hx=hx), words, hx)
    assert snapshot(process) == before
    # Without the page's word (another program, someone who never had the task): the rule's 403.
    assert people("ann").post(task_url(answer), {"note": "x"}).status_code == 403
    stranger = people("viewer").post(task_url(answer), {"note": "x", "shown": "ASSIGNED:1"})
    assert stranger.status_code in (403, 409)
    assert snapshot(process) == before


@pytest.mark.parametrize("hx", [False, True], ids=["plain", "htmx"])
def test_back_and_resubmit_after_an_undo_and_after_a_done(app, people, hx) -> None:  # type: ignore[no-untyped-def]
    process, answer = answer_of("ann")
    page = OpenPage(people("ann"), answer)
    assert page.send("", {"note": "first"}).status_code == 303
    done = snapshot(process)
    # The same form again (Back, then Complete): done already, by ann herself.
    assert_refused_in_place(page.send("", {"note": "second"}, hx=hx), "You completed this task already", hx)
    assert snapshot(process) == done
    # A manager undid the end and the answer; the old form sent again: the task waits in the queue.
    with Context(propagate_exception=False, user=user("boss")):
        end = task_of(process, "end").activate()
        end.undo()
        end.cancel()
        task_of(process, "answer").activate().undo()
    db.session.commit()
    before = snapshot(process)
    assert_refused_in_place(page.send("", {"note": "third"}, hx=hx), "waiting in the queue", hx)
    assert snapshot(process) == before


def test_a_completion_that_loses_the_task_under_the_lock_is_a_409_not_a_403(app, people, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The manager's hand-over commits between ann's checks and her engine call (prepare
    runs outside the lock; done checks the owner again under it)."""
    process, answer = answer_of("ann")
    page = OpenPage(people("ann"), answer)
    prepare = ViewActivation.prepare.func

    def prepare_then_lose_it(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        result = prepare(self, *args, **kwargs)
        with app.app_context():  # another request, its own session: commits the hand-over
            hand_to_ben(answer)
        return result

    monkeypatch.setattr(ViewActivation.prepare, "func", prepare_then_lose_it)
    for hx in (False, True):
        response = page.send("", {"note": "mine"}, hx=hx)
        assert_refused_in_place(response, "This task is with ben now", hx, "mine")
    task = fresh(answer)
    assert task.owner_id == user("ben").id and task.status == STATUS.ASSIGNED
    assert "note" not in fresh(process).data


def test_a_draft_saved_while_the_task_is_completed_elsewhere_leaves_no_draft(app, people) -> None:
    """Two tabs of ann's: one saves a draft, the other completes, at the same moment."""
    process, answer = answer_of("ann")
    drafting, completing = OpenPage(people("ann"), answer), OpenPage(AuthActions(app).enter_as("ann"), answer)
    barrier = threading.Barrier(2)
    answers: dict[str, int] = {}

    def send(name: str, page: OpenPage, suffix: str) -> None:
        barrier.wait(10)
        answers[name] = page.send(suffix, {"note": name}).status_code

    threads = [threading.Thread(target=send, args=("draft", drafting, "draft/")),
               threading.Thread(target=send, args=("complete", completing, ""))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert answers["complete"] == 303 and answers["draft"] in (303, 409), answers
    db.session.commit()
    assert db.session.get(TaskDraft, answer.id) is None
    assert fresh(process).data["note"] == "complete"


@pytest.mark.parametrize("hx", [False, True], ids=["plain", "htmx"])
def test_a_managers_hand_over_from_a_page_drawn_before_the_owner_delegated(app, people, hx) -> None:  # type: ignore[no-untyped-def]
    """The boss's page shows the task with ann; ann delegates it to ben; the boss's Put back
    and Reassign (to ann) were meant for ann's task, not ben's: refused, the buttons redrawn."""
    process, answer = answer_of("ann")
    boss = OpenPage(people("boss"), answer)
    ann_delegates_to_ben(answer)
    before = snapshot(process)
    assert_refused_in_place(boss.send("unassign/", hx=hx), "This task is with ben now", hx)
    assert_refused_in_place(boss.send("reassign/", {"user_id": user("ann").id, "picker": "1"}, hx=hx),
                            "This task is with ben now", hx)
    assert snapshot(process) == before
    # Drawn again, the page offers what can be done now, and it works.
    again = OpenPage(people("boss"), answer)
    assert again.send("unassign/").status_code == 303
    assert fresh(answer).status == STATUS.NEW and fresh(answer).owner_id is None


def test_a_late_review_after_a_partial_join_fired_is_taken_and_absorbed(app, people) -> None:  # type: ignore[no-untyped-def]
    """Without cancel_rest the third reviewer's open form still counts as an answer: it is
    stored in its own task, the join does not fire again, and nothing is created twice."""
    process = QuorumFlow.start.run()
    reviews = sorted((t for t in process.tasks if t.node_name == "review"), key=lambda t: t.data["index"])
    for review, who in zip(reviews, ("ann", "ben", "ann"), strict=True):
        review.activate().assign(user(who))
    db.session.commit()
    late = OpenPage(people("ann"), reviews[2])
    for review, who in zip(reviews[:2], ("ann", "ben"), strict=True):
        OpenPage(people(who), review)
        assert people(who).post(task_url(review), {"note": who}).status_code == 303
    for hx in (False, True):
        response = late.send("", {"note": "late but kept"}, hx=hx)
        if not hx:
            assert response.status_code == 303
        else:  # sent twice: the second is the repeat
            assert_refused_in_place(response, "You completed this task already", hx)
    final = fresh(process)
    nodes = [t.node_name for t in final.tasks]
    assert nodes.count("join") == 1 and nodes.count("after") == 1
    assert fresh(reviews[2]).status == STATUS.DONE and fresh(reviews[2]).data["note"] == "late but kept"
    assert "note" not in final.data  # a fan-out's answers stay in their tasks


@pytest.mark.parametrize("hx", [False, True], ids=["plain", "htmx"])
def test_delegating_from_a_second_tab_after_completing_in_the_first_names_you(app, people, hx) -> None:  # type: ignore[no-untyped-def]
    process, answer = answer_of("ann")
    first, second = OpenPage(people("ann"), answer), OpenPage(people("ann"), answer)
    assert first.send("", {"note": "done here"}).status_code == 303
    before = snapshot(process)
    response = second.send("reassign/", {"user_id": user("ben").id, "picker": "1", "note": "yours"}, hx=hx)
    assert_refused_in_place(response, "You completed this task already. Nothing was changed.", hx)
    assert snapshot(process) == before


def test_the_open_pages_banner_names_the_system_as_the_history_does_when_the_timeout_cancels(  # type: ignore[no-untyped-def]
        app, people) -> None:
    process, answer = answer_of("ann")
    page = OpenPage(people("ann"), answer)
    since = re.search(r"banner/\?since=(\d+)", page.html)
    assert since
    escalate(process)
    banner_url = task_url(answer, f"banner/?since={since.group(1)}")
    banner = people("ann").get(banner_url, hx=True).get_data(as_text=True)
    history = people("ann").get(task_url(answer)).get_data(as_text=True)
    assert "The system canceled this task" in banner and "webflow" not in banner
    assert re.search(r"The system</strong>\s+canceled", history)


@pytest.mark.parametrize("hx", [False, True], ids=["plain", "htmx"])
def test_a_permission_taken_away_while_the_page_was_open(app, people, hx) -> None:  # type: ignore[no-untyped-def]
    """ben's queue and task page were drawn while he held the node's permission; it is taken
    away before he presses Take or Assign to me: 403 (the rule refuses him), said in place
    for HTMX, nothing taken. ann keeps the task she owns (the rule book's ``owner``)."""
    process, queued = answer_of(None)
    _, owned = answer_of("ann")
    page = OpenPage(people("ben"), queued)
    people("ben").get("/queue/")
    ann_page = OpenPage(people("ann"), owned)
    for name in ("ben", "ann"):
        db.session.commit()
        row = user(name)
        row.permissions = [p for p in row.permissions if p != "answer.can_answer"]
        db.session.commit()
    before = snapshot(process)
    take = people("ben").post("/queue/", {"take": str(queued.id)}, hx=hx)
    assign = page.send("assign/", hx=hx)
    for response in (take, assign):
        assert response.status_code == 403
        assert (response.headers.get("HX-Reswap") == "none") is hx
    assert snapshot(process) == before
    assert ann_page.send("", {"note": "still mine"}).status_code == 303
    assert fresh(owned).status == STATUS.DONE
