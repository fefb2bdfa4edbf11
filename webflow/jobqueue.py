"""The one place that talks to RQ: queues, enqueueing, the reconciler of lost jobs."""

from __future__ import annotations

import logging
import math
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import Flask
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import ScheduledJobRegistry

from .core.context import Context
from .core.models import Task
from .core.status import STATUS
from .core.transaction import unit_of_work
from .extensions import db

log = logging.getLogger(__name__)

#: After an enqueue could not reach Redis, further enqueues are skipped this long (the
#: tasks stay SCHEDULED for the reconciler), so a dead Redis costs one timeout, not one
#: per request.
REDIS_BACKOFF_SECONDS = 5.0


def redis_connection(app: Flask) -> Redis:
    """The app's Redis client, with short timeouts: a frozen Redis never stalls a request
    for more than ``WEBFLOW_REDIS_TIMEOUT`` seconds (RQ's worker raises its own read
    timeout above its blocking dequeue)."""
    conn = app.extensions.get("webflow_redis")
    if conn is None:
        timeout = float(app.config.get("WEBFLOW_REDIS_TIMEOUT", 1.0))
        conn = Redis.from_url(app.config["REDIS_URL"], socket_connect_timeout=timeout,
                              socket_timeout=timeout, retry_on_timeout=False)
        app.extensions["webflow_redis"] = conn
    return conn


def queue_name(app: Flask, name: str) -> str:
    return f"{app.config['WEBFLOW_QUEUE_PREFIX']}-{name}"


def get_queue(app: Flask, name: str = "default") -> Queue:
    return Queue(queue_name(app, name), connection=redis_connection(app))


def lost_after(app: Flask) -> timedelta:
    """How long a job may be missing from Redis, or its worker silent, before it is lost."""
    return timedelta(seconds=float(app.config.get("WEBFLOW_JOB_LOST_SECONDS", 30)))


def enqueue(app: Flask, task_id: int, job_id: str, queue: str, delay: float, timeout: int) -> Any:
    """Put a job task on its queue; the job carries the task id only.

    Runs after the transaction committed. If Redis cannot be reached the task stays
    SCHEDULED and the reconciler queues it again later, so nothing is lost. A retry's
    ``delay`` is kept by RQ's scheduler (the worker runs it)."""
    if time.monotonic() < app.extensions.get("webflow_redis_down_until", 0.0):
        log.warning("Redis was unreachable moments ago: task %s left for the reconciler", task_id)
        return None
    q = get_queue(app, queue)
    options: dict[str, Any] = {"job_id": job_id, "job_timeout": timeout, "result_ttl": 3600,
                               "failure_ttl": 7 * 24 * 3600, "description": f"webflow task {task_id}"}
    try:
        if delay > 0:
            # RQ's scheduler keeps whole seconds (truncated): round up, never run early.
            due = datetime.fromtimestamp(math.ceil(time.time() + delay), UTC)
            return q.enqueue_at(due, "webflow.jobs.execute", task_id, **options)
        return q.enqueue("webflow.jobs.execute", task_id, **options)
    except RedisError:
        app.extensions["webflow_redis_down_until"] = time.monotonic() + REDIS_BACKOFF_SECONDS
        log.exception("could not enqueue task %s; the reconciler will queue it again", task_id)
        return None


