"""Server-sent event streams, fed by one Redis subscription per web process.

Each process keeps a single pattern subscription to its app's live channels on a thread of
its own and hands every message to the streams open in the process that listen to its
channel, so 200 open pages cost 200 idle threads (gunicorn's gthread worker) and one Redis
connection, not 200. A stream holds no database connection while it waits; it sends a
comment every ``WEBFLOW_LIVE_HEARTBEAT`` seconds, and that write is how it notices a page
that went away (the server closes the generator, which unsubscribes). When Redis goes
away every stream ends: the page then polls until a stream can be opened again.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from redis import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

#: The listening thread ends after this long without an open stream.
IDLE_SECONDS = 30.0
#: The message on a user's channel that ends their streams: their sessions or permissions
#: changed (``livefeed.STREAM_FIELDS``).
END_STREAMS = json.dumps({"kind": "end-streams"})
#: An event for the page: (SSE event name, data), or None for "the feed is gone".
Event = tuple[str, str] | None


@dataclass(eq=False)
class Subscription:
    """One open stream: its channels, and a filter for the shared ``queue`` channel."""

    channels: frozenset[str]
    may_take: Callable[[str, str], bool]
    events: queue.Queue[Event] = field(default_factory=lambda: queue.Queue(maxsize=1000))
    pid: int = field(default_factory=os.getpid)
    #: The user's sessions or permissions changed: the page opens another stream.
    ended: bool = False

    def offer(self, channel: str, data: str) -> None:
        name = event_name(channel)
        if name == "inbox" and data == END_STREAMS:
            self.ended = True  # the stream ends (also when the queue is full)
            try:
                self.events.put_nowait(None)
            except queue.Full:
                pass
            return
        if name == "queue":
            try:
                message = json.loads(data)
                if not self.may_take(str(message["flow"]), str(message["node"])):
                    return
            except (ValueError, KeyError, TypeError):
                return
        try:
            self.events.put_nowait((name, data))
        except queue.Full:
            pass  # a page that stopped reading: its stream ends at the next heartbeat


def event_name(channel: str) -> str:
    """The SSE event a channel's message becomes: ``inbox``, ``queue`` or ``task-<id>``."""
    if channel.startswith("user:"):
        return "inbox"
    if channel.startswith("task:"):
        return "task-" + channel.split(":", 1)[1]
    if channel.startswith("process:"):
        return "process-" + channel.split(":", 1)[1]
    return channel


class Hub:
    """The process's subscription to ``<prefix>*`` and the streams it feeds."""

    def __init__(self, redis_url: str, prefix: str, max_streams: int) -> None:
        self.redis_url = redis_url
        self.prefix = prefix
        self.max_streams = max_streams
        self.lock = threading.Lock()
        self.subscriptions: set[Subscription] = set()
        self.ready = threading.Event()
        self.pid: int | None = None
        self.thread: threading.Thread | None = None

    @property
    def open_streams(self) -> int:
        return len(self.subscriptions)

    def subscribe(self, channels: set[str], may_take: Callable[[str, str], bool],
                  wait: float = 1.0) -> Subscription | None:
        """A subscription, or None when Redis cannot be reached or the process serves as
        many streams as it may (the page polls then)."""
        subscription = Subscription(frozenset(channels), may_take)
        with self.lock:
            if len(self.subscriptions) >= self.max_streams:
                return None
            # Added under the lock that the listening thread exits under: it cannot leave
            # a subscription behind.
            self.subscriptions.add(subscription)
            self._ensure_thread()
        if not self.ready.wait(wait):
            self.unsubscribe(subscription)
            return None
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self.lock:
            self.subscriptions.discard(subscription)

    def _ensure_thread(self) -> None:
        """Start the listening thread unless it runs (called with the lock held)."""
        if self.pid != os.getpid():
            # A forked gunicorn worker inherits the object but not the thread.
            self.pid, self.thread = os.getpid(), None
            self.ready.clear()
            self.subscriptions &= {s for s in self.subscriptions if s.pid == self.pid}
        if self.thread is None or not self.thread.is_alive():
            self.thread = threading.Thread(target=self._run, name="webflow-live", daemon=True)
            self.thread.start()

    def _idle(self) -> bool:
        """With no stream open, the thread ends (the next stream starts another)."""
        with self.lock:
            if self.subscriptions:
                return False
            self.thread = None
            self.ready.clear()
            return True

    def _run(self) -> None:
        pause = 0.5
        while True:
            try:
                self._listen()
                return  # idle
            except (RedisError, OSError) as exc:
                log.warning("live updates: Redis subscription lost (%s)", exc)
            except Exception:  # a bug must not end live updates for good: start over
                log.exception("live updates: the subscription failed")
            self.ready.clear()
            self._end_all()
            if self._idle():
                return
            time.sleep(pause)
            pause = min(pause * 2, 5.0)

    def _listen(self) -> None:
        client = Redis.from_url(self.redis_url, socket_connect_timeout=1.0, socket_keepalive=True,
                                health_check_interval=15)
        pubsub = client.pubsub()
        idle_since: float | None = None
        try:
            pubsub.psubscribe(self.prefix + "*")
            while True:
                message = pubsub.get_message(timeout=1.0)
                if message is not None and message.get("type") == "psubscribe":
                    self.ready.set()  # Redis confirmed: from now on no message is missed
                if message is None or message.get("type") != "pmessage":
                    if self.subscriptions:
                        idle_since = None
                    elif idle_since is None:
                        idle_since = time.monotonic()
                    elif time.monotonic() - idle_since > IDLE_SECONDS and self._idle():
                        return
                    continue
                channel = _text(message["channel"])[len(self.prefix):]
                data = _text(message["data"])
                with self.lock:
                    listeners = [s for s in self.subscriptions if channel in s.channels]
                for subscription in listeners:
                    subscription.offer(channel, data)
        finally:
            pubsub.close()
            client.close()

    def _end_all(self) -> None:
        with self.lock:
            ended, self.subscriptions = self.subscriptions, set()
        for subscription in ended:
            try:
                subscription.events.put_nowait(None)
            except queue.Full:
                pass


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def stream(hub: Hub, subscription: Subscription, heartbeat: float, lifetime: float) -> Iterator[str]:
    """The event stream of one page; ends after ``lifetime`` (the browser reconnects, and the
    new stream checks the login again), when Redis goes away, or when the page is gone."""
    deadline = time.monotonic() + lifetime
    try:
        yield "retry: 2000\n: connected\n\n"
        while time.monotonic() < deadline:
            try:
                event = subscription.events.get(timeout=min(heartbeat, max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                if subscription.ended:
                    return
                yield ": heartbeat\n\n"
                continue
            if event is None or subscription.ended:
                return
            name, data = event
            yield f"event: {name}\ndata: {data}\n\n"
    finally:
        hub.unsubscribe(subscription)
