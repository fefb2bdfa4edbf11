"""Two browsers submit the same task at the same moment, to gunicorn with two worker processes.

The engine-level race (``test_parallel_joins``) proves the lock; this proves what a person sees
through the whole stack: one submission lands (303 to the inbox), the other gets a clear
refusal (409, "nothing was saved"), and the process moves on exactly once.
"""

from __future__ import annotations

import http.cookiejar
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from app_support import in_app_context, make_test_app
from sqlalchemy.orm import Session

from webflow import STATUS
from webflow.core import create_engine, use_session
from webflow.demo.helloworld import HelloWorldFlow
from webflow.models import Process, Task, TaskEvent, User

ROOT = Path(__file__).resolve().parents[2]
FLOW_SPEC = "webflow.demo.helloworld:HelloWorldFlow"
PERMS = ["hello_world.view", "hello_world.can_start", "hello_world.can_approve"]
ROUNDS = 6


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None  # the test looks at the 303 itself


class Browser:
    """One browser: its own cookie jar, its own CSRF token."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()), NoRedirect())
        self.token = ""

    def request(self, path: str, form: dict[str, str] | None = None) -> tuple[int, str]:
        data = None
        if form is not None:
            data = urllib.parse.urlencode({**form, "csrf_token": self.token}).encode()
        try:
            with self.opener.open(self.base + path, data=data, timeout=30) as response:
                status, body = response.status, response.read().decode()
        except urllib.error.HTTPError as exc:  # 3xx (not followed) and 4xx/5xx answers
            status, body = exc.code, exc.read().decode()
        match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', body)
        if match:
            self.token = match.group(1)
        return status, body

    def log_in(self, username: str, password: str) -> None:
        self.request("/login")
        status, _ = self.request("/login", {"username": username, "password": password})
        assert status in (302, 303), f"login answered {status}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def gunicorn(env: dict[str, str], workers: int) -> Iterator[str]:
    """``wsgi:app`` under gunicorn with ``workers`` sync worker processes and ``env`` (no
    Redis: jobs inline), on a free port; its base URL once it answers, stopped on exit."""
    env = {key: value for key, value in env.items() if key != "REDIS_URL"}
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--workers", str(workers), "--bind", f"127.0.0.1:{port}",
         "--timeout", "60", "wsgi:app"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(base + "/login", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("gunicorn did not come up:\n" + proc.stderr.read().decode()[-3000:])  # type: ignore[union-attr]
                time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[str]:
    """The app under gunicorn, two sync worker processes, on a fresh database with alice."""
    app = make_test_app(db_url, [HelloWorldFlow], {"alice": PERMS}, "pw")
    with in_app_context(app):
        pass  # its pool is closed: nothing of it is shared with the server's workers

    env = {**os.environ, "DATABASE_URL": db_url, "WEBFLOW_FLOWS": FLOW_SPEC, "SECRET_KEY": "race",
           "WEBFLOW_INLINE_JOBS": "inline", "WEBFLOW_INSTANCE": str(tmp_path)}
    with gunicorn(env, workers=2) as base:
        yield base


def race(url: str, form: dict[str, str], *browsers: Browser) -> tuple[list[tuple[int, str]],
                                                                     list[tuple[float, float]]]:
    """Submit the form from every browser at the same moment; their answers and time spans."""
    barrier = threading.Barrier(len(browsers))
    answers: list[tuple[int, str]] = []
    spans: list[tuple[float, float]] = []

    def submit(browser: Browser) -> None:
        barrier.wait(10)
        began = time.monotonic()
        answers.append(browser.request(url, form))
        spans.append((began, time.monotonic()))

    threads = [threading.Thread(target=submit, args=(browser,)) for browser in browsers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return answers, spans


def test_two_browsers_complete_the_same_task_at_once(server: str, db_url: str) -> None:
    phone, laptop = Browser(server), Browser(server)
    phone.log_in("alice", "pw")
    laptop.log_in("alice", "pw")

    engine = create_engine(db_url)
    with Session(engine) as session:
        with use_session(session):
            alice = session.scalar(sa.select(User).where(User.username == "alice"))
            urls = []
            for n in range(ROUNDS):
                process = HelloWorldFlow.start.run(data={"text": f"round {n}"}, user=alice)  # type: ignore[attr-defined]
                approve = process.get_task(HelloWorldFlow.approve)
                approve.activate().assign(alice)
                session.commit()
                urls.append((process.id, approve.id,
                             f"/flows/hello_world/{process.id}/approve/{approve.id}/"))

        overlapped = 0  # rounds in which both submissions were in flight together
        for process_id, task_id, url in urls:
            for browser in (phone, laptop):
                assert browser.request(url)[0] == 200  # each has the form open
            answers, spans = race(url, {"approved": "y"}, phone, laptop)
            (a_start, a_end), (b_start, b_end) = spans
            overlapped += a_start < b_end and b_start < a_end
            statuses = sorted(status for status, _ in answers)
            assert statuses == [303, 409], f"task {task_id}: {statuses}"
            refused = next(body for status, body in answers if status == 409)
            assert "nothing was saved" in refused

            session.rollback()  # end the read snapshot (SQLite WAL keeps it): see the commits
            process = session.get(Process, process_id)
            assert process is not None
            assert process.status == STATUS.DONE, [(t.node_name, t.status, t.comments) for t in process.tasks]
            assert process.data["approved"] is True
            done = session.scalar(sa.select(sa.func.count()).select_from(TaskEvent).where(
                TaskEvent.task_id == task_id, TaskEvent.transition == "done"))
            assert done == 1
            nodes = session.scalars(sa.select(Task.node_name).where(Task.process_id == process_id)).all()
            assert len(nodes) == len(set(nodes)), f"a task was created twice: {nodes}"
    assert overlapped >= ROUNDS // 2, f"only {overlapped} of {ROUNDS} rounds raced"
    engine.dispose()


def test_a_start_form_double_clicked_starts_one_process(server: str, db_url: str) -> None:
    """The same rendered start form sent twice at once (a double click, a retry) to two
    worker processes: both land on the one process it started."""
    phone, laptop = Browser(server), Browser(server)
    phone.log_in("alice", "pw")
    laptop.log_in("alice", "pw")
    engine = create_engine(db_url)
    for n in range(ROUNDS):
        _, form = phone.request("/flows/hello_world/start/start/")
        laptop.request("/flows/hello_world/start/start/")  # a CSRF token of its own session
        token = re.search(r'name="start_token" value="([0-9a-f]{32})"', form)
        assert token, "the start form has no one-time token"
        answers, _ = race("/flows/hello_world/start/start/",
                          {"text": f"double {n}", "start_token": token.group(1)}, phone, laptop)
        assert sorted(status for status, _ in answers) == [303, 303], answers
        with Session(engine) as session:
            started = session.scalars(sa.select(Process).where(Process.summary == f"double {n}")).all()
            assert len(started) == 1, f"round {n}: {len(started)} processes"
    engine.dispose()
