"""What a person in the browser sees when something goes wrong: the network fails, a proxy
answers instead of webflow (502/503 with an HTML page or nothing), an action is refused, the
session ended in another tab, a button is pressed twice. The page must say so, keep what was
typed, and let the person try again without doing anything twice."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import screens
from app_support import in_app_context, make_test_app, serving
from flask import Flask
from flask_wtf import FlaskForm
from wtforms import StringField, TextAreaField
from wtforms.validators import Length

from webflow import Flow, db, flow, this
from webflow.models import Task, TaskEvent, User

pytestmark = pytest.mark.browser
WAIT = 5000


class ErrandForm(FlaskForm):
    summary = StringField("Summary", validators=[Length(max=200)])
    notes = TextAreaField("Notes", validators=[Length(max=2000)])


class ErrandFlow(Flow):
    """Errands

    Somebody runs an errand and writes down how it went."""

    start = flow.Start(form=ErrandForm).Permission(auto_create=True).Next(this.run)
    run = flow.View(form=ErrandForm).Permission(auto_create=True).Next(this.end)
    end = flow.End()


LABEL = ErrandFlow.flow_label
PERMS = [f"{LABEL}.view", f"{LABEL}.can_start", f"{LABEL}.can_run"]


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    made = make_test_app(f"sqlite:///{tmp_path / 'errors.sqlite'}", [ErrandFlow],
                         {"alice": PERMS, "bob": PERMS, "admin": PERMS + [f"{LABEL}.manage"]},
                         "pw", REDIS_URL=None, WEBFLOW_LIVE_POLL_SECONDS=30)
    with in_app_context(made):
        yield made


def person(name: str) -> User:
    return db.session.scalar(db.select(User).where(User.username == name))


def errand(owner: str | None = None) -> tuple[int, str]:
    """A started errand (its run task given to ``owner``); the task id and its page's path."""
    process = ErrandFlow.start.run(data={"summary": "Buy stamps", "notes": ""}, user=person("alice"))
    task = process.get_task(ErrandFlow.run)
    if owner:
        from webflow import Context
        with Context(user=person(owner)):
            task.activate().assign(person(owner))
    task_id, process_id = int(task.id), int(process.id)
    db.session.remove()
    return task_id, f"/flows/{LABEL}/{process_id}/run/{task_id}/"


def task_row(task_id: int) -> Task:
    db.session.remove()
    found = db.session.get(Task, task_id)
    assert found is not None
    return found


def events(task_id: int, name: str) -> int:
    db.session.remove()
    return int(db.session.scalar(db.select(db.func.count()).select_from(TaskEvent).where(
        TaskEvent.task_id == task_id, TaskEvent.transition == name)) or 0)


def open_page(browser: Any, base: str, name: str, path: str, width: int = 1366) -> Any:
    context = browser.new_context(viewport={"width": width, "height": 900})
    screens.log_in(context, base, name, "pw")
    page = context.new_page()
    page.set_default_timeout(WAIT)
    page.goto(base + path)
    page.wait_for_selector("body[data-live-ready]")
    page.evaluate("window.stayedOnPage = true")  # gone if the page reloads
    return page


def error_message(page: Any) -> str:
    page.wait_for_selector("#messages .flash.error", timeout=WAIT)
    return str(page.inner_text("#messages .flash.error"))


def fill_work(page: Any) -> None:
    page.fill("#task-work input[name=summary]", "Stamps bought")
    page.fill("#task-work textarea[name=notes]", NOTES)


NOTES = "The post office was closed,\nso I went to the kiosk."


def assert_work_kept(page: Any) -> None:
    assert page.input_value("#task-work input[name=summary]") == "Stamps bought"
    assert page.input_value("#task-work textarea[name=notes]") == NOTES


def test_complete_with_the_network_down_says_so_keeps_the_form_and_completes_once_on_retry(
        browser: Any, app: Flask) -> None:
    task_id, path = errand("bob")
    with serving(app) as base:
        bob = open_page(browser, base, "bob", path)
        fill_work(bob)
        bob.route("**/run/*/", lambda route: route.abort("internetdisconnected")
                  if route.request.method == "POST" else route.continue_())
        bob.click("#task-work button:has-text('Complete')")
        message = error_message(bob)
        assert "could not be reached" in message and "What you typed is still here" in message
        assert_work_kept(bob)
        assert bob.is_enabled("#task-work button:has-text('Complete')")
        assert task_row(task_id).status.value == "ASSIGNED"

        bob.unroute("**/run/*/")
        bob.click("#task-work button:has-text('Complete')")
        bob.wait_for_url(lambda url: "/run/" not in url, timeout=WAIT)
        assert task_row(task_id).status.value == "DONE"
        assert events(task_id, "done") == 1


