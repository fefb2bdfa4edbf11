"""Third time audit, on the pages: due dates at the edges of what a datetime holds, and
the manager's due form for a task whose priority the flow set outside the form's range."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from web_support import fresh, hello, task_of, task_url

from webflow import db
from webflow.core.nodes.timer import aware_utc
from webflow.models import Task


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
