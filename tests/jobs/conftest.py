"""Real Redis, real `rq` worker processes, a database they share with the test."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from flask import Flask
from redis import Redis
from redis.exceptions import RedisError

from webflow import create_app, db

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


FLOWS = ["job_flows:JobFlow", "job_flows:FaultFlow", "job_flows:JobOnlyFlow",
         "job_flows:BackoffFlow", "job_flows:TimeoutFlow"]


@contextmanager
def job_app_on(db_url: str, redis_url: str) -> Iterator[Flask]:
    """An app on ``db_url`` (tables created) that sends jobs to RQ under a prefix of its own."""
    prefix = f"webflow-test-{uuid.uuid4().hex[:8]}"
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": db_url, "REDIS_URL": redis_url,
                      "WEBFLOW_QUEUE_PREFIX": prefix, "WEBFLOW_FLOWS": FLOWS,
                      "WEBFLOW_JOB_LOST_SECONDS": 4, "SECRET_KEY": "test"})
    with app.app_context():
        db.create_all()
        yield app
        db.session.remove()
        db.engine.dispose()
    try:
        conn = Redis.from_url(redis_url, socket_connect_timeout=1)
        for key in conn.scan_iter(f"*{prefix}*"):
            conn.delete(key)
    except RedisError:
        pass  # a Redis server of the test's own, already stopped


@pytest.fixture
def job_app(db_url: str, redis_url: str) -> Iterator[Flask]:
    """An app on a fresh database that sends jobs to the shared Redis."""
    with job_app_on(db_url, redis_url) as app:
        yield app


@pytest.fixture
def start_worker(request, tmp_path) -> Iterator[Callable[..., subprocess.Popen]]:  # type: ignore[type-arg,no-untyped-def]
    """Start `flask webflow worker` processes on the job app's database and queues
    (``env=`` overrides settings; each worker's output goes to a log in tmp_path)."""
    workers: list[subprocess.Popen] = []  # type: ignore[type-arg]

    def start(*args: str, env: dict[str, str] | None = None,
              app: Flask | None = None) -> subprocess.Popen:  # type: ignore[type-arg]
        config = (app or request.getfixturevalue("job_app")).config
        environ = dict(os.environ,
                       DATABASE_URL=config["SQLALCHEMY_DATABASE_URI"],
                       REDIS_URL=config["REDIS_URL"],
                       WEBFLOW_QUEUE_PREFIX=config["WEBFLOW_QUEUE_PREFIX"],
                       WEBFLOW_FLOWS=",".join(FLOWS),
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
    for proc in workers:  # all asked to stop at once, then waited for
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in workers:
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
