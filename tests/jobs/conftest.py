"""Real Redis, real `rq` worker processes, a database they share with the test."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from redis import Redis

from webflow import create_app, db

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


@pytest.fixture
def job_app(db_url: str, redis_url: str) -> Iterator:  # type: ignore[type-arg]
    """An app on a fresh database that sends jobs to RQ under a prefix of its own."""
    prefix = f"webflow-test-{uuid.uuid4().hex[:8]}"
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": db_url, "REDIS_URL": redis_url,
                      "WEBFLOW_QUEUE_PREFIX": prefix, "WEBFLOW_FLOWS": ["job_flows:JobFlow"]})
    with app.app_context():
        db.create_all()
        yield app
        db.session.remove()
    conn = Redis.from_url(redis_url)
    for key in conn.scan_iter(f"*{prefix}*"):
        conn.delete(key)


@pytest.fixture
def start_worker(job_app, tmp_path) -> Iterator[Callable[..., subprocess.Popen]]:  # type: ignore[type-arg,no-untyped-def]
    """Start `flask webflow worker` processes on the job app's database and queues
    (``env=`` overrides settings; each worker's output goes to a log in tmp_path)."""
    workers: list[subprocess.Popen] = []  # type: ignore[type-arg]

    def start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:  # type: ignore[type-arg]
        environ = dict(os.environ,
                       DATABASE_URL=job_app.config["SQLALCHEMY_DATABASE_URI"],
                       REDIS_URL=job_app.config["REDIS_URL"],
                       WEBFLOW_QUEUE_PREFIX=job_app.config["WEBFLOW_QUEUE_PREFIX"],
                       WEBFLOW_FLOWS="job_flows:JobFlow",
                       # Short periods, so lost jobs are found in seconds (production: 15 s, 30 s).
                       WEBFLOW_RECONCILE_SECONDS="1", WEBFLOW_JOB_LOST_SECONDS="4",
                       PYTHONPATH=os.pathsep.join([str(HERE), str(ROOT)]))
        environ.update(env or {})
        log = open(tmp_path / f"worker-{len(workers)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "wsgi", "webflow", "worker", *args],
            cwd=ROOT, env=environ, start_new_session=True, stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        workers.append(proc)
        return proc

    yield start
    for proc in workers:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
