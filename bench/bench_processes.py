"""Completed processes per second and SQL statements per process, from several OS processes.

    python bench/bench_processes.py                      # SQLite and PostgreSQL, 1, 2 and 4 workers
    python bench/bench_processes.py --db sqlite --workers 4 --processes 200 --policy web

Two shipment-style flows (the demo's shape: a split, a nested split/join, a join, a
handler, the end): ``auto`` runs through in the one call that starts it (Handlers in
place of the people); ``human`` waits at three View tasks that the driver then completes
in code, one transaction each, like three people submitting forms. Each runs under both
error policies: ``code`` (propagate_exception=True, the default for code) and ``web``
(False, as web requests and job workers run: a savepoint per automatic node). Each worker
is a forked OS process with its own engine; all start together behind a Barrier.
PostgreSQL runs in a scratch database created and dropped here (server: ``WEBFLOW_TEST_PG``).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Session

from webflow import STATUS, Flow, flow, this
from webflow.core import Base, Context, create_engine, use_session
from webflow.models import Process, Task, User

PG_SERVER = os.environ.get("WEBFLOW_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
ctx = multiprocessing.get_context("fork")  # the flows below live in __main__: children share it


def noop(activation: Any) -> None:
    """A handler that does what a small real one does: touch process.data."""
    activation.process.data = {**activation.process.data, activation.task.node_name: True}


class AutoShipmentFlow(Flow):
    """Shipment, automatic"""

    start = flow.StartFunction().Next(this.split_work)
    split_work = flow.Split().Next(this.set_carrier).Next(this.package_goods)
    set_carrier = flow.Handler(noop).Next(this.split_paperwork)
    split_paperwork = (flow.Split().Next(this.print_label)
                       .Next(this.take_insurance, cond=lambda act: act.process.data.get("insured")))
    print_label = flow.Handler(noop).Next(this.join_paperwork)
    take_insurance = flow.Handler(noop).Next(this.join_paperwork)
    join_paperwork = flow.Join().Next(this.join_work)
    package_goods = flow.Handler(noop).Next(this.join_work)
    join_work = flow.Join().Next(this.notify)
    notify = flow.Handler(noop).Next(this.end)
    end = flow.End()


class HumanShipmentFlow(Flow):
    """Shipment, three people"""

    start = flow.StartFunction().Next(this.split_work)
    split_work = flow.Split().Next(this.set_carrier).Next(this.package_goods)
    set_carrier = flow.View().Assign(username="clerk").Next(this.split_paperwork)
    split_paperwork = (flow.Split().Next(this.print_label)
                       .Next(this.take_insurance, cond=lambda act: act.process.data.get("insured")))
    print_label = flow.Handler(noop).Next(this.join_paperwork)
    take_insurance = flow.View().Assign(username="clerk").Next(this.join_paperwork)
    join_paperwork = flow.Join().Next(this.join_work)
    package_goods = flow.View().Assign(username="clerk").Next(this.join_work)
    join_work = flow.Join().Next(this.notify)
    notify = flow.Handler(noop).Next(this.end)
    end = flow.End()


FLOWS = {"auto": AutoShipmentFlow, "human": HumanShipmentFlow}
# How a failing automatic node is handled: "code" is the default for code (the whole call
# rolls back); "web" is how web requests and job workers run (a savepoint per automatic
# node, so a failing one is stored as ERROR and the rest kept).
POLICIES = {"code": True, "web": False}
TASKS_PER_PROCESS = 11  # insured: every node runs once


def run_one(session: Session, flow_class: type[Flow], n: int) -> None:
    """Start one insured shipment and, for the human flow, do its three View tasks."""
    process = flow_class.start.run(customer=f"c{n}", insured=True)  # type: ignore[attr-defined]
    if flow_class is HumanShipmentFlow:
        while True:
            task = session.scalars(sa.select(Task).where(
                Task.process_id == process.id, Task.status == STATUS.ASSIGNED).limit(1)).first()
            if task is None:
                break
            activation = task.activate()
            activation.prepare(data={task.node_name: "ok"}, user=task.owner)
            activation.done()


def worker(url: str, flow_name: str, policy: str, quota: int, seconds: float, barrier: Any,
           results: Any) -> None:
    """One OS process: its own engine, then start processes until the quota or the deadline."""
    engine = create_engine(url)
    statements = 0

    @event.listens_for(engine, "before_cursor_execute")
    def count(*args: Any) -> None:
        nonlocal statements
        statements += 1

    flow_class = FLOWS[flow_name]
    done = 0
    with (Session(engine) as session, use_session(session),
          Context(propagate_exception=POLICIES[policy])):
        session.execute(sa.select(1))  # connect before the clock starts
        session.commit()
        statements = 0
        barrier.wait(60)
        started = time.perf_counter()
        deadline = started + seconds
        while done < quota and time.perf_counter() < deadline:
            run_one(session, flow_class, done)
            session.commit()
            done += 1
        elapsed = time.perf_counter() - started
    engine.dispose()
    results.put((done, statements, elapsed))


def measure(url: str, flow_name: str, policy: str, workers: int, processes: int,
            seconds: float) -> dict[str, Any]:
    engine = create_engine(url)
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        session.add(User(username="clerk"))
        session.commit()
    engine.dispose()  # nothing of the parent's pool crosses the fork

    barrier, results = ctx.Barrier(workers), ctx.Queue()
    quota = -(-processes // workers)
    procs = [ctx.Process(target=worker, args=(url, flow_name, policy, quota, seconds, barrier, results))
             for _ in range(workers)]
    for proc in procs:
        proc.start()
    reports = [results.get(timeout=seconds + 120) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
    done = sum(r[0] for r in reports)
    statements = sum(r[1] for r in reports)
    elapsed = max(r[2] for r in reports)

    engine = create_engine(url)
    with Session(engine) as session:
        finished = session.scalar(sa.select(sa.func.count()).select_from(Process)
                                  .where(Process.status == STATUS.DONE))
        tasks = session.scalar(sa.select(sa.func.count()).select_from(Task))
    engine.dispose()
    if finished != done or tasks != done * TASKS_PER_PROCESS:
        raise SystemExit(f"{url} {flow_name}: {done} run, {finished} DONE, {tasks} tasks")
    return {"processes": done, "seconds": elapsed, "rate": done / elapsed,
            "sql": statements / done}


class ScratchPostgres:
    """A database of the benchmark's own on the PostgreSQL server, dropped afterwards."""

    def __init__(self, server: str) -> None:
        self.name = f"webflow_bench_{uuid.uuid4().hex[:8]}"
        self.admin = create_engine(server, isolation_level="AUTOCOMMIT")
        self.url = server.rsplit("/", 1)[0] + f"/{self.name}"

    def __enter__(self) -> str:
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{self.name}"')
        return self.url

    def __exit__(self, *exc: object) -> None:
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        self.admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--flow", choices=[*FLOWS, "both"], default="both")
    parser.add_argument("--policy", choices=[*POLICIES, "both"], default="both",
                        help="code: propagate_exception=True; web: False, as requests and workers")
    parser.add_argument("--workers", default="1,2,4", help="comma-separated process counts")
    parser.add_argument("--processes", type=int, default=400, help="per row, at most")
    parser.add_argument("--seconds", type=float, default=30.0, help="per row, at most")
    args = parser.parse_args()
    flows = list(FLOWS) if args.flow == "both" else [args.flow]
    policies = list(POLICIES) if args.policy == "both" else [args.policy]
    dbs = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    counts = [int(n) for n in args.workers.split(",")]

    print(f"{'database':<11}{'flow':<7}{'policy':<7}{'workers':>8}{'processes':>11}{'seconds':>9}"
          f"{'processes/s':>13}{'SQL/process':>13}")
    for db in dbs:
        for flow_name in flows:
            for policy in policies:
                for workers in counts:
                    if db == "sqlite":
                        with tempfile.TemporaryDirectory() as tmp:
                            row = measure(f"sqlite:///{Path(tmp) / 'bench.sqlite'}", flow_name, policy,
                                          workers, args.processes, args.seconds)
                    else:
                        with ScratchPostgres(PG_SERVER) as url:
                            row = measure(url, flow_name, policy, workers, args.processes, args.seconds)
                    print(f"{db:<11}{flow_name:<7}{policy:<7}{workers:>8}{row['processes']:>11}"
                          f"{row['seconds']:>9.2f}{row['rate']:>13.1f}{row['sql']:>13.1f}", flush=True)

if __name__ == "__main__":
    main()
