"""The worker process: the app is built once, then RQ's worker runs job tasks."""

from __future__ import annotations

import logging
import os
import time

from flask import Flask
from rq.worker import HerokuWorker

from .extensions import db
from .jobqueue import get_queue, reconcile, redis_connection
from .timers import fire_in_app

log = logging.getLogger(__name__)

# RQ's defaults notice a dead worker after ~7 minutes; these make a lost job visible to
# the reconciler within about a minute.
WORKER_TTL = 20
JOB_MONITORING_INTERVAL = 5
MAINTENANCE_INTERVAL = 15
#: Seconds a worker spends firing due timers per beat; what is left fires on the next one.
TIMER_BUDGET = 5.0


class AppWorker(HerokuWorker):
    """An RQ worker whose jobs run in the app's context, and which reconciles lost jobs."""

    app: Flask
    parent_pid = 0
    timers_fired_at = float("-inf")

    def main_work_horse(self, job, queue):  # type: ignore[no-untyped-def]
        # The forked horse must not reuse the parent's pooled database connections.
        with self.app.app_context():
            db.engine.dispose(close=False)
        return super().main_work_horse(job, queue)

    def perform_job(self, job, queue, *args, **kwargs):  # type: ignore[no-untyped-def]
        with self.app.app_context():
            return super().perform_job(job, queue, *args, **kwargs)

    def run_maintenance_tasks(self) -> None:
        super().run_maintenance_tasks()
        with self.app.app_context():
            try:
                requeued = reconcile(self.app)
                if requeued:
                    log.warning("reconciler queued lost job tasks again: %s", requeued)
            except Exception:
                log.exception("job reconciler failed")
            finally:
                db.session.remove()


    def heartbeat(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        # RQ beats every few seconds while idle and while a job runs: the worker fires due
        # timers on that beat (in the parent only, never in a work horse).
        super().heartbeat(*args, **kwargs)
        interval = float(self.app.config["WEBFLOW_TIMER_INTERVAL"])
        if os.getpid() == self.parent_pid and time.monotonic() - self.timers_fired_at >= interval:
            self.timers_fired_at = time.monotonic()
            # Bounded, so the beat (and a running job's heartbeat) is never late for long.
            fire_in_app(self.app, max_seconds=TIMER_BUDGET)


def run_worker(app: Flask, queues: list[str], burst: bool = False) -> None:
    """Run the worker until stopped (or until the queues are empty with ``burst``)."""
    if not app.config.get("REDIS_URL"):
        raise SystemExit("REDIS_URL is not set: without Redis, jobs run in the web process.")
    AppWorker.app = app
    AppWorker.parent_pid = os.getpid()
    worker = AppWorker(
        [get_queue(app, name) for name in queues],
        connection=redis_connection(app),
        worker_ttl=WORKER_TTL,
        job_monitoring_interval=JOB_MONITORING_INTERVAL,
        maintenance_interval=MAINTENANCE_INTERVAL,
    )
    worker.work(burst=burst, with_scheduler=True, logging_level="INFO")