@pytest.mark.parametrize("status,body", [(503, ""), (504, ""), (502, "<html><body><h1>502 Bad Gateway</h1>"
                                                          "<hr><center>nginx</center></body></html>"),
                                         (503, "<html><body><h1>503 Service Unavailable</h1>"
                                               "No server is available to handle this request.</body></html>"),
                                         (500, "Internal Server Error")])
def test_a_proxys_error_page_is_not_swapped_into_the_task_page(browser: Any, app: Flask, status: int,
                                                               body: str) -> None:
    """A proxy (or the WSGI server itself) answers instead of webflow: the task form and
    the status card stay as they were, the message says what happened."""
    task_id, path = errand("bob")
    with serving(app) as base:
        bob = open_page(browser, base, "bob", path)
        fill_work(bob)

        def proxy(route: Any) -> None:
            if route.request.method == "POST":
                route.fulfill(status=status, body=body, content_type="text/html")
            else:
                route.continue_()

        bob.route("**/run/**", proxy)
        bob.click("#task-work button:has-text('Complete')")
        message = error_message(bob)
        assert str(status) in message
        # It cannot know whether the work was done (a 504 may come after it), nor send the
        # person to a reload that would throw away what they typed.
        assert "Nothing was changed" not in message and "reload" not in message
        assert "What you typed is still here" in message
        assert_work_kept(bob)
        assert bob.locator("#task-work h2:has-text('Your task')").count() == 1
        assert "nginx" not in bob.inner_text("#content")

        bob.click("#task-status button:has-text('Put back')")
        error_message(bob)
        assert bob.locator("#task-status button:has-text('Put back')").count() == 1
        assert "No server is available" not in bob.inner_text("#content")
        assert_work_kept(bob)
        assert task_row(task_id).status.value == "ASSIGNED"


def reassign(task_id: int, to: str, by: str = "admin") -> None:
    """Someone else (a manager) hands the task on while the page is open."""
    from webflow import Context
    db.session.remove()
    with Context(user=person(by)):
        db.session.get(Task, task_id).activate().reassign(user=person(to))  # type: ignore[union-attr]
    db.session.remove()


@pytest.mark.parametrize("button", ["Put back", "Delegate"])
def test_a_refused_put_back_or_delegate_keeps_what_was_typed_in_the_task_form(
        browser: Any, app: Flask, button: str) -> None:
    """bob typed his errand's report; meanwhile a manager gave the task to alice. His Put
    back (or Delegate) from the page as drawn is refused (409) with what became of the task:
    the message is shown and announced, and his typed report is still on the screen (to
    copy, or to send to alice), as after a refused Complete."""
    task_id, path = errand("bob")
    with serving(app) as base:
        bob = open_page(browser, base, "bob", path)
        fill_work(bob)
        reassign(task_id, "alice")
        if button == "Delegate":
            bob.select_option("#task-status select[name=user_id]", label="alice")
            bob.fill("#task-status input[name=note]", "the kiosk closes at six")
            bob.click("#task-status button:has-text('Delegate')")
        else:
            bob.click("#task-status button:has-text('Put back')")
        message = error_message(bob)
        assert "alice" in message
        assert bob.get_attribute("#messages", "aria-live") == "polite"
        assert bob.get_attribute("#messages .flash.error", "role") == "alert"
        assert_work_kept(bob)
        bob.wait_for_selector("#task-status:has-text('alice')")  # the card reads what became of it
        assert bob.locator("#task-status button:has-text('Put back')").count() == 0
        assert bob.evaluate("window.stayedOnPage") is True
        assert task_row(task_id).owner_id == person("alice").id


def log_out_elsewhere(page: Any, base: str) -> None:
    """The same person logs out in another tab of the same browser."""
    other = page.context.new_page()
    other.goto(base + "/inbox/")
    other.click("form.wf-logout button")
    other.wait_for_url("**/login**")
    other.close()


