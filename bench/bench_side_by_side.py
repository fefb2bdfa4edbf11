"""webflow next to viewflow 2.4 on the same machine and database, in alternating rounds.

    python bench/bench_side_by_side.py                        # SQLite and PostgreSQL, 5 rounds
    python bench/bench_side_by_side.py --db postgresql --rounds 3 --processes 200

Two flows: the human path (StartFunction -> View -> End, driven as three transactions:
start; assign; prepare + done) and the automatic path (StartFunction -> Split -> 2
Handlers -> Join -> If -> Handler -> End, in the call that starts it). A third row,
``caller``, runs the human path's lookups alone (the user and the task read back before
each transition, as a request does) with no transition: each side's caller costs this
much whatever its engine does, so webflow's caller rate over viewflow's human rate is the
ceiling of the human ratio (printed after it). viewflow
(AGPL) runs in a virtualenv of its own (``--venv``, created with pip when missing, never
in the repository) behind our harness in ``bench/viewflow_harness`` (Django settings, the
two flows written for viewflow's API, a driver reading commands on stdin). Each round
runs ``--processes`` processes on one side, then the other (the order swaps every round);
the figure is the median round. Statements per process are counted on one more process of
each side, by the same rules (webflow.core.sqlcount): every statement sent, the driver's
BEGIN and COMMIT included; round trips on PostgreSQL from libpq's trace.
webflow runs under both error policies: ``code`` (propagate_exception=True) and ``web``
(False, as web requests run). PostgreSQL runs in scratch databases dropped afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH.parent), str(BENCH)]

from path_flows import AutoFlow, HumanFlow  # noqa: E402
from scratch import scratch_database  # noqa: E402

from webflow.core import Base, Context, create_engine, use_session  # noqa: E402
from webflow.core.sqlcount import SQLCounter  # noqa: E402
from webflow.models import Task, User  # noqa: E402

VIEWFLOW = ["django-viewflow==2.4.0", "django<6", "psycopg[binary]"]


def ensure_venv(path: Path) -> Path:
    python = path / "bin" / "python"
    if not python.exists():
        print(f"creating {path} with {' '.join(VIEWFLOW)} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *VIEWFLOW], check=True)
    return python


class WebflowSide:
    """Our engine in this process, driven like the harness drives viewflow."""

    def __init__(self, url: str) -> None:
        self.engine = create_engine(url)
        self.counter = SQLCounter(self.engine)
        Base.metadata.create_all(self.engine)
        self.session = Session(self.engine)
        user = User(username="worker", permissions=["bench_human.can_work"])
        self.session.add(user)
        self.session.commit()
        self.user_id = user.id
        with use_session(self.session), Context():
            # Only its id is kept: a process held here would sit in the session's identity
            # map through every other path's commits.
            self.caller_process_id = HumanFlow.start.run().id  # type: ignore[attr-defined]

    def human(self) -> None:
        session = self.session
        session.get(User, self.user_id)  # the caller's lookups, as in a request
        process = HumanFlow.start.run()  # type: ignore[attr-defined]
        task_id = session.scalar(sa.select(Task.id).where(Task.process_id == process.id,
                                                          Task.node_name == "work"))
        user, task = session.get(User, self.user_id), session.get(Task, task_id)
        task.activate().assign(user)
        user, task = session.get(User, self.user_id), session.get(Task, task_id)
        activation = task.activate()
        activation.prepare(data={"note": "ok"}, user=user)
        activation.done()

    def auto(self) -> None:
        AutoFlow.start.run()  # type: ignore[attr-defined]

    def caller(self) -> None:
        """The human path's lookups alone, the session committed where its transition would
        commit (which sends nothing: the reads ran in autocommit): the caller's own cost."""
        session = self.session
        session.get(User, self.user_id)
        session.commit()
        # The process's id outlives the start's commit (UnitOfWork.keep_created_ids): no read.
        task_id = session.scalar(sa.select(Task.id).where(Task.process_id == self.caller_process_id,
                                                          Task.node_name == "work"))
        for _ in range(2):  # before assign, then before prepare + done
            session.get(User, self.user_id)
            session.get(Task, task_id)
            session.commit()

    def run(self, path: str, n: int, propagate: bool) -> float:
        with use_session(self.session), Context(propagate_exception=propagate):
            began = time.perf_counter()
            for _ in range(n):
                getattr(self, path)()
            return time.perf_counter() - began

    def count(self, path: str, propagate: bool) -> tuple[int, int | None]:
        with use_session(self.session), Context(propagate_exception=propagate):
            getattr(self, path)()  # a connection idle during the other side's round is pinged once
            self.counter.start()
            getattr(self, path)()
            self.counter.stop()
        return len(self.counter.statements), self.counter.round_trips

    def close(self) -> None:
        self.session.close()
        self.counter.close()
        self.engine.dispose()


