"""What one branch of a large fan-out costs: a process fanned out over N items
(``Split().Each`` of a View, then a Join), and a person's assign + done of one branch, the
caller loading its user and task before each transition as a request does.

    python bench/bench_fanout.py                                  # SQLite and PostgreSQL
    python bench/bench_fanout.py --db sqlite --items 10,100,1000 --branches 20
    python bench/bench_fanout.py --db sqlite --items 200 --calls  # Python calls, not time
    python bench/bench_fanout.py --items 2000 --to-the-end        # every branch, first and last

Every transition still reads every task of its process (the search document names each
task and its owner; joins and the End count the unfinished ones), but as plain rows
(``queries.TaskRow``), not ORM objects: a branch costs a little more the more items there
are (bench/PROFILE.md, "Eighth pass"). ``--calls`` counts cProfile's Python calls over the
same work instead of timing it: a figure that does not move with the machine's load.
``--to-the-end`` completes every branch, the last one firing the join, and prints what a
branch cost in the first and in the last tenth of the fan-out, and the whole: each arrival
at the join asks what reached it before (thousands of tasks by the end).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent)]

from scratch import scratch_database  # noqa: E402

from webflow import Flow, flow, this  # noqa: E402
from webflow.core import Base, Context, create_engine, use_session  # noqa: E402
from webflow.models import Process, Task, User  # noqa: E402


class FanOutFlow(Flow):
    """Fan-out"""

    start = flow.StartFunction().Next(this.ask)
    ask = flow.Split().Each(this.review, items=lambda act: act.process.data["items"])
    review = flow.View().Permission(auto_create=True).Next(this.collect)
    collect = flow.Join().Next(this.end)
    end = flow.End()


def fan_out_app(url: str) -> Any:
    """The web app on a scratch database, serving this fan-out (the page benches' server)."""
    from webflow import create_app

    return create_app({"SQLALCHEMY_DATABASE_URI": url, "WEBFLOW_FLOWS": [FanOutFlow],
                       "WEBFLOW_INLINE_JOBS": "inline", "SECRET_KEY": "bench", "WTF_CSRF_ENABLED": False,
                       "WEBFLOW_TIMER_THREAD": "0"})  # no thread outliving the scratch database


def run(kind: str, items: int, branches: int, calls: bool, to_the_end: bool = False) -> str:
    with scratch_database(kind, "webflow_fanout") as url:
        engine = create_engine(url)
        Base.metadata.create_all(engine)
        try:
            with Session(engine) as session, use_session(session), Context(propagate_exception=False):
                user = User(username="reviewer", permissions=["fan_out_flow.can_review"])
                session.add(user)
                session.commit()
                user_id = user.id
                began = time.perf_counter()
                process_id = FanOutFlow.start.run(items=list(range(items))).id  # type: ignore[attr-defined]
                start_ms = (time.perf_counter() - began) * 1000
                task_ids = list(session.scalars(
                    sa.select(Task.id).where(Task.process_id == process_id, Task.node_name == "review")
                    .order_by(Task.id).limit(items if to_the_end else branches)))
                profile = cProfile.Profile()
                began = time.perf_counter()
                if calls:
                    profile.enable()
                each = []
                for task_id in task_ids:
                    each.append(time.perf_counter())
                    person, task = session.get(User, user_id), session.get(Task, task_id)
                    task.activate().assign(person)  # type: ignore[union-attr]
                    person, task = session.get(User, user_id), session.get(Task, task_id)
                    activation = task.activate()  # type: ignore[union-attr]
                    activation.prepare(data={"ok": True}, user=person)
                    activation.done()
                profile.disable()
                ended = time.perf_counter()
                per_branch = (ended - began) * 1000 / len(task_ids)
                spans = [(b - a) * 1000 for a, b in zip(each, [*each[1:], ended], strict=True)]
                finished = session.get(Process, process_id).status  # type: ignore[union-attr]
        finally:
            engine.dispose()
    if calls:
        per_branch_calls = pstats.Stats(profile).total_calls / len(task_ids)  # type: ignore[attr-defined]
        return f"{kind:<10} {items:>6} items: {per_branch_calls:>10,.0f} Python calls per branch (assign, done)"
    if to_the_end:
        tenth = max(1, len(spans) // 10)
        return (f"{kind:<10} {items:>6} items: a branch {sum(spans[:tenth]) / tenth:6.1f} ms in the first "
                f"tenth, {sum(spans[-tenth:]) / tenth:6.1f} ms in the last; all {len(spans)} branches "
                f"{sum(spans) / 1000:6.1f} s; the process {finished}")
    return (f"{kind:<10} {items:>6} items: start {start_ms:8.1f} ms, "
            f"assign + done of one branch {per_branch:7.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--items", default="10,100,1000", help="fan-out sizes, comma-separated")
    parser.add_argument("--branches", type=int, default=20, help="branches completed per size")
    parser.add_argument("--calls", action="store_true", help="count Python calls instead of timing")
    parser.add_argument("--to-the-end", action="store_true", help="complete every branch (the join fires)")
    args = parser.parse_args()
    for kind in args.db.split(","):
        for items in (int(n) for n in args.items.split(",")):
            print(run(kind, items, min(args.branches, items), args.calls, args.to_the_end), flush=True)


if __name__ == "__main__":
    main()