@pytest.mark.parametrize("action", ["Assign to me", "Post comment"])
def test_after_logging_out_in_another_tab_an_action_leads_to_login_and_back(
        browser: Any, app: Flask, action: str) -> None:
    task_id, path = errand()
    with serving(app) as base:
        bob = open_page(browser, base, "bob", path)
        log_out_elsewhere(bob, base)
        if action == "Post comment":
            bob.fill("#comment-text", "where are the stamps?")
            bob.click("form.wf-comment-form button")
        else:
            bob.click(f"#task-status button:has-text('{action}')")
        bob.wait_for_url("**/login?next=**")
        assert bob.locator("input[name=password]").count() == 1
        assert bob.locator("#task-status, #task-work").count() == 0  # not a login form in a card
        bob.fill("input[name=username]", "bob")
        bob.fill("input[name=password]", "pw")
        bob.click("form.wf-form button[type=submit]")
        bob.wait_for_url(f"**{path}")
        assert task_row(task_id).owner_id is None  # nothing was done on the way


def test_a_double_click_takes_once_and_says_so_once(browser: Any, app: Flask) -> None:
    task_id, path = errand()
    second_id, _ = errand()
    with serving(app) as base:
        bob = open_page(browser, base, "bob", path)
        bob.dblclick("#task-status button:has-text('Assign to me')")
        bob.wait_for_selector("#task-work h2:has-text('Your task')")
        bob.wait_for_timeout(800)  # a second request, if one was sent, has come back
        assert bob.locator("#messages .flash").count() == 1
        assert bob.locator("#messages .flash.error").count() == 0
        assert events(task_id, "assign") == 1

        bob.goto(base + "/queue/")
        bob.dblclick(f"#row-task-{second_id} button[name=take]")
        bob.wait_for_selector("#messages .flash:has-text('1 task assigned to you.')")
        bob.wait_for_timeout(800)
        assert bob.locator("#messages .flash").count() == 1
        assert bob.locator("#messages .flash.error").count() == 0
        assert events(second_id, "assign") == 1


def test_a_double_click_on_post_comment_posts_once(browser: Any, app: Flask) -> None:
    task_id, path = errand("bob")
    with serving(app) as base:
        bob = open_page(browser, base, "bob", path)
        bob.fill("#comment-text", "Done by noon")
        bob.dblclick("form.wf-comment-form button")
        bob.wait_for_selector("#task-history :text('Done by noon')")
        bob.wait_for_timeout(800)
        assert bob.locator("#task-history :text('Done by noon')").count() == 1
        assert bob.locator("#messages .flash.error").count() == 0


def test_back_after_complete_shows_the_task_as_it_is_now(bfcache_browser: Any, app: Flask) -> None:
    """bob completes his errand (the next page loads whole) and presses Back: the task page
    he comes back to says the task is done, not the form he already sent."""
    browser = bfcache_browser
    task_id, path = errand("bob")
    with serving(app) as base:
        bob = open_page(browser, base, "bob", path)
        fill_work(bob)
        bob.click("#task-work button:has-text('Complete')")
        bob.wait_for_url(lambda url: "/run/" not in url)
        bob.wait_for_selector("body[data-live-ready]")
        assert task_row(task_id).status.value == "DONE"
        bob.go_back(wait_until="commit")  # from the back/forward cache: no load event
        bob.wait_for_url(f"**{path}", wait_until="commit")
        bob.wait_for_selector("#task-work h2:text-is('Done')")
        assert bob.locator("#task-work button:has-text('Complete')").count() == 0


def test_back_to_the_queue_after_taking_shows_the_queue_as_it_is_now(bfcache_browser: Any, app: Flask) -> None:
    browser = bfcache_browser
    task_id, _ = errand()
    with serving(app) as base:
        bob = open_page(browser, base, "bob", "/queue/")
        bob.click(f"#row-task-{task_id} button[name=take]")
        bob.wait_for_selector("#messages .flash:has-text('1 task assigned to you.')")
        bob.click("nav.wf-nav a:has-text('Inbox')")
        bob.wait_for_url("**/inbox/")
        bob.go_back(wait_until="commit")  # from the back/forward cache: no load event
        bob.wait_for_url("**/queue/", wait_until="commit")
        bob.wait_for_selector("#task-list")
        assert bob.locator(f"#row-task-{task_id}").count() == 0


