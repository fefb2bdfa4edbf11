"""Taking many queue tasks of one large fan-out in one request.

    python bench/bench_queue_take.py                        # SQLite, 100 and 5,000 items, 50 taken
    python bench/bench_queue_take.py --db postgresql --items 1000 --take 100

A process fanned out over N items (``Split().Each`` of a View, then a Join); a reviewer
chooses ``--take`` of its tasks in the queue and sends them in one POST (``/queue/``,
Flask's test client). Each task is assigned in a unit of work of its own, which reads its
process's task rows: the request grows with the items as well as with the tasks taken.
Prints the time of the request.
"""

from __future__ import annotations

import argparse
import contextvars
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


def measure(kind: str, items: int, take: int) -> str:
    with scratch_database(kind, "webflow_take") as url:
        app = fan_out_app(url)
        with app.app_context():
            db.create_all()
            reviewer = User(username="reviewer", permissions=[f"{FanOutFlow.flow_label}.can_review"])
            db.session.add(reviewer)
            db.session.commit()
            reviewer_id, reviewer_key = reviewer.id, reviewer.get_id()
            process_id = FanOutFlow.start.run(items=list(range(items))).id  # type: ignore[attr-defined]
            db.session.commit()
            chosen = db.session.scalars(sa.select(Task.id).where(
                Task.process_id == process_id, Task.node_name == "review").order_by(Task.id).limit(take)).all()
            db.session.remove()
            client = app.test_client()
            with client.session_transaction() as session:
                session["_user_id"] = reviewer_key
                session["_fresh"] = True
            began = time.perf_counter()
            response: Any = contextvars.Context().run(
                client.post, "/queue/", data={"task_id": [str(task_id) for task_id in chosen]})
            elapsed = (time.perf_counter() - began) * 1000
            assert response.status_code == 303, response.status_code
            db.session.remove()
            taken = db.session.scalar(sa.select(sa.func.count()).select_from(Task).where(
                Task.process_id == process_id, Task.owner_id == reviewer_id))
            assert taken == len(chosen), (taken, len(chosen))
            db.engine.dispose()
    return f"{kind:<10} {items:>6} items: {len(chosen)} tasks taken in one request, {elapsed:7.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", default="sqlite")
    parser.add_argument("--items", default="100,5000", help="fan-out sizes, comma-separated")
    parser.add_argument("--take", type=int, default=50, help="tasks chosen and taken in one request")
    args = parser.parse_args()
    for kind in args.db.split(","):
        for items in (int(n) for n in args.items.split(",")):
            print(measure(kind, items, min(args.take, items)), flush=True)


if __name__ == "__main__":
    main()
