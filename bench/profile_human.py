"""Profile the human path (StartFunction -> View -> End as start, assign, prepare + done):
the SQL of each transaction, round trips, time per transaction and where it goes (cProfile).

    python bench/profile_human.py                          # SQLite and PostgreSQL, both policies
    python bench/profile_human.py --db postgresql --policy web --processes 500 --top 25

The driver does what a web request does around each transition: it loads the task by id
(outside the lock), then calls the transition; the transition's own statements are
listed apart from that lookup. PostgreSQL runs in a scratch database dropped afterwards.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent)]

from path_flows import HumanFlow  # noqa: E402
from scratch import scratch_database  # noqa: E402

from webflow.core import Base, Context, create_engine, use_session  # noqa: E402
from webflow.core.sqlcount import SQLCounter  # noqa: E402
from webflow.models import Task, User  # noqa: E402

POLICIES = {"code": True, "web": False}
PHASES = ("start", "assign", "done")


def human_path(session: Session, user_id: int, around: Callable[[str], Any]) -> None:
    """One instance: start; load the task and assign it; load it and prepare + done.
    Before each, the caller loads its user and task, as a web request does."""
    user = session.get(User, user_id)
    with around("start"):
        process = HumanFlow.start.run(note=user.username)  # type: ignore[attr-defined]
    task_id = session.scalar(sa.select(Task.id).where(Task.process_id == process.id,
                                                      Task.node_name == "work"))
    user, task = session.get(User, user_id), session.get(Task, task_id)
    with around("assign"):
        task.activate().assign(user)
    user, task = session.get(User, user_id), session.get(Task, task_id)
    with around("done"):
        activation = task.activate()
        activation.prepare(data={"note": "ok"}, user=user)
        activation.done()


def profile(kind: str, policy: str, processes: int, top: int, show_sql: bool) -> None:
    with scratch_database(kind, "webflow_profile") as url:
        engine = create_engine(url)
        counter = SQLCounter(engine)
        Base.metadata.create_all(engine)
        with Session(engine) as session, use_session(session), \
                Context(propagate_exception=POLICIES[policy]):
            user = User(username="worker", permissions=["bench_human.can_work"])
            session.add(user)
            session.commit()
            user_id = user.id

            @contextmanager
            def nothing(phase: str) -> Iterator[None]:
                yield

            for _ in range(20):  # warm: caches, prepared statements, pool
                human_path(session, user_id, nothing)

            sql: dict[str, tuple[list[str], int | None]] = {}

            @contextmanager
            def count(phase: str) -> Iterator[None]:
                counter.start()
                yield
                counter.stop()
                sql[phase] = (counter.statements, counter.round_trips)

            human_path(session, user_id, count)

            profiles = {phase: cProfile.Profile() for phase in PHASES}
            seconds = dict.fromkeys(PHASES, 0.0)

            @contextmanager
            def timed(phase: str) -> Iterator[None]:
                began = time.perf_counter()
                profiles[phase].enable()
                yield
                profiles[phase].disable()
                seconds[phase] += time.perf_counter() - began

            for _ in range(processes):
                human_path(session, user_id, timed)
        counter.close()
        engine.dispose()

    total = sum(len(s) for s, _ in sql.values())
    trips = [t for _, t in sql.values()]
    print(f"== {kind}, policy {policy}: {total} statements per instance"
          + (f", {sum(t or 0 for t in trips)} round trips" if kind == "postgresql" else ""))
    for phase in PHASES:
        statements, round_trips = sql[phase]
        ms = seconds[phase] / processes * 1000
        print(f"-- {phase}: {len(statements)} statements"
              + (f", {round_trips} round trips" if round_trips is not None else "")
              + f", {ms:.2f} ms")
        if show_sql:
            for statement in statements:
                print(f"     {statement[:150]}")
        print("     where the time goes (cumulative, overlapping): "
              + ", ".join(f"{label} {ms_:.2f} ms" for label, ms_ in breakdown(profiles[phase], processes)))
        if top:
            out = io.StringIO()
            stats = pstats.Stats(profiles[phase], stream=out)
            stats.sort_stats("tottime").print_stats(top)
            lines = [line for line in out.getvalue().splitlines() if line.strip()]
            start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls"))
            for line in lines[start:]:
                print("     " + line[:160])


# (label, file suffix, function): cumulative time of these, per instance.
WHERE = (
    ("waiting for the database", "psycopg/connection.py", "wait"),
    ("sending", "psycopg/_cursor_base.py", "_send_query_prepared"),
    ("sqlite3 execute", "~", "<method 'execute' of 'sqlite3.Cursor' objects>"),
    ("sqlite3 commit", "~", "<method 'commit' of 'sqlite3.Connection' objects>"),
    ("statement execution (all)", "sqlalchemy/engine/base.py", "_execute_context"),
    ("ORM flush", "sqlalchemy/orm/session.py", "_flush"),
    ("lock + read", "webflow/core/transaction.py", "lock_and_read"),
    ("links + audit rows", "webflow/core/transaction.py", "write_events"),
    ("expire before lock", "webflow/core/transaction.py", "_expire_engine_rows"),
    ("commit (session)", "sqlalchemy/orm/session.py", "commit"),
    ("settle", "webflow/core/engine.py", "settle"),
)


def breakdown(profile: cProfile.Profile, processes: int) -> list[tuple[str, float]]:
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    found = []
    for label, suffix, func in WHERE:
        seconds = sum(ct for (file, _, name), (_, _, _, ct, _) in stats.items()
                      if name == func and file.endswith(suffix))
        if seconds:
            found.append((label, seconds / processes * 1000))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--policy", default="code,web")
    parser.add_argument("--processes", type=int, default=300, help="instances profiled per row")
    parser.add_argument("--top", type=int, default=0, help="functions to list per transaction (by own time)")
    parser.add_argument("--no-sql", action="store_true", help="do not list the statements")
    args = parser.parse_args()
    for kind in args.db.split(","):
        for policy in args.policy.split(","):
            profile(kind, policy, args.processes, args.top, not args.no_sql)


if __name__ == "__main__":
    main()
