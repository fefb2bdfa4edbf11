"""Extreme content and hostile query strings at 360 px, the narrowest width README promises:
a fan-out whose items are unbroken 300-character words, a 400-character summary, comments
and data of such words, a username longer than a phone is wide in every hand-over picker,
and list pages asked with garbage sort/filter/page values. Nothing may scroll sideways,
and every button on the page must be reachable (scrolled to, inside the window, not covered)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from app_support import in_app_context, make_test_app, serving
from flask import Flask
from flask_wtf import FlaskForm
from screens import log_in, overflow
from wtforms import BooleanField, TextAreaField

from webflow import STATUS, Context, Flow, db, flow, this
from webflow.core.comments import post_comment
from webflow.models import Process, Task, User

pytestmark = pytest.mark.browser
NARROWEST = {"width": 360, "height": 740}
PASSWORD = "pw"
#: No break opportunity in 300 characters.
WORD = "Unbroken" + "w" * 292
SUMMARY = ("word " * 80)[:400]
#: Longer than a 360 px phone is wide, in a picker's option.
LONG_NAME = "maximilian.von.hohenzollern-sigmaringen-and-then-some-more-letters"


class NotesForm(FlaskForm):
    ok = BooleanField("Looks right")
    note = TextAreaField("Note")


class ExtremeFlow(Flow):
    """Extreme content

    A fan-out over long items, a handler that fails with a long reason, a timer."""

    start = flow.StartFunction().Next(this.fan)
    fan = flow.Split().Each(this.review, items=lambda act: act.process.data["items"])
    review = flow.View(form=NotesForm).Permission(auto_create=True).Next(this.join)
    join = flow.Join().Next(this.charge)
    charge = flow.Handler(this.charge_card).Next(this.wait)
    wait = flow.Timer(timedelta(hours=1)).Next(this.end)
    end = flow.End()

    def charge_card(self, activation: Any) -> None:
        if activation.process.data.get("fail", True):
            raise ValueError("refused: " + WORD)

    def summary(self, process: Any) -> str:
        return str(process.data.get("summary", ""))


WORKER = ["extreme.view", "extreme.can_review"]
USERS = {"bob": WORKER, LONG_NAME: WORKER, "boss": [*WORKER, "extreme.manage"]}


def person(name: str) -> User:
    return db.session.scalar(sa.select(User).where(User.username == name))


@pytest.fixture(scope="module")
def extreme_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Flask, str, dict[str, Any]]]:
    """Three processes of long items: one run to its failing charge, one half reviewed, one
    untouched but for assignments; every other review is LONG_NAME's."""
    tmp = tmp_path_factory.mktemp("extreme")
    app = make_test_app(f"sqlite:///{tmp / 'extreme.sqlite'}", [ExtremeFlow], USERS, PASSWORD,
                        SERVER_NAME=None, WEBFLOW_LIVE_POLL_SECONDS=3600)
    with in_app_context(app), serving(app) as base:
        bob, long_name, boss = person("bob"), person(LONG_NAME), person("boss")
        processes: list[Process] = []
        for number in range(3):
            summary = SUMMARY if number == 0 else (WORD + " " + SUMMARY)[:400]
            process = ExtremeFlow.start.run(items=[f"{WORD}{k}" for k in range(6)], summary=summary, data=WORD)
            processes.append(process)
            reviews = db.session.scalars(sa.select(Task).where(
                Task.process_id == process.id, Task.node_name == "review").order_by(Task.id)).all()
            for k, task in enumerate(reviews):
                owner = bob if k % 2 == 0 else long_name
                task.activate().assign(owner)
                if k == 0:
                    post_comment(db.session(), process, boss, f"{WORD} @bob {WORD}", task=task)
                if number == 0 or (number == 1 and k < 3):
                    with Context(propagate_exception=False, user=owner):
                        activation = task.activate()
                        activation.prepare(data={"ok": True, "note": WORD}, user=owner)
                        activation.done()
        # Two more run through their reviews to the timer: one waits, late (a stuck timer),
        # the other's timer is canceled, which leaves the process stalled.
        for number in range(2):
            process = ExtremeFlow.start.run(items=[f"{WORD}{k}" for k in range(2)], summary=SUMMARY, fail=False)
            for task in db.session.scalars(sa.select(Task).where(
                    Task.process_id == process.id, Task.node_name == "review").order_by(Task.id)).all():
                with Context(propagate_exception=False, user=bob):
                    activation = task.activate()
                    activation.assign(bob)
                    activation.prepare(data={"ok": True, "note": WORD}, user=bob)
                    activation.done()
            timer = db.session.scalars(sa.select(Task).where(Task.process_id == process.id,
                                                             Task.node_name == "wait")).one()
            if number == 0:
                timer.due = timer.created - timedelta(minutes=5)
            else:
                with Context(propagate_exception=False, user=boss):
                    timer.activate().cancel()
            processes.append(process)
        # And many in the queue, none taken.
        processes.append(ExtremeFlow.start.run(items=[f"{WORD}{k}" for k in range(30)], summary=SUMMARY))
        db.session.commit()
        open_review = db.session.scalars(sa.select(Task).where(
            Task.process_id == processes[1].id, Task.node_name == "review",
            Task.status == STATUS.ASSIGNED, Task.owner_id == bob.id).order_by(Task.id)).first()
        failed = db.session.scalars(sa.select(Task).where(
            Task.process_id == processes[0].id, Task.status == STATUS.ERROR)).one()
        yield app, base, {"processes": [p.id for p in processes], "review": open_review, "failed": failed}


