"""Audit of the administrators' overview: what its counters say when its lists are cut."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import processes
import sqlalchemy as sa

from webflow import STATUS, db
from webflow.models import Task

#: The overview lists at most this many of each (the newest errors, the soonest timers).
LISTED = 50


def counter(page: str, anchor: str) -> int:
    found = re.search(rf'href="#{anchor}">[^<]*<strong>(\d+)</strong>', page)
    assert found, anchor
    return int(found.group(1))


def test_the_error_counter_counts_every_task_in_error_not_the_ones_listed(app, login) -> None:  # type: ignore[no-untyped-def]
    """With more tasks in ERROR than the list shows, the counter said "Tasks in ERROR 50"
    (the length of the cut list) however many there were; the section did not say that it
    shows only some of them."""
    first = processes.charge_error()
    failed = processes.task(first, "charge")
    # More of them, written directly (running 50 processes through the engine is slow).
    for _ in range(LISTED + 4):
        db.session.execute(sa.insert(Task).from_select(
            [c.name for c in Task.__table__.columns if c.name != "id"],
            sa.select(*[c for c in Task.__table__.columns if c.name != "id"]).where(Task.id == failed.id)))
    db.session.commit()
    total = db.session.scalar(sa.select(sa.func.count()).select_from(Task).where(Task.status == STATUS.ERROR))
    assert total == LISTED + 5
    page = login("manager").get("/admin/").get_data(as_text=True)
    assert counter(page, "errors") == total
    section = page[page.index('id="errors"'):page.index('id="stalled"')]
    assert section.count('class="wf-error-task"') == LISTED
    assert f"the newest {LISTED} of {total}" in section
    # The outsider manages another flow: none of these are theirs to count.
    other = login("outsider").get("/admin/").get_data(as_text=True)
    assert counter(other, "errors") == 0


def test_the_timer_counter_counts_every_waiting_timer(app, login) -> None:  # type: ignore[no-untyped-def]
    """The same for "Waiting timers": a flow with more waiting timers than the list shows."""
    process = processes.review_new()
    review = processes.task(process, "review")
    due = datetime.now(UTC) + timedelta(hours=1)
    replaced = ("id", "status", "flow_task_type", "due")
    columns = [c.name for c in Task.__table__.columns if c.name not in replaced]
    for _ in range(LISTED + 2):
        db.session.execute(sa.insert(Task).from_select(
            [*columns, "status", "flow_task_type", "due"],
            sa.select(*[Task.__table__.c[name] for name in columns],
                      sa.literal(STATUS.SCHEDULED.value), sa.literal("TIMER"), sa.literal(due, Task.due.type))
            .where(Task.id == review.id)))
    db.session.commit()
    page = login("manager").get("/admin/").get_data(as_text=True)
    assert counter(page, "timers") == LISTED + 2
    section = page[page.index('id="timers"'):page.index('id="stuck"')]
    assert section.count('<tr id="timer-') == LISTED
    assert f"the soonest {LISTED} of {LISTED + 2}" in section


def test_a_page_past_the_end_shows_the_last_page(app, login) -> None:  # type: ignore[no-untyped-def]
    """``?page=9`` of three pages said "Page 9 of 3" over an empty table ("No processes.")
    with a Previous link to page 8, just as empty: what a list left open shows after its
    last page emptied (tasks taken from the queue while it redraws itself). Now the last
    page is shown, as the process page already does with its tasks."""
    app.config["WEBFLOW_PAGE_SIZE"] = 2
    made = [processes.review_new() for _ in range(5)]
    oldest = f'href="/flows/repair/{made[0].id}/"'
    for who, path in (("manager", "/admin/?page=9"), ("viewer", "/flows/repair/?page=9"),
                      ("clerk", "/queue/?page=9"), ("clerk", "/queue/?page=4")):
        html = login(who).get(path).get_data(as_text=True)
        assert "Page 3 of 3" in html, (who, path)
        assert "Page 9 of" not in html and "Page 4 of" not in html and 'rel="next"' not in html
        assert "No processes" not in html and "Nothing to take" not in html
        if path.startswith("/queue/"):
            assert f'value="{processes.task(made[0], "review").id}"' in html  # the oldest task's row
        else:
            assert oldest in html  # the oldest process, on the last page
