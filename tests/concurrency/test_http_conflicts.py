"""Two or three people (or a person and the timer) act on one task at the same moment,
through the whole stack: gunicorn with three worker processes on PostgreSQL, each person a
browser of their own sending HTMX requests, released together by a Barrier; the timer fires
from this test's process. Every round checks the answers (one wins; the other is a 409 in
a person's words that HTMX shows, never a 500) and the rows (nothing of the refused action
stored, no task done twice, no draft left behind). ``WEBFLOW_RACE_ROUNDS`` for more rounds.
"""

from __future__ import annotations

import functools
import os
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from app_support import in_app_context, make_test_app
from flask_wtf import FlaskForm
from sqlalchemy.orm import Session
from test_http_race import Browser, gunicorn
from wtforms import StringField

from webflow import STATUS, Flow, fire_due_timers, flow, this
from webflow.core import Base, create_engine, use_session
from webflow.core.models import Comment, TaskDraft, utcnow
from webflow.models import Process, Task, TaskEvent, User

HERE = Path(__file__).resolve().parent
ROUNDS = int(os.environ.get("WEBFLOW_RACE_ROUNDS", "4"))
PASSWORD = "pw"


class NoteForm(FlaskForm):
    note = StringField("Note")


class DeskFlow(Flow):
    """Desk

    One answer, escalated when it waits an hour."""

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


WORK = ["desk.view", "desk.can_answer", "desk.can_escalated", "panel.view", "panel.can_review"]
USERS = {"bob": WORK, "carol": WORK, "dave": WORK, "boss": ["desk.manage", "panel.manage"]}
FLOWS = f"{__name__}:DeskFlow,{__name__}:PanelFlow"
Site = tuple[str, sa.Engine]


class Person(Browser):
    """A browser that sends what htmx sends (``HX-Request``), and reads the answer's headers."""

    def send(self, path: str, form: dict[str, Any] | None = None) -> tuple[int, dict[str, str], str]:
        data = None
        if form is not None:
            data = urllib.parse.urlencode({**form, "csrf_token": self.token}).encode()
        request = urllib.request.Request(self.base + path, data=data, headers={"HX-Request": "true"})
        try:
            with self.opener.open(request, timeout=30) as response:
                status, headers, body = response.status, dict(response.headers), response.read().decode()
        except urllib.error.HTTPError as exc:
            status, headers, body = exc.code, dict(exc.headers), exc.read().decode()
        return status, headers, body

    def open(self, path: str) -> str:
        """The page, whole, as a browser loads it (its CSRF token and ``shown`` kept)."""
        status, body = self.request(path)
        assert status == 200, (path, status)
        return body


def shown(page: str) -> str:
    match = re.search(r'name="shown" value="([^"]*)"', page)
    assert match, "the task page's form does not say what it was drawn for"
    return match.group(1)


def errors(body: str) -> list[str]:
    return re.findall(r'<p class="flash error"[^>]*>(.*?)</p>', body, re.S)


