"""The one place that talks to RQ: queues, enqueueing, and the worker class."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Flask
from redis import Redis
from rq import Queue


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
    """Put a job task on its queue; the job carries the task id only."""
    q = get_queue(app, queue)
    options: dict[str, Any] = {"job_id": job_id, "job_timeout": timeout, "result_ttl": 3600,
                               "failure_ttl": 7 * 24 * 3600}
    if delay > 0:
        return q.enqueue_in(timedelta(seconds=delay), "webflow.jobs.execute", task_id, **options)
    return q.enqueue("webflow.jobs.execute", task_id, **options)