def on_narrowest(browser: Any, base: str, name: str) -> Any:
    return log_in(browser.new_context(viewport=NARROWEST), base, name, PASSWORD)


def unreachable_buttons(page: Any) -> list[str]:
    """The enabled buttons of the page's main content that cannot be used: outside the window
    once scrolled to, or covered."""
    found = []
    buttons = page.locator("main button:visible:not([disabled]), main a.wf-button:visible")
    for index in range(min(buttons.count(), 40)):
        button = buttons.nth(index)
        try:
            button.scroll_into_view_if_needed(timeout=2000)
            box = button.bounding_box()
            if box is None or box["x"] < -0.5 or box["x"] + box["width"] > NARROWEST["width"] + 0.5:
                found.append(f"{button.inner_text()[:40]!r} outside the window: {box}")
                continue
            button.click(trial=True, timeout=2000)
        except Exception as exc:  # noqa: BLE001 - what Playwright says is the finding
            found.append(f"{button.inner_text()[:40]!r}: {str(exc).splitlines()[0][:160]}")
    return found


def task_path(task: Task) -> str:
    return f"/flows/extreme/{task.process_id}/{task.node_name}/{task.id}/"


def assert_fits(page: Any, base: str, path: str) -> None:
    response = page.goto(base + path)
    # A NUL is refused (400) with the error page, which must fit too; nothing else fails.
    assert response.status == (400 if "%00" in path else 200), path
    assert overflow(page) is None, f"{path}: {overflow(page)}"
    assert unreachable_buttons(page) == [], path


def test_a_long_fan_out_item_and_a_long_name_in_the_pickers_fit_the_narrowest_phone(
        module_browser: Any, extreme_site: Any) -> None:
    """The task page named its fan-out item in a <strong> that did not wrap (the page was
    4,150 px wide), and a hand-over picker was as wide as its longest username (the
    Reassign/Delegate <select>: 584 px on the task page, 598 px on the manager's
    confirmation page), so the picker's button left the screen."""
    _, base, seeded = extreme_site
    review: Task = seeded["review"]
    bob = on_narrowest(module_browser, base, "bob")
    assert_fits(bob, base, task_path(review))
    assert LONG_NAME in bob.inner_html("main select[name=user_id]")
    bob.context.close()
    boss = on_narrowest(module_browser, base, "boss")
    assert_fits(boss, base, task_path(review))
    assert_fits(boss, base, f"/admin/confirm/extreme/{review.process_id}/review/{review.id}/reassign/")
    assert LONG_NAME in boss.inner_html("#confirm select[name=user_id]"), boss.inner_html("main")[:3000]
    boss.context.close()


HOSTILE = "x" * 300
LISTS = {
    "bob": ["/inbox/", "/queue/", "/archive/", "/flows/", "/flows/extreme/", "/requests/",
            f"/search/?q={WORD[:60]}",
            f"/inbox/?sort={HOSTILE}&flow={HOSTILE}&q={HOSTILE}&when={HOSTILE}&page={2**70}",
            f"/queue/?q={HOSTILE}&sort=-{HOSTILE}&page=99999", f"/archive/?q={HOSTILE}&flow=%00",
            f"/flows/extreme/?q={HOSTILE}&status={HOSTILE}&page={2**70}", f"/search/?q={HOSTILE}"],
    "boss": ["/admin/", f"/admin/?flow=extreme&status=NEW&has_error=1&page={2**70}", "/queue/"],
}


@pytest.mark.parametrize("who", sorted(LISTS))
def test_lists_of_long_content_and_hostile_parameters_fit_the_narrowest_phone(
        module_browser: Any, extreme_site: Any, who: str) -> None:
    _, base, seeded = extreme_site
    page = on_narrowest(module_browser, base, who)
    paths = list(LISTS[who]) + [f"/flows/extreme/{pid}/" for pid in seeded["processes"]]
    if who == "boss":
        failed: Task = seeded["failed"]
        page.goto(base + "/admin/")
        for section in ("errors", "stalled", "timers", "stuck"):  # none of them is empty
            assert page.locator(f"#{section} .wf-error-task, #{section} tbody tr:has(a)").count() >= 1, section
        paths += [f"/flows/extreme/{failed.process_id}/cancel/",
                  f"/admin/confirm/extreme/{failed.process_id}/charge/{failed.id}/retry/"]
    for path in paths:
        assert_fits(page, base, path)
    page.context.close()
