"""What a live refresh of the task page sends: the status with the cards that can have changed,
but the work card (the owner's form) only when the task's status or owner changed since the
page showed them; and a banner that names what changed (the priority, the due date)."""

from __future__ import annotations

import re

from flask import Flask
from web_support import hello, task_of, task_url

from webflow import db
from webflow.models import TaskEvent


def status_url(html: str) -> str:
    """The URL the page's status element refreshes itself from."""
    match = re.search(r'id="task-status"[^>]*hx-get="([^"]+)"', html)
    assert match, "no status element"
    return match.group(1).replace("&amp;", "&")


def banner_url(html: str) -> str:
    match = re.search(r'id="live-banner"[^>]*hx-get="([^"]+)"', html)
    assert match, "no banner"
    return match.group(1).replace("&amp;", "&")


def test_a_change_of_priority_leaves_the_work_card_alone(app: Flask, people) -> None:  # type: ignore[no-untyped-def]
    bob, manager = people("bob"), people("manager")
    task = task_of(hello("pack it"), "approve")
    assert bob.post(task_url(task, "assign/"), hx=True).status_code == 200
    page = bob.get(task_url(task)).get_data(as_text=True)
    refresh, banner = status_url(page), banner_url(page)
    assert "shown=ASSIGNED" in refresh

    # The manager's form sends the due date back as it shows it (to the minute): only the
    # priority changed, and that is all the audit trail and the banner say.
    manager_page = manager.get(task_url(task)).get_data(as_text=True)
    shown_due = re.search(r'name="due" value="([^"]*)"', manager_page).group(1)  # type: ignore[union-attr]
    assert manager.post(task_url(task, "due/"), {"due": shown_due, "priority": "7"}).status_code == 303
    event = db.session.scalars(db.select(TaskEvent).where(TaskEvent.task_id == task.id,
                                                          TaskEvent.transition == "change_due")).one()
    assert event.comments == "priority 0 -> 7"

    fragment = bob.get(refresh, hx=True).get_data(as_text=True)
    assert 'id="task-status"' in fragment and 'id="task-history"' in fragment
    assert 'id="process-facts"' in fragment                    # the priority shown follows
    assert 'id="task-work"' not in fragment                    # the half-filled form stays
    text = bob.get(banner, hx=True).get_data(as_text=True)
    assert "manager changed the priority of this task" in text and "due date" not in text

    # A new due date: the banner says so.
    assert manager.post(task_url(task, "due/"), {"due": "2031-01-15T09:30", "priority": "7"}).status_code == 303
    assert "manager changed the due date of this task" in bob.get(banner, hx=True).get_data(as_text=True)
    assert manager.post(task_url(task, "due/"), {"due": "2031-02-15T09:30", "priority": "8"}).status_code == 303
    assert ("manager changed the due date and the priority of this task"
            in bob.get(banner, hx=True).get_data(as_text=True))


def test_a_change_of_owner_sends_the_work_card(app: Flask, people) -> None:  # type: ignore[no-untyped-def]
    alice, bob = people("alice"), people("bob")
    task = task_of(hello("take it"), "approve")
    page = alice.get(task_url(task)).get_data(as_text=True)
    refresh = status_url(page)
    assert "shown=NEW" in refresh
    assert 'id="task-work"' not in alice.get(refresh, hx=True).get_data(as_text=True)  # nothing changed

    assert bob.post(task_url(task, "assign/"), hx=True).status_code == 200
    fragment = alice.get(refresh, hx=True).get_data(as_text=True)
    assert 'id="task-work"' in fragment and "bob works on this task" in fragment
    # The new status element refreshes with what it now shows.
    assert "shown=ASSIGNED" in status_url(fragment)
    # Without "shown" (an old page) every card comes, as before.
    plain = re.sub(r"[?&]shown=[^&]*", "", refresh)
    assert 'id="task-work"' in alice.get(plain, hx=True).get_data(as_text=True)
