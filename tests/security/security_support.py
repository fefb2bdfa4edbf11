"""The security tests' world: the label flow, one user of each kind, targets in every state.

A module of its own name (not ``conftest``), so test modules import it unambiguously."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Flask

from webflow import db
from webflow.core.models import Base
from webflow.models import Process, Task, User

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "web"))

from app_support import make_test_app  # noqa: E402
from web_flows import LabelFlow  # noqa: E402
from web_support import AuthActions  # noqa: E402

from webflow.demo.helloworld import HelloWorldFlow  # noqa: E402

PASSWORD = "secret"
HELLO_ALL = ["hello_world.view", "hello_world.can_start", "hello_world.can_approve", "hello_world.manage"]
#: One user of each kind the matrix asks about (the targets are label processes).
USERS: dict[str, list[str]] = {
    "plain": [],                                   # logged in, may do nothing
    "worker": ["label.can_confirm"],               # the task's permission
    "owner": ["label.can_confirm"],                # ... and owns the assigned tasks
    "manager": ["label.manage"],                   # manages the flow, lacks the task's permission
    "super": [],                                   # superuser
    "other": HELLO_ALL,                            # everything, of another flow
    "starter": ["label.can_start"],                # started every target process
}
KINDS = [None, *USERS]  # None: anonymous


def make_app(db_url: str, **config: Any) -> Flask:
    app = make_test_app(db_url, [HelloWorldFlow, LabelFlow], USERS, PASSWORD,
                        WEBFLOW_LOGIN_LIMIT="10000 per minute", **config)
    with app.app_context():
        db.session.execute(sa.update(User).where(User.username == "super").values(is_superuser=True))
        db.session.commit()
    return app


def user(name: str) -> User:
    return db.session.scalar(sa.select(User).where(User.username == name))


def task_of(process: Process, node: str) -> Task:
    db.session.commit()
    return db.session.scalars(sa.select(Task).where(Task.process_id == process.id, Task.node_name == node)
                              .order_by(Task.id.desc())).first()


def label_process(state: str) -> Process:
    """A label process started by the starter, in one of the states the matrix needs."""
    process = LabelFlow.start.run(data={"amount": 5}, user=user("starter"))
    if state == "queued":
        return process
    confirm = task_of(process, "confirm")
    confirm.activate().assign(user("owner"))
    if state == "assigned":
        return process
    amount = {"job_error": 13, "handler_error": 99, "done": 5}[state]
    activation = task_of(process, "confirm").activate()
    activation.prepare(data={"amount": amount}, user=user("owner"))
    activation.done()
    db.session.commit()
    return process


#: Which task of a target each state is about.
STATES = {"queued": "confirm", "assigned": "confirm", "job_error": "print_label",
          "handler_error": "check", "done": "end"}


def dump() -> list[Any]:
    """Every row of every table, in a stable order: what a refusal must leave alone."""
    db.session.commit()
    rows = []
    with db.engine.connect() as conn:
        for table, sql in _dump_queries():
            rows.append((table, conn.exec_driver_sql(sql).fetchall()))
    return rows


def _dump_queries() -> list[tuple[str, str]]:
    """One plain SELECT per table (compiled once: the matrix dumps thousands of times)."""
    if not _QUERIES:
        for table in Base.metadata.sorted_tables:
            order = ", ".join(f'"{c.name}"' for c in (list(table.primary_key.columns) or list(table.columns)))
            _QUERIES.append((table.name, f'SELECT * FROM "{table.name}" ORDER BY {order}'))
    return _QUERIES


_QUERIES: list[tuple[str, str]] = []


def client_for(app: Flask, kind: str | None) -> AuthActions:
    """A browser of that kind of user (anonymous for None), with a CSRF token."""
    person = AuthActions(app)
    if kind is not None:
        person.enter_as(kind)
    person.get("/login" if kind is None else "/inbox/")
    return person
