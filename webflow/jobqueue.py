"""The one place that talks to RQ: queues, enqueueing, the reconciler of stuck jobs."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import Flask
from redis import Redis
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from .core.models import Task
from .core.status import STATUS
from .core.transaction import unit_of_work
from .extensions import db

log = logging.getLogger(__name__)

#: A job whose worker has not sent a heartbeat for this long is taken for dead.
HEARTBEAT_GRACE = timedelta(seconds=30)
#: A SCHEDULED task whose job is missing this long after it was queued is queued again.
MISSING_GRACE = timedelta(seconds=30)


def redis_connection(app: Flask) -> Redis:
    conn = app.extensions.get("webflow_redis")
    if conn is None:
        conn = Redis.from_url(app.config["REDIS_URL"])
        app.extensions["webflow_redis"] = conn
    return conn


def queue_name(app: Flask, name: str) -> str:
    return f"{app.config['WEBFLOW_QUEUE_PREFIX']}-{name}"


def get_queue(app: Flask, name: str = "default") -> Queue:
    return Queue(queue_name(app, name), connection=redis_connection(app))


def enqueue(app: Flask, task_id: int, job_id: str, queue: str, delay: float, timeout: int) -> Any:
    """Put a job task on its queue; the job carries the task id only.

    Runs after the transaction committed. If Redis is down the task stays SCHEDULED and
    the reconciler queues it again later, so nothing is lost."""
    q = get_queue(app, queue)
    options: dict[str, Any] = {"job_id": job_id, "job_timeout": timeout, "result_ttl": 3600,
                               "failure_ttl": 7 * 24 * 3600, "description": f"webflow task {task_id}"}
    try:
        if delay > 0:
            return q.enqueue_in(timedelta(seconds=delay), "webflow.jobs.execute", task_id, **options)
        return q.enqueue("webflow.jobs.execute", task_id, **options)
    except Exception:
        log.exception("could not enqueue task %s; the reconciler will queue it again", task_id)
        return None


def _job_is_alive(app: Flask, job_id: str | None, since: datetime | None) -> bool:
    """True while RQ still holds the job and, if running, its worker is alive."""
    if job_id is None:
        return False
    conn = redis_connection(app)
    try:
        job = Job.fetch(job_id, connection=conn)
    except NoSuchJobError:
        return since is not None and datetime.now(UTC) - since < MISSING_GRACE
    status = job.get_status(refresh=False)
    if status in (JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED):
        return True
    if status == JobStatus.STARTED:
        heartbeat = job.last_heartbeat
        if heartbeat is not None and heartbeat.tzinfo is None:
            heartbeat = heartbeat.replace(tzinfo=UTC)
        worker_alive = bool(job.worker_name and conn.exists(f"rq:worker:{job.worker_name}"))
        fresh = heartbeat is not None and datetime.now(UTC) - heartbeat < HEARTBEAT_GRACE
        return worker_alive and fresh
    return False  # finished, failed, stopped or canceled while the task is not done


def reconcile(app: Flask) -> list[int]:
    """Queue again every SCHEDULED/STARTED job task whose RQ job is gone or dead.

    RQ alone notices a dead worker only after minutes and then fails the job; this puts
    the task back under a fresh job id (``run_job`` makes a second run harmless)."""
    requeued: list[int] = []
    session = db.session()
    candidates = session.scalars(
        sa.select(Task).where(Task.flow_task_type == "JOB",
                              Task.status.in_([STATUS.SCHEDULED, STATUS.STARTED]))
    ).all()
    for task in candidates:
        since = task.started if task.status == STATUS.STARTED else (task.started or task.assigned)
        if _job_is_alive(app, task.external_task_id, since):
            continue
        with unit_of_work(session, task.process_id):
            session.refresh(task)
            if task.status not in (STATUS.SCHEDULED, STATUS.STARTED):
                continue
            base = f"webflow-task-{task.id}"
            task.external_task_id = f"{base}-r{task.attempts + 1}-{len(requeued)}"
            task_id, job_id, node = task.id, task.external_task_id, task.flow_task
        log.warning("job task %s was lost; queued again as %s", task_id, job_id)
        enqueue(app, task_id, job_id, node.queue, 0, node.timeout)  # type: ignore[attr-defined]
        requeued.append(task_id)
    session.commit()
    return requeued
