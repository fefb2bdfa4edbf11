"""How long ``fire_due_timers`` takes among many future timers, and what due dates cost the lists.

    python bench/bench_timers.py                      # PostgreSQL and SQLite
    python bench/bench_timers.py --db postgresql --future 100000 --due 1000

Fills a fresh database (PostgreSQL: a scratch database dropped afterwards; SQLite: a
temporary file) in SQL with ``--future`` timers due in the next weeks and ``--due`` timers
already due, one process each, then prints:

- a ``fire_due_timers()`` call when none is due (the cost of looking, among the future ones),
- the call that fires the due ones (total, and per timer: one transaction each),
- how many rows the due-timer query reads (PostgreSQL's EXPLAIN ANALYZE: it must not read
  the future timers),
- the inbox and queue pages (20,000 queue tasks with due dates and priorities) as they were,
  and with the new sorts and filters: the added cost of due dates on the lists.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_inbox import time_pages  # noqa: E402
from bench_processes import ScratchPostgres  # noqa: E402

from webflow import Flow, create_app, db, fire_due_timers, flow, this  # noqa: E402
from webflow.core.timers import due_timers_query  # noqa: E402
from webflow.demo.helloworld import HelloWorldFlow  # noqa: E402
from webflow.models import Task, User  # noqa: E402

PG_SERVER = os.environ.get("WEBFLOW_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
QUEUE_TASKS = 20_000
PAGES = [
    ("queue (as before)", "/queue/"),
    ("queue, by due date", "/queue/?sort=due"),
    ("queue, by priority", "/queue/?sort=-priority"),
    ("queue, overdue", "/queue/?when=overdue"),
    ("queue, due this week", "/queue/?when=week"),
    ("inbox (as before)", "/inbox/"),
    ("inbox, by due date", "/inbox/?sort=due"),
    ("inbox, overdue", "/inbox/?when=overdue"),
]


class BenchTimerFlow(Flow):
    start = flow.StartFunction().Next(this.wait)
    wait = flow.Timer(timedelta(days=1)).Next(this.end)
    end = flow.End()


def fill(engine: sa.Engine, future: int, due: int) -> None:
    """Timers (future and due) and a queue of human tasks with due dates, in SQL."""
    pg = engine.dialect.name == "postgresql"

    def shifted(seconds: str) -> str:  # now + seconds (negative: in the past), per dialect
        if pg:
            return f"now() + ({seconds}) * interval '1 second'"
        return f"strftime('%Y-%m-%d %H:%M:%f', 'now', ({seconds}) || ' seconds')"

    def series(n: int) -> str:
        return f"WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < {n}) "

    timers = future + due
    timer_path, hello_path = BenchTimerFlow.path(), HelloWorldFlow.path()
    with engine.begin() as conn:
        conn.execute(sa.insert(User), [{"username": "person", "permissions": ["hello_world.can_approve"]}])
        conn.execute(sa.text(
            "INSERT INTO process (flow_class, status, data, summary, created) " + series(timers + QUEUE_TASKS)
            + f"SELECT CASE WHEN x <= {timers} THEN '{timer_path}' ELSE '{hello_path}' END, 'NEW', '{{}}', "
            f"'Request ' || x, {shifted('-60')} FROM g"))
        # x <= due: due a few seconds to minutes ago; else up to ~6 weeks ahead
        conn.execute(sa.text(
            "INSERT INTO task (process_id, flow_class, flow_task, flow_task_type, status, token, created, "
            "due, priority, data, attempts) " + series(timers)
            + f"SELECT x, '{timer_path}', 'wait', 'TIMER', 'SCHEDULED', 'start', {shifted('-60')}, "
            f"CASE WHEN x <= {due} THEN {shifted('-1 - x % 300')} ELSE {shifted('60 + x * 37 % 3600000')} END, "
            "0, '{}', 0 FROM g"))
        # the queue: 5% overdue, the rest due within 30 days, priorities 0..9; 1 in 50 is person's
        conn.execute(sa.text(
            "INSERT INTO task (process_id, flow_class, flow_task, flow_task_type, status, token, owner_id, "
            "owner_permission, created, due, priority, data, attempts) " + series(QUEUE_TASKS)
            + f"SELECT {timers} + x, '{hello_path}', 'approve', 'HUMAN', "
            "CASE WHEN x % 50 = 0 THEN 'ASSIGNED' ELSE 'NEW' END, 'start', "
            "CASE WHEN x % 50 = 0 THEN 1 END, 'hello_world.can_approve', "
            f"{shifted('-x')}, CASE WHEN x % 20 = 0 THEN {shifted('-3600')} "
            f"ELSE {shifted('x * 131 % 2592000')} END, x % 10, '{{}}', 0 FROM g"))
        conn.exec_driver_sql("ANALYZE")


def rows_read(conn: sa.Connection) -> str:
    """What PostgreSQL reads for the due-timer query (its plan's first lines)."""
    query = due_timers_query(datetime.now(UTC)).limit(100)
    compiled = query.compile(conn.engine, compile_kwargs={"literal_binds": True})
    plan = conn.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS) {compiled}").scalars().all()
    return "\n".join("    " + line for line in plan[:4])


