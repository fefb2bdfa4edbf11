"""A page's cost does not grow with its rows: every list page, the process page and the
task page run the same number of SQL statements at 10 rows as at 100 (no query per row)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa
from app_support import in_app_context, make_test_app
from flask import Flask
from web_support import PASSWORD, AuthActions, task_url

from webflow import STATUS, Context, Flow, db, flow, this
from webflow.core.comments import post_comment
from webflow.core.sqlcount import SQLCounter
from webflow.models import Process, Task, User

PERMS = ["wide.view", "wide.manage", "wide.can_start", "wide.can_review"]


class WideFlow(Flow):
    """Wide

    A fan-out over as many reviews as asked for."""

    start = flow.StartFunction().Next(this.fan_out)
    fan_out = flow.Split().Each(this.review, items=lambda act: list(range(act.process.data["n"])))
    review = flow.View().Permission(auto_create=True).Next(this.join)
    join = flow.Join().Next(this.end)
    end = flow.End()


@contextmanager
def counting() -> Iterator[SQLCounter]:
    """The project's statement counter on the app's engine (webflow.core.sqlcount: every
    statement sent, BEGIN, COMMIT and ROLLBACK included); ``start()`` and ``stop()`` it
    around each request."""
    counter = SQLCounter(db.engine)
    try:
        yield counter
    finally:
        counter.close()


@pytest.fixture
def app(db_url: str) -> Iterator[Flask]:
    config = {"WEBFLOW_PAGE_SIZE": 200}
    with in_app_context(make_test_app(db_url, [WideFlow], {"ann": PERMS, "bob": PERMS}, PASSWORD,
                                      **config)) as app:
        yield app


def build(rows: int) -> Process:
    """``rows`` of everything: processes, queued, assigned and finished tasks, events,
    comments."""
    ann = db.session.scalar(sa.select(User).where(User.username == "ann"))
    with Context(user=ann):
        for _ in range(rows - 1):
            WideFlow.start.run(n=1)
        process = WideFlow.start.run(n=3 * rows)
        reviews = [t for t in process.tasks if t.node_name == "review"]
        for task in reviews[:rows]:
            task.activate().assign(ann)
        for task in reviews[rows:2 * rows]:
            activation = task.activate()
            activation.assign(ann)
            activation.prepare(data={"ok": True}, user=ann)
            activation.done()
        busy = reviews[0].activate()
        for _ in range(rows // 2):  # a task with a long history
            busy.unassign()
            busy.assign(ann)
    for task in reviews[rows:2 * rows]:  # a comment on each done review: the process page shows them
        post_comment(db.session(), process, ann, f"checked {task.id}", task)
    db.session.commit()
    return process


PAGES: dict[str, Callable[[Process], str]] = {
    "inbox": lambda p: "/inbox/",
    "queue": lambda p: "/queue/",
    "archive": lambda p: "/archive/",
    "flows": lambda p: "/flows/",
    "process list": lambda p: "/flows/wide/",
    "admin": lambda p: "/admin/",
    "process page": lambda p: f"/flows/wide/{p.id}/",
    "task page": lambda p: task_url(next(t for t in p.tasks if t.node_name == "review")),
}


def page_costs(app: Flask, rows: int) -> dict[str, int]:
    process = build(rows)
    ann = AuthActions(app).enter_as("ann")
    costs = {}
    with counting() as counter:
        for name, url in PAGES.items():
            path = url(process)
            ann.get(path)  # warm: the first request loads what every later one has cached
            counter.start()
            response = ann.get(path)
            costs[name] = len(counter.stop().statements)
            assert response.status_code == 200, (name, response.status_code)
    return costs


def test_pages_cost_the_same_at_10_and_100_rows(app: Flask) -> None:
    small = page_costs(app, 10)
    db.session.execute(sa.delete(Process))
    db.session.commit()
    large = page_costs(app, 100)
    assert large == small, {name: (small[name], large[name]) for name in small if small[name] != large[name]}
    # and they really had the rows (the queue holds the unassigned reviews)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Task).where(
        Task.status == STATUS.NEW, Task.node_name == "review")) >= 100


def process_page_costs(app: Flask, monkeypatch: pytest.MonkeyPatch, rows: int) -> list[int]:
    """The statements of each page of a fan-out's process page, ten tasks a page, where
    most done branches and the split lie on other pages than the one shown."""
    from webflow.blueprints import flows

    monkeypatch.setattr(flows, "PROCESS_TASKS_PER_PAGE", 10)
    ann = db.session.scalar(sa.select(User).where(User.username == "ann"))
    with Context(user=ann):
        process = WideFlow.start.run(n=rows)
        for task in [t for t in process.tasks if t.node_name == "review"][::2]:  # half done
            activation = task.activate()
            activation.assign(ann)
            activation.prepare(data={"ok": True}, user=ann)
            activation.done()
    db.session.commit()
    person = AuthActions(app).enter_as("ann")
    path = f"/flows/wide/{process.id}/"
    person.get(path)  # warm
    costs = []
    with counting() as counter:
        for page in (1, 2, 3):
            counter.start()
            response = person.get(f"{path}?page={page}")
            costs.append(len(counter.stop().statements))
            assert response.status_code == 200 and f"Page {page} of" in response.get_data(as_text=True)
    return costs


def test_every_page_of_a_large_process_costs_the_same_at_30_and_120_tasks(
        app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tasks on other pages are named by the audit trail and asked about by undo's and the
    cancel button's rules: they must cost no statement each (the split's leading tasks,
    loaded whole, once hid a query per done branch of the trail)."""
    small = process_page_costs(app, monkeypatch, 30)
    db.session.execute(sa.delete(Process))
    db.session.commit()
    assert process_page_costs(app, monkeypatch, 120) == small


