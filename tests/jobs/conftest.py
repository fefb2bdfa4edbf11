"""Real Redis, real `rq` worker processes, a database they share with the test."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from job_support import FLOWS, forget_queue_keys, job_app_on

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


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
    served: set[tuple[str, str]] = set()  # (Redis URL, queue prefix) of each worker

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
        served.add((environ["REDIS_URL"], environ["WEBFLOW_QUEUE_PREFIX"]))
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
    # The app's own teardown cleaned Redis already, but a job that finished while its worker
    # stopped (after that) wrote its hash again: the next test's job of that id found it.
    for redis_url, prefix in served:
        forget_queue_keys(redis_url, prefix)
