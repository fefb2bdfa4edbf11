"""UI defects left from an audit, on a 390 px phone in headless Chromium: a process cancel
refused meanwhile says why in place, links in running text are thumb-sized and overlap
nothing, a comment by someone else shows on an open task page that polls, and each
refusal's words (a task taken, canceled or done meanwhile) are on screen whole, nothing
scrolling sideways."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from app_support import in_app_context, make_test_app, serving
from flask import Flask
from screens import log_in, overflow, wait_until

from webflow import Context, db
from webflow.core.comments import post_comment
from webflow.demo.helloworld import HelloWorldFlow
from webflow.demo.purchase import PurchaseRequestFlow
from webflow.demo.users import PASSWORD as DEMO_PASSWORD
from webflow.demo.users import load_demo
from webflow.models import Process, Task, User

pytestmark = pytest.mark.browser
PHONE = {"width": 390, "height": 844}
PASSWORD = "pw"
HELLO = ["hello_world.view", "hello_world.can_start", "hello_world.can_approve"]
#: Someone with a long name takes the tasks meanwhile: the words name them and must still fit.
LONG_NAME = "maximilian.von.hohenzollern-sigmaringen"
USERS = {"alice": HELLO, "bob": HELLO, LONG_NAME: HELLO, "manager": ["hello_world.manage"]}


@pytest.fixture(scope="module")
def quiet_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Flask, str]]:
    """The app served with live updates so slow that no page redraws itself during a test: what
    another person did meanwhile shows only when the page acts."""
    tmp = tmp_path_factory.mktemp("phone")
    app = make_test_app(f"sqlite:///{tmp / 'phone.sqlite'}", [HelloWorldFlow], USERS, PASSWORD,
                        SERVER_NAME=None, WEBFLOW_LIVE_POLL_SECONDS=3600)
    with in_app_context(app), serving(app) as base:
        yield app, base


def person(name: str) -> User:
    return db.session.scalar(sa.select(User).where(User.username == name))


def hello(text: str) -> Process:
    process = HelloWorldFlow.start.run(data={"text": text}, user=person("alice"))
    db.session.commit()
    return process


def approve_of(process: Process) -> Task:
    return db.session.scalars(sa.select(Task).where(Task.process_id == process.id, Task.node_name == "approve")
                              .order_by(Task.id.desc())).one()


def on_phone(browser: Any, base: str, name: str, password: str = PASSWORD) -> Any:
    """A 390 px page logged in as ``name`` (through the login form); dialogs are accepted."""
    page = log_in(browser.new_context(viewport=PHONE), base, name, password)
    page.on("dialog", lambda dialog: dialog.accept())  # htmx's hx-confirm
    return page


def shown_whole(page: Any, selector: str) -> str | None:
    """Why the element's words are not all on screen once scrolled to (hidden, outside the
    window, cut off by its own box or an ancestor's, covered), or None when they are."""
    return page.evaluate("""(selector) => {
        const e = document.querySelector(selector);
        if (!e) { return selector + ': not on the page'; }
        e.scrollIntoView({block: 'nearest'});
        const r = e.getBoundingClientRect();
        const seen = e.checkVisibility({opacityProperty: true, visibilityProperty: true});
        if (!seen || r.width < 1 || r.height < 1) {
            return selector + ': not visible';
        }
        if (r.left < -0.5 || r.right > innerWidth + 0.5 || r.top < -0.5 || r.bottom > innerHeight + 0.5) {
            return selector + ': outside the window ' + JSON.stringify(r);
        }
        if (e.scrollWidth > e.clientWidth + 1 || e.scrollHeight > e.clientHeight + 1) {
            return selector + ': its words overflow its box';
        }
        for (let up = e.parentElement; up; up = up.parentElement) {
            const style = getComputedStyle(up);
            if (style.overflowX === 'visible' && style.overflowY === 'visible') { continue; }
            const b = up.getBoundingClientRect();
            if (r.left < b.left - 0.5 || r.right > b.right + 0.5 ||
                r.top < b.top - 0.5 || r.bottom > b.bottom + 0.5) {
                return selector + ': cut off by ' + up.tagName.toLowerCase() + '.' + up.className;
            }
        }
        const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
        if (!hit || !(hit === e || e.contains(hit))) {
            const what = hit ? hit.tagName.toLowerCase() + '.' + hit.className : 'nothing';
            return selector + ': covered by ' + what;
        }
        return null;
    }""", selector)


