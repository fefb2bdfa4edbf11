"""The process page of a large fan-out: its size and time as a manager sees it.

    python bench/bench_process_page.py                          # SQLite, 100, 1,000 and 5,000 items
    python bench/bench_process_page.py --db postgresql --items 1000 --requests 5
    python bench/bench_process_page.py --items 1000 --finished 1000   # every branch done first

A process fanned out over N items (``Split().Each`` of a View, then a Join), and its page
(``/flows/<label>/<id>/``, the first page of tasks and ``?page=2``) requested through
Flask's test client by a manager, each request in a fresh app context as on a server.
``--finished N``: the manager first takes and completes N branches (each two audit rows),
as at the end of a fan-out. Prints the body's size and the median and slowest of
``--requests`` requests.
"""

from __future__ import annotations

import argparse
import contextvars
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent)]

from bench_fanout import FanOutFlow, fan_out_app  # noqa: E402  # the same fan-out, a View per item
from scratch import scratch_database  # noqa: E402

from webflow import db  # noqa: E402
from webflow.models import Task, User  # noqa: E402


def measure(kind: str, items: int, requests: int, finished: int = 0) -> list[str]:
    lines = []
    with scratch_database(kind, "webflow_page") as url:
        app = fan_out_app(url)
        with app.app_context():
            db.create_all()
            boss = User(username="boss", permissions=[FanOutFlow.manage_permission()])
            db.session.add(boss)
            db.session.commit()
            boss_id = boss.get_id()
            process_id = FanOutFlow.start.run(items=list(range(items))).id  # type: ignore[attr-defined]
            db.session.commit()
            for task_id in db.session.scalars(
                    sa.select(Task.id).where(Task.process_id == process_id, Task.node_name == "review")
                    .order_by(Task.id).limit(finished)).all():
                task = db.session.get(Task, task_id)
                task.activate().assign(boss)  # type: ignore[union-attr]
                activation = db.session.get(Task, task_id).activate()  # type: ignore[union-attr]
                activation.prepare(data={"ok": True}, user=boss)
                activation.done()
            db.session.remove()
            client = app.test_client()
            with client.session_transaction() as session:
                session["_user_id"] = boss_id
                session["_fresh"] = True
            for query in ("", "?page=2"):
                path = f"/flows/{FanOutFlow.flow_label}/{process_id}/{query}"
                times, size = [], 0
                for _ in range(requests):
                    began = time.perf_counter()
                    response: Any = contextvars.Context().run(client.get, path)
                    times.append((time.perf_counter() - began) * 1000)
                    assert response.status_code == 200, response.status_code
                    size = len(response.get_data())
                lines.append(f"{kind:<10} {items:>6} items {finished:>6} done {query or '(page 1)':<9} "
                             f"{size / 1024:8.0f} KB median {statistics.median(times):7.0f} ms, "
                             f"slowest {max(times):7.0f} ms")
            db.session.remove()
            db.engine.dispose()
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", default="sqlite")
    parser.add_argument("--items", default="100,1000,5000", help="fan-out sizes, comma-separated")
    parser.add_argument("--requests", type=int, default=5, help="requests per page")
    parser.add_argument("--finished", type=int, default=0, help="branches taken and completed first")
    args = parser.parse_args()
    for kind in args.db.split(","):
        for items in (int(n) for n in args.items.split(",")):
            for line in measure(kind, items, args.requests, min(args.finished, items)):
                print(line, flush=True)


if __name__ == "__main__":
    main()
