"""Job task latency and throughput on real RQ workers, with RQ's own overhead as baseline.

    python bench/bench_jobs.py [--database-url URL] [--jobs 200] [--latency-jobs 40]

Prints p50/p95 latency from SCHEDULED to the next task existing (one worker, jobs
arriving one at a time), and jobs per second with 1 and 2 workers draining a queue,
next to an empty RQ job measured the same way in the same run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa
from redis import Redis
from rq import Queue
from rq.job import Job

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT)]

from bench_flows import JobBenchFlow  # noqa: E402

from webflow import create_app, db  # noqa: E402
from webflow.models import Task  # noqa: E402


def start_workers(env: dict[str, str], count: int, burst: bool) -> list[subprocess.Popen]:  # type: ignore[type-arg]
    args = [sys.executable, "-m", "flask", "--app", "wsgi", "webflow", "worker"]
    if burst:
        args.append("--burst")
    return [subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL) for _ in range(count)]


def stop(workers: list[subprocess.Popen]) -> None:  # type: ignore[type-arg]
    for proc in workers:
        if proc.poll() is None:
            proc.terminate()
    for proc in workers:
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def job_rows(started_after: int) -> list[tuple[Task, Task]]:
    """(job task, the task after it) for the jobs above an id."""
    db.session.rollback()  # end the read snapshot: see what the workers committed
    jobs = db.session.scalars(sa.select(Task).where(Task.node_name == "work", Task.id > started_after)).all()
    nexts = {t.process_id: t for t in db.session.scalars(
        sa.select(Task).where(Task.node_name == "wait", Task.id > started_after))}
    return [(job, nexts[job.process_id]) for job in jobs if job.process_id in nexts]


def wait_until(predicate, timeout: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit("benchmark timed out")
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--latency-jobs", type=int, default=40)
    opts = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix="webflow-bench-")
    url = opts.database_url or f"sqlite:///{tmp}/bench.sqlite"
    prefix = f"webflow-bench-{uuid.uuid4().hex[:6]}"
    env = dict(os.environ, DATABASE_URL=url, REDIS_URL=opts.redis_url, WEBFLOW_QUEUE_PREFIX=prefix,
               WEBFLOW_FLOWS="bench_flows:JobBenchFlow",
               PYTHONPATH=os.pathsep.join([str(HERE), str(ROOT)]))
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "REDIS_URL": opts.redis_url,
                      "WEBFLOW_QUEUE_PREFIX": prefix, "WEBFLOW_FLOWS": [JobBenchFlow]})
    redis = Redis.from_url(opts.redis_url)
    print(f"database: {url.split('@')[-1]}   jobs: {opts.jobs}   cores: {os.cpu_count()}")
    try:
        with app.app_context():
            db.drop_all()
            db.create_all()
            run(app, env, opts)
            db.session.remove()
            db.drop_all()
    finally:
        for key in redis.scan_iter(f"*{prefix}*"):
            redis.delete(key)


def run(app, env, opts) -> None:  # type: ignore[no-untyped-def]
    from webflow.jobqueue import get_queue

    # 1. Latency: one worker waiting, jobs arriving one at a time.
    workers = start_workers(env, 1, burst=False)
    time.sleep(2)
    mark = db.session.scalar(sa.select(sa.func.coalesce(sa.func.max(Task.id), 0)))
    for _ in range(opts.latency_jobs):
        before = len(job_rows(mark))
        JobBenchFlow.start.run()
        wait_until(lambda b=before: len(job_rows(mark)) > b, 30)
    stop(workers)
    latencies = [(nxt.created - job.assigned).total_seconds() * 1000 for job, nxt in job_rows(mark)]
    print("\nlatency, SCHEDULED -> next task exists (1 worker, one job at a time)")
    print(f"  p50 {percentile(latencies, 0.5):7.1f} ms   p95 {percentile(latencies, 0.95):7.1f} ms"
          f"   n={len(latencies)}")

    # 2. Throughput: a queue of jobs drained by burst workers; webflow jobs vs empty RQ jobs.
    print("\nthroughput, a queue drained by N workers (first start to last finish)")
    print(f"  {'workers':>7}  {'webflow jobs/s':>14}  {'empty RQ jobs/s':>15}")
    queue: Queue = get_queue(app)
    for count in (1, 2):
        mark = db.session.scalar(sa.select(sa.func.coalesce(sa.func.max(Task.id), 0)))
        for _ in range(opts.jobs):
            JobBenchFlow.start.run()
        for proc in start_workers(env, count, burst=True):
            proc.wait(600)
        rows = job_rows(mark)
        span = (max(n.created for _, n in rows) - min(j.started for j, _ in rows)).total_seconds()
        webflow_rate = len(rows) / span

        ids = [queue.enqueue("bench_flows.empty_rq_job", result_ttl=600).id for _ in range(opts.jobs)]
        for proc in start_workers(env, count, burst=True):
            proc.wait(600)
        jobs = Job.fetch_many(ids, connection=queue.connection)
        done = [j for j in jobs if j is not None and j.ended_at is not None]
        empty_span = (max(j.ended_at for j in done) - min(j.started_at for j in done)).total_seconds()
        print(f"  {count:>7}  {webflow_rate:>14.1f}  {len(done) / empty_span:>15.1f}")


if __name__ == "__main__":
    main()
