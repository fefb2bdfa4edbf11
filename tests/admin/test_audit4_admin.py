"""Audit 4 of the administration pages and the engine's web actions: what managers see and
what is stored when they repair processes in the orders people really produce (both
databases)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa
from admin_support import PASSWORD, Actions
from app_support import in_app_context, make_test_app
from flask import Flask
from flask.testing import FlaskClient

from webflow import Flow, db, flow, this
from webflow.models import Process, Task, TaskEvent, User


class WaitFlow(Flow):
    """Waiting work"""

    start = flow.StartFunction().Next(this.wait)
    wait = flow.Timer(timedelta(hours=1)).Next(this.work)
    work = flow.View().Permission(auto_create=True).Next(this.end)
    end = flow.End()


USERS = {"boss": ["wait.view", "wait.manage", "wait.can_work"], "worker": ["wait.view", "wait.can_work"]}


@pytest.fixture
def app(db_url: str) -> Iterator[Flask]:
    with in_app_context(make_test_app(db_url, [WaitFlow], USERS, PASSWORD, WTF_CSRF_ENABLED=False)) as app:
        yield app


def client(app: Flask, name: str) -> FlaskClient:
    logged_in = app.test_client()
    Actions(logged_in).login(name)
    return logged_in


def task_of(process: Process, node: str) -> Task:
    db.session.commit()
    db.session.expire_all()
    return db.session.scalars(sa.select(Task).where(Task.process_id == process.id, Task.node_name == node)
                              .order_by(Task.id.desc())).first()


def trail(task: Task) -> list[tuple[str, str | None, int | None]]:
    db.session.commit()
    return [(e.transition, e.comments, e.user_id) for e in db.session.scalars(
        sa.select(TaskEvent).where(TaskEvent.task_id == task.id).order_by(TaskEvent.id))]


def test_a_reschedule_leaves_one_event_naming_the_manager(app) -> None:
    """Reschedule (the overview) and a new due date and priority (the timer's page) are one
    change each: the trail told each twice, a ``reschedule`` row and a ``change_due`` row
    with the same due dates, both by the manager."""
    process = WaitFlow.start.run()
    timer = task_of(process, "wait")
    before = trail(timer)
    boss = client(app, "boss")
    boss_id = db.session.scalar(sa.select(User.id).where(User.username == "boss"))
    moved = boss.post(f"/admin/timers/{timer.id}/reschedule/", data={"due": "2031-03-01T09:00"})
    assert moved.status_code == 303
    added = trail(timer)[len(before):]
    assert len(added) == 1, added
    name, comments, user_id = added[0]
    assert name == "reschedule" and user_id == boss_id
    assert comments is not None and comments.endswith("-> 2031-03-01T09:00:00+00:00")
    worker = client(app, "worker")
    banner = f"/flows/wait/{process.id}/wait/{timer.id}/banner/?since=0"
    assert "boss changed the due date of this task" in worker.get(
        banner, headers={"HX-Request": "true"}).get_data(as_text=True)
    # Due date and priority at once, from the timer's own page: one row with both.
    page = f"/flows/wait/{process.id}/wait/{timer.id}/due/"
    assert boss.post(page, data={"due": "2031-04-01T09:00", "priority": "7"}).status_code == 303
    added = trail(timer)[len(before) + 1:]
    assert len(added) == 1, added
    assert added[0][0] == "reschedule" and added[0][2] == boss_id
    assert "-> 2031-04-01T09:00:00+00:00" in added[0][1] and "priority 0 -> 7" in added[0][1]
    # A priority alone moves no timer: its change_due row, as for any task.
    assert boss.post(page, data={"due": "2031-04-01T09:00", "priority": "3"}).status_code == 303
    assert trail(timer)[len(before) + 2:] == [("change_due", "priority 7 -> 3", boss_id)]
    assert "boss changed the priority of this task" in worker.get(
        banner, headers={"HX-Request": "true"}).get_data(as_text=True)



def test_the_trail_says_whom_a_manager_gave_a_task_to(app) -> None:
    """A manager's Assign of a queued task to a worker was stored and shown as "boss took
    “Work”" (the words of taking it yourself), and a Reassign as "gave it to someone else":
    the trail never said who got the task. The row names the new owner now."""
    process = WaitFlow.start.run()
    timer = task_of(process, "wait")
    timer.activate().fire()
    work = task_of(process, "work")
    boss = client(app, "boss")
    base = f"/flows/wait/{process.id}/work/{work.id}/"
    worker_id = db.session.scalar(sa.select(User.id).where(User.username == "worker"))
    boss_id = db.session.scalar(sa.select(User.id).where(User.username == "boss"))
    assert boss.post(base + "assign/", data={"user_id": str(worker_id), "picker": "1"}).status_code == 303
    assert trail(work)[-1] == ("assign", "assigned to worker", boss_id)
    history = boss.get(base).get_data(as_text=True)
    assert "took “Work”" not in history and "assigned to worker" in history
    assert boss.post(base + "reassign/", data={"user_id": str(boss_id), "picker": "1"}).status_code == 303
    assert trail(work)[-1] == ("reassign", "assigned to boss", boss_id)
    history = boss.get(base).get_data(as_text=True)
    assert "reassigned “Work”" in history and "to someone else" not in history  # boss took it over
    # Taking a task yourself needs no note: the row's user is the new owner.
    assert boss.post(base + "unassign/", data={}).status_code == 303
    assert boss.post(base + "assign/", data={}).status_code == 303
    assert trail(work)[-1] == ("assign", None, boss_id)
    assert "boss</strong>\n            took “Work”" in boss.get(base).get_data(as_text=True)


def test_a_timer_action_address_opened_leads_to_the_overview(app) -> None:
    """A refused Reschedule draws the overview at the action's address (422); reloading it
    from the address bar, or a bookmark of it, was a bare 405 error page. Opening the
    address does nothing and leads to the waiting timers, saying so; the action's own
    answers stay (404 for no such timer or action, 403 for another flow's manager)."""
    process = WaitFlow.start.run()
    timer = task_of(process, "wait")
    boss = client(app, "boss")
    refused = boss.post(f"/admin/timers/{timer.id}/reschedule/", data={"due": "soon"})
    assert refused.status_code == 422
    due = timer.due
    for action in ("reschedule", "fire"):
        opened = boss.get(f"/admin/timers/{timer.id}/{action}/")
        assert opened.status_code == 303 and opened.headers["Location"].endswith("/admin/#timers")
        page = boss.get("/admin/").get_data(as_text=True)
        assert "Nothing was done" in page
        hx = boss.get(f"/admin/timers/{timer.id}/{action}/", headers={"HX-Request": "true"})
        assert hx.status_code == 200 and hx.headers["HX-Redirect"].endswith("/admin/#timers")
    assert task_of(process, "wait").status == timer.status and task_of(process, "wait").due == due
    assert boss.get(f"/admin/timers/{timer.id}/explode/").status_code == 404
    assert boss.get(f"/admin/timers/{2**40}/fire/").status_code == 404
    start = task_of(process, "start")
    assert boss.get(f"/admin/timers/{start.id}/fire/").status_code == 404
    assert client(app, "worker").get(f"/admin/timers/{timer.id}/fire/").status_code == 403


@pytest.mark.parametrize("hx", [False, True])
def test_a_started_date_the_filter_cannot_read_is_left_out_and_the_list_says_so(app, hx: bool) -> None:  # type: ignore[no-untyped-def]
    """``?started_from=2026-02-30`` (a bookmark, a typed address) listed every process with
    no word that the filter was dropped, as if it had matched them all."""
    WaitFlow.start.run()
    WaitFlow.start.run()
    db.session.commit()
    boss = client(app, "boss")
    headers = {"HX-Request": "true"} if hx else {}
    page = boss.get("/admin/?started_from=2026-02-30&started_to=0001-01-01", headers=headers)
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    rule = "is not a day from 1900 to 9998 (YYYY-MM-DD)"
    assert f"“2026-02-30” {rule}: the “Started from” date is left out." in html
    assert f"“0001-01-01” {rule}: the “to” date is left out." in html
    assert "Processes <small>(2)</small>" in html
    fine = boss.get("/admin/?started_from=2000-01-01", headers=headers).get_data(as_text=True)
    assert "is left out" not in fine and "Processes <small>(2)</small>" in fine


def pack(activation) -> None:  # type: ignore[no-untyped-def]
    """A job's work (the tests set the task's state themselves)."""


class PackFlow(Flow):
    """Packing"""

    start = flow.StartFunction().Next(this.pack)
    pack = flow.Job(pack, retries=3).Next(this.end)
    end = flow.End()


@pytest.fixture
def pack_app(db_url: str) -> Iterator[Flask]:
    users = {"boss": ["pack.view", "pack.manage"]}
    with in_app_context(make_test_app(db_url, [PackFlow], users, PASSWORD, WTF_CSRF_ENABLED=False)) as app:
        yield app


def test_a_job_queued_again_a_minute_ago_is_not_stuck_whatever_its_last_attempt(pack_app) -> None:  # type: ignore[no-untyped-def]
    """The stuck list read ``started`` first for every waiting job: one whose failed attempt
    began 20 minutes ago and that was queued again (a retry) a minute ago was listed as
    "waiting longer than 900 s", since 20 minutes. A queued job waits since it was queued;
    a running one since its attempt began."""
    from datetime import UTC, datetime

    from webflow import STATUS

    now = datetime.now(UTC)
    long_ago, just_now = now - timedelta(minutes=20), now - timedelta(minutes=1)
    retried, queued_long, running_long = (PackFlow.start.run() for _ in range(3))
    shapes = {retried: (STATUS.SCHEDULED, long_ago, just_now), queued_long: (STATUS.SCHEDULED, None, long_ago),
              running_long: (STATUS.STARTED, long_ago, long_ago)}
    for process, (status, started, assigned) in shapes.items():
        db.session.execute(sa.update(Task).where(Task.process_id == process.id, Task.node_name == "pack")
                           .values(status=status, started=started, assigned=assigned, finished=None))
    db.session.commit()
    page = client(pack_app, "boss").get("/admin/").get_data(as_text=True)
    stuck = page[page.index('id="stuck"'):]
    rows = dict(re.findall(r'<td>Pack #(\d+)</td>(.*?)</tr>', stuck, re.S))
    ids = {process: str(task_of(process, "pack").id) for process in shapes}
    assert ids[retried] not in rows
    assert ids[queued_long] in rows and ids[running_long] in rows
    assert "20 minutes ago" in rows[ids[queued_long]] and "20 minutes ago" in rows[ids[running_long]]