def at_once(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls from threads of their own, released together; their answers in order."""
    barrier = threading.Barrier(len(calls))
    answers: list[Any] = [None] * len(calls)

    def run(n: int) -> None:
        barrier.wait(10)
        answers[n] = calls[n]()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert all(answer is not None for answer in answers), "a request did not come back"
    return answers


@pytest.fixture(scope="module")
def site(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The app under gunicorn (three worker processes) on a fresh PostgreSQL database."""
    engine = create_engine(pg_url)
    Base.metadata.drop_all(engine)
    with in_app_context(make_test_app(pg_url, [DeskFlow, PanelFlow], USERS, PASSWORD)):
        pass  # tables and users made; its pool is closed
    env = {**os.environ, "DATABASE_URL": pg_url, "WEBFLOW_FLOWS": FLOWS, "SECRET_KEY": "conflicts",
           "WEBFLOW_INLINE_JOBS": "inline", "WEBFLOW_INSTANCE": str(tmp_path_factory.mktemp("instance")),
           "PYTHONPATH": os.pathsep.join([str(HERE), str(HERE.parent), os.environ.get("PYTHONPATH", "")])}
    try:
        with gunicorn(env, workers=3) as base:
            yield base, engine
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def people(site: Site) -> dict[str, Person]:
    base, _ = site
    logged_in = {}
    for name in USERS:
        logged_in[name] = Person(base)
        logged_in[name].log_in(name, PASSWORD)
    return logged_in


class Rows:
    """This process's own view of the database (starting processes, reading what happened)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.session = Session(engine)

    def __enter__(self) -> Rows:
        self._use = use_session(self.session)
        self._use.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._use.__exit__(*exc)
        self.session.close()

    def user(self, name: str) -> User:
        return self.session.scalar(sa.select(User).where(User.username == name))  # type: ignore[return-value]

    def fresh(self) -> Rows:
        self.session.rollback()
        self.session.expire_all()
        return self

    def task(self, task_id: int) -> Task:
        return self.fresh().session.get(Task, task_id)  # type: ignore[return-value]

    def process(self, process_id: int) -> Process:
        return self.fresh().session.get(Process, process_id)  # type: ignore[return-value]

    def events(self, task_id: int, name: str) -> int:
        return self.session.scalar(sa.select(sa.func.count()).select_from(TaskEvent).where(
            TaskEvent.task_id == task_id, TaskEvent.transition == name)) or 0

    def desk(self, owner: str | None) -> tuple[int, int, str]:
        """A desk process; its answer task (assigned to ``owner``) and the task's page."""
        process = DeskFlow.start.run()  # type: ignore[attr-defined]
        answer = process.get_task(DeskFlow.answer)
        if owner:
            answer.activate().assign(self.user(owner))
        self.session.commit()
        return process.id, answer.id, f"/flows/desk/{process.id}/answer/{answer.id}/"


def refused_form(answer: tuple[int, dict[str, str], str], words: str) -> None:
    """The form's refusal: 409, the words, the typed form left as it is."""
    status, headers, body = answer
    assert status == 409 and headers.get("HX-Reswap") == "none", (status, headers, errors(body))
    assert any(words in text for text in errors(body)), errors(body)
    assert 'id="task-work"' not in body and 'id="task-status"' in body


def done(answer: tuple[int, dict[str, str], str]) -> bool:
    """A completion that went through: HTMX loads the next page whole."""
    status, headers, _ = answer
    assert status in (200, 409), (status, errors(answer[2]))
    return status == 200 and "HX-Redirect" in headers


def test_two_people_take_one_task_from_the_queue_and_its_page(site: Site, people: dict[str, Person]) -> None:
    _, engine = site
    bob, carol = people["bob"], people["carol"]
    with Rows(engine) as rows:
        for _ in range(ROUNDS):
            _, task_id, _ = rows.desk(None)
            bob.open("/queue/")
            carol.open("/queue/")
            answers = at_once(functools.partial(bob.send, "/queue/", {"take": str(task_id)}),
                              functools.partial(carol.send, "/queue/", {"take": str(task_id)}))
            assert sorted(status for status, _, _ in answers) == [200, 409], answers
            task = rows.task(task_id)
            winner = task.owner.username  # type: ignore[union-attr]
            loser = next(body for status, _, body in answers if status == 409)
            assert f"1 task was already taken by {winner}." in errors(loser)
            assert task.status == STATUS.ASSIGNED and rows.events(task_id, "assign") == 1
            # The same from the task page's "Assign to me", both pages drawn while it waited.
            _, task_id, url = rows.desk(None)
            keys = [shown_of_buttons(person.open(url)) for person in (bob, carol)]
            answers = at_once(functools.partial(bob.send, url + "assign/", {"shown": keys[0]}),
                              functools.partial(carol.send, url + "assign/", {"shown": keys[1]}))
            assert sorted(status for status, _, _ in answers) == [200, 409], [a[0] for a in answers]
            winner = rows.task(task_id).owner.username  # type: ignore[union-attr]
            loser = next(body for status, _, body in answers if status == 409)
            assert f"This task was already taken by {winner}." in errors(loser)
            assert rows.events(task_id, "assign") == 1


def test_a_completion_against_a_managers_process_cancel(site: tuple[str, sa.Engine],
                                                        people: dict[str, Person]) -> None:
    _, engine = site
    bob, boss = people["bob"], people["boss"]
    outcomes = set()
    with Rows(engine) as rows:
        for n in range(ROUNDS):
            process_id, task_id, url = rows.desk("bob")
            drawn = shown(bob.open(url))
            boss.open(f"/flows/desk/{process_id}/cancel/")
            completed, canceled = at_once(
                functools.partial(bob.send, url, {"note": f"round {n}", "shown": drawn}),
                functools.partial(boss.send, f"/flows/desk/{process_id}/cancel/", {}))
            process = rows.process(process_id)
            if done(completed):
                status, _, body = canceled
                assert status == 409 and "The process was not canceled" in " ".join(errors(body)), errors(body)
                assert process.status == STATUS.DONE and process.data["note"] == f"round {n}"
                outcomes.add("completed")
            else:
                refused_form(completed, "canceled meanwhile")
                assert canceled[0] == 200 and "HX-Redirect" in canceled[1], canceled[:2]
                assert process.status == STATUS.CANCELED and "note" not in process.data
                outcomes.add("canceled")
            assert rows.events(task_id, "done") == (1 if process.status == STATUS.DONE else 0)
    assert outcomes  # which one wins is up to the scheduler; each round is one or the other


def test_a_completion_against_a_managers_reassign(site: Site, people: dict[str, Person]) -> None:
    _, engine = site
    bob, boss = people["bob"], people["boss"]
    with Rows(engine) as rows:
        carol_id = rows.user("carol").id
        for n in range(ROUNDS):
            _, task_id, url = rows.desk("bob")
            drawn = shown(bob.open(url))
            boss_drawn = shown_of_buttons(boss.open(url))
            completed, handed = at_once(
                functools.partial(bob.send, url, {"note": f"round {n}", "shown": drawn}),
                functools.partial(boss.send, url + "reassign/", {"user_id": str(carol_id), "picker": "1",
                                                                 "shown": boss_drawn}))
            task = rows.task(task_id)
            if done(completed):
                status, _, body = handed
                assert status == 409, (status, errors(body))
                assert any("already done by bob" in text for text in errors(body)), errors(body)
                assert task.status == STATUS.DONE and task.owner_id != carol_id
            else:
                refused_form(completed, "This task is with carol now")
                assert handed[0] == 200, (handed[0], errors(handed[2]))
                assert task.status == STATUS.ASSIGNED and task.owner_id == carol_id
                assert "note" not in task.process.data


def shown_of_buttons(page: str) -> str:
    """What the status component's buttons were drawn for (the same key as the form's)."""
    status = page[page.index('id="task-status"'):]
    return shown(status)


def test_a_draft_saved_while_the_other_tab_completes(site: Site, people: dict[str, Person]) -> None:
    _, engine = site
    phone, laptop = people["bob"], Person(site[0])
    laptop.log_in("bob", PASSWORD)
    with Rows(engine) as rows:
        for n in range(ROUNDS):
            process_id, task_id, url = rows.desk("bob")
            drawn = shown(phone.open(url))
            laptop.open(url)
            drafted, completed = at_once(
                functools.partial(phone.send, url + "draft/", {"note": f"draft {n}", "shown": drawn}),
                functools.partial(laptop.send, url, {"note": f"done {n}", "shown": drawn}))
            assert done(completed)
            if drafted[0] != 200:
                refused_form(drafted, "You completed this task already")
            rows.fresh()
            assert rows.session.get(TaskDraft, task_id) is None
            assert rows.process(process_id).data["note"] == f"done {n}"


def test_a_completion_against_its_timeout(site: Site, people: dict[str, Person]) -> None:
    """The escalation fires from this process while bob's completion runs in a worker."""
    _, engine = site
    bob = people["bob"]

    def fire_timers() -> int:
        with Session(engine) as session, use_session(session):
            return fire_due_timers(now=utcnow() + timedelta(hours=2), session=session)

    with Rows(engine) as rows:
        for n in range(ROUNDS):
            process_id, task_id, url = rows.desk("bob")
            drawn = shown(bob.open(url))

            completed, fired = at_once(functools.partial(bob.send, url, {"note": f"round {n}", "shown": drawn}),
                                       fire_timers)
            process = rows.process(process_id)
            escalated = [t for t in process.tasks if t.node_name == "escalated"]
            if done(completed):
                assert not escalated and process.status == STATUS.DONE
            else:
                refused_form(completed, "canceled meanwhile")
                assert len(escalated) == 1 and rows.task(task_id).status == STATUS.CANCELED
                assert "note" not in process.data


def test_three_reviewers_at_a_two_of_three_join(site: Site, people: dict[str, Person]) -> None:
    _, engine = site
    reviewers = ["bob", "carol", "dave"]
    with Rows(engine) as rows:
        for _ in range(ROUNDS):
            process = PanelFlow.start.run()  # type: ignore[attr-defined]
            reviews = sorted((t for t in process.tasks if t.node_name == "review"),
                             key=lambda t: t.data["index"])
            for review, who in zip(reviews, reviewers, strict=True):
                review.activate().assign(rows.user(who))
            rows.session.commit()
            urls = [f"/flows/panel/{process.id}/review/{review.id}/" for review in reviews]
            drawn = [shown(people[who].open(url)) for who, url in zip(reviewers, urls, strict=True)]
            answers = at_once(*[functools.partial(people[who].send, url, {"note": who, "shown": key})
                                for who, url, key in zip(reviewers, urls, drawn, strict=True)])
            assert sum(done(answer) for answer in answers) == 2, [a[0] for a in answers]
            refused_form(next(a for a in answers if a[0] == 409), "canceled meanwhile")
            final = rows.process(process.id)
            assert final.status == STATUS.DONE
            joins = [t for t in final.tasks if t.node_name == "join"]
            assert len(joins) == 1 and joins[0].status == STATUS.DONE and rows.events(joins[0].id, "done") == 1
            statuses = sorted(t.status.value for t in final.tasks if t.node_name == "review")
            assert statuses == ["CANCELED", "DONE", "DONE"]


def test_a_comment_while_the_process_is_canceled(site: Site, people: dict[str, Person]) -> None:
    """Comments outlive a cancel: both land, in either order, and nothing is lost."""
    _, engine = site
    bob, boss = people["bob"], people["boss"]
    with Rows(engine) as rows:
        for n in range(ROUNDS):
            process_id, task_id, url = rows.desk("bob")
            bob.open(url)
            boss.open(f"/flows/desk/{process_id}/cancel/")
            commented, canceled = at_once(
                functools.partial(bob.send, url + "comments/", {"text": f"note {n} for @boss"}),
                functools.partial(boss.send, f"/flows/desk/{process_id}/cancel/", {}))
            assert commented[0] == 200 and 'id="task-history"' in commented[2], commented[:2]
            assert canceled[0] == 200 and "HX-Redirect" in canceled[1], canceled[:2]
            rows.fresh()
            texts = rows.session.scalars(sa.select(Comment.text).where(Comment.task_id == task_id)).all()
            assert texts == [f"note {n} for @boss"]
            assert rows.process(process_id).status == STATUS.CANCELED


def test_one_comment_form_sent_twice_at_once_posts_once(site: Site, people: dict[str, Person]) -> None:
    """A double click that reaches two server processes at the same moment: one comment,
    and both answers show it (the second says it was already posted)."""
    _, engine = site
    bob = people["bob"]
    with Rows(engine) as rows:
        for n in range(ROUNDS):
            _, task_id, url = rows.desk("bob")
            token = re.search(r'name="comment_token" value="([0-9a-f]{32})"', bob.open(url))
            assert token, "the comment form carries no one-time token"
            form = {"text": f"only once {n}", "comment_token": token.group(1)}
            answers = at_once(*[functools.partial(bob.send, url + "comments/", form)] * 2)
            assert [a[0] for a in answers] == [200, 200], [(a[0], errors(a[2])) for a in answers]
            assert all(a[2].count(f"only once {n}") == 1 for a in answers)
            assert sum("already posted" in a[2] for a in answers) == 1
            rows.fresh()
            texts = rows.session.scalars(sa.select(Comment.text).where(Comment.task_id == task_id)).all()
            assert texts == [f"only once {n}"]
