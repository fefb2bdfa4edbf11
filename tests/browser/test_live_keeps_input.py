"""A live refresh (someone else's change) never takes away what a person is doing on the page:
the values typed into the task form and the comment box stay, ticked rows of the queue stay
ticked, keyboard focus stays on the same row's button (never another row's), and a message
being read stays. At 390 px, through polling at 0.4 s (no Redis), so each test takes seconds."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import screens
from app_support import in_app_context, make_test_app, serving
from flask import Flask
from flask_wtf import FlaskForm
from wtforms import IntegerField, StringField
from wtforms.validators import InputRequired, NumberRange

from webflow import Context, Flow, db, flow, this
from webflow.demo.helloworld import HelloWorldFlow
from webflow.models import Task, User

pytestmark = pytest.mark.browser
HELLO = ["hello_world.view", "hello_world.can_start", "hello_world.can_approve"]
#: Long enough for a few polls (0.4 s) and the redraws they set off.
SETTLE_MS = 2500


class PackForm(FlaskForm):
    packages = IntegerField("Packages", validators=[InputRequired(), NumberRange(min=1, max=100)])
    carrier = StringField("Carrier")


class LivePackFlow(Flow):
    """Live packing

    Somebody packs the goods."""

    start = flow.Start(form=PackForm).Permission(auto_create=True).Next(this.pack)
    pack = flow.View(form=PackForm).Permission(auto_create=True).Next(this.end)
    end = flow.End()


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    label = LivePackFlow.flow_label
    pack = [f"{label}.view", f"{label}.can_start", f"{label}.can_pack"]
    made = make_test_app(f"sqlite:///{tmp_path / 'keep.sqlite'}", [HelloWorldFlow, LivePackFlow],
                         {"alice": HELLO + pack, "bob": HELLO + pack,
                          "admin": HELLO + pack + [f"{label}.manage", "hello_world.manage"]},
                         "pw", REDIS_URL=None, WEBFLOW_LIVE_POLL_SECONDS=0.4)
    with in_app_context(made):
        yield made


def person(name: str) -> User:
    return db.session.scalar(db.select(User).where(User.username == name))


def start_hello(text: str) -> int:
    """A process started from code (as another program would); its approve task's id."""
    process = HelloWorldFlow.start.run(data={"text": text}, user=person("alice"))
    task_id = int(process.get_task(HelloWorldFlow.approve).id)
    db.session.remove()
    return task_id


def page_of(browser: Any, base: str, name: str, url: str) -> Any:
    context = browser.new_context(viewport={"width": 390, "height": 844})
    screens.log_in(context, base, name, "pw")
    page = context.new_page()
    page.goto(url)
    page.wait_for_selector("body[data-live-ready][data-live-feed=polling]")
    page.evaluate("window.stayedOnPage = true")  # gone if the page reloads
    return page


def focused_take(page: Any) -> str | None:
    """The task id of the Take button that has keyboard focus (None: focus is elsewhere)."""
    return page.evaluate("""() => { const e = document.activeElement;
        return e && e.name === 'take' ? e.value : null; }""")


def test_someone_elses_change_keeps_the_half_filled_form_and_comment(browser: Any, app: Flask) -> None:
    process = LivePackFlow.start.run(data={"packages": 1, "carrier": "DHL"}, user=person("alice"))
    task = process.get_task(LivePackFlow.pack)
    task_id, process_id = int(task.id), int(process.id)
    db.session.remove()
    url = f"/flows/{LivePackFlow.flow_label}/{process_id}/pack/{task_id}/"
    with serving(app) as base:
        bob = page_of(browser, base, "bob", base + url)
        bob.click("#task-status button:has-text('Assign to me')")
        bob.wait_for_selector("#task-work input[name=packages]")
        bob.fill("#task-work input[name=packages]", "5")
        bob.fill("#task-work input[name=carrier]", "UPS")
        bob.fill("#comment-text", "half-typed comment")
        bob.focus("#task-work input[name=carrier]")

        admin = page_of(browser, base, "admin", base + url)  # changes the priority only
        admin.fill(".wf-due-form input[name=priority]", "7")
        admin.click(".wf-due-form button")
        admin.wait_for_selector("#task-priority:has-text('7')")

        # The priority shown follows; nothing typed is lost; the banner names what changed.
        bob.wait_for_selector("#task-priority:has-text('7')", timeout=5000)
        bob.wait_for_timeout(SETTLE_MS)  # more polls: still kept
        assert bob.input_value("#task-work input[name=packages]") == "5"
        assert bob.input_value("#task-work input[name=carrier]") == "UPS"
        assert bob.input_value("#comment-text") == "half-typed comment"
        assert bob.evaluate("document.activeElement.name") == "carrier"
        assert bob.inner_text("#live-banner").startswith("admin changed the priority of this task since")

        # Then the due date (the history and the process card redraw again): the banner says so.
        entries = bob.locator("#task-history .wf-history > li").count()
        admin.fill(".wf-due-form input[name=due]", "2031-01-15T09:30")
        admin.click(".wf-due-form button")
        bob.wait_for_selector("#live-banner:has-text('admin changed the due date of this task')", timeout=5000)
        screens.wait_until(bob, "document.querySelectorAll('#task-history .wf-history > li').length"
                                f" > {entries}")
        bob.wait_for_timeout(SETTLE_MS)
        assert bob.input_value("#comment-text") == "half-typed comment"
        assert bob.input_value("#task-work input[name=packages]") == "5"

        # The task is put back in the queue: the new work card has no form for bob, so his
        # typed form is not replaced (the banner says what happened); the status follows.
        admin_user = person("admin")
        with Context(user=admin_user):
            db.session.get(Task, task_id).activate().unassign()  # type: ignore[union-attr]
        db.session.remove()
        bob.wait_for_selector("#live-banner:has-text('admin put this task back in the queue')", timeout=5000)
        bob.wait_for_selector("#task-status:not(:has-text('bob'))", timeout=5000)
        bob.wait_for_timeout(SETTLE_MS)
        assert bob.input_value("#task-work input[name=packages]") == "5"
        assert bob.input_value("#task-work input[name=carrier]") == "UPS"
        assert bob.input_value("#comment-text") == "half-typed comment"
        assert bob.evaluate("window.stayedOnPage") is True