def focus_is_lost(page: Any) -> bool:
    return bool(page.evaluate("!document.activeElement || document.activeElement === document.body"))


@pytest.mark.parametrize("failure", ["network", "proxy"])
def test_focus_after_a_failed_action_is_on_the_message_not_the_top_of_the_page(
        browser: Any, app: Flask, failure: str) -> None:
    """A keyboard user presses Complete (the button is disabled while the request runs, so it
    loses focus): when the request fails, focus goes to the message (README: the message the
    answer brought), not back to the top of the page."""
    task_id, path = errand("bob")
    with serving(app) as base:
        bob = open_page(browser, base, "bob", path)
        fill_work(bob)

        def fail(route: Any) -> None:
            if route.request.method != "POST":
                route.continue_()
            elif failure == "network":
                route.abort("connectionrefused")
            else:
                route.fulfill(status=502, body="<h1>Bad Gateway</h1>", content_type="text/html")

        bob.route("**/run/**", fail)
        bob.focus("#task-work button:has-text('Complete')")
        bob.keyboard.press("Enter")
        error_message(bob)
        bob.wait_for_timeout(300)
        assert not focus_is_lost(bob)
        assert bob.evaluate("document.activeElement.closest('#messages') !== null")
        assert_work_kept(bob)


def test_a_report_typed_while_the_session_ended_is_back_after_logging_in(browser: Any, app: Flask) -> None:
    """bob writes his report; his session ends (he logged out in another tab) and Complete
    leads to the login form. After logging in he is back on the task page with his report
    in the form (not sent: he sends it again), and nobody else who logs in there gets it."""
    task_id, path = errand("bob")
    with serving(app) as base:
        bob = open_page(browser, base, "bob", path)
        fill_work(bob)
        log_out_elsewhere(bob, base)
        bob.click("#task-work button:has-text('Complete')")
        bob.wait_for_url("**/login?next=**")
        bob.fill("input[name=username]", "bob")
        bob.fill("input[name=password]", "pw")
        bob.click("form.wf-form button[type=submit]")
        bob.wait_for_url(f"**{path}")
        bob.wait_for_selector("#task-work input[name=summary]")
        assert_work_kept(bob)
        assert "before you logged in" in bob.inner_text("#messages")
        assert task_row(task_id).status.value == "ASSIGNED"  # nothing was sent on its own
        bob.click("#task-work button:has-text('Complete')")
        bob.wait_for_url(lambda url: "/run/" not in url)
        assert task_row(task_id).status.value == "DONE"

        # alice's report in the same tab, then admin logs in there: alice's words stay hers.
        second_id, second = errand("alice")
        page = bob.context.new_page()
        page.set_default_timeout(WAIT)
        page.goto(base + "/inbox/")
        page.click("form.wf-logout button")
        page.fill("input[name=username]", "alice")
        page.fill("input[name=password]", "pw")
        page.click("form.wf-form button[type=submit]")
        page.wait_for_url("**/inbox/")
        page.goto(base + second)
        fill_work(page)
        log_out_elsewhere(page, base)
        page.click("#task-work button:has-text('Complete')")
        page.wait_for_url("**/login?next=**")
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", "pw")
        page.click("form.wf-form button[type=submit]")
        page.wait_for_url(f"**{second}")
        page.wait_for_selector("#task-status")
        assert "Stamps bought" not in page.content()
        assert task_row(second_id).status.value == "ASSIGNED"


@pytest.fixture
def short_tokens(tmp_path: Path) -> Iterator[Flask]:
    """Forms' CSRF tokens that expire after three seconds (an hour by default)."""
    made = make_test_app(f"sqlite:///{tmp_path / 'tokens.sqlite'}", [ErrandFlow],
                         {"bob": PERMS}, "pw", REDIS_URL=None, WEBFLOW_LIVE_POLL_SECONDS=30,
                         WTF_CSRF_TIME_LIMIT=3)
    with in_app_context(made):
        yield made