def measure(url: str, future: int, due: int, requests: int) -> None:
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "WEBFLOW_FLOWS": [HelloWorldFlow, BenchTimerFlow],
                      "SECRET_KEY": "bench", "WEBFLOW_INLINE_JOBS": "inline", "WEBFLOW_TIMER_THREAD": "0"})
    with app.app_context():
        db.create_all()
        began = time.perf_counter()
        fill(db.engine, future, due)
        print(f"  filled {future:,} future and {due:,} due timers, {QUEUE_TASKS:,} queue tasks "
              f"in {time.perf_counter() - began:.0f} s", flush=True)
        user_id = db.session.scalar(sa.select(User.id).where(User.username == "person"))
        db.session.remove()
        if db.engine.dialect.name == "postgresql":
            with db.engine.connect() as conn:
                print("  the due-timer query reads:\n" + rows_read(conn))

        before = (datetime.now(UTC) - timedelta(hours=1))  # nothing is due yet at this time
        looks = []
        for _ in range(20):
            began = time.perf_counter()
            assert fire_due_timers(now=before) == 0
            looks.append((time.perf_counter() - began) * 1000)
        print(f"  fire_due_timers(), none due among {future + due:,}: "
              f"{statistics.median(looks):.2f} ms (median of 20)")

        began = time.perf_counter()
        fired = fire_due_timers()
        elapsed = time.perf_counter() - began
        assert fired == due, f"fired {fired} of {due}"
        print(f"  fire_due_timers(), {due:,} due: {elapsed:.2f} s, {elapsed / due * 1000:.2f} ms per timer")
        waiting = db.session.scalar(sa.select(sa.func.count()).select_from(Task).where(
            Task.flow_task_type == "TIMER", Task.status == "SCHEDULED"))
        assert waiting == future, f"{waiting} timers wait, expected {future}"
        db.session.remove()

    print(f"  {'page':<24}{'p50 ms':>9}{'p95 ms':>9}")
    for name, p50, p95 in time_pages(app, user_id, PAGES, requests):
        print(f"  {name:<24}{p50:>9.1f}{p95:>9.1f}", flush=True)
    with app.app_context():
        db.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--future", type=int, default=100_000)
    parser.add_argument("--due", type=int, default=1_000)
    parser.add_argument("--requests", type=int, default=10, help="per page")
    args = parser.parse_args()
    for db_name in (["postgresql", "sqlite"] if args.db == "both" else [args.db]):
        print(f"{db_name}:")
        if db_name == "sqlite":
            with tempfile.TemporaryDirectory() as tmp:
                measure(f"sqlite:///{Path(tmp) / 'timers.sqlite'}", args.future, args.due, args.requests)
        else:
            with ScratchPostgres(PG_SERVER) as url:
                measure(url, args.future, args.due, args.requests)


if __name__ == "__main__":
    main()
