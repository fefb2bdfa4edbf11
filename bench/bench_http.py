"""Completions per second through the whole stack: gunicorn as the Procfile runs it (two
sync workers) on PostgreSQL, N concurrent clients that log in, open their task, complete
it and load the inbox, for a fixed time; next to the floor, a bare Flask app in the same
gunicorn doing one indexed SELECT per GET and one INSERT per POST, measured in the same run.

    python bench/bench_http.py                         # 1, 4 and 16 clients, 10 s each
    python bench/bench_http.py --clients 4 --seconds 5

Every request goes to 127.0.0.1 only; each round is bounded by --seconds.
"""

from __future__ import annotations

import argparse
import contextvars
import http.cookiejar
import os
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from http_flows import HumanPathFlow  # noqa: E402
from scratch import scratch_database  # noqa: E402

from webflow import create_app, db  # noqa: E402
from webflow.models import User  # noqa: E402

PASSWORD = "bench-password"
#: The CSRF token of a page's form.
CSRF_TOKEN = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
#: Completions per second all clients of a round may reach before they run out of tasks
#: (each round's clients are users of their own, with their tasks assigned up front).
MAX_RATE = 120


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None


class Client:
    """One browser: its cookie jar, its CSRF token, its timings."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()), NoRedirect())
        self.token = ""
        self.timings: dict[str, list[float]] = defaultdict(list)

    def request(self, kind: str, path: str, form: dict[str, str] | None = None) -> tuple[int, str]:
        data = None
        if form is not None:
            data = urllib.parse.urlencode({**form, "csrf_token": self.token}).encode()
        began = time.perf_counter()
        try:
            with self.opener.open(self.base + path, data=data, timeout=30) as response:
                status, body = response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            status, body = exc.code, exc.read().decode()
        self.timings[kind].append(time.perf_counter() - began)
        match = CSRF_TOKEN.search(body)
        if match:
            self.token = match.group(1)
        return status, body


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(app_spec: str, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", app_spec, "--workers", "2", "--bind", f"127.0.0.1:{port}"],
        cwd=ROOT, env={**os.environ, **env, "PYTHONPATH": f"{ROOT}:{ROOT / 'bench'}"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(base + "/", timeout=2)
            return proc, base
        except urllib.error.HTTPError:
            return proc, base  # it answers (a 404 or a redirect is fine)
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"{app_spec} did not come up")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


def client_name(round_: int, n: int) -> str:
    """Client n of round ``round_`` (each round has users of its own: a round must not find
    the tasks an earlier one completed gone)."""
    return f"r{round_}c{n}"


def tasks_per_client(clients: int, seconds: float) -> int:
    return int(MAX_RATE * seconds / clients) + 10


def prepare(url: str, counts: list[int], seconds: float) -> None:
    """The users of each round with their tasks assigned; the floor's table."""
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "WEBFLOW_FLOWS": [HumanPathFlow], "SECRET_KEY": "bench",
                      "WEBFLOW_INLINE_JOBS": "inline"})
    with app.app_context():
        db.create_all()
        hashed = User()
        hashed.set_password(PASSWORD)
        people = [("c0", 5)]  # statement_costs's
        people += [(client_name(round_, n), tasks_per_client(clients, seconds))
                   for round_, clients in enumerate(counts) for n in range(clients)]
        users = [User(username=name, permissions=["human_path.can_work"], password_hash=hashed.password_hash)
                 for name, _ in people]
        db.session.add_all(users)
        db.session.commit()
        for user, (_, tasks) in zip(users, people, strict=True):
            for _ in range(tasks):
                process = HumanPathFlow.start.run()
                process.get_task(HumanPathFlow.work).activate().assign(user)
        db.session.commit()
        with db.engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE floor_item (id serial PRIMARY KEY, note text)")
            conn.exec_driver_sql(
                "INSERT INTO floor_item (note) SELECT 'note ' || g FROM generate_series(1, 1000) g")
        db.engine.dispose()


class OwnContextClient(FlaskClient):
    """Each request in an app context (and database session) of its own, as on a server."""

    def open(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        return contextvars.Context().run(super().open, *args, **kwargs)


def log_in_in_process(client: FlaskClient, username: str = "c0") -> str:
    """Log a test client in through the login form; the inbox's HTML afterwards."""
    page = client.get("/login").get_data(as_text=True)
    token = CSRF_TOKEN.search(page).group(1)  # type: ignore[union-attr]
    client.post("/login", data={"username": username, "password": PASSWORD, "csrf_token": token})
    return client.get("/inbox/").get_data(as_text=True)  # type: ignore[no-any-return]


def traced_client(app: Any) -> tuple[Any, FlaskClient, str]:
    """A counter of the app's SQL (webflow.core.sqlcount, set up before any connection, so
    every one is traced), a test client logged in as c0 whose requests each run in a
    context of their own, as on a server, and the inbox's HTML."""
    from webflow.core.sqlcount import SQLCounter

    with app.app_context():
        counter = SQLCounter(db.engine)
        db.engine.dispose()  # connections from here on are traced
    app.test_client_class = OwnContextClient
    client = app.test_client()
    return counter, client, log_in_in_process(client)


def statement_costs(url: str) -> dict[str, tuple[int, int | None]]:
    """SQL statements and round trips of each request of one completion (Flask's test
    client on the same database, counted by webflow.core.sqlcount)."""
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "WEBFLOW_FLOWS": [HumanPathFlow], "SECRET_KEY": "bench",
                      "WEBFLOW_INLINE_JOBS": "inline"})
    costs: dict[str, tuple[int, int | None]] = {}
    counter, client, inbox = traced_client(app)
    with app.app_context():
        link = re.findall(r'href="(/flows/human_path/\d+/work/\d+/)"', inbox)[0]

        def counted(kind: str, response_of: Any) -> str:
            counter.start()
            response = response_of()
            counter.stop()
            assert response.status_code in (200, 303), (kind, response.status_code)
            costs[kind] = (len(counter.statements), counter.round_trips)
            return str(response.get_data(as_text=True))

        page = counted("task page", lambda: client.get(link))
        form = {"note": "done", "csrf_token": CSRF_TOKEN.search(page).group(1)}  # type: ignore[union-attr]
        counted("complete", lambda: client.post(link, data=form))
        counted("inbox", lambda: client.get("/inbox/"))
        counter.close()
        db.engine.dispose()
    return costs


