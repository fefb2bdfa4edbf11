"""Every page of the tour at 1366 px and at 390 px, as alice, bob and admin, in Chromium.

On each: the page does not scroll sideways, its primary actions are within reach (in the
viewport once scrolled to, big enough to touch, not covered), axe-core finds no violation,
and a screenshot for the README is written to docs/screenshots/<page>-<desktop|phone>.png.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pytest
from app_support import SCREENSHOTS
from screens import (
    HEIGHT,
    URL_KEYS,
    WIDTHS,
    Screen,
    axe_violations,
    demo_server,
    graph_hidden,
    log_in,
    out_of_reach,
    overflow,
    tour,
    wait_until,
)

pytestmark = pytest.mark.browser
NAMES = [s.name for s in tour(dict.fromkeys(URL_KEYS, ""))]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, Screen]]]:
    with demo_server(tmp_path_factory.mktemp("screens")) as (base, urls):
        yield base, {screen.name: screen for screen in tour(urls)}


@pytest.fixture(scope="module")
def pages(module_browser: Any, site: tuple[str, dict[str, Screen]]) -> Iterator[dict[Any, Any]]:
    """One logged-in page per person (and one for nobody), reused by every screen."""
    base, _ = site
    opened: dict[Any, Any] = {}

    def page_of(user: str | None) -> Any:
        if user not in opened:
            # bypass_csp: axe-core is injected as a script the app's CSP would refuse.
            context = module_browser.new_context(viewport={"width": 1366, "height": 800}, bypass_csp=True)
            opened[user] = log_in(context, base, user) if user else context.new_page()
        return opened[user]

    yield page_of  # type: ignore[misc]
    for page in opened.values():
        page.context.close()


@pytest.mark.parametrize("width", list(WIDTHS))
@pytest.mark.parametrize("name", NAMES)
def test_page_fits_works_and_passes_axe(site: tuple[str, dict[str, Screen]], pages: Any,
                                        name: str, width: str) -> None:
    base, screens = site
    screen = screens[name]
    page = pages(screen.user)
    page.set_viewport_size({"width": WIDTHS[width], "height": HEIGHT[width]})
    response = page.goto(base + screen.path)
    assert response.status == screen.status
    problems = []
    if (why := overflow(page)) is not None:
        problems.append(why)
    actions = screen.actions + (screen.wide_actions if width == "desktop" else screen.narrow_actions)
    problems += [why for selector in actions if (why := out_of_reach(page, selector))]
    problems += graph_hidden(page)
    problems += [f"axe: {v}" for v in axe_violations(page)]
    page.evaluate("window.scrollTo(0, 0)")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    # A phone shows one screenful (a full-page picture would pin the sticky bulk bar mid-page).
    page.screenshot(path=str(SCREENSHOTS / f"{name}-{width}.png"), full_page=width == "desktop")
    assert not problems, "\n".join(problems)


def test_dark_mode_follows_the_system_and_passes_axe(site: tuple[str, dict[str, Screen]], pages: Any) -> None:
    """With the system set to dark, the pages turn dark, and their contrast still passes axe."""
    base, screens = site
    page = pages("admin")
    page.emulate_media(color_scheme="dark")
    try:
        problems = []
        for name in ("admin", "process", "queue", "task", "admin-confirm", "queue-filter", "task-comments",
                     "search", "requests", "settings"):
            page.set_viewport_size({"width": WIDTHS["phone"], "height": HEIGHT["phone"]})
            page.goto(base + screens[name].path)
            background = page.evaluate("getComputedStyle(document.body).backgroundColor")
            channels = [int(c) for c in background[background.index("(") + 1:-1].split(",")[:3]]
            assert max(channels) < 80, f"{name}: the background is {background} in dark mode"
            problems += [f"{name}: axe: {v}" for v in axe_violations(page)]
            if name == "task-comments":
                page.locator("#task-history").screenshot(path=str(SCREENSHOTS / "comments-dark-phone.png"))
        page.screenshot(path=str(SCREENSHOTS / "process-dark-phone.png"), full_page=True)
        assert not problems, "\n".join(problems)
    finally:
        page.emulate_media(color_scheme="light")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))



# -- behaviour of the screen: skip link, folding menu, bulk bar, focus after swaps, favicon ------


def in_view(page: Any, selector: str) -> bool:
    """The element is wholly inside the window as it is scrolled now (no scrolling here)."""
    return bool(page.evaluate("""selector => {
        const element = document.querySelector(selector);
        if (!element) { return false; }
        const r = element.getBoundingClientRect();
        return r.width > 0 && r.top >= 0 && r.left >= 0 &&
            r.bottom <= window.innerHeight && r.right <= window.innerWidth;
    }""", selector))


def focused(page: Any) -> str:
    """What has keyboard focus: tag, id, classes and text."""
    return str(page.evaluate("""() => { const e = document.activeElement;
        return e.tagName.toLowerCase() + '#' + e.id + '.' + (e.className || '') + ' ' +
            e.textContent.trim().slice(0, 60); }"""))


def test_the_skip_link_is_the_first_tab_stop_and_skips_to_the_content(site: tuple[str, dict[str, Screen]],
                                                                      pages: Any) -> None:
    base, _ = site
    page = pages("bob")
    page.set_viewport_size({"width": WIDTHS["desktop"], "height": HEIGHT["desktop"]})
    page.goto(f"{base}/inbox/")
    page.keyboard.press("Tab")
    assert focused(page).startswith("a#.wf-skip-link Skip to content")
    assert in_view(page, ".wf-skip-link")                       # shown while it has focus
    page.keyboard.press("Enter")
    assert focused(page).startswith("main#content")
    page.keyboard.press("Tab")                                  # the next stop is in the content
    assert page.evaluate("document.getElementById('content').contains(document.activeElement)")


def test_the_menu_folds_behind_one_button_on_a_phone(site: tuple[str, dict[str, Screen]], pages: Any) -> None:
    base, _ = site
    page = pages("bob")
    page.set_viewport_size({"width": WIDTHS["phone"], "height": HEIGHT["phone"]})
    page.goto(f"{base}/archive/")
    header = page.locator(".wf-header").bounding_box()
    assert header["height"] <= 64                                # one row, not a 160 px stack
    assert not page.locator(".wf-nav a", has_text="Queue").is_visible()
    toggle = page.locator(".wf-menu-toggle")
    assert toggle.get_attribute("aria-expanded") == "false"
    assert toggle.locator(".wf-count-badge").inner_text() == page.locator("#nav-inbox-count").inner_text()
    toggle.click()
    assert toggle.get_attribute("aria-expanded") == "true"
    assert page.locator(".wf-nav a", has_text="Queue").is_visible()
    page.screenshot(path=str(SCREENSHOTS / "menu-phone.png"))
    assert focused(page).startswith("a#.")                      # the first link of the menu
    page.keyboard.press("Escape")
    assert toggle.get_attribute("aria-expanded") == "false" and focused(page).startswith("button")
    page.set_viewport_size({"width": WIDTHS["desktop"], "height": HEIGHT["desktop"]})
    assert not toggle.is_visible() and page.locator(".wf-nav a", has_text="Queue").is_visible()


def test_without_javascript_the_menu_stays_open_and_nothing_overflows(
        module_browser: Any, site: tuple[str, dict[str, Screen]]) -> None:
    base, screens = site
    context = module_browser.new_context(viewport={"width": WIDTHS["phone"], "height": HEIGHT["phone"]},
                                         java_script_enabled=False)
    try:
        page = log_in(context, base, "admin")
        for name in ("queue", "process", "admin"):
            page.goto(base + screens[name].path)
            assert overflow(page) is None, name
            assert page.locator(".wf-nav a", has_text="Admin").is_visible()
            assert not page.locator(".wf-menu-toggle").is_visible()   # a button that could do nothing
    finally:
        context.close()


def test_the_bulk_bar_stays_in_view_and_its_message_is_shown(site: tuple[str, dict[str, Screen]],
                                                            pages: Any) -> None:
    base, _ = site
    page = pages("bob")
    page.set_viewport_size({"width": WIDTHS["phone"], "height": HEIGHT["phone"]})
    page.goto(f"{base}/queue/")
    rows = page.locator("#task-list tbody tr").count()
    assert rows >= 8                                             # longer than the window
    assert in_view(page, ".wf-bulk button[type=submit]")         # at the top of the list
    boxes = page.locator("#task-list input[name=task_id]")
    boxes.nth(rows - 1).scroll_into_view_if_needed()
    boxes.nth(rows - 1).check()
    boxes.nth(rows - 2).check()
    assert in_view(page, ".wf-bulk button[type=submit]")         # at its bottom, still there
    assert page.locator(".wf-bulk button[type=submit]").evaluate(     # on top: no row covers it
        "b => { const r = b.getBoundingClientRect(); "
        "return b.contains(document.elementFromPoint(r.x + 5, r.y + 5)); }")
    page.locator(".wf-bulk button[type=submit]").click()
    page.wait_for_selector("#messages .flash")
    assert page.locator("#task-list tbody tr").count() == rows - 2
    # The message gets focus once the swap settles (read out / reachable by keyboard) ...
    wait_until(page, "document.activeElement.matches('#messages .flash')", timeout=5000)
    assert in_view(page, "#messages .flash")                     # ... and is in view, not off-screen


def test_focus_is_kept_or_moved_sensibly_after_a_swap(site: tuple[str, dict[str, Screen]], pages: Any) -> None:
    base, screens = site
    page = pages("bob")
    page.set_viewport_size({"width": WIDTHS["desktop"], "height": HEIGHT["desktop"]})
    page.goto(f"{base}/queue/")
    page.locator("a.wf-sort", has_text="Flow").focus()           # sorting by keyboard: the list is replaced
    page.keyboard.press("Enter")
    page.wait_for_url("**sort=flow**")
    wait_until(page, "document.activeElement !== document.body")
    assert focused(page).startswith("a#.wf-sort") and "Flow" in focused(page)

    page.goto(base + screens["task"].path)                       # a form sent with an error: to the field
    page.locator("#task-work button.wf-primary").focus()
    page.keyboard.press("Enter")
    page.wait_for_selector("#task-work [aria-invalid=true]")
    wait_until(page, "document.activeElement !== document.body")
    assert page.evaluate("document.activeElement.getAttribute('aria-invalid')") == "true"

    page.goto(f"{base}/queue/")                                  # the task page's own buttons
    page.locator("a.wf-task-link").first.click()
    # The click returns once the task page starts loading; its deferred scripts (htmx) may not
    # have run yet, and a button pressed before them posts the plain form (a whole new page,
    # focus on the body): the no-script fallback, not the swap this test is about.
    page.wait_for_load_state("load")
    page.locator("#task-status button", has_text="Assign").focus()
    page.keyboard.press("Enter")
    page.wait_for_selector("#task-status .wf-status-assigned")
    wait_until(page, "document.activeElement !== document.body")
    assert page.evaluate("document.getElementById('content').contains(document.activeElement)")


def test_the_favicon_is_served_and_linked(site: tuple[str, dict[str, Screen]], pages: Any) -> None:
    base, _ = site
    page = pages(None)
    answer = page.request.get(f"{base}/favicon.ico")
    assert answer.status == 200 and answer.headers["content-type"].startswith("image/")
    assert answer.body()[:4] == b"\x00\x00\x01\x00"                # an ICO file
    page.goto(f"{base}/login")
    for href in page.locator("link[rel=icon]").evaluate_all("links => links.map(l => l.href)"):
        assert page.request.get(href).status == 200


def test_a_paged_process_page_fits_a_phone_and_its_pager_works(site: tuple[str, dict[str, Screen]], pages: Any,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The process page of a large fan-out comes a page of tasks at a time, and its audit
    trail a page of rows at a time; shown here with two tasks and three audit rows a page
    (the server runs in this process), at 390 px, as a manager."""
    from webflow.blueprints import flows

    monkeypatch.setattr(flows, "PROCESS_TASKS_PER_PAGE", 2)
    monkeypatch.setattr(flows, "PROCESS_EVENTS_PER_PAGE", 3)
    base, screens = site
    page = pages("admin")
    page.set_viewport_size({"width": WIDTHS["phone"], "height": HEIGHT["phone"]})
    page.goto(base + screens["process"].path)
    tasks_next = 'nav[aria-label="Pages of tasks"] a[rel=next]'
    trail_prev = 'nav[aria-label="Pages of the audit trail"] a[rel=prev]'
    first = page.locator(".wf-tasks tbody tr").all_inner_texts()
    assert len(first) == 2
    newest = page.locator(".wf-audit li").all_inner_texts()
    assert 1 <= len(newest) <= 3  # the trail opens on its last page
    problems = [why for why in (overflow(page), out_of_reach(page, tasks_next), out_of_reach(page, trail_prev))
                if why]
    problems += [f"axe: {v}" for v in axe_violations(page)]
    assert not problems, "\n".join(problems)
    page.locator(tasks_next).click()
    page.wait_for_url("**page=2**")
    assert page.locator(".wf-tasks tbody tr").count() >= 1
    assert page.locator(".wf-tasks tbody tr").all_inner_texts() != first
    assert overflow(page) is None
    assert page.get_by_text("Page 2 of").first.is_visible()
    page.locator(trail_prev).click()  # earlier audit rows, the tasks' page kept
    page.wait_for_url("**trail=**")
    assert "page=2" in page.url and page.url.endswith("#history")
    assert page.locator(".wf-audit li").all_inner_texts() != newest
    assert overflow(page) is None