def error_message(page: Any) -> str:
    """The error the page's message box shows after an action (waited for)."""
    wait_until(page, "document.querySelector('#messages .flash.error') !== null")
    return str(page.inner_text("#messages .flash.error")).strip()


# -- 1. the process cancel, refused meanwhile, says why in place -----------------------------


def test_a_process_cancel_refused_meanwhile_says_why_in_place_on_a_phone(module_browser: Any,
                                                                         quiet_site: Any) -> None:
    _, base = quiet_site
    process = hello("Cancel me twice")
    manager = on_phone(module_browser, base, "manager")
    manager.goto(f"{base}/flows/hello_world/{process.id}/cancel/")
    manager.evaluate("window.stayedOnPage = true")
    with Context(propagate_exception=False, user=person("manager")):  # meanwhile, elsewhere
        db.session.get(Process, process.id).cancel()
    db.session.commit()
    manager.click("#confirm button.wf-danger")
    assert error_message(manager) == f"The process was not canceled: process {process.id} is CANCELED."
    wait_until(manager, "document.querySelector('#confirm form') === null")
    assert manager.evaluate("window.stayedOnPage") is True  # in place: the page did not reload
    assert shown_whole(manager, "#messages .flash.error") is None
    assert manager.locator("#confirm a:has-text('Back to the process')").is_visible()
    assert overflow(manager) is None
    # Not refused: the process page loads, saying so.
    other = hello("Cancel me once")
    manager.goto(f"{base}/flows/hello_world/{other.id}/cancel/")
    manager.click("#confirm button.wf-danger")
    manager.wait_for_url(f"{base}/flows/hello_world/{other.id}/")
    assert f"Process #{other.id} is canceled." in manager.inner_text("#messages")
    manager.context.close()


# -- 4. a comment by someone else shows on an open task page, without a reload -------------------


def test_a_comment_by_someone_else_shows_on_an_open_task_page_that_polls(module_browser: Any,
                                                                         quiet_site: Any) -> None:
    app, base = quiet_site
    process = hello("Comment on me")
    task = approve_of(process)
    app.config["WEBFLOW_LIVE_POLL_SECONDS"] = 0.3  # no Redis: the page polls, this often
    try:
        alice = on_phone(module_browser, base, "alice")
        alice.goto(f"{base}/flows/hello_world/{process.id}/approve/{task.id}/")
        alice.wait_for_selector("body[data-live-feed=polling]")
        alice.evaluate("window.stayedOnPage = true")
        alice.fill("#comment-text", "half-typed answer")
        post_comment(db.session(), db.session.get(Process, process.id), person("bob"),
                     "The lenses are in box 2.", task=approve_of(process))  # bob, elsewhere
        db.session.commit()
        alice.wait_for_selector("#task-history .wf-comment:has-text('The lenses are in box 2.')", timeout=5000)
        alice.wait_for_selector("#live-banner:has-text('bob commented')", timeout=5000)
        assert alice.evaluate("window.stayedOnPage") is True  # no reload
        assert alice.input_value("#comment-text") == "half-typed answer"  # what she typed stays
        assert shown_whole(alice, "#live-banner .wf-live-note") is None
        assert overflow(alice) is None
        alice.context.close()
    finally:
        app.config["WEBFLOW_LIVE_POLL_SECONDS"] = 3600


# -- 3. links in running text are thumb-sized on a phone, and overlap nothing --------------------


def complete(task: Task, who: User, data: dict[str, Any]) -> None:
    with Context(propagate_exception=False, user=who):
        activation = task.activate()
        if task.owner_id is None:
            activation.assign(who)
        activation.prepare(data=data, user=who)
        activation.done()
    db.session.commit()


def task_path(task: Task) -> str:
    return f"/flows/{task.flow_class.flow_label}/{task.process_id}/{task.node_name}/{task.id}/"


