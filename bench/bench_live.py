"""Open event streams next to ordinary pages: the Procfile's web process (gunicorn, its
worker class and threads, as the Procfile says) on PostgreSQL and Redis, on 127.0.0.1.

Round 1 measures the p50/p95 of ordinary page requests (inbox, queue, a task page) from a
few clients with no stream open; round 2 opens ``--streams`` event streams (each a page
that stays open), measures the same requests alongside, and meanwhile starts a process
every half second from outside (the bench's own app on the same database and Redis): the
time from its commit to its ``queue`` event at every open stream is the delivery latency.

    python bench/bench_live.py                  # 200 streams, 10 s per round
    python bench/bench_live.py --streams 50 --seconds 5
    python bench/bench_live.py --command 'gunicorn wsgi:app --workers 2 --bind 127.0.0.1:$PORT'

Every request goes to 127.0.0.1 only; each round is bounded by --seconds.
"""

from __future__ import annotations

import argparse
import os
import re
import selectors
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from bench_http import Client, free_port, stop  # noqa: E402
from http_flows import HumanPathFlow  # noqa: E402
from scratch import scratch_database  # noqa: E402

from webflow import create_app, db  # noqa: E402
from webflow.models import User  # noqa: E402

REDIS_URL = os.environ.get("WEBFLOW_TEST_REDIS", "redis://127.0.0.1:6379/0")
PASSWORD = "bench-password"
PAGE_CLIENTS = 4


def procfile_web() -> str:
    """The Procfile's web command, bound to loopback."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith("web:"):
            return line.split(":", 1)[1].strip().replace("0.0.0.0", "127.0.0.1")
    raise SystemExit("the Procfile has no web process")


def serve(env: dict[str, str], command: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(["sh", "-c", "exec " + command], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                            env={**os.environ, **env, "PORT": str(port),
                                 "PYTHONPATH": f"{ROOT}:{ROOT / 'bench'}"})
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(base + "/login", timeout=2)
            return proc, base
        except urllib.error.HTTPError:
            return proc, base
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the web process did not come up")


def prepare(url: str, prefix: str) -> object:
    """A user with queue and inbox tasks; the bench's own app (it starts processes)."""
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "WEBFLOW_FLOWS": [HumanPathFlow], "SECRET_KEY": "bench",
                      "WEBFLOW_INLINE_JOBS": "inline", "REDIS_URL": REDIS_URL, "WEBFLOW_QUEUE_PREFIX": prefix})
    with app.app_context():
        db.create_all()
        hashed = User()
        hashed.set_password(PASSWORD)
        user = User(username="watcher", permissions=["human_path.can_work", "human_path.view"],
                    password_hash=hashed.password_hash)
        db.session.add(user)
        db.session.commit()
        for n in range(100):
            process = HumanPathFlow.start.run()
            if n % 2:
                process.get_task(HumanPathFlow.work).activate().assign(user)
        db.session.commit()
    return app


class Streams:
    """``count`` open ``/events/`` responses read by one thread; when each event arrived."""

    def __init__(self, base: str, cookie: str, count: int) -> None:
        host, port = base.removeprefix("http://").split(":")
        self.selector = selectors.DefaultSelector()
        self.opened = self.refused = 0
        self.arrivals: list[tuple[float, bytes]] = []
        self.sockets = []
        request = (f"GET /events/ HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\n"
                   "Accept: text/event-stream\r\n\r\n").encode()
        for _ in range(count):
            sock = socket.create_connection((host, int(port)), timeout=10)
            sock.sendall(request)
            try:
                head = sock.recv(4096)
            except TimeoutError:  # not even an answer: the server has no thread left for it
                head = b""
            if b" 200 " in head.split(b"\r\n", 1)[0]:
                self.opened += 1
                sock.setblocking(False)
                self.selector.register(sock, selectors.EVENT_READ)
                self.sockets.append(sock)
            else:
                self.refused += 1
                sock.close()
        self.running = True
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while self.running:
            for key, _ in self.selector.select(timeout=0.2):
                try:
                    data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                except BlockingIOError:
                    continue
                now = time.monotonic()
                for name in re.findall(rb"event: ([\w-]+)", data):
                    self.arrivals.append((now, name))

    def close(self) -> None:
        self.running = False
        self.thread.join(5)
        for sock in self.sockets:
            sock.close()


