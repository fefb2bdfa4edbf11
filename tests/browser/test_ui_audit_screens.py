"""Defects a UI audit found, in headless Chromium: the saved filter is the one the list shows
after HTMX redrew it, Save draft disables both buttons without a console error, a refused
out-of-office keeps its input, and the links in lists are thumb-sized on a phone."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from screens import HEIGHT, WIDTHS, demo_server, log_in, overflow, wait_until

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    with demo_server(tmp_path_factory.mktemp("audit")) as (base, urls):
        yield base, urls


@pytest.fixture(scope="module")
def pages(module_browser: Any, site: tuple[str, dict[str, str]]) -> Iterator[Any]:
    """One logged-in page per person, with the console errors it logged."""
    base, _ = site
    opened: dict[str, Any] = {}

    def page_of(user: str) -> Any:
        if user not in opened:
            size = {"width": WIDTHS["desktop"], "height": HEIGHT["desktop"]}
            context = module_browser.new_context(viewport=size)
            page = log_in(context, base, user)
            page.errors = []
            page.on("console", lambda m, page=page: page.errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e, page=page: page.errors.append(str(e)))
            opened[user] = page
        opened[user].set_viewport_size({"width": WIDTHS["desktop"], "height": HEIGHT["desktop"]})
        return opened[user]

    yield page_of
    for page in opened.values():
        page.context.close()


def save_filter(page: Any, name: str) -> None:
    if not page.is_visible(".wf-save-filter input[name=name]"):
        page.click(".wf-save-filter summary")
    page.fill(".wf-save-filter input[name=name]", name)
    with page.expect_navigation():
        page.click(".wf-save-filter button[type=submit]")


def saved_links(page: Any) -> dict[str, str]:
    return {a.inner_text(): a.get_attribute("href") for a in page.locator(".wf-saved-filters li > a").all()}


def test_save_this_filter_saves_the_filter_the_list_shows_after_htmx(site: tuple[str, dict[str, str]],
                                                                     pages: Any) -> None:
    base, _ = site
    bob = pages("bob")
    bob.goto(f"{base}/queue/?flow=shipment&sort=created")
    bob.evaluate("window.stayedOnPage = true")
    bob.select_option("#list-filters select[name=flow]", "hello_world")   # HTMX redraws the list
    bob.wait_for_url("**flow=hello_world**")
    wait_until(bob, "document.querySelector('#save-filter-form').action.includes('flow=hello_world')")
    assert bob.evaluate("window.stayedOnPage") is True
    save_filter(bob, "Hello world only")
    assert "flow=hello_world" in bob.url and "flow=shipment" not in bob.url
    assert "Filter “Hello world only” saved." in bob.inner_text("#messages")
    assert saved_links(bob)["Hello world only"] == "/queue/?flow=hello_world&sort=created"
    assert bob.input_value("#list-filters select[name=flow]") == "hello_world"

    # a sort click (HTMX) is saved too
    bob.goto(f"{base}/inbox/")
    bob.click("a.wf-sort:has-text('Task')")
    bob.wait_for_url("**sort=task**")
    wait_until(bob, "document.querySelector('#save-filter-form').action.includes('sort=task')")
    save_filter(bob, "By task")
    assert saved_links(bob)["By task"] == "/inbox/?sort=task"
    assert not bob.errors, bob.errors


def test_save_draft_disables_both_buttons_and_logs_no_error(site: tuple[str, dict[str, str]],
                                                            pages: Any) -> None:
    base, urls = site
    bob = pages("bob")
    bob.goto(base + urls["task"])
    bob.errors.clear()
    # What the buttons are as the request leaves (htmx disables hx-disabled-elt just before).
    bob.evaluate("""() => document.body.addEventListener('htmx:beforeSend', () => {
        window.disabledWhileSent = [...document.querySelectorAll('#task-work .wf-form-actions button')]
            .map(b => b.textContent.trim() + ':' + b.disabled); })""")
    bob.fill("input[name=packages]", "7")
    bob.click("#task-work button:has-text('Save draft')")
    bob.wait_for_selector("#task-work .wf-draft-note")
    assert bob.evaluate("window.disabledWhileSent") == ["Complete:true", "Save draft:true"]
    assert not bob.errors, bob.errors
    assert bob.input_value("input[name=packages]") == "7"


def test_a_refused_out_of_office_keeps_the_choice_and_focuses_the_bad_field(site: tuple[str, dict[str, str]],
                                                                            pages: Any) -> None:
    base, _ = site
    bob = pages("bob")
    bob.goto(f"{base}/settings/")
    bob.select_option("#away-substitute", label="alice")
    bob.fill("#away-until", "2020-01-01T10:00")
    bob.click("#settings-away button[value=set]")
    bob.wait_for_selector("#away-until[aria-invalid=true]")
    assert "already past" in bob.inner_text("#messages")
    assert bob.eval_on_selector("#away-substitute", "s => s.options[s.selectedIndex].text") == "alice"
    assert bob.input_value("#away-until") == "2020-01-01T10:00"
    assert bob.evaluate("document.activeElement.id") == "away-until"


def test_a_refused_start_form_opens_on_its_first_bad_field(site: tuple[str, dict[str, str]],
                                                           pages: Any) -> None:
    base, _ = site
    bob = pages("bob")
    bob.goto(f"{base}/flows/shipment/start/start/")
    bob.fill("input[name=items]", "0")
    with bob.expect_navigation():
        bob.click("#start-form button[type=submit]")
    first_invalid = bob.eval_on_selector("#start-form [aria-invalid=true]", "e => e.name")
    assert bob.evaluate("document.activeElement.name") == first_invalid


#: The pages of lists at 390 px, and who opens them.
LIST_PAGES = [("bob", "/inbox/"), ("bob", "/queue/"), ("bob", "/archive/"), ("bob", "/search/?q=report"),
              ("alice", "/requests/"), ("alice", "/flows/"), ("alice", "/flows/hello_world/"),
              ("alice", "/flows/shipment/start/start/"), ("admin", "/admin/"), ("admin", "shipment")]

SMALL_LINKS = """() => [...document.querySelectorAll(
        'main table:not(.wf-data) a, .wf-flow-actions a, .wf-form-actions a')]
    .filter(a => a.checkVisibility())
    .map(a => [a.textContent.trim().replace(/\\s+/g, ' '), a.getBoundingClientRect()])
    .filter(([, r]) => r.height < 43.5 || r.width < 43.5)
    .map(([text, r]) => `${text} ${Math.round(r.width)}x${Math.round(r.height)}`)"""


def test_links_in_lists_are_thumb_sized_on_a_phone(site: tuple[str, dict[str, str]], pages: Any) -> None:
    """README: buttons and links in lists are at least 44 px on phones."""
    base, urls = site
    problems = []
    for user, path in LIST_PAGES:
        page = pages(user)
        page.set_viewport_size({"width": WIDTHS["phone"], "height": HEIGHT["phone"]})
        page.goto(base + urls.get(path, path))
        assert page.locator("main table a, .wf-flow-actions a, .wf-form-actions a").count() > 0, path
        problems += [f"{path}: {link}" for link in page.evaluate(SMALL_LINKS)]
        if (why := overflow(page)) is not None:
            problems.append(f"{path}: {why}")
    assert not problems, "\n".join(problems[:40])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([str(Path(__file__)), "-q"]))
