"""The event stream over HTTP, against a real Redis and a threaded server: a change made in
another request reaches an open stream within a second; a rolled-back one never does; the
stream holds no database connection while it waits and ends when the page goes away."""

from __future__ import annotations

import http.client
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from app_support import in_app_context, serving
from flask import Flask
from web_support import AuthActions, hello, make_app, task_of, task_url, user

from webflow import db
from webflow.core.transaction import unit_of_work

HEARTBEAT = 0.3


@pytest.fixture
def live_app(db_url: str, redis_url: str) -> Iterator[Flask]:
    app = make_app(db_url, REDIS_URL=redis_url, WEBFLOW_QUEUE_PREFIX=f"test-live-{uuid.uuid4().hex[:8]}",
                   WEBFLOW_LIVE_HEARTBEAT=HEARTBEAT)
    with in_app_context(app):
        yield app


@pytest.fixture
def base_url(live_app: Flask) -> Iterator[str]:
    with serving(live_app) as url:
        yield url


def session_cookie(app: Flask, username: str) -> str:
    client = AuthActions(app).enter_as(username).client
    cookie = client.get_cookie("session")
    assert cookie is not None
    return f"session={cookie.value}"


class Stream:
    """An open ``/events/`` response, read event by event (HTTP/1.0: no chunks to decode)."""

    def __init__(self, base_url: str, cookie: str, query: str = "") -> None:
        host, port = base_url.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=5)
        self.sock.sendall(f"GET /events/{query} HTTP/1.0\r\nHost: {host}\r\nCookie: {cookie}\r\n"
                          "Accept: text/event-stream\r\n\r\n".encode())
        self.raw = b""  # bytes received and not yet decoded
        self.buffer = b""  # body bytes, chunks decoded
        self.status = int(self._raw_line().split()[1])
        self.headers: dict[str, str] = {}
        while (line := self._raw_line().decode().strip()):
            key, _, value = line.partition(":")
            self.headers[key.lower()] = value.strip()
        self.chunked = self.headers.get("transfer-encoding") == "chunked"

    def _receive(self) -> None:
        data = self.sock.recv(65536)  # a timeout raises TimeoutError and loses nothing
        if not data:
            raise EOFError("the server closed the stream")
        self.raw += data

    def _raw_line(self) -> bytes:
        while b"\r\n" not in self.raw:
            self._receive()
        line, _, self.raw = self.raw.partition(b"\r\n")
        return line

    def readline(self) -> bytes:
        """One line of the body (chunks decoded; a timeout raises TimeoutError)."""
        while b"\n" not in self.buffer:
            if not self.chunked:
                self._receive()
                self.buffer, self.raw = self.buffer + self.raw, b""
                continue
            while b"\r\n" not in self.raw:
                self._receive()
            size = int(self.raw.split(b"\r\n", 1)[0] or b"0", 16)
            while len(self.raw.split(b"\r\n", 1)[1]) < size + 2:
                self._receive()
            head, _, rest = self.raw.partition(b"\r\n")
            self.buffer += rest[:size]
            self.raw = rest[size + 2:]
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line + b"\n"

    def next_event(self, within: float) -> tuple[str, str] | None:
        """The next named event within ``within`` seconds (heartbeats skipped), or None."""
        deadline = time.monotonic() + within
        name = data = ""
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                line = self.readline().decode().rstrip("\n")
            except TimeoutError:
                return None
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
            elif line == "" and name:
                return name, data
        return None

    def events_until(self, *names: str, within: float) -> list[str]:
        """The events seen until every one of ``names`` came (or the time ran out)."""
        seen: list[str] = []
        deadline = time.monotonic() + within
        while (event := self.next_event(deadline - time.monotonic())) is not None:
            seen.append(event[0])
            if set(names) <= set(seen):
                break
        return seen

    def close(self) -> None:
        self.sock.close()


@contextmanager
def stream(base_url: str, cookie: str, query: str = "") -> Iterator[Stream]:
    opened = Stream(base_url, cookie, query)
    try:
        assert opened.status == 200
        assert opened.headers["content-type"].startswith("text/event-stream")
        assert opened.readline().startswith(b"retry:")
        yield opened
    finally:
        opened.close()


def test_a_change_in_another_request_arrives_within_a_second(live_app: Flask, base_url: str) -> None:
    task = task_of(hello("waiting"), "approve")
    db.session.remove()
    with stream(base_url, session_cookie(live_app, "alice"), f"?task={task.id}") as alice:
        bob = AuthActions(live_app).enter_as("bob")
        assert bob.post(task_url(task, "assign/"), hx=True).status_code == 200
        # Within a second of bob's answer (his commit published before it was sent).
        seen = alice.events_until(f"task-{task.id}", "queue", within=1.0)
        assert f"task-{task.id}" in seen and "queue" in seen, seen
        # A new task in a queue she may take from: she hears of it too.
        hello("another")
        assert "queue" in alice.events_until("queue", within=1.0)


