"""The task app in headless Chromium: start, take, approve, watch it finish (test_screens.py
takes the pictures)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import screens
from app_support import make_test_app, serving

from webflow.demo.helloworld import HelloWorldFlow

pytestmark = pytest.mark.browser
PERMS = ["hello_world.view", "hello_world.can_start", "hello_world.can_approve"]


@pytest.fixture
def base_url(tmp_path: Path) -> Iterator[str]:
    """The demo flow served on 127.0.0.1 in a thread, with alice and bob."""
    app = make_test_app(f"sqlite:///{tmp_path / 'b.sqlite'}", [HelloWorldFlow],
                        {"alice": PERMS, "bob": PERMS}, "pw")
    with serving(app) as url:
        yield url


def log_in(browser: Any, base: str, name: str) -> Any:
    context = browser.new_context(viewport={"width": 1200, "height": 760})
    page = screens.log_in(context, base, name, "pw")
    return page


def test_start_take_approve_and_see_it_finished(browser: Any, base_url: str) -> None:
    alice = log_in(browser, base_url, "alice")
    alice.click("text=Flows")
    alice.click(".wf-flow a.wf-button")
    alice.fill("textarea[name=text]", "Hello from Alice: please approve the <b>launch</b>")
    alice.click("#start-form button[type=submit]")
    alice.wait_for_selector("text=is started.")
    process_url = alice.url

    bob = log_in(browser, base_url, "bob")
    bob.click("a[href='/queue/']")
    assert bob.inner_text("#nav-queue-count") == "1"
    bob.click("a.wf-task-link")
    bob.wait_for_load_state("load")                  # htmx (deferred) has run: Assign swaps in place
    bob.wait_for_selector("#task-status .wf-status-new")
    bob.evaluate("window.stayedOnPage = true")       # gone if the page reloads
    bob.click("#task-status button:has-text('Assign to me')")
    bob.wait_for_selector("#task-status .wf-status-assigned")
    assert bob.inner_text("#nav-inbox-count") == "1" and bob.inner_text("#nav-queue-count") == "0"
    bob.check("input[name=approved]")
    assert bob.evaluate("window.stayedOnPage") is True                # assign swapped in place
    bob.click("#task-work button[type=submit]")
    # Nothing else for bob in this process: the inbox, loaded whole, says so.
    bob.wait_for_url(f"{base_url}/inbox/")
    assert bob.inner_text("#nav-inbox-count") == "0"
    assert "is done. Nothing else for you in this process." in bob.inner_text("#messages")

    alice.goto(process_url)
    assert alice.inner_text("h1 .wf-badge") == "Done"
    assert "<b>launch</b>" in alice.inner_text(".wf-data")          # shown as text, escaped

    for n in range(3):                                               # three more, to take in bulk
        alice.goto(f"{base_url}/flows/hello_world/start/start/")
        alice.fill("textarea[name=text]", ["Quarterly report is ready", "New intern starts Monday",
                                           "Office closed on Friday"][n])
        alice.click("#start-form button[type=submit]")
    bob.goto(f"{base_url}/queue/")
    bob.check("input[name=task_id] >> nth=0")
    bob.check("input[name=task_id] >> nth=1")
    bob.click("text=Take the chosen tasks")
    bob.wait_for_selector("text=2 tasks assigned to you.")
    assert bob.inner_text("#nav-inbox-count") == "2"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