def test_a_page_open_longer_than_its_token_lives_completes_on_the_second_press(
        browser: Any, short_tokens: Flask) -> None:
    """bob's task page stayed open longer than a form's token lives (an hour; here three seconds).
    Complete is refused with what to do, his report stays, and pressing Complete again
    works: no reload (which would throw his report away)."""
    task_id, path = errand("bob")
    with serving(short_tokens) as base:
        bob = open_page(browser, base, "bob", path)
        fill_work(bob)
        # Tokens carry whole seconds and expire when their age is past the limit, so a
        # token three seconds old by the clock can read as three (still good) at 3.5 s.
        # Past four seconds it reads as four or more whatever the second it was made in.
        bob.wait_for_timeout(4300)
        bob.click("#task-work button:has-text('Complete')")
        message = error_message(bob)
        assert "again" in message and "reload" not in message.lower()
        assert_work_kept(bob)
        assert task_row(task_id).status.value == "ASSIGNED"
        bob.click("#task-work button:has-text('Complete')")
        bob.wait_for_url(lambda url: "/run/" not in url)
        assert task_row(task_id).status.value == "DONE"


def test_double_clicks_on_the_saved_filters_buttons_do_it_once_and_say_so(browser: Any, app: Flask) -> None:
    """Save and × (delete) are plain form posts: a double click sends one, and the page
    shows its success, not a refusal of the second ("already saved", 404)."""
    errand()
    with serving(app) as base:
        bob = open_page(browser, base, "bob", "/queue/?sort=created")
        bob.click("details.wf-save-filter summary")
        bob.fill("input[name=name][form=save-filter-form]", "Oldest first")
        bob.dblclick("button[form=save-filter-form]")
        bob.wait_for_selector("#messages .flash")
        bob.wait_for_load_state("load")
        bob.wait_for_timeout(500)
        assert bob.locator("#messages .flash.error").count() == 0, bob.inner_text("#messages")
        assert "saved" in bob.inner_text("#messages")
        assert bob.locator(".wf-saved-filters li").count() == 1

        bob.dblclick(".wf-saved-filters button.wf-filter-delete")
        bob.wait_for_selector("#messages .flash:has-text('deleted')")
        bob.wait_for_load_state("load")
        bob.wait_for_timeout(500)
        assert bob.locator("#messages .flash.error").count() == 0
        assert "/queue/" in bob.url
        assert bob.locator("h1").first.inner_text() != "Error 404"


def test_a_background_refresh_that_fails_does_not_ask_the_person_to_try_again(browser: Any, app: Flask) -> None:
    """A live refresh of the queue (someone else's change) finds the server gone: the page
    says it may be out of date, not that something the person did failed."""
    errand()
    with serving(app) as base:
        bob = open_page(browser, base, "bob", "/queue/")
        bob.route("**/queue/**", lambda route: route.abort("connectionrefused")
                  if route.request.headers.get("hx-request") else route.continue_())
        bob.evaluate("htmx.trigger(document.getElementById('task-list'), 'sse:queue', {data: ''})")
        message = error_message(bob)
        assert "try again" not in message and "What you typed" not in message
        assert "out of date" in message
        assert bob.locator("#task-list").count() == 1


def test_double_clicks_on_save_draft_and_complete_store_once(browser: Any, app: Flask) -> None:
    task_id, path = errand("bob")
    with serving(app) as base:
        bob = open_page(browser, base, "bob", path)
        fill_work(bob)
        bob.dblclick("#task-work button:has-text('Save draft')")
        bob.wait_for_selector("#task-work .wf-draft-note")
        bob.wait_for_timeout(800)
        assert bob.locator("#messages .flash.error").count() == 0
        assert_work_kept(bob)
        bob.dblclick("#task-work button:has-text('Complete')")
        bob.wait_for_url(lambda url: "/run/" not in url)
        bob.wait_for_selector("body[data-live-ready]")
        assert bob.locator("#messages .flash.error").count() == 0
        assert "is done" in bob.inner_text("#messages")
        assert events(task_id, "done") == 1


