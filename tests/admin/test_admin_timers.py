"""Admin: waiting timers (fire now, reschedule), overdue tasks per flow, late timers as stuck."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from admin_support import PASSWORD, Actions
from app_support import in_app_context, make_test_app
from flask import Flask

from webflow import STATUS, Flow, db, flow, this
from webflow.core.nodes.timer import aware_utc
from webflow.models import Process, Task, TaskEvent


class TimedFlow(Flow):
    """Timed work"""

    start = flow.StartFunction().Next(this.wait)
    wait = flow.Timer(timedelta(hours=1)).Next(this.work)
    work = flow.View().Permission(auto_create=True).Due(timedelta(hours=2)).Next(this.end)
    end = flow.End()


class UnmanagedFlow(Flow):
    """Someone else's timers"""

    start = flow.StartFunction().Next(this.wait)
    wait = flow.Timer(timedelta(hours=1)).Next(this.end)
    end = flow.End()


USERS = {"boss": ["timed.manage"], "worker": ["timed.view", "timed.can_work"], "other": ["unmanaged.manage"]}


@pytest.fixture
def app(db_url: str) -> Iterator[Flask]:
    with in_app_context(make_test_app(db_url, [TimedFlow, UnmanagedFlow], USERS, PASSWORD,
                                      WTF_CSRF_ENABLED=False)) as app:
        yield app


def client(app: Flask, name: str):  # type: ignore[no-untyped-def]
    c = app.test_client()
    Actions(c).login(name)
    return c


def timer_of(process: Process) -> Task:
    db.session.commit()
    db.session.expire_all()
    return db.session.scalars(sa.select(Task).where(Task.process_id == process.id,
                                                    Task.node_name == "wait")).one()


def test_the_overview_lists_waiting_timers_soonest_first(app) -> None:  # type: ignore[no-untyped-def]
    first, second = TimedFlow.start.run(), TimedFlow.start.run()
    db.session.execute(sa.update(Task).where(Task.id == timer_of(first).id)
                       .values(due=datetime.now(UTC) + timedelta(days=3)))
    UnmanagedFlow.start.run()
    page = client(app, "boss").get("/admin/").get_data(as_text=True)
    section = page[page.index('id="timers"'):page.index('id="stuck"')]
    rows = re.findall(r'<tr id="timer-(\d+)">', section)
    assert rows == [str(timer_of(second).id), str(timer_of(first).id)]  # the unmanaged one is not there
    assert "Fire now" in section and "Reschedule" in section and "in 1 hour" in section


def test_fire_now_fires_the_timer_once(app) -> None:  # type: ignore[no-untyped-def]
    process = TimedFlow.start.run()
    timer = timer_of(process)
    boss = client(app, "boss")
    response = boss.post(f"/admin/timers/{timer.id}/fire/")
    assert response.status_code == 303
    assert timer_of(process).status == STATUS.DONE
    work = db.session.scalars(sa.select(Task).where(Task.process_id == process.id,
                                                    Task.node_name == "work")).one()
    assert work.status == STATUS.NEW
    event = db.session.scalars(sa.select(TaskEvent).where(TaskEvent.task_id == timer.id,
                                                          TaskEvent.transition == "fire")).one()
    assert event.user.username == "boss"
    again = boss.post(f"/admin/timers/{timer.id}/fire/")
    assert again.status_code == 409 and "not waiting any more" in again.get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Task).where(
        Task.process_id == process.id, Task.node_name == "work")) == 1


def test_reschedule_moves_the_timer_in_the_managers_zone(app) -> None:  # type: ignore[no-untyped-def]
    process = TimedFlow.start.run()
    timer = timer_of(process)
    boss = client(app, "boss")
    boss.set_cookie("tz", "Asia/Tokyo")
    response = boss.post(f"/admin/timers/{timer.id}/reschedule/", data={"due": "2031-03-01T09:00"})
    assert response.status_code == 303
    assert aware_utc(timer_of(process).due) == datetime(2031, 3, 1, 0, 0, tzinfo=UTC)
    assert timer_of(process).status == STATUS.SCHEDULED
    for bad in ("", "soon", "2031-13-01T09:00"):
        refused = boss.post(f"/admin/timers/{timer.id}/reschedule/", data={"due": bad})
        assert refused.status_code == 422 and "Nothing was changed" in refused.get_data(as_text=True)
    assert aware_utc(timer_of(process).due) == datetime(2031, 3, 1, 0, 0, tzinfo=UTC)


