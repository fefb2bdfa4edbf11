"""Helpers of the web tests: the app on a fresh database, its users, a person's actions.

A module of its own name (not ``conftest``), so test modules import it unambiguously
when several test folders are collected together."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.test import TestResponse

from webflow import db
from webflow.demo.helloworld import HelloWorldFlow
from webflow.models import Process, Task, TaskEvent, User

sys.path.insert(0, str(Path(__file__).resolve().parent))

from app_support import make_test_app  # noqa: E402
from web_flows import LabelFlow  # noqa: E402

PASSWORD = "secret"
HELLO = ["hello_world.view", "hello_world.can_start", "hello_world.can_approve"]
USERS = {
    "alice": HELLO + ["label.view", "label.can_start", "label.can_confirm"],
    "bob": HELLO + ["label.can_confirm"],
    "carol": [],                                        # may do nothing
    "manager": ["hello_world.manage", "label.manage"],  # manages, takes no tasks
}


def make_app(db_url: str, **config: Any) -> Flask:
    return make_test_app(db_url, [HelloWorldFlow, LabelFlow], USERS, PASSWORD, **config)


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


class AuthActions:
    """What one person does in the browser: log in, open pages, submit forms with the page's token."""

    def __init__(self, app: Flask, username: str | None = None) -> None:
        self.client = app.test_client()
        self.token = ""
        if username:
            self.login(username)

    def enter_as(self, username: str) -> AuthActions:
        """Be logged in without the password check (PBKDF2 is slow on purpose; test_auth covers it)."""
        with self.client.session_transaction() as session:
            session["_user_id"] = user(username).get_id()
            session["_fresh"] = True
        return self

    def login(self, username: str, password: str = PASSWORD, next: str = "") -> TestResponse:
        page = self.client.get("/login").get_data(as_text=True)
        url = f"/login?next={next}" if next else "/login"
        return self.client.post(url, data={"username": username, "password": password,
                                           "csrf_token": csrf_token(page)})

    def get(self, url: str, hx: bool = False, **headers: str) -> TestResponse:
        if hx:
            headers["HX-Request"] = "true"
        response = self.client.get(url, headers=headers)
        html = response.get_data(as_text=True)
        if 'name="csrf_token"' in html:
            self.token = csrf_token(html)
        return response

    def post(self, url: str, data: dict[str, Any] | None = None, hx: bool = False,
             csrf: bool = True) -> TestResponse:
        if csrf and not self.token:
            self.get("/inbox/")
        headers = {"HX-Request": "true", "X-CSRFToken": self.token} if hx else {}
        form = dict(data or {})
        if csrf and not hx:
            form["csrf_token"] = self.token
        return self.client.post(url, data=form, headers=headers)


def user(name: str) -> User:
    return db.session.scalar(db.select(User).where(User.username == name))


def fresh(obj: Any) -> Any:
    """The row as the database has it now (requests commit in their own sessions)."""
    db.session.commit()
    db.session.expire_all()
    return db.session.get(type(obj), obj.id)


def task_of(process: Process, node: str) -> Task:
    db.session.commit()
    return db.session.scalars(db.select(Task).where(Task.process_id == process.id, Task.node_name == node)
                              .order_by(Task.id.desc())).first()


def task_url(task: Task, suffix: str = "") -> str:
    return f"/flows/{task.flow_class.flow_label}/{task.process_id}/{task.node_name}/{task.id}/{suffix}"


def snapshot(process: Process) -> tuple[Any, ...]:
    """Everything an action could change in a process."""
    db.session.commit()
    db.session.expire_all()
    tasks = db.session.scalars(db.select(Task).where(Task.process_id == process.id).order_by(Task.id))
    events = db.session.scalar(db.select(db.func.count()).select_from(TaskEvent)
                               .where(TaskEvent.process_id == process.id))
    row = db.session.get(Process, process.id)
    return row.status, dict(row.data), [(t.id, t.node_name, t.status, t.owner_id) for t in tasks], events


def hello(text: str = "hi", by: str = "alice") -> Process:
    """A hello-world process started from code, its approve task in the queue."""
    return HelloWorldFlow.start.run(data={"text": text}, user=user(by))