def lost_reason(app: Flask, job_id: str | None, since: datetime | None) -> str | None:
    """Why the task's current RQ job will never finish it, or None while it still may."""
    if job_id is None:
        return "it has no job id"
    conn = redis_connection(app)
    now = datetime.now(UTC)
    grace = lost_after(app)
    try:
        job = Job.fetch(job_id, connection=conn)
    except NoSuchJobError:
        if since is not None and now - since < grace:
            return None  # just committed, the enqueue may still be on its way
        return f"its job {job_id} is not in Redis"
    if not (job.origin or "").startswith(f"{app.config['WEBFLOW_QUEUE_PREFIX']}-"):
        # Another app's job under the same id (job ids are per database, Redis may be shared).
        return f"its job {job_id} in Redis belongs to queue {job.origin!r}, not to this app"
    status = job.get_status(refresh=False)
    if status == JobStatus.SCHEDULED:
        # A retry waiting for its backoff. RQ's scheduler runs in one worker at a time,
        # under a lock that outlives a killed worker by a minute: past its due time plus
        # the grace, the task is queued again at once rather than waiting for it.
        try:
            due = ScheduledJobRegistry(job.origin, connection=conn).get_scheduled_time(job)
        except NoSuchJobError:
            return None  # moved to its queue just now
        if due.tzinfo is None:
            due = due.replace(tzinfo=UTC)
        if now - due < grace:
            return None
        return f"its job {job_id} was due at {due:%H:%M:%S} but no scheduler queued it"
    if status in (JobStatus.QUEUED, JobStatus.DEFERRED):
        return None
    if status == JobStatus.STARTED:
        heartbeat = job.last_heartbeat
        if heartbeat is not None and heartbeat.tzinfo is None:
            heartbeat = heartbeat.replace(tzinfo=UTC)
        if heartbeat is not None and now - heartbeat < grace:
            return None
        return f"the worker running its job {job_id} ({job.worker_name}) stopped sending heartbeats"
    if status == JobStatus.FAILED:
        detail = (job.exc_info or "").strip().splitlines()
        return f"its job {job_id} failed: {detail[-1] if detail else 'no detail'}"
    return f"its job {job_id} is {getattr(status, 'value', status)} but the task is not finished"


def settle_lost_job(task_id: int, job_id: str | None, reason: str) -> str | None:
    """Under the process lock: if the task still waits on the lost job ``job_id``, count
    a started attempt as ended (retry with backoff, or ERROR) or queue a SCHEDULED task
    again under a new job id. The check of the job id makes this a conditional update,
    so reconcilers in several workers agree: only the first one acts."""
    session = db.session()
    task = session.get(Task, task_id)
    if task is None:
        return None
    with Context(propagate_exception=False), unit_of_work(session, task.process_id):
        session.refresh(task)
        if task.status not in (STATUS.SCHEDULED, STATUS.STARTED) or task.external_task_id != job_id:
            return None  # finished meanwhile, or already queued again by someone else
        activation = task.activate()
        if task.status == STATUS.STARTED:
            outcome = activation.end_attempt(reason)
        else:
            # A retry whose job was lost keeps what is left of its backoff.
            delay = 0.0
            if task.attempts and task.assigned is not None:
                due = task.assigned + timedelta(seconds=activation.backoff())
                delay = max(0.0, (due - datetime.now(UTC)).total_seconds())
            activation.retry(delay=delay, reason=f"queued again: {reason}")
            outcome = "requeued"
    log.warning("job task %s: %s; %s as %s", task_id, reason, outcome, task.external_task_id)
    return outcome


def reconcile(app: Flask) -> list[int]:
    """Settle every SCHEDULED/STARTED job task whose RQ job is gone, failed or dead.

    RQ alone notices a dead worker only after minutes and then just fails the job. Each
    task is settled on its own: one that fails is logged and the pass goes on."""
    settled: list[int] = []
    session = db.session()
    rows = session.execute(
        sa.select(Task.id, Task.status, Task.external_task_id, Task.started, Task.assigned)
        .where(Task.flow_task_type == "JOB", Task.status.in_([STATUS.SCHEDULED, STATUS.STARTED]))
        .order_by(Task.id)
    ).all()
    session.rollback()  # end the read: each task is settled in a transaction of its own
    for task_id, status, job_id, started, assigned in rows:
        since = started if status == STATUS.STARTED else assigned
        try:
            reason = lost_reason(app, job_id, since)
            if reason is not None and settle_lost_job(task_id, job_id, reason) is not None:
                settled.append(task_id)
        except RedisError:
            raise  # Redis is down: nothing can be checked now, the next pass will
        except Exception:
            session.rollback()
            log.exception("reconciler: job task %s could not be settled", task_id)
    return settled
