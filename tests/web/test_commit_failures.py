"""Steps whose writes the database refuses only when the rows are written.

A timer fired by hand whose next step leaves a write the database refuses only at the
commit (a handler that left the process pointing at no user, say): no node's guard sees
it, as the engine writes the rows last. Before, Fire now (admin page) and Fire (the
timer's page) were a 500 and nothing was kept; now, as ``fire_due_timers`` does, the
timer is stored as ERROR with the reason, for a manager to retry once that is mended."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from app_support import in_app_context, make_test_app
from flask import Flask
from web_support import PASSWORD, AuthActions

from webflow import STATUS, Flow, db, flow, this
from webflow.models import Group, Process, Task


def poison(activation: Any) -> None:
    """Leave the process naming a user who does not exist: refused at the commit only."""
    if activation.process.data.get("poison"):
        activation.process.created_by_id = 2**31 - 1


class SpoiltFlow(Flow):
    """A timer, a person's task, and after each a handler that may spoil the process row."""

    start = flow.StartFunction().Next(this.wait)
    wait = flow.Timer(timedelta(hours=1)).Next(this.after_wait)
    after_wait = flow.Handler(poison).Next(this.work)
    work = flow.View().Permission(auto_create=True).Next(this.after_work)
    after_work = flow.Handler(poison).Next(this.end)
    end = flow.End()


USERS = {"boss": ["spoilt.manage", "spoilt.view"], "worker": ["spoilt.view", "spoilt.can_work"]}


@pytest.fixture
def app(db_url: str) -> Iterator[Flask]:
    with in_app_context(make_test_app(db_url, [SpoiltFlow], USERS, PASSWORD)) as app:
        yield app


def task_at(process: Process, node: str) -> Task:
    db.session.commit()
    db.session.expire_all()
    return db.session.scalars(sa.select(Task).where(Task.process_id == process.id,
                                                    Task.node_name == node)).one()


def person(app: Flask, name: str) -> AuthActions:
    return AuthActions(app).enter_as(name)


def stored_as_failed(process: Process) -> None:
    """The timer is in ERROR with why, and nothing after it was kept."""
    timer = task_at(process, "wait")
    assert timer.status == STATUS.ERROR and "firing the timer failed" in (timer.comments or "")
    assert "FOREIGN KEY" in timer.comments or "foreign key" in timer.comments
    assert db.session.scalars(sa.select(Task.node_name).where(Task.process_id == process.id)
                              .order_by(Task.id)).all() == ["start", "wait"]


def mended_and_retried(boss: AuthActions, process: Process) -> None:
    """Once the data that spoilt it is mended, a manager's retry goes on to the person's task."""
    db.session.execute(sa.update(Process).where(Process.id == process.id).values(data={"poison": False}))
    db.session.commit()
    timer = task_at(process, "wait")
    url = f"/flows/spoilt/{process.id}/wait/{timer.id}/"
    boss.get(url)
    assert boss.post(url + "retry/").status_code == 303
    assert task_at(process, "wait").status == STATUS.DONE
    assert task_at(process, "work").status == STATUS.NEW


@pytest.mark.parametrize("hx", [False, True])
def test_fire_now_on_the_admin_page_stores_the_timer_as_error(app: Flask, hx: bool) -> None:
    process = SpoiltFlow.start.run(poison=True)
    timer = task_at(process, "wait")
    boss = person(app, "boss")
    boss.get("/admin/")
    answer = boss.post(f"/admin/timers/{timer.id}/fire/", hx=hx)
    assert answer.status_code == 303, answer.get_data(as_text=True)[:500]
    page = boss.get(answer.headers["Location"]).get_data(as_text=True)
    assert "could not be stored: it is in ERROR" in page
    stored_as_failed(process)
    mended_and_retried(boss, process)


@pytest.mark.parametrize("hx", [False, True])
def test_fire_on_the_timers_page_stores_the_timer_as_error(app: Flask, hx: bool) -> None:
    process = SpoiltFlow.start.run(poison=True)
    timer = task_at(process, "wait")
    boss = person(app, "boss")
    url = f"/flows/spoilt/{process.id}/wait/{timer.id}/"
    boss.get(url)
    answer = boss.post(url + "fire/", hx=hx)
    assert answer.status_code == (200 if hx else 303), answer.get_data(as_text=True)[:500]
    stored_as_failed(process)
    mended_and_retried(boss, process)


class RecordFlow(Flow):
    """A person's task, then a handler that records a group whose name may be taken."""

    start = flow.StartFunction().Next(this.work)
    work = flow.View().Permission(auto_create=True).Next(this.record)
    record = flow.Handler(lambda act: act.session.add(Group(name=act.process.data["group"]))).Next(this.end)
    end = flow.End()


@pytest.fixture
def record_app(db_url: str) -> Iterator[Flask]:
    users = {"worker": ["record.view", "record.can_work"]}
    with in_app_context(make_test_app(db_url, [RecordFlow], users, PASSWORD)) as app:
        yield app


@pytest.mark.parametrize("hx", [False, True])
def test_a_completion_whose_next_step_adds_a_refused_row_is_kept(record_app: Flask, hx: bool) -> None:
    """The handler's row was written only with the commit: the database refused it there,
    the person got a 500 and their completion was lost. Now the handler is in ERROR with
    the reason, and the person's task is done with what they sent."""
    db.session.add(Group(name="taken"))
    db.session.commit()
    process = RecordFlow.start.run(group="taken")
    work = task_at(process, "work")
    worker = person(record_app, "worker")
    url = f"/flows/record/{process.id}/work/{work.id}/"
    worker.get(url)
    assert worker.post(url + "assign/").status_code == 303
    page = worker.get(url).get_data(as_text=True)
    shown = re.search(r'name="shown" value="([^"]*)"', page)
    assert shown
    answer = worker.post(url, {"shown": shown.group(1)}, hx=hx)
    assert answer.status_code == (200 if hx else 303), answer.get_data(as_text=True)[:300]
    assert task_at(process, "work").status == STATUS.DONE
    record = task_at(process, "record")
    assert record.status == STATUS.ERROR and "taken" in (record.comments or "")
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Group)) == 1
