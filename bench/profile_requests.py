"""The three requests of a completion, in process: open the task page (GET), complete it
(POST), load the inbox (GET), through Flask's test client (each request in an app context
of its own, as on a server; see bench_http.OwnContextClient), on SQLite and PostgreSQL.

For each request: SQL statements (webflow.core.sqlcount; round trips on PostgreSQL), and
the median wall and CPU time (this thread's) over ``--requests`` completions; ``--sql``
lists the statements, ``--top N`` adds cProfile's top N functions (by cumulative time).

    python bench/profile_requests.py                          # both databases, 90 completions
    python bench/profile_requests.py --db sqlite --requests 200 --top 30

PostgreSQL runs in a scratch database (bench/scratch.py) dropped afterwards.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent)]

from bench_http import CSRF_TOKEN, PASSWORD, traced_client  # noqa: E402
from http_flows import HumanPathFlow  # noqa: E402
from scratch import scratch_database  # noqa: E402

from webflow import create_app, db  # noqa: E402
from webflow.models import User  # noqa: E402

KINDS = ("task page", "complete", "inbox")
LINK = re.compile(r'href="(/flows/human_path/\d+/work/\d+/)"')


def make_app(url: str) -> Any:
    return create_app({"SQLALCHEMY_DATABASE_URI": url, "WEBFLOW_FLOWS": [HumanPathFlow],
                       "SECRET_KEY": "bench", "WEBFLOW_INLINE_JOBS": "inline",
                       "WEBFLOW_TIMER_THREAD": "0"})  # no timer thread beside the measured requests


def prepare(url: str, tasks: int) -> None:
    """User c0 with ``tasks`` tasks assigned."""
    app = make_app(url)
    with app.app_context():
        db.create_all()
        user = User(username="c0", permissions=["human_path.can_work"])
        user.set_password(PASSWORD)
        db.session.add(user)
        db.session.commit()
        for _ in range(tasks):
            process = HumanPathFlow.start.run()
            process.get_task(HumanPathFlow.work).activate().assign(user)
        db.session.commit()
        db.engine.dispose()


def measure(kind: str, requests: int, show_sql: bool, top: int) -> None:
    with scratch_database(kind, "webflow_profile_requests") as url:
        prepare(url, requests + 30)
        app = make_app(url)
        counter, client, inbox = traced_client(app)
        wall: dict[str, list[float]] = {k: [] for k in KINDS}
        cpu: dict[str, list[float]] = {k: [] for k in KINDS}
        costs: dict[str, tuple[int, int | None, list[str]]] = {}
        profiles = {k: cProfile.Profile() for k in KINDS}

        def run(kind: str, n: int, request: Callable[[], Any]) -> str:
            counted = n == 1  # the second round: every cache is warm
            if counted:
                counter.start()
            if top:
                profiles[kind].enable()
            began, began_cpu = time.perf_counter(), time.thread_time()
            response = request()
            wall[kind].append(time.perf_counter() - began)
            cpu[kind].append(time.thread_time() - began_cpu)
            if top:
                profiles[kind].disable()
            if counted:
                counter.stop()
                costs[kind] = (len(counter.statements), counter.round_trips, list(counter.statements))
            assert response.status_code in (200, 303), (kind, response.status_code)
            return str(response.get_data(as_text=True))

        for n in range(requests):
            link = LINK.findall(inbox)[0]
            page = run("task page", n, lambda link=link: client.get(link))
            form = {"note": "done", "csrf_token": CSRF_TOKEN.search(page).group(1)}  # type: ignore[union-attr]
            run("complete", n, lambda link=link, form=form: client.post(link, data=form))
            inbox = run("inbox", n, lambda: client.get("/inbox/"))
        counter.close()
        with app.app_context():
            db.engine.dispose()
    for name in KINDS:
        statements, trips, texts = costs[name]
        print(f"{kind:10}  {name:9}  {statements:2} statements"
              + (f" / {trips} round trips" if trips is not None else "")
              + f"   wall {statistics.median(wall[name]) * 1000:5.1f} ms"
              + f"   cpu {statistics.median(cpu[name]) * 1000:5.1f} ms")
        if show_sql:
            for text in texts:
                print("      " + " ".join(text.split())[:150])
    if top:
        for name in KINDS:
            out = io.StringIO()
            pstats.Stats(profiles[name], stream=out).sort_stats("cumulative").print_stats(top)
            print(f"--- {kind} {name} (cProfile, {requests} requests)\n{out.getvalue()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--requests", type=int, default=90, help="completions (three requests each)")
    parser.add_argument("--sql", action="store_true", help="list each request's statements")
    parser.add_argument("--top", type=int, default=0, help="cProfile's top N functions per request")
    args = parser.parse_args()
    for kind in (["sqlite", "postgresql"] if args.db == "both" else [args.db]):
        measure(kind, args.requests, args.sql, args.top)


if __name__ == "__main__":
    main()