def merged(clients: list[Client]) -> dict[str, list[float]]:
    """Every client's timings, by kind of request."""
    timings: dict[str, list[float]] = defaultdict(list)
    for client in clients:
        for kind, values in client.timings.items():
            timings[kind] += values
    return timings


def webflow_round(base: str, round_: int, clients: int, seconds: float) -> tuple[int, dict[str, list[float]]]:
    """Completions of the round's clients within ``seconds`` (SystemExit if one ran out of
    tasks before the end: its rate would be capped by the tasks, not the server)."""
    done = [0] * clients
    ran_out: list[int] = []
    all_clients = [Client(base) for _ in range(clients)]
    stop_at = [0.0]
    barrier = threading.Barrier(clients)

    def work(n: int) -> None:
        client = all_clients[n]
        client.request("login page", "/login")
        status, _ = client.request("login", "/login",
                                   {"username": client_name(round_, n), "password": PASSWORD})
        assert status in (302, 303), f"login answered {status}"
        client.timings.clear()
        barrier.wait(30)
        status, inbox = client.request("inbox", "/inbox/")
        while time.monotonic() < stop_at[0]:
            links = re.findall(r'href="(/flows/human_path/\d+/work/\d+/)"', inbox)
            if not links:
                ran_out.append(n)
                break
            client.request("task page", links[0])
            status, _ = client.request("complete", links[0], {"note": "done"})
            if status == 303:
                done[n] += 1
            status, inbox = client.request("inbox", "/inbox/")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(clients)]
    stop_at[0] = time.monotonic() + seconds + 5  # +5: logging in happens before the barrier
    for thread in threads:
        thread.start()
    began = time.monotonic()
    stop_at[0] = began + seconds
    for thread in threads:
        thread.join(seconds + 60)
    if ran_out:
        raise SystemExit(f"{len(ran_out)} of {clients} clients ran out of tasks within {seconds} s: "
                         f"raise MAX_RATE in {__file__}")
    return sum(done), merged(all_clients)


def floor_round(base: str, clients: int, seconds: float) -> tuple[int, dict[str, list[float]]]:
    done = [0] * clients
    all_clients = [Client(base) for _ in range(clients)]
    stop_at = time.monotonic() + seconds

    def work(n: int) -> None:
        client = all_clients[n]
        item = 1 + n
        while time.monotonic() < stop_at:
            client.request("page", f"/item/{item}/")
            status, _ = client.request("post", f"/item/{item}/", {"note": "done"})
            done[n] += status == 303
            client.request("page", f"/item/{item}/")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 60)
    return sum(done), merged(all_clients)


def describe(timings: dict[str, list[float]]) -> str:
    parts = []
    for kind, values in sorted(timings.items()):
        values = sorted(values)
        p95 = values[min(len(values) - 1, int(len(values) * 0.95))]
        parts.append(f"{kind} {statistics.median(values) * 1000:.0f}/{p95 * 1000:.0f}")
    return ", ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", default="1,4,16", help="comma-separated client counts")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    counts = [int(c) for c in args.clients.split(",")]
    with scratch_database("postgresql", "webflow_bench_http") as url:
        prepare(url, counts, args.seconds)
        costs = statement_costs(url)
        print("SQL per request (statements/round trips): "
              + ", ".join(f"{kind} {n}/{trips}" for kind, (n, trips) in costs.items()))
        env = {"DATABASE_URL": url, "SECRET_KEY": "bench", "WEBFLOW_FLOWS": "http_flows:HumanPathFlow",
               "WEBFLOW_INLINE_JOBS": "inline", "BENCH_FLOOR": "1"}
        web, web_base = serve("wsgi:app", env)
        floor, floor_base = serve("http_flows:floor", env)
        try:
            print("p50/p95 in ms per request; completions (webflow) and POSTs (floor) per second")
            print(f"{'clients':>7}  {'webflow/s':>9}  {'floor/s':>7}  requests")
            for round_, clients in enumerate(counts):
                completed, timings = webflow_round(web_base, round_, clients, args.seconds)
                posted, floor_timings = floor_round(floor_base, clients, args.seconds)
                print(f"{clients:>7}  {completed / args.seconds:>9.1f}  {posted / args.seconds:>7.1f}  "
                      f"webflow: {describe(timings)}; floor: {describe(floor_timings)}")
        finally:
            stop(web)
            stop(floor)


if __name__ == "__main__":
    main()