def test_the_comments_of_a_process_page_come_a_page_at_a_time_on_a_phone(
        site: tuple[str, dict[str, Screen]], pages: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A long discussion comes a page of comments at a time, the newest page first; its
    pager fits a phone and leads back to the earlier comments (shown with one a page)."""
    from webflow.blueprints import flows

    monkeypatch.setattr(flows, "PROCESS_COMMENTS_PER_PAGE", 1)
    base, screens = site
    page = pages("admin")
    page.set_viewport_size({"width": WIDTHS["phone"], "height": HEIGHT["phone"]})
    process_path = screens["task-comments"].path.split("/package_goods/")[0] + "/"
    page.goto(base + process_path + "#comments")
    earlier = 'nav[aria-label="Pages of comments"] a[rel=prev]'
    assert page.locator(".wf-comment-text").all_inner_texts() == [
        "Will do. Two boxes, I think;\nI will count them tomorrow."]
    problems = [why for why in (overflow(page), out_of_reach(page, earlier)) if why]
    assert not problems, "\n".join(problems)
    page.locator(earlier).click()
    page.wait_for_url("**comments=1**")
    assert page.url.endswith("#comments")
    assert page.locator(".wf-comment-text").all_inner_texts() == [
        "@bob the parcel is fragile: wrap the lenses one by one."]
    assert page.get_by_text("the newest are on the last page").is_visible()
    assert overflow(page) is None
