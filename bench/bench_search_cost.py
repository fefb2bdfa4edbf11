"""What keeping the search index current costs the engine: SQL statements and time per process.

    python bench/bench_search_cost.py                  # SQLite and PostgreSQL, 200 processes

Runs hello-world processes from code (start, assign, complete: three engine transactions
each) with the search documents kept current, then the same with the session hooks off,
and prints the statements and milliseconds per process of each run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scratch import scratch_database  # noqa: E402

from webflow import create_app, db  # noqa: E402
from webflow.core import search  # noqa: E402
from webflow.demo.helloworld import HelloWorldFlow  # noqa: E402
from webflow.models import User  # noqa: E402

HOOKS = (("before_flush", search._remember), ("before_commit", search._refresh_before_commit),
         ("after_rollback", search._forget))


def run(processes: int) -> tuple[float, float]:
    """(statements, ms) per process: start, assign, complete."""
    statements = 0

    def count(*args: Any) -> None:
        nonlocal statements
        statements += 1

    user = db.session.scalar(sa.select(User).where(User.username == "ann"))
    event.listen(db.engine, "before_cursor_execute", count)
    began = time.perf_counter()
    for n in range(processes):
        process = HelloWorldFlow.start.run(data={"text": f"parcel {n} for the harbour office"}, user=user)
        activation = process.get_task(HelloWorldFlow.approve).activate()
        activation.assign(user)
        activation.prepare(data={"approved": True}, user=user)
        activation.done()
    elapsed = time.perf_counter() - began
    event.remove(db.engine, "before_cursor_execute", count)
    return statements / processes, elapsed * 1000 / processes


def measure(url: str, processes: int) -> None:
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "WEBFLOW_FLOWS": [HelloWorldFlow],
                      "SECRET_KEY": "bench", "WEBFLOW_INLINE_JOBS": "inline"})
    with app.app_context():
        db.create_all()
        db.session.add(User(username="ann", is_superuser=True))
        db.session.commit()
        run(10)  # warm up
        with_index = run(processes)
        for name, hook in HOOKS:
            event.remove(Session, name, hook)
        without = run(processes)
        search.keep_index_current()
        for label, (statements, ms) in (("with the index kept current", with_index), ("without", without)):
            print(f"  {label + ':':<29}{statements:.1f} statements, {ms:.1f} ms per process")
        db.session.remove()
        db.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--processes", type=int, default=200)
    args = parser.parse_args()
    for name in (["sqlite", "postgresql"] if args.db == "both" else [args.db]):
        print(f"{name}, {args.processes} processes")
        with scratch_database(name, "webflow_bench_cost") as url:
            measure(url, args.processes)

if __name__ == "__main__":
    main()
