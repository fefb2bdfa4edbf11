"""Steps whose writes the database refuses only when the rows are written.

A timer fired by hand whose next step leaves a write the database refuses only at the
commit (a handler that left the process pointing at no user, say): no node's guard sees
it, as the engine writes the rows last. Before, Fire now (admin page) and Fire (the
timer's page) were a 500 and nothing was kept; now, as ``fire_due_timers`` does, the
timer is stored as ERROR with the reason, for a manager to retry once that is mended.

A person's completion, a start form and a manager's transition whose next steps leave such
a value are run again writing each node's rows in its own savepoint (``kept_on_refusal``):
the node that left it is in ERROR with the reason, and the person's work is kept."""

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


def complete_work(app: Flask, label: str, process: Process, hx: bool = False) -> Any:
    """The worker takes the task and sends its form; the answer to the send."""
    work = task_at(process, "work")
    worker = person(app, "worker")
    url = f"/flows/{label}/{process.id}/work/{work.id}/"
    worker.get(url)
    assert worker.post(url + "assign/").status_code == 303
    page = worker.get(url).get_data(as_text=True)
    shown = re.search(r'name="shown" value="([^"]*)"', page)
    assert shown
    return worker.post(url, {"shown": shown.group(1)}, hx=hx)


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
    answer = complete_work(record_app, "record", process, hx)
    assert answer.status_code == (200 if hx else 303), answer.get_data(as_text=True)[:300]
    assert task_at(process, "work").status == STATUS.DONE
    record = task_at(process, "record")
    assert record.status == STATUS.ERROR and "taken" in (record.comments or "")
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Group)) == 1


@pytest.mark.parametrize("hx", [False, True])
def test_a_completion_whose_next_step_spoils_an_engine_row_is_kept(app: Flask, hx: bool) -> None:
    """The handler after the person's task sets the process to a user who does not exist.
    The engine writes process and task rows once, at the end, past every node's guard: the
    database refused them at the commit, the person got a 500 and their completion was lost.
    Now the call is run again with each node's rows written inside its own savepoint, so the
    refusal is the handler's: it is in ERROR with the reason, the person's task is DONE."""
    from webflow.core.timers import fire_or_fail

    process = SpoiltFlow.start.run()
    assert fire_or_fail(db.session(), task_at(process, "wait").id)  # on to the person's task
    db.session.commit()
    db.session.execute(sa.update(Process).where(Process.id == process.id).values(data={"poison": True}))
    db.session.commit()
    answer = complete_work(app, "spoilt", process, hx)
    assert answer.status_code == (200 if hx else 303), answer.get_data(as_text=True)[:300]
    assert task_at(process, "work").status == STATUS.DONE
    after = task_at(process, "after_work")
    assert after.status == STATUS.ERROR
    assert "FOREIGN KEY" in (after.comments or "") or "foreign key" in (after.comments or "")
    db.session.expire_all()
    stored = db.session.get(Process, process.id)
    assert stored is not None and stored.created_by_id is None and stored.status == STATUS.NEW


def spoil(activation: Any) -> None:
    """Give the process a value of a unique column that another process holds: refused at
    the commit only (the starter is a relationship the start sets, which a changed
    ``created_by_id`` does not outlive)."""
    activation.process.start_token = "taken"


class SpoiltStartFlow(Flow):
    """A start form, then a handler that spoils the process row."""

    start = flow.Start().Permission(auto_create=True).Next(this.spoil)
    spoil = flow.Handler(spoil).Next(this.work)
    work = flow.View().Permission(auto_create=True).Next(this.end)
    end = flow.End()


@pytest.fixture
def start_app(db_url: str) -> Iterator[Flask]:
    users = {"boss": ["spoilt_start.manage", "spoilt_start.view", "spoilt_start.can_start"]}
    with in_app_context(make_test_app(db_url, [SpoiltStartFlow], users, PASSWORD)) as app:
        yield app


@pytest.mark.parametrize("hx", [False, True])
def test_a_start_whose_first_step_spoils_an_engine_row_starts_the_process(start_app: Flask, hx: bool) -> None:
    """The start form was a 500 and started nothing; now the process is started and the
    handler is in ERROR with the reason, for a manager to retry once it is mended. A
    manager's retry that fails the same way is answered, not a 500: the handler stays in
    ERROR with the new reason."""
    db.session.add(Process(flow_class_path="elsewhere.Flow", start_token="taken"))
    db.session.commit()
    boss = person(start_app, "boss")
    page = boss.get("/flows/spoilt_start/start/start/").get_data(as_text=True)
    token = re.search(r'name="start_token" value="([^"]*)"', page)
    assert token
    answer = boss.post("/flows/spoilt_start/start/start/", {"start_token": token.group(1)}, hx=hx)
    assert answer.status_code in (200, 303), answer.get_data(as_text=True)[:300]
    db.session.expire_all()
    process = db.session.scalars(sa.select(Process).where(Process.flow_class_path != "elsewhere.Flow")).one()
    handler = task_at(process, "spoil")
    assert handler.status == STATUS.ERROR
    assert "UNIQUE" in (handler.comments or "") or "unique" in (handler.comments or "")
    assert process.start_token == token.group(1)
    assert task_at(process, "start").status == STATUS.DONE

    url = f"/flows/spoilt_start/{process.id}/spoil/{handler.id}/"
    boss.get(url)
    answer = boss.post(url + "retry/", hx=hx)
    assert answer.status_code == (200 if hx else 303), answer.get_data(as_text=True)[:300]
    again = task_at(process, "spoil")
    assert again.status == STATUS.ERROR and again.id == handler.id
    events = db.session.scalars(sa.select(sa.text("transition")).select_from(sa.text("task_event"))
                                .where(sa.text(f"task_id = {handler.id}"))).all()
    assert events.count("retry") == 1