def seed_running_text() -> dict[str, str]:
    """Pages whose words hold links: a task's crumbs and facts, a process's audit trail and
    comments, a subprocess and its parent, the confirmation pages."""
    alice, bob = person("alice"), person("bob")
    message = HelloWorldFlow.start.run(data={"text": "Links in words"}, user=alice)
    approve = approve_of(message)
    with Context(propagate_exception=False, user=bob):
        approve.activate().assign(bob)
    post_comment(db.session(), message, alice, "@bob see the attachment", task=approve)
    db.session.commit()
    request = PurchaseRequestFlow.start.run(data={"item": "Lenses", "amount": 120, "reviewers": "alice, bob"},
                                            user=alice)
    for review in db.session.scalars(sa.select(Task).where(Task.process_id == request.id,
                                                           Task.node_name == "review")).all():
        complete(review, review.owner, {"approved": True, "comment": ""})
    purchase = db.session.scalars(sa.select(Task).where(Task.process_id == request.id,
                                                        Task.node_name == "purchase")).one()
    child = db.session.scalars(sa.select(Process).where(Process.parent_task_id == purchase.id)).one()
    queued = HelloWorldFlow.start.run(data={"text": "Cancel me"}, user=alice)
    return {
        "task": task_path(approve), "message": f"/flows/hello_world/{message.id}/",
        "request": f"/flows/purchase_request/{request.id}/", "purchase": task_path(purchase),
        "child": f"/flows/purchasing/{child.id}/",
        "task_confirm": task_path(approve_of(queued)) + "cancel/confirm/",
        "admin_confirm": f"/admin/confirm/hello_world/{queued.id}/approve/{approve_of(queued).id}/cancel/",
        "process_cancel": f"/flows/hello_world/{queued.id}/cancel/",
    }


@pytest.fixture(scope="module")
def demo_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """The demo flows and users, with the pages of ``seed_running_text``. Its app context is
    left once the pages are seeded: the other tests' app (``quiet_site``) stays the current one."""
    tmp = tmp_path_factory.mktemp("demo")
    app = make_test_app(f"sqlite:///{tmp / 'demo.sqlite'}", None, {}, "", SERVER_NAME=None)
    with in_app_context(app):
        load_demo()
        urls = seed_running_text()
    with serving(app) as base:
        yield base, urls


def small_or_overlapping(page: Any) -> list[str]:
    """The page's links (and disclosure summaries) smaller than 44 x 44 px, and any two
    controls whose boxes overlap (the flow graph, drawn to scale, aside)."""
    return list(page.evaluate("""() => {
        const controls = [...document.querySelectorAll(
            '#content :is(a[href], button, input:not([type=hidden]), select, textarea, summary)')]
            .filter(e => e.checkVisibility() && !e.closest('.wf-graph-figure'));
        const name = e => e.tagName.toLowerCase() + ' “' + (e.textContent || e.name || '').trim().slice(0, 30) +
            '”';
        const found = [];
        for (const e of controls) {
            const r = e.getBoundingClientRect();
            if (e.matches('a, summary') && (r.width < 43.5 || r.height < 43.5)) {
                found.push(name(e) + ' is ' + Math.round(r.width) + 'x' + Math.round(r.height));
            }
        }
        controls.forEach((a, i) => controls.slice(i + 1).forEach(b => {
            if (a.contains(b) || b.contains(a)) { return; }
            const p = a.getBoundingClientRect(), q = b.getBoundingClientRect();
            const w = Math.min(p.right, q.right) - Math.max(p.left, q.left);
            const h = Math.min(p.bottom, q.bottom) - Math.max(p.top, q.top);
            if (w > 0.5 && h > 0.5) { found.push(name(a) + ' overlaps ' + name(b)); }
        }));
        return found;
    }"""))


@pytest.mark.parametrize(("who", "key"), [
    ("bob", "task"), ("admin", "task"), ("admin", "message"), ("alice", "message"), ("admin", "request"),
    ("admin", "purchase"), ("admin", "child"), ("admin", "task_confirm"), ("admin", "admin_confirm"),
    ("admin", "process_cancel")])
def test_links_in_running_text_are_thumb_sized_on_a_phone(module_browser: Any, demo_site: Any, who: str,
                                                          key: str) -> None:
    base, urls = demo_site
    page = on_phone(module_browser, base, who, DEMO_PASSWORD)
    page.goto(base + urls[key])
    assert page.locator("#content a[href]").count() > 0
    problems = small_or_overlapping(page)
    assert not problems, f"{who} at {key}:\n" + "\n".join(problems)
    assert overflow(page) is None
    page.context.close()