def test_back_to_an_unchanged_page_keeps_it_and_back_after_logging_out_shows_the_login(
        bfcache_browser: Any, app: Flask) -> None:
    """Back to a task page where nothing happened meanwhile: the page as it was left, typed
    report included (no reload). Back after logging out: the login form, not the inbox of
    the person who just left the computer."""
    task_id, path = errand("bob")
    with serving(app) as base:
        bob = open_page(bfcache_browser, base, "bob", path)
        fill_work(bob)
        bob.click("nav.wf-nav a:has-text('Inbox')")
        bob.wait_for_url("**/inbox/")
        bob.go_back(wait_until="commit")
        bob.wait_for_url(f"**{path}", wait_until="commit")
        bob.wait_for_selector("#task-work input[name=summary]")
        bob.wait_for_timeout(1000)  # the page's question to the server has been answered
        assert bob.evaluate("window.stayedOnPage") is True
        assert_work_kept(bob)

        bob.click("form.wf-logout button")
        bob.wait_for_url("**/login**")
        bob.go_back(wait_until="commit")
        bob.wait_for_url("**/login**", wait_until="commit")
        bob.wait_for_selector("input[name=password]")
        assert "Stamps bought" not in bob.content()
        assert task_row(task_id).status.value == "ASSIGNED"


@pytest.fixture
def short_wait(tmp_path: Path) -> Iterator[Flask]:
    """Pages that give up on an answer after 1.5 s (30 s by default)."""
    made = make_test_app(f"sqlite:///{tmp_path / 'wait.sqlite'}", [ErrandFlow],
                         {"bob": PERMS}, "pw", REDIS_URL=None, WEBFLOW_LIVE_POLL_SECONDS=30,
                         WEBFLOW_REQUEST_TIMEOUT_MS=1500)
    with in_app_context(made):
        yield made


def test_a_server_that_never_answers_complete_is_given_up_on_and_said(browser: Any, short_wait: Flask) -> None:
    """The server hangs on bob's Complete: the page does not leave the buttons disabled in
    silence; it says the server took too long, keeps his report and lets him try again."""
    task_id, path = errand("bob")
    with serving(short_wait) as base:
        bob = open_page(browser, base, "bob", path)
        fill_work(bob)
        held: list[Any] = []
        bob.route("**/run/*/", lambda route: held.append(route) if route.request.method == "POST"
                  else route.continue_())
        bob.click("#task-work button:has-text('Complete')")
        message = error_message(bob)
        assert "took too long" in message and "What you typed is still here" in message
        assert_work_kept(bob)
        assert bob.is_enabled("#task-work button:has-text('Complete')")
        bob.unroute("**/run/*/")
        bob.click("#task-work button:has-text('Complete')")
        bob.wait_for_url(lambda url: "/run/" not in url)
        assert task_row(task_id).status.value == "DONE"


@pytest.fixture
def quick_poll(tmp_path: Path) -> Iterator[Flask]:
    """Pages that ask for live updates every half second (no Redis: the poll is the feed)."""
    made = make_test_app(f"sqlite:///{tmp_path / 'poll.sqlite'}", [ErrandFlow],
                         {"alice": PERMS, "bob": PERMS}, "pw", REDIS_URL=None, WEBFLOW_LIVE_POLL_SECONDS=0.5)
    with in_app_context(made):
        yield made


def test_a_page_whose_session_ended_says_it_no_longer_updates(browser: Any, quick_poll: Flask) -> None:
    """bob logs out in another tab while his queue is open. The live poll was led to the
    login form, failed to read it, and tried again every round: the queue went stale
    without a word. It stops now, and the page says so."""
    errand()
    with serving(quick_poll) as base:
        bob = open_page(browser, base, "bob", "/queue/")
        bob.wait_for_function("document.body.getAttribute('data-live-feed') === 'polling'")
        polls: list[str] = []
        bob.on("request", lambda request: polls.append(request.url) if "/events/poll" in request.url else None)
        bob.wait_for_timeout(1500)
        assert polls, "the page polls while the session lasts"
        log_out_elsewhere(bob, base)
        bob.wait_for_selector("#messages .flash.info", timeout=WAIT)
        assert "Your session has ended, so this page no longer updates by itself" in bob.inner_text("#messages")
        assert bob.get_attribute("body", "data-live-feed") == "ended"
        seen = len(polls)
        bob.wait_for_timeout(2000)
        assert len(polls) == seen  # no more rounds against the login form
        assert bob.evaluate("window.stayedOnPage") is True  # what was on screen stays