def test_only_the_users_concerned_hear(live_app: Flask, base_url: str) -> None:
    db.session.remove()
    with stream(base_url, session_cookie(live_app, "carol")) as carol, \
            stream(base_url, session_cookie(live_app, "alice")) as alice:
        hello("for approvers")
        assert alice.events_until("queue", within=1.0)[-1:] == ["queue"]
        assert carol.next_event(within=0.5) is None  # she may take no task


def test_a_rolled_back_transaction_publishes_nothing(live_app: Flask, base_url: str) -> None:
    db.session.remove()
    with stream(base_url, session_cookie(live_app, "alice")) as alice:
        with pytest.raises(RuntimeError), unit_of_work(db.session()):
            hello("never stored")
            raise RuntimeError("rolled back")
        assert alice.next_event(within=0.6) is None
        hello("stored")  # the stream was listening all along
        assert alice.events_until("queue", within=1.0)[-1:] == ["queue"]


def test_anonymous_is_refused(base_url: str) -> None:
    host, port = base_url.removeprefix("http://").split(":")
    for headers, status in (({}, 302), ({"HX-Request": "true"}, 401)):
        conn = http.client.HTTPConnection(host, int(port), timeout=5)
        conn.request("GET", "/events/", headers=headers)
        assert conn.getresponse().status == status
        conn.close()


def test_a_waiting_stream_holds_no_database_connection_and_ends_with_its_page(
        live_app: Flask, base_url: str) -> None:
    cookie = session_cookie(live_app, "alice")
    db.session.remove()  # the test's own connection goes back too
    hub_streams = lambda: live_app.extensions["webflow_live_hub"].open_streams  # noqa: E731
    opened = Stream(base_url, cookie)
    assert opened.status == 200
    assert opened.readline().startswith(b"retry:")
    assert hub_streams() == 1
    assert db.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    opened.close()  # the page goes away: the next heartbeat finds out
    deadline = time.monotonic() + 5 * HEARTBEAT + 2
    while hub_streams() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert hub_streams() == 0


def test_without_redis_the_stream_says_poll(db_url: str) -> None:
    with in_app_context(make_app(db_url)) as app:
        alice = AuthActions(app).enter_as("alice")
        assert alice.get("/events/").status_code == 204
        assert 'sse-connect' not in alice.get("/inbox/").get_data(as_text=True)


def test_an_unreachable_redis_is_503_and_the_page_polls(db_url: str) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with in_app_context(make_app(db_url, REDIS_URL=f"redis://127.0.0.1:{port}/0")) as app:
        alice = AuthActions(app).enter_as("alice")
        started = time.monotonic()
        response = alice.get("/events/")
        assert response.status_code == 503 and response.headers["Retry-After"]
        assert time.monotonic() - started < 3
        # Changes still commit (their messages are dropped), and polling sees them.
        hello("while Redis is down")
        assert user("alice") is not None
        assert alice.get("/events/poll", **{"If-None-Match": '"0"'}).status_code == 200


def test_comments_and_hand_overs_from_the_signals_arrive_after_commit(live_app: Flask, base_url: str) -> None:
    """``comment_posted`` and ``task_assigned`` (sent by the comments and delegation code,
    sent by hand here) reach the task's page and the new owner's inbox, after the commit."""
    from types import SimpleNamespace

    from webflow.core import signals
    from webflow.models import Task

    task_id = task_of(hello("discuss"), "approve").id
    bob_id = user("bob").id
    alice_cookie, bob_cookie = session_cookie(live_app, "alice"), session_cookie(live_app, "bob")
    db.session.remove()
    with stream(base_url, alice_cookie, f"?task={task_id}") as alice, stream(base_url, bob_cookie) as bob:
        with pytest.raises(RuntimeError), unit_of_work(db.session()):
            task = db.session.get(Task, task_id)
            signals.comment_posted.send(task.flow_class, process=task.process, task=task,
                                        comment=SimpleNamespace(author_id=bob_id), mentions=[])
            raise RuntimeError("rolled back")
        assert alice.next_event(within=0.5) is None
        with unit_of_work(db.session()):
            task = db.session.get(Task, task_id)
            signals.comment_posted.send(task.flow_class, process=task.process, task=task,
                                        comment=SimpleNamespace(author_id=bob_id), mentions=[])
            signals.task_assigned.send(task.flow_class, process=task.process, task=task,
                                       user=user("bob"), by=user("alice"), reason="delegated")
        event = alice.next_event(within=1.0)
        assert event is not None and event[0] == f"task-{task_id}"
        assert '"kind": "comment"' in event[1] and f'"by": {bob_id}' in event[1]
        assert "inbox" in bob.events_until("inbox", within=1.0)
    # The banner of a comment names its author.
    alice_client = AuthActions(live_app).enter_as("alice")
    task = db.session.get(Task, task_id)
    banner = alice_client.get(task_url(task, f"banner/?since=0&kind=comment&by={bob_id}"), hx=True)
    assert "bob commented" in banner.get_data(as_text=True)
