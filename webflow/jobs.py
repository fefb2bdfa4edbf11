"""Job dispatch for the app: RQ when ``REDIS_URL`` is set, else in this process.

``execute(task_id)`` is the RQ entry point: ids in, one engine call, commit. The worker
process builds the app once (``worker.py``); each job runs in an app context of it.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from flask import Flask, current_app, has_app_context

from .core import jobs as core_jobs
from .extensions import db

log = logging.getLogger(__name__)


def init_app(app: Flask) -> None:
    core_jobs.set_dispatcher(_dispatch)


def job_mode(app: Flask) -> str:
    """'rq' with a Redis server, else how jobs run in this process."""
    if app.config.get("REDIS_URL"):
        return "rq"
    return str(app.config.get("WEBFLOW_INLINE_JOBS", "thread"))


def _dispatch(task_id: int, job_id: str, queue: str, delay: float, timeout: int) -> None:
    if not has_app_context():
        core_jobs.run_inline(task_id, job_id, queue, delay, timeout)
        return
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    mode = job_mode(app)
    if mode == "rq":
        from .jobqueue import enqueue

        enqueue(app, task_id, job_id, queue, delay, timeout)
    elif mode == "thread":
        threading.Thread(target=_run_in_app, args=(app, task_id, delay, job_id), daemon=True).start()
    else:
        core_jobs.run_inline(task_id, job_id, queue, delay, timeout)


def _run_in_app(app: Flask, task_id: int, delay: float = 0, job_id: str | None = None) -> None:
    import time

    if delay:
        time.sleep(delay)
    with app.app_context():
        execute(task_id, job_id)


def execute(task_id: int, job_id: str | None = None) -> Any:
    """Run one job task (the function RQ calls); needs an app context.

    The delivery's job id (RQ's current job) is its fencing token: see ``run_job``."""
    if job_id is None:
        from rq import get_current_job

        job = get_current_job()
        job_id = job.id if job is not None else None
    try:
        return core_jobs.run_job(task_id, db.session(), token=job_id)
    finally:
        db.session.remove()
