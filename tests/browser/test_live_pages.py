"""Two people in two browsers: bob takes and completes a task while alice looks at the queue
and at that task; alice's pages change within a second without a reload. Once through the
event stream (a redis-server of the test's own), once with that Redis stopped (polling)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import screens
from app_support import SCREENSHOTS, in_app_context, make_test_app, serving
from flask import Flask
from redis import Redis

from webflow import db
from webflow.demo.helloworld import HelloWorldFlow
from webflow.models import User

pytestmark = pytest.mark.browser
PERMS = ["hello_world.view", "hello_world.can_start", "hello_world.can_approve"]
#: What "within a second" allows a page, from the end of bob's request to alice's page.
WITHIN_MS = 1000


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A redis-server of this test's own on a free port (the shared one is never stopped)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no", "--dir", str(tmp_path)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while True:
        try:
            Redis.from_url(url).ping()
            break
        except Exception:
            if time.monotonic() > deadline:
                server.kill()
                raise
            time.sleep(0.05)
    yield url, server
    server.terminate()
    server.wait(10)


@pytest.fixture
def live_app(tmp_path: Path, own_redis: tuple[str, Any]) -> Iterator[Flask]:
    app = make_test_app(f"sqlite:///{tmp_path / 'live.sqlite'}", [HelloWorldFlow],
                        {"alice": PERMS, "bob": PERMS}, "pw", REDIS_URL=own_redis[0],
                        WEBFLOW_LIVE_POLL_SECONDS=0.4)
    with in_app_context(app):
        yield app


def log_in(browser: Any, base: str, name: str) -> Any:
    context = browser.new_context(viewport={"width": 1200, "height": 700})
    screens.log_in(context, base, name, "pw")
    return context


def start_hello(text: str) -> int:
    """A process started from code (as another program would); its approve task's id."""
    alice = db.session.scalar(db.select(User).where(User.username == "alice"))
    process = HelloWorldFlow.start.run(data={"text": text}, user=alice)
    task_id = process.get_task(HelloWorldFlow.approve).id
    db.session.remove()
    return int(task_id)


def opened(context: Any, url: str) -> Any:
    page = context.new_page()
    page.goto(url)
    page.wait_for_selector("body[data-live-ready]")
    page.evaluate("window.stayedOnPage = true")  # gone if the page reloads
    return page


@pytest.mark.parametrize("feed", ["stream", "polling"])
def test_alice_sees_bob_take_and_complete_her_task(browser: Any, live_app: Flask, own_redis: Any,
                                                   feed: str) -> None:
    with serving(live_app) as base:
        first = start_hello("Please approve the launch")
        alice, bob = log_in(browser, base, "alice"), log_in(browser, base, "bob")
        if feed == "polling":
            own_redis[1].terminate()  # Redis goes away: the pages must poll
            own_redis[1].wait(10)
        queue = opened(alice, f"{base}/queue/")
        task_page = opened(alice, f"{base}/flows/hello_world/1/approve/{first}/")
        assert queue.inner_text("#nav-queue-count") == "1"
        assert queue.locator(f"#row-task-{first}").count() == 1
        want = "stream" if feed == "stream" else "polling"
        for page in (queue, task_page):
            page.wait_for_selector(f"body[data-live-feed={want}]", timeout=5000)

        work = bob.new_page()
        work.goto(f"{base}/flows/hello_world/1/approve/{first}/")
        work.click("#task-status button:has-text('Assign to me')")
        work.wait_for_selector("#task-status .wf-status-assigned")
        # Alice's queue loses the row and its count; her task page says who took it.
        queue.wait_for_selector(f"#row-task-{first}", state="detached", timeout=WITHIN_MS)
        screens.wait_until(queue, "document.querySelector('#nav-queue-count').innerText === '0'",
                           timeout=WITHIN_MS)
        task_page.wait_for_selector("#live-banner:has-text('bob took this task')", timeout=WITHIN_MS)

        work.check("input[name=approved]")
        work.click("#task-work button.wf-primary")
        work.wait_for_url(f"{base}/inbox/")                       # nothing next for bob: his inbox
        task_page.wait_for_selector("#live-banner:has-text('bob completed this task')", timeout=WITHIN_MS)
        task_page.wait_for_selector("#task-status .wf-status-done", timeout=WITHIN_MS)  # and the badge
        if feed == "stream":
            task_page.screenshot(path=str(SCREENSHOTS / "live-banner.png"), full_page=False)

        second = start_hello("And the press release")
        queue.wait_for_selector(f"#row-task-{second}", timeout=WITHIN_MS)
        assert queue.inner_text("#nav-queue-count") == "1"

        assert queue.get_attribute("body", "data-live-feed") == want  # the feed it came through
        assert queue.evaluate("window.stayedOnPage") is True
        assert task_page.evaluate("window.stayedOnPage") is True
        task_page.click("#live-banner a:has-text('Reload')")
        task_page.wait_for_selector("#task-status .wf-status-done")
