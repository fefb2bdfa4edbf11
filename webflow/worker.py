"""The worker process: the app is built once, then RQ's worker runs job tasks."""

from __future__ import annotations

from flask import Flask
from rq.worker import HerokuWorker

from .extensions import db
from .queue import get_queue, redis_connection


class AppWorker(HerokuWorker):
    """An RQ worker whose jobs run inside the app's context.

    The database engine is disposed before each fork, so no connection opened in the
    parent is ever used by a work horse."""

    app: Flask

    def execute_job(self, job, queue):  # type: ignore[no-untyped-def]
        with self.app.app_context():
            db.engine.dispose(close=False)
        return super().execute_job(job, queue)

    def perform_job(self, job, queue):  # type: ignore[no-untyped-def]
        with self.app.app_context():
            return super().perform_job(job, queue)


def run_worker(app: Flask, queues: list[str], burst: bool = False) -> None:
    if not app.config.get("REDIS_URL"):
        raise SystemExit("REDIS_URL is not set: without Redis, jobs run in the web process.")
    AppWorker.app = app
    worker = AppWorker([get_queue(app, name) for name in queues],
                       connection=redis_connection(app))
    worker.work(burst=burst, with_scheduler=True)