def page_round(base: str, cookie_client: Client, seconds: float) -> dict[str, list[float]]:
    """PAGE_CLIENTS clients load the inbox, the queue and a task page for ``seconds``."""
    timings: dict[str, list[float]] = {"inbox": [], "queue": [], "task page": [], "failed": []}
    stop_at = time.monotonic() + seconds

    def work() -> None:
        client = Client(base)
        client.opener = cookie_client.opener  # the same login
        while time.monotonic() < stop_at:
            try:
                body = ""
                for kind, path in (("inbox", "/inbox/"), ("queue", "/queue/")):
                    began = time.perf_counter()
                    status, body = client.request(kind, path)
                    timings[kind].append(time.perf_counter() - began)
                link = re.search(r'href="(/flows/human_path/\d+/work/\d+/)"', body)
                if link:
                    began = time.perf_counter()
                    client.request("task page", link.group(1))
                    timings["task page"].append(time.perf_counter() - began)
            except OSError:  # no answer in 30 s (urllib's timeouts and refusals)
                timings["failed"].append(0.0)

    threads = [threading.Thread(target=work) for _ in range(PAGE_CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 60)
    return timings


def percentiles(values: list[float]) -> str:
    if not values:
        return "-"
    values = sorted(values)
    p95 = values[min(len(values) - 1, int(len(values) * 0.95))]
    return f"{statistics.median(values) * 1000:.0f}/{p95 * 1000:.0f}"


def describe(timings: dict[str, list[float]]) -> str:
    everything = [v for kind, values in timings.items() if kind != "failed" for v in values]
    parts = [f"{kind} {percentiles(values)}" for kind, values in timings.items() if kind != "failed"]
    failed = f", {len(timings['failed'])} failed" if timings["failed"] else ""
    return f"all {percentiles(everything)} ({len(everything)} answered{failed}); " + ", ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--command", default=None,
                        help="another web command to compare (default: the Procfile's web process)")
    args = parser.parse_args()
    command = args.command or procfile_web()
    prefix = f"bench-live-{uuid.uuid4().hex[:8]}"
    with scratch_database("postgresql", "webflow_bench_live") as url:
        app = prepare(url, prefix)
        env = {"DATABASE_URL": url, "SECRET_KEY": "bench", "WEBFLOW_FLOWS": "http_flows:HumanPathFlow",
               "REDIS_URL": REDIS_URL, "WEBFLOW_QUEUE_PREFIX": prefix, "WEBFLOW_TIMER_THREAD": "0"}
        web, base = serve(env, command)
        try:
            client = Client(base)
            client.request("login page", "/login")
            status, _ = client.request("login", "/login", {"username": "watcher", "password": PASSWORD})
            assert status in (302, 303), f"login answered {status}"
            cookie = _cookie(client)
            print(f"web process: {command}")
            print("p50/p95 in ms per request, ordinary pages from "
                  f"{PAGE_CLIENTS} clients, {args.seconds:.0f} s per round")
            print(f"  no stream open:    {describe(page_round(base, client, args.seconds))}")
            streams = Streams(base, cookie, args.streams)
            published: list[float] = []
            publishing = True

            def publish() -> None:
                with app.app_context():  # type: ignore[attr-defined]
                    while publishing:
                        published.append(time.monotonic())  # before: the transaction counts too
                        HumanPathFlow.start.run()
                        time.sleep(0.5)

            publisher = threading.Thread(target=publish)
            publisher.start()
            timings = page_round(base, client, args.seconds)
            publishing = False
            publisher.join(10)
            time.sleep(1.0)
            streams.close()
            print(f"  {streams.opened} streams open: {describe(timings)}"
                  + (f"  ({streams.refused} streams refused)" if streams.refused else ""))
            # Each change's queue events: those that arrived before the next change began.
            per_event = [t - sent for sent in published
                         for t in [t for t, n in streams.arrivals if n == b"queue" and sent <= t < sent + 0.5]]
            delivered = sum(1 for _, n in streams.arrivals if n == b"queue")
            print(f"  delivery: {len(published)} changes x {streams.opened} streams, {delivered} events "
                  f"received; change to event p50/p95 {percentiles(per_event)} ms")
        finally:
            stop(web)


def _cookie(client: Client) -> str:
    for handler in client.opener.handlers:
        jar = getattr(handler, "cookiejar", None)
        if jar is not None:
            return "; ".join(f"{c.name}={c.value}" for c in jar)
    raise SystemExit("no session cookie")


if __name__ == "__main__":
    main()