def test_timer_actions_need_a_manager_of_the_flow_and_a_real_timer(app) -> None:  # type: ignore[no-untyped-def]
    process = TimedFlow.start.run()
    timer = timer_of(process)
    for name in ("worker", "other"):
        assert client(app, name).post(f"/admin/timers/{timer.id}/fire/").status_code == 403
    boss = client(app, "boss")
    assert boss.post(f"/admin/timers/{timer.id}/explode/").status_code == 404
    assert boss.post("/admin/timers/999999/fire/").status_code == 404
    assert boss.post(f"/admin/timers/{2**40}/fire/").status_code == 404
    start = db.session.scalars(sa.select(Task).where(Task.process_id == process.id,
                                                     Task.node_name == "start")).one()
    assert boss.post(f"/admin/timers/{start.id}/fire/").status_code == 404  # not a timer
    assert timer_of(process).status == STATUS.SCHEDULED


def test_late_timers_are_stuck_and_overdue_tasks_are_counted_per_flow(app) -> None:  # type: ignore[no-untyped-def]
    late, on_time = TimedFlow.start.run(), TimedFlow.start.run()
    now = datetime.now(UTC)
    for process, late_by in ((late, timedelta(minutes=2)), (on_time, timedelta(seconds=10))):
        db.session.execute(sa.update(Task).where(Task.id == timer_of(process).id).values(due=now - late_by))
    db.session.commit()
    page = client(app, "boss").get("/admin/").get_data(as_text=True)
    stuck = page[page.index('id="stuck"'):]
    assert f"#{timer_of(late).id}</td>" in stuck and "timer, due" in stuck
    assert f"#{timer_of(on_time).id}</td>" not in stuck  # less than a minute late
    overdue = page[page.index('id="overdue"'):page.index('id="timers"')]
    assert "overdue" not in overdue.split("</thead>")[1]

    # fire the late one: its work task becomes overdue once its due date passes
    timer = timer_of(late)
    client(app, "boss").post(f"/admin/timers/{timer.id}/fire/")
    db.session.commit()  # end the read that began before the request wrote
    db.session.execute(sa.update(Task).where(Task.process_id == late.id, Task.node_name == "work")
                       .values(due=now - timedelta(hours=1)))
    db.session.commit()
    page = client(app, "boss").get("/admin/").get_data(as_text=True)
    overdue = page[page.index('id="overdue"'):page.index('id="timers"')]
    assert "1 overdue" in overdue
    assert f"#{timer.id}</td>" not in page[page.index('id="stuck"'):]


def test_a_timer_past_its_time_is_late_not_overdue_in_the_list_and_on_its_page(app) -> None:  # type: ignore[no-untyped-def]
    """A timer's due date is when it fires: past it, nothing fired it (no worker?). The
    waiting-timer list and the timer's page called that "Overdue", a person's word; a timer
    due later today was "Due today"."""
    late, today, later = TimedFlow.start.run(), TimedFlow.start.run(), TimedFlow.start.run()
    now = datetime.now(UTC)
    for process, due in ((late, now - timedelta(minutes=5)), (today, now + timedelta(minutes=1)),
                         (later, now + timedelta(days=3))):
        db.session.execute(sa.update(Task).where(Task.id == timer_of(process).id).values(due=due))
    db.session.commit()
    boss = client(app, "boss")
    page = boss.get("/admin/").get_data(as_text=True)
    section = page[page.index('id="timers"'):page.index('id="stuck"')]
    rows = dict(re.findall(r'<tr id="timer-(\d+)">(.*?)</tr>', section, re.S))
    assert ">Late</span>" in rows[str(timer_of(late).id)]
    for process in (today, later):
        assert "wf-badge" not in rows[str(timer_of(process).id)]
    assert "Overdue" not in section and "Due today" not in section
    timer = timer_of(late)
    task_page = boss.get(f"/flows/timed/{late.id}/wait/{timer.id}/").get_data(as_text=True)
    due = task_page[task_page.index('id="task-due"'):].split("</dd>")[0]
    assert ">Late</span>" in due and "Overdue" not in due
    words = " ".join(task_page.split())
    assert "This timer was due to fire <time" in words and "and nothing has fired it yet" in words
    waiting = timer_of(later)
    later_page = boss.get(f"/flows/timed/{later.id}/wait/{waiting.id}/").get_data(as_text=True)
    assert "This timer fires <time" in later_page and "was due to fire" not in later_page
