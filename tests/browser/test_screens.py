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
    WIDTHS,
    Screen,
    axe_violations,
    demo_server,
    graph_hidden,
    log_in,
    out_of_reach,
    overflow,
    tour,
)

pytestmark = pytest.mark.browser
NAMES = [s.name for s in tour({key: "" for key in ("shipment", "long_process", "task", "long_task",
                                                   "confirm", "cancel")})]


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
    actions = screen.actions + (screen.wide_actions if width == "desktop" else [])
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
        for name in ("admin", "process"):
            page.set_viewport_size({"width": WIDTHS["phone"], "height": HEIGHT["phone"]})
            page.goto(base + screens[name].path)
            background = page.evaluate("getComputedStyle(document.body).backgroundColor")
            channels = [int(c) for c in background[background.index("(") + 1:-1].split(",")[:3]]
            assert max(channels) < 80, f"{name}: the background is {background} in dark mode"
            problems += [f"{name}: axe: {v}" for v in axe_violations(page)]
        page.screenshot(path=str(SCREENSHOTS / "process-dark-phone.png"), full_page=True)
        assert not problems, "\n".join(problems)
    finally:
        page.emulate_media(color_scheme="light")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))

