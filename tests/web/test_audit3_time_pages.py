"""Third time audit, on the pages: due dates at the edges of what a datetime holds, and
the manager's due form for a task whose priority the flow set outside the form's range."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from app_support import in_app_context, make_test_app
from flask import Flask
from web_support import PASSWORD, AuthActions, fresh, hello, task_of, task_url

from webflow import STATUS, Flow, db, fire_due_timers, flow, this
from webflow.core.nodes.timer import aware_utc
from webflow.models import Process, Task, User


def set_due(task: Task, due: datetime | None, priority: int = 0) -> None:
    db.session.execute(sa.update(Task).where(Task.id == task.id).values(due=due, priority=priority))
    db.session.commit()


@pytest.mark.parametrize("due,zone,shown", [
    (datetime(9999, 12, 31, 23, tzinfo=UTC), "Asia/Tokyo", "9999-12-31 23:00:00 UTC"),
    (datetime(1, 1, 1, 1, tzinfo=UTC), "America/New_York", "0001-01-01 01:00:00 UTC"),
])
def test_a_due_date_the_readers_zone_cannot_hold_is_shown_in_utc(app, people, due, zone, shown) -> None:  # type: ignore[no-untyped-def]
    """The engine stores any instant a datetime holds (a flow's ``.Due`` callable answered
    the last hour of 9999, or the year 1). Read in a zone that carries it past the end,
    every page that lists the task was a 500 (OverflowError); now it is shown in UTC."""
    process = hello()
    approve = task_of(process, "approve")
    set_due(approve, due)
    manager, bob = people("manager"), people("bob")
    for person in (manager, bob):
        person.client.set_cookie("tz", zone)
    for person, url in ((bob, "/queue/"), (bob, "/queue/?sort=due"), (bob, "/queue/?when=overdue"),
                        (bob, task_url(approve)), (manager, task_url(approve)), (manager, "/admin/"),
                        (manager, f"/flows/hello_world/{process.id}/")):
        response = person.get(url)
        assert response.status_code == 200, url
    page = manager.get(task_url(approve)).get_data(as_text=True)
    assert f'title="{shown}"' in page
    # the form shows it unchanged, and sending it back unchanged keeps it
    assert f'value="{shown[:10]}T{shown[11:16]}"' in page
    response = manager.post(task_url(approve, "due/"), {"due": f"{shown[:10]}T{shown[11:16]}", "priority": "3"})
    assert response.status_code == 303
    assert aware_utc(fresh(approve).due) == due and fresh(approve).priority == 3


def test_a_manager_changes_the_due_date_of_a_task_whose_priority_is_beyond_the_form(app, people) -> None:  # type: ignore[no-untyped-def]
    """A flow's ``.Priority`` may answer anything the column holds (5000 for a large
    amount). The due form sent that priority back unchanged and was refused ("a whole
    number from -1000 to 1000", 422), and the page's input (min -1000, max 1000) would not
    even let a browser send it: the manager could not move the due date without lowering
    the priority. The task's own priority, sent back, is no change; a new one keeps the
    range."""
    approve = task_of(hello(), "approve")
    set_due(approve, datetime(2031, 1, 1, tzinfo=UTC), priority=5000)
    manager = people("manager")
    page = manager.get(task_url(approve)).get_data(as_text=True)
    field = next(tag for tag in page.split("<input") if 'name="priority"' in tag)
    assert 'value="5000"' in field and 'max="5000"' in field and 'min="-1000"' in field
    response = manager.post(task_url(approve, "due/"), {"due": "2031-02-01T09:00", "priority": "5000"})
    assert response.status_code == 303
    changed = fresh(approve)
    assert (aware_utc(changed.due), changed.priority) == (datetime(2031, 2, 1, 9, tzinfo=UTC), 5000)
    for other in ("5001", "1001", "-5000"):  # another value out of range: refused, nothing changed
        refused = manager.post(task_url(approve, "due/"), {"due": "2031-03-01T09:00", "priority": other})
        assert refused.status_code == 422 and "Nothing was changed" in refused.get_data(as_text=True)
    lowered = manager.post(task_url(approve, "due/"), {"due": "2031-02-01T09:00", "priority": "7"})
    assert lowered.status_code == 303
    assert fresh(approve).priority == 7
    set_due(approve, datetime(2031, 1, 1, tzinfo=UTC), priority=-2**31)
    field = next(tag for tag in manager.get(task_url(approve)).get_data(as_text=True).split("<input")
                 if 'name="priority"' in tag)
    assert f'min="{-2**31}"' in field and 'max="1000"' in field


class WaitThenWorkFlow(Flow):
    """Prepare, wait an hour, then work"""

    start = flow.StartFunction().Next(this.prepare)
    prepare = flow.Handler(lambda activation: None).Next(this.wait)
    wait = flow.Timer(timedelta(hours=1)).Next(this.work)
    work = flow.View().Permission(auto_create=True).Next(this.end)
    end = flow.End()


@pytest.fixture
def timer_app(db_url: str) -> Iterator[Flask]:
    users = {"boss": ["wait_then_work.manage"], "worker": ["wait_then_work.view", "wait_then_work.can_work"]}
    with in_app_context(make_test_app(db_url, [WaitThenWorkFlow], users, PASSWORD)) as app:
        yield app


def of(process: Process, node: str) -> list[Task]:
    db.session.commit()
    db.session.expire_all()
    return list(db.session.scalars(sa.select(Task).where(Task.process_id == process.id, Task.node_name == node)
                                   .order_by(Task.id)))


def test_an_undone_timers_page_says_nothing_runs_it_and_how_to_wait_again(timer_app) -> None:  # type: ignore[no-untyped-def]
    """A manager undid a fired timer (to redo what came after it). Its page said "The
    engine runs this step", but nothing ever does: workers fire waiting timers only, and
    an undone timer is a dead end (the process is listed as stalled). The page now says so
    and names the repair, which works: cancel it, then Activate next on the step before."""
    boss = AuthActions(timer_app).enter_as("boss")
    process = WaitThenWorkFlow.start.run()
    (timer,) = of(process, "wait")
    due = aware_utc(timer.due)
    assert fire_due_timers(now=due) == 1
    (work,) = of(process, "work")
    assert boss.post(task_url(work, "cancel/")).status_code == 303
    assert boss.post(task_url(timer, "undo/")).status_code == 303
    assert fresh(timer).status == STATUS.NEW
    assert fire_due_timers(now=due + timedelta(days=1)) == 0  # an undone timer waits for nobody

    page = boss.get(task_url(timer)).get_data(as_text=True)
    assert "The engine runs this step" not in page
    assert "Undone: this timer waits for nothing, and nothing will run it" in page
    assert "cancel it,\n        then use Activate next on the step before it" in page

    (prepare,) = of(process, "prepare")
    assert boss.post(task_url(timer, "cancel/")).status_code == 303
    assert boss.post(task_url(prepare, "activate_next/")).status_code == 303
    old, new = of(process, "wait")
    assert (old.status, new.status) == (STATUS.CANCELED, STATUS.SCHEDULED)
    assert fire_due_timers(now=aware_utc(new.due)) == 1
    assert [t.status for t in of(process, "work")] == [STATUS.CANCELED, STATUS.NEW]


def test_the_old_timer_of_an_undone_escalation_says_it_waits_for_nothing(app, people) -> None:  # type: ignore[no-untyped-def]
    """Undo of an escalation opens a new approval with timers of its own; its old timer
    stays NEW until that approval finishes. Its page said "The engine runs this step"."""
    db.session.add(User(username="admin", is_superuser=True))
    db.session.commit()
    process = hello()
    approve = task_of(process, "approve")
    assert fire_due_timers(now=aware_utc(approve.created) + timedelta(minutes=3)) == 1
    escalate, timer = task_of(process, "escalate"), of(process, "approve_timeout")[0]
    admin = people("admin")
    for task, transition in ((escalate, "unassign"), (escalate, "cancel"), (timer, "undo")):
        assert admin.post(task_url(task, f"{transition}/")).status_code == 303, transition
    assert fresh(timer).status == STATUS.NEW
    page = admin.get(task_url(timer)).get_data(as_text=True)
    assert "The engine runs this step" not in page
    assert "It is canceled when the open task of its step finishes" in page
    reopened = task_of(process, "approve")
    assert admin.post(task_url(reopened, "assign/")).status_code == 303
    assert admin.post(task_url(reopened), {}).status_code in (200, 303)
    assert fresh(timer).status == STATUS.CANCELED


def due_form(page: str) -> dict[str, str]:
    """The fields of the page's due form as a browser sends them (hidden ones included)."""
    form = re.search(r'<form class="wf-due-form".*?</form>', page, re.S)
    assert form, "no due form"
    return {name: html.unescape(value) for name, value in
            re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', form.group(0))}


def test_two_managers_changing_due_date_and_priority_at_once_keep_both_changes(app, people) -> None:  # type: ignore[no-untyped-def]
    """Two managers open the same task. One moves the due date; the other, on the page
    drawn before, raises the priority. The second form sent the old due date back, and the
    first manager's date was silently put back (and the same the other way round). Each
    form now changes only what its manager changed on it."""
    approve = task_of(hello(), "approve")
    set_due(approve, datetime(2031, 1, 1, 9, tzinfo=UTC), priority=1)
    first, second = people("manager"), AuthActions(app).enter_as("manager")  # two browsers
    first_form = due_form(first.get(task_url(approve)).get_data(as_text=True))
    second_form = due_form(second.get(task_url(approve)).get_data(as_text=True))

    response = first.post(task_url(approve, "due/"), {**first_form, "due": "2031-06-01T12:00"})
    assert response.status_code == 303
    response = second.post(task_url(approve, "due/"), {**second_form, "priority": "9"})
    assert response.status_code == 303
    changed = fresh(approve)
    assert (aware_utc(changed.due), changed.priority) == (datetime(2031, 6, 1, 12, tzinfo=UTC), 9)

    # the other way round: the priority first, then the due date from the older page
    first_form = due_form(first.get(task_url(approve)).get_data(as_text=True))
    second_form = due_form(second.get(task_url(approve)).get_data(as_text=True))
    assert first.post(task_url(approve, "due/"), {**first_form, "priority": "-4"}).status_code == 303
    assert second.post(task_url(approve, "due/"), {**second_form, "due": ""}).status_code == 303
    changed = fresh(approve)
    assert (changed.due, changed.priority) == (None, -4)


def test_the_history_shows_a_due_change_old_and_new_in_the_readers_zone(app, people) -> None:  # type: ignore[no-untyped-def]
    """The change is stored with the old and new values (README: "a change_due event in
    the task's history with the old and new values"), but the page's history said only
    "changed the due date or priority": nobody could see from what to what. It now shows
    both, the times in the reader's zone."""
    approve = task_of(hello(), "approve")
    set_due(approve, datetime(2031, 1, 10, 17, tzinfo=UTC), priority=0)
    manager = people("manager")
    manager.client.set_cookie("tz", "America/New_York")
    manager.get(task_url(approve))
    changed = manager.post(task_url(approve, "due/"), {"due": "2031-01-15T09:30", "priority": "7"})
    assert changed.status_code == 303
    page = manager.get(task_url(approve)).get_data(as_text=True)
    assert "Due 2031-01-10 12:00 EST → 2031-01-15 09:30 EST; priority 0 → 7" in page
    process_page = manager.get(f"/flows/hello_world/{approve.process_id}/").get_data(as_text=True)
    assert "Due 2031-01-10 12:00 EST → 2031-01-15 09:30 EST; priority 0 → 7" in process_page
    assert "2031-01-10T17:00:00+00:00" not in process_page  # not as a traceback in UTC
    assert manager.post(task_url(approve, "due/"), {"due": "", "priority": "7"}).status_code == 303
    berlin = people("bob")
    berlin.client.set_cookie("tz", "Europe/Berlin")
    page = berlin.get(task_url(approve)).get_data(as_text=True)
    assert "Due 2031-01-15 15:30 CET → none" in page


def test_the_overdue_mail_gives_the_due_time_in_the_recipients_own_zone(app, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A person who set their time zone (Settings) read every page in it, but the overdue
    mail said "it was due 2026-12-06 08:00 UTC". It is written in their zone now (UTC, and
    says so, for whoever set none)."""
    from webflow import notifications
    from webflow.core.overdue import notice_overdue_tasks
    from webflow.models import Notification

    app.config["MAIL_SERVER"] = "127.0.0.1"
    monkeypatch.setattr(notifications, "dispatch", lambda app, ids: None)  # stored, not sent
    for name, zone in (("bob", "Asia/Tokyo"), ("alice", None)):
        db.session.execute(sa.update(User).where(User.username == name)
                           .values(email=f"{name}@example.com", timezone=zone))
    db.session.commit()
    due = datetime(2031, 1, 10, 17, tzinfo=UTC)
    for name in ("bob", "alice"):
        approve = task_of(hello(by=name), "approve")
        approve.activate().assign(db.session.scalar(sa.select(User).where(User.username == name)))
        db.session.commit()
        set_due(approve, due)
    # the overdue pass of fire_due_timers (here alone: the demo's escalation would fire first)
    assert notice_overdue_tasks(due + timedelta(minutes=1)) == 2
    db.session.commit()
    bodies = {row.email: row.body for row in db.session.scalars(
        sa.select(Notification).where(Notification.kind == "overdue"))}
    assert "it was due 2031-01-11 02:00 JST." in bodies["bob@example.com"]
    assert "it was due 2031-01-10 17:00 UTC." in bodies["alice@example.com"]


def test_a_task_its_timeout_canceled_says_so_not_that_the_engine_runs_it(app, people) -> None:  # type: ignore[no-untyped-def]
    """Bob had the approval open when its timeout escalated it. His Complete was refused
    (rightly), but the page under the refusal, like the task's page for anyone since,
    read "Canceled. The engine runs this step.": as if something were still to come. It
    says now that nobody finished it in time and the process went on without it; a task a
    manager canceled says it was canceled."""
    db.session.add(User(username="admin", is_superuser=True))
    db.session.commit()
    approve = task_of(hello(), "approve")
    bob = people("bob")
    assert bob.post(task_url(approve, "assign/")).status_code == 303
    page = bob.get(task_url(approve)).get_data(as_text=True)
    shown = re.search(r'name="shown" value="([^"]*)"', page)
    assert shown
    assert fire_due_timers(now=aware_utc(approve.created) + timedelta(minutes=3)) == 1
    refused = bob.post(task_url(approve), {"approved": "y", "shown": html.unescape(shown.group(1))})
    assert refused.status_code == 409
    seen_later = people("manager").get(task_url(approve)).get_data(as_text=True)
    for page in (refused.get_data(as_text=True), seen_later):
        assert "The engine runs this step" not in page
        assert "Nobody finished this task in time: its timeout canceled it" in page

    other = task_of(hello(), "approve")
    assert people("manager").post(task_url(other, "cancel/")).status_code == 303
    page = people("manager").get(task_url(other)).get_data(as_text=True)
    assert "The engine runs this step" not in page and "This task was canceled" in page