# -- 5. the refusal words, whole on a phone ------------------------------------------------------


def take(task: Task, who: str) -> None:
    with Context(propagate_exception=False, user=person(who)):
        task.activate().assign(person(who))
    db.session.commit()


def cancel(task: Task) -> None:
    with Context(propagate_exception=False, user=person("manager")):
        task.activate().cancel()
    db.session.commit()


def meanwhile(kind: str, task: Task) -> None:
    """What another person does to the task while it is open on the phone."""
    if kind == "canceled":
        cancel(task)
    else:
        take(task, LONG_NAME)
        if kind == "done":
            complete(db.session.get(Task, task.id), person(LONG_NAME), {"approved": True})
    db.session.expire_all()


#: What the task page says (actions.not_now_words), by what happened meanwhile.
TASK_WORDS = {"taken": f"This task was already taken by {LONG_NAME}.",
              "canceled": "This task was canceled meanwhile: it is no longer open. Nothing was changed.",
              "done": f"This task was already done by {LONG_NAME}. Nothing was changed."}
#: What the queue says (inbox.not_taken_messages, from actions.what_happened).
QUEUE_WORDS = {"taken": f"1 task was already taken by {LONG_NAME}.",
               "canceled": "1 task was canceled meanwhile and is no longer open.",
               "done": "1 task was already done."}


def assert_whole(page: Any, selector: str) -> None:
    assert shown_whole(page, selector) is None, shown_whole(page, selector)
    assert overflow(page) is None, overflow(page)


@pytest.mark.parametrize("kind", ["taken", "canceled", "done"])
def test_the_task_page_says_what_happened_meanwhile_whole_on_a_phone(module_browser: Any, quiet_site: Any,
                                                                     kind: str) -> None:
    _, base = quiet_site
    task = approve_of(hello(f"Taken, canceled or done: {kind}"))
    bob = on_phone(module_browser, base, "bob")
    bob.goto(base + task_path(task))
    bob.evaluate("window.stayedOnPage = true")
    meanwhile(kind, task)
    bob.click("#task-status button:has-text('Assign to me')")
    assert error_message(bob) == TASK_WORDS[kind]
    assert_whole(bob, "#messages .flash.error")
    assert bob.evaluate("window.stayedOnPage") is True
    bob.context.close()


def test_a_managers_refusal_with_the_engines_reason_is_whole_on_a_phone(module_browser: Any,
                                                                        quiet_site: Any) -> None:
    """A manager reads the engine's reason beside the words: the longest refusal."""
    _, base = quiet_site
    task = approve_of(hello("Done before the manager cancels it"))
    manager = on_phone(module_browser, base, "manager")
    manager.goto(base + task_path(task))
    meanwhile("done", task)
    manager.click("#task-status a:has-text('Cancel this task')")  # htmx asks first: accepted
    said = error_message(manager)
    assert said.startswith(TASK_WORDS["done"] + " (") and said.endswith(")")
    assert_whole(manager, "#messages .flash.error")
    manager.context.close()


def test_the_queue_says_what_happened_to_each_task_whole_on_a_phone(module_browser: Any,
                                                                    quiet_site: Any) -> None:
    _, base = quiet_site
    tasks = {kind: approve_of(hello(f"In the queue, then {kind}")) for kind in QUEUE_WORDS}
    bob = on_phone(module_browser, base, "bob")
    bob.goto(f"{base}/queue/")
    for kind, task in tasks.items():
        bob.check(f"#task-list input[name=task_id][value='{task.id}']")
        meanwhile(kind, task)
    bob.click(".wf-bulk button[type=submit]")
    wait_until(bob, "document.querySelectorAll('#messages .flash.error').length === 3")
    said = [text.strip() for text in bob.locator("#messages .flash.error").all_inner_texts()]
    assert sorted(said) == sorted(QUEUE_WORDS.values())
    for number in range(1, 4):
        assert_whole(bob, f"#messages .flash.error:nth-child({number})")
    bob.context.close()