#: The three requests of a completion (issue 17, "Performance where people work"): the
#: statements each sends, everything counted (webflow.core.sqlcount: BEGIN, COMMIT and
#: ROLLBACK included). The task page 7 (the user with its groups, the task with its
#: process, the picker's users, history, draft, comments, the navigation counts with the
#: live version in one statement); the POST 10 on PostgreSQL, 14 on SQLite (BEGIN, lock
#: and read, the process's tasks, the INSERT of the next task, one last statement with the
#: UPDATEs, audit rows and search document, COMMIT, around the request's reads; SQLite
#: sends the last statement's parts one by one); the inbox 4 (user, navigation, the page
#: of tasks, saved filters). Pages that only read run in autocommit: before, PostgreSQL
#: sent a BEGIN and a ROLLBACK around each (task page 9, POST 12, inbox 6).
COMPLETION_BUDGETS = {
    "postgresql": {"task page": 7, "complete": 10, "inbox": 4},
    "sqlite": {"task page": 7, "complete": 14, "inbox": 4},
}


def test_the_requests_of_a_completion_stay_within_their_budgets(app: Flask) -> None:
    # More people who may take the task (the delegate picker lists them): their permission
    # checks must not cost a statement each.
    db.session.add_all(User(username=f"extra{n}", permissions=PERMS) for n in range(5))
    ann = db.session.scalar(sa.select(User).where(User.username == "ann"))
    with Context(user=ann):
        process = WideFlow.start.run(n=2)
        first, second = (t for t in process.tasks if t.node_name == "review")
        first.activate().assign(ann)
        second.activate().assign(ann)
    db.session.commit()
    page, following = task_url(first), task_url(second)  # read before counting
    person = AuthActions(app).enter_as("ann")
    person.get("/inbox/")  # warm
    sent: dict[str, list[str]] = {}
    with counting() as counter:
        counter.start()
        assert person.get(page).status_code == 200
        sent["task page"] = counter.stop().statements
        counter.start()
        response = person.post(page, data={})
        sent["complete"] = counter.stop().statements
        assert response.status_code == 303 and response.headers["Location"].endswith(following)
        counter.start()
        assert person.get("/inbox/").status_code == 200
        sent["inbox"] = counter.stop().statements
    costs = {name: len(statements) for name, statements in sent.items()}
    budgets = COMPLETION_BUDGETS[db.engine.dialect.name]
    assert all(costs[name] <= budgets[name] for name in budgets), (costs, budgets, sent)
    # pages that only read send no BEGIN, COMMIT or ROLLBACK
    for name in ("task page", "inbox"):
        assert not any(s.startswith(("BEGIN", "COMMIT", "ROLLBACK")) for s in sent[name]), sent[name]
