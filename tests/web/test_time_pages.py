"""Due dates and priorities on the pages: columns, badges, sorts, filters, the reader's zone,
and a manager changing them (audited; others refused; bad input changes nothing)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from web_support import fresh, hello, snapshot, task_of, task_url, user

from webflow import db, fire_due_timers
from webflow.core.nodes.timer import aware_utc
from webflow.models import Task, TaskEvent


def set_due(task: Task, due: datetime | None, priority: int = 0) -> None:
    db.session.execute(sa.update(Task).where(Task.id == task.id).values(due=due, priority=priority))
    db.session.commit()


def row(html: str, task: Task) -> str:
    match = re.search(rf'<tr id="row-task-{task.id}">(.*?)</tr>', html, re.S)
    assert match, f"no row for task {task.id}"
    return match.group(1)


def order_of(html: str, *tasks: Task) -> list[int]:
    positions = {t.id: html.index(f'id="row-task-{t.id}"') for t in tasks}
    return sorted(positions, key=positions.__getitem__)


def test_demo_approvals_get_a_due_date_and_the_queue_shows_it(app, people) -> None:  # type: ignore[no-untyped-def]
    approve = task_of(hello("due soon"), "approve")
    assert aware_utc(approve.due) - aware_utc(approve.created) == timedelta(days=1)
    cells = row(people("bob").get("/queue/").get_data(as_text=True), approve)
    stamp = re.search(r'class="wf-due"><time datetime="([^"]+)" title="([^"]+)">([^<]+)</time>', cells)
    assert stamp, cells
    assert datetime.fromisoformat(stamp.group(1)) == aware_utc(approve.due)
    assert stamp.group(2).endswith(" UTC")  # no zone cookie yet: UTC, and it says so
    assert stamp.group(3) in ("in 23 hours", "in 1 day")


def test_overdue_and_due_today_are_badges_with_words(app, people) -> None:  # type: ignore[no-untyped-def]
    now = datetime.now(UTC)
    late, today, later, undated = (task_of(hello(t), "approve") for t in ("late", "today", "later", "undated"))
    set_due(late, now - timedelta(hours=2))
    # later today in the reader's zone: pick a zone where it is early morning now
    zone = next(z for z in ("Etc/GMT+12", "Etc/GMT", "Etc/GMT-12", "Pacific/Kiritimati")
                if now.astimezone(ZoneInfo(z)).hour < 20)
    set_due(today, now + timedelta(hours=3))
    set_due(later, now + timedelta(days=3))
    set_due(undated, None)
    bob = people("bob")
    bob.client.set_cookie("tz", zone)
    page = bob.get("/queue/").get_data(as_text=True)
    assert "Overdue" in row(page, late) and "2 hours ago" in row(page, late)
    assert "Due today" in row(page, today) and "Overdue" not in row(page, today)
    assert "Due today" not in row(page, later) and "Overdue" not in row(page, later)
    assert "in 3 days" in row(page, later)
    assert '<td class="wf-due"><span class="wf-muted">–</span></td>' in row(page, undated)


def test_sort_by_due_and_by_priority(app, people) -> None:  # type: ignore[no-untyped-def]
    now = datetime.now(UTC)
    a, b, c, d = (task_of(hello(t), "approve") for t in "abcd")
    set_due(a, now + timedelta(days=3), priority=1)
    set_due(b, now + timedelta(days=1), priority=5)
    set_due(c, None, priority=9)
    set_due(d, now - timedelta(days=1), priority=0)
    bob = people("bob")
    assert order_of(bob.get("/queue/?sort=due").get_data(as_text=True), a, b, c, d) == [d.id, b.id, a.id, c.id]
    assert order_of(bob.get("/queue/?sort=-due").get_data(as_text=True), a, b, c, d) == [a.id, b.id, d.id, c.id]
    by_priority = bob.get("/queue/?sort=-priority").get_data(as_text=True)
    assert order_of(by_priority, a, b, c, d) == [c.id, b.id, a.id, d.id]
    lowest_first = bob.get("/queue/?sort=priority").get_data(as_text=True)
    assert order_of(lowest_first, a, b, c, d) == [d.id, a.id, b.id, c.id]
    # the Priority header's first click sorts highest first, the next one reverses it
    assert 'href="/queue/?sort=-priority' in bob.get("/queue/?sort=-created").get_data(as_text=True)
    assert 'href="/queue/?sort=priority' in by_priority
    # with no sort asked, the queue shows the highest priority first (SPEC: .Priority)
    default = bob.get("/queue/").get_data(as_text=True)
    assert order_of(default, a, b, c, d) == [c.id, b.id, a.id, d.id]
    assert 'href="/queue/?sort=priority' in default


def test_filters_overdue_and_due_this_week(app, people) -> None:  # type: ignore[no-untyped-def]
    now = datetime.now(UTC)
    late, soon, far, undated = (task_of(hello(t), "approve") for t in ("late", "soon", "far", "undated"))
    set_due(late, now - timedelta(minutes=5))
    set_due(soon, now + timedelta(days=6))
    set_due(far, now + timedelta(days=8))
    set_due(undated, None)
    bob = people("bob")
    overdue = bob.get("/queue/?when=overdue").get_data(as_text=True)
    assert f"row-task-{late.id}" in overdue and "1 task<" in overdue
    assert all(f"row-task-{t.id}" not in overdue for t in (soon, far, undated))
    week = bob.get("/queue/?when=week").get_data(as_text=True)
    assert f"row-task-{soon.id}" in week and "1 task<" in week
    assert all(f"row-task-{t.id}" not in week for t in (late, far, undated))
    everything = bob.get("/queue/?when=nonsense").get_data(as_text=True)
    assert "4 tasks" in everything
    # the inbox filters the same way
    db.session.execute(sa.update(Task).where(Task.id == late.id).values(owner_id=user("bob").id,
                                                                        status="ASSIGNED"))
    db.session.commit()
    assert f"row-task-{late.id}" in bob.get("/inbox/?when=overdue").get_data(as_text=True)
    assert "No task matches" in bob.get("/inbox/?when=week").get_data(as_text=True)


def test_the_archive_offers_no_due_filter_and_ignores_one_in_its_address(app, people) -> None:  # type: ignore[no-untyped-def]
    """Finished tasks are never overdue (the lists flag none), yet the archive offered
    "Overdue" and listed under it every finished task whose due date had passed."""
    now = datetime.now(UTC)
    late, soon = (task_of(hello(t), "approve") for t in ("late", "soon"))
    set_due(late, now - timedelta(days=2))
    set_due(soon, now + timedelta(days=2))
    db.session.execute(sa.update(Task).where(Task.id.in_([late.id, soon.id]))
                       .values(owner_id=user("bob").id, status="DONE", finished=now))
    db.session.commit()
    bob = people("bob")
    for when in ("overdue", "week"):
        page = bob.get(f"/archive/?when={when}").get_data(as_text=True)
        assert f"row-task-{late.id}" in page and f"row-task-{soon.id}" in page and "2 tasks" in page
        assert 'name="when"' not in page and "Overdue" not in page
    assert 'name="when"' in bob.get("/inbox/").get_data(as_text=True)


def test_the_task_page_shows_the_due_date_in_the_readers_zone(app, people) -> None:  # type: ignore[no-untyped-def]
    approve = task_of(hello(), "approve")
    due = datetime(2031, 7, 1, 12, 0, tzinfo=UTC)
    set_due(approve, due)
    bob = people("bob")
    bob.client.set_cookie("tz", "Europe/Berlin")
    page = bob.get(task_url(approve)).get_data(as_text=True)
    assert f'<time datetime="{due.isoformat()}" title="2031-07-01 14:00:00 CEST">in ' in page
    bob.client.set_cookie("tz", "../../etc/passwd")  # not a zone: UTC
    assert 'title="2031-07-01 12:00:00 UTC"' in bob.get(task_url(approve)).get_data(as_text=True)


def test_a_manager_changes_due_date_and_priority_audited(app, people) -> None:  # type: ignore[no-untyped-def]
    approve = task_of(hello(), "approve")
    manager = people("manager")
    manager.client.set_cookie("tz", "America/New_York")
    page = manager.get(task_url(approve)).get_data(as_text=True)
    assert 'name="due"' in page and "America/New_York" in page
    response = manager.post(task_url(approve, "due/"), {"due": "2031-01-15T09:30", "priority": "7"})
    assert response.status_code == 303
    changed = fresh(approve)
    assert aware_utc(changed.due) == datetime(2031, 1, 15, 14, 30, tzinfo=UTC)  # 09:30 EST
    assert changed.priority == 7
    event = db.session.scalars(sa.select(TaskEvent).where(TaskEvent.task_id == approve.id,
                                                          TaskEvent.transition == "change_due")).one()
    assert event.user.username == "manager" and "priority 0 -> 7" in event.comments
    assert "2031-01-15T14:30:00+00:00" in event.comments
    # an empty due date clears it
    assert manager.post(task_url(approve, "due/"), {"due": "", "priority": "7"}).status_code == 303
    assert fresh(approve).due is None


def test_only_managers_change_due_dates_and_bad_input_changes_nothing(app, people) -> None:  # type: ignore[no-untyped-def]
    process = hello()
    approve = task_of(process, "approve")
    before = snapshot(process)
    bob = people("bob")
    assert 'name="due"' not in bob.get(task_url(approve)).get_data(as_text=True)
    assert bob.post(task_url(approve, "due/"), {"due": "2031-01-15T09:30", "priority": "1"}).status_code == 403
    manager = people("manager")
    for form in ({"due": "next tuesday", "priority": "1"}, {"due": "2031-01-15T09:30", "priority": "high"},
                 {"due": "2031-01-15T09:30", "priority": "99999999999999999999"},
                 {"due": "2031-01-15T09:30"}, {"due": "99999-01-01T00:00", "priority": "1"},
                 {"due": "2031-01-15T09:30\x00", "priority": "1"}):
        response = manager.post(task_url(approve, "due/"), form)
        assert response.status_code in (400, 422), form
        page = response.get_data(as_text=True)
        assert "Nothing was changed" in page or "NUL character" in page
    assert manager.post(task_url(approve, "due/"), {"due": "", "priority": "1"}, csrf=False).status_code == 400
    assert manager.post("/flows/hello_world/999999/approve/999999/due/", {"priority": "1"}).status_code == 404
    assert snapshot(process) == before


def test_a_finished_task_keeps_its_due_date(app, people) -> None:  # type: ignore[no-untyped-def]
    process = hello()
    approve = task_of(process, "approve")
    approve.activate().cancel()
    db.session.commit()
    before = snapshot(process)
    response = people("manager").post(task_url(approve, "due/"), {"due": "2031-01-15T09:30", "priority": "1"})
    assert response.status_code == 409 and "its due date is final" in response.get_data(as_text=True)
    assert snapshot(process) == before


def test_an_unapproved_hello_world_is_escalated_to_the_admin(app, people) -> None:  # type: ignore[no-untyped-def]
    from webflow.models import User

    admin = User(username="admin", is_superuser=True)
    db.session.add(admin)
    db.session.commit()
    process = hello("nobody looks")
    approve = task_of(process, "approve")
    assert fire_due_timers(now=aware_utc(approve.created) + timedelta(minutes=1)) == 0
    assert fire_due_timers(now=aware_utc(approve.created) + timedelta(minutes=2)) == 1
    escalate = task_of(process, "escalate")
    assert fresh(approve).status.value == "CANCELED"
    assert (escalate.owner.username, escalate.priority, escalate.status.value) == ("admin", 10, "ASSIGNED")
    assert aware_utc(escalate.due) - aware_utc(escalate.created) == timedelta(hours=4)
    page = people("admin").get(task_url(escalate)).get_data(as_text=True)
    assert "Nobody approved this message in time" in page


def test_a_waiting_timer_page_says_when_it_fires_and_does_not_poll(app, people) -> None:  # type: ignore[no-untyped-def]
    process = hello()
    timer = task_of(process, "approve_timeout")
    page = people("manager").get(task_url(timer)).get_data(as_text=True)
    assert "This timer fires <time" in page and "in 2 minutes" in page
    assert 'hx-trigger="every 2s"' not in page


def test_the_process_page_lists_the_boundary_timer_and_draws_it(app, people) -> None:  # type: ignore[no-untyped-def]
    process = hello()
    page = people("manager").get(f"/flows/hello_world/{process.id}/").get_data(as_text=True)
    assert page.count("Approve: escalate after 2 minutes") >= 2  # the task list and the graph
    assert 'id="wf-node-approve_timeout"' in page and 'data-state="active"' in page