def test_a_queue_redraw_keeps_the_rows_ticked(browser: Any, app: Flask) -> None:
    first, second, third = (start_hello(f"Message {n}") for n in range(3))
    with serving(app) as base:
        bob = page_of(browser, base, "bob", base + "/queue/")
        bob.check(f"#row-task-{first} input[name=task_id]")
        bob.check(f"#row-task-{third} input[name=task_id]")

        fourth = start_hello("A new one")  # the queue changes: the list redraws
        bob.wait_for_selector(f"#row-task-{fourth}", timeout=5000)
        bob.wait_for_timeout(SETTLE_MS)
        assert bob.is_checked(f"#row-task-{first} input[name=task_id]")
        assert bob.is_checked(f"#row-task-{third} input[name=task_id]")
        assert not bob.is_checked(f"#row-task-{second} input[name=task_id]")
        assert not bob.is_checked(f"#row-task-{fourth} input[name=task_id]")

        bob.click("#task-list button:has-text('Take the chosen tasks')")
        bob.wait_for_selector("#messages .flash:has-text('2 tasks assigned to you.')", timeout=5000)
        owners = {t.id: t.owner_id for t in db.session.scalars(db.select(Task).where(
            Task.id.in_([first, second, third, fourth])))}
        bob_id = person("bob").id
        assert owners == {first: bob_id, second: None, third: bob_id, fourth: None}


def test_a_queue_redraw_keeps_focus_on_the_same_rows_take(browser: Any, app: Flask) -> None:
    ids = [start_hello(f"Message {n}") for n in range(6)]
    with serving(app) as base:
        bob = page_of(browser, base, "bob", base + "/queue/?sort=created")
        fifth = str(ids[4])
        bob.focus(f"#row-task-{fifth} button[name=take]")
        assert focused_take(bob) == fifth

        newest = start_hello("Something new")
        bob.wait_for_selector(f"#row-task-{newest}", timeout=5000)
        bob.wait_for_timeout(SETTLE_MS)
        assert focused_take(bob) == fifth           # the same row's Take, not the first row's

        # The focused row is taken by someone else: focus goes to the list, not another row's Take.
        alice = person("alice")
        with Context(user=alice):
            db.session.get(Task, ids[4]).activate().assign(alice)  # type: ignore[union-attr]
        db.session.remove()
        bob.wait_for_selector(f"#row-task-{fifth}", state="detached", timeout=5000)
        bob.wait_for_timeout(SETTLE_MS)
        assert focused_take(bob) is None
        assert bob.evaluate("document.activeElement.closest('#task-list, h1') !== null")

        bob.keyboard.press("Enter")                 # takes nothing
        bob.wait_for_timeout(500)
        assert db.session.scalar(db.select(db.func.count()).select_from(Task).where(
            Task.owner_id == person("bob").id)) == 0


def test_a_redraw_after_my_own_take_keeps_the_message_and_its_focus(browser: Any, app: Flask) -> None:
    first, second = start_hello("One"), start_hello("Two")
    with serving(app) as base:
        bob = page_of(browser, base, "bob", base + "/queue/")
        bob.click(f"#row-task-{first} button[name=take]")
        message = "#messages .flash:has-text('1 task assigned to you.')"
        bob.wait_for_selector(message)
        screens.wait_until(bob, "document.activeElement.matches('#messages .flash')", timeout=3000)

        # bob's own take is a queue change: the list redraws a moment later (and again for
        # alice's new process); the message stays, and so does focus on it.
        third = start_hello("Three")
        bob.wait_for_selector(f"#row-task-{third}", timeout=5000)
        bob.wait_for_timeout(SETTLE_MS)
        assert bob.locator(message).count() == 1
        assert bob.evaluate("document.activeElement.matches('#messages .flash')")
        assert bob.locator(f"#row-task-{second}").count() == 1