class ViewflowSide:
    """The harness in viewflow's virtualenv, one command per line."""

    def __init__(self, python: Path, url: str) -> None:
        harness = BENCH / "viewflow_harness"
        self.proc = subprocess.Popen(
            [str(python), str(harness / "run.py")], cwd=harness, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            env={**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "VF_DATABASE": url})
        self.ask(None)  # migrated, warmed

    def ask(self, command: str | None) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if command is not None:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit("the viewflow harness stopped (see its error above)")
        return json.loads(line)  # type: ignore[no-any-return]

    def run(self, path: str, n: int) -> float:
        return float(self.ask(f"run {path} {n}")["seconds"])

    def count(self, path: str) -> tuple[int, int | None]:
        spent = self.ask(f"count {path}")["spent"]
        trips = [t for _, t in spent.values()]
        return (sum(len(s) for s, _ in spent.values()),
                None if None in trips else sum(trips))

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--flows", default="human,auto,caller")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--processes", type=int, default=200, help="processes per round and side")
    parser.add_argument("--venv", default=os.environ.get("VIEWFLOW_VENV", "/tmp/vf-venv"),
                        help="viewflow's virtualenv (created if missing)")
    args = parser.parse_args()
    python = ensure_venv(Path(args.venv))
    print(f"{args.rounds} alternating rounds of {args.processes} processes per side; median round")
    print(f"{'database':<10} {'flow':<6} {'webflow':<12} {'processes/s':>11} {'viewflow/s':>10} "
          f"{'ratio':>6}  {'SQL/process':>11} {'viewflow SQL':>12}  {'round trips':>11}")
    for kind in args.db.split(","):
        with tempfile.TemporaryDirectory() as folder, \
                scratch_database(kind, "bench_webflow", folder) as ours_url, \
                scratch_database(kind, "bench_viewflow", folder) as theirs_url:
            ours, theirs = WebflowSide(ours_url), ViewflowSide(python, theirs_url)
            try:
                viewflow_human: list[float] = []  # its rounds under both policies' rows
                for path in args.flows.split(","):
                    # The caller's lookups run no engine code: one row, no policy.
                    for policy, propagate in ((("-", True),) if path == "caller"
                                              else (("code", True), ("web", False))):
                        ours.run(path, 20, propagate)  # warm
                        mine: list[float] = []
                        other: list[float] = []
                        for round_ in range(args.rounds):
                            if round_ % 2:
                                other.append(args.processes / theirs.run(path, args.processes))
                                mine.append(args.processes / ours.run(path, args.processes, propagate))
                            else:
                                mine.append(args.processes / ours.run(path, args.processes, propagate))
                                other.append(args.processes / theirs.run(path, args.processes))
                        our_sql, our_trips = ours.count(path, propagate)
                        their_sql, their_trips = theirs.count(path)
                        rate, their_rate = statistics.median(mine), statistics.median(other)
                        trips = "" if our_trips is None else f"{our_trips} vs {their_trips}"
                        label = "-" if path == "caller" else f"policy {policy}"
                        print(f"{kind:<10} {path:<6} {label:<12} {rate:>11.1f} {their_rate:>10.1f} "
                              f"{rate / their_rate:>5.2f}x  {our_sql:>11} {their_sql:>12}  {trips:>11}",
                              flush=True)
                        if path == "human":
                            viewflow_human += other
                        if path == "caller" and viewflow_human:
                            # With transitions that cost nothing, a human process would take
                            # the caller's time alone: the most any engine behind this caller
                            # could show against viewflow's human path.
                            ceiling = rate / statistics.median(viewflow_human)
                            print(f"{kind:<10} ceiling of the human ratio (webflow's caller alone "
                                  f"against viewflow's human path): {ceiling:.2f}x", flush=True)
            finally:
                ours.close()
                theirs.close()


if __name__ == "__main__":
    main()
