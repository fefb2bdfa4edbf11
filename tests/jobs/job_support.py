"""Helpers the job tests share."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from flask import Flask
from redis import Redis
from redis.exceptions import RedisError

from webflow import create_app, db


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        db.session.rollback()
        db.session.expire_all()
        if predicate():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


FLOWS = ["job_flows:JobFlow", "job_flows:FaultFlow", "job_flows:JobOnlyFlow",
         "job_flows:BackoffFlow", "job_flows:TimeoutFlow"]


@contextmanager
def job_app_on(db_url: str, redis_url: str) -> Iterator[Flask]:
    """An app on ``db_url`` (tables created) that sends jobs to RQ under a prefix of its own."""
    prefix = f"webflow-test-{uuid.uuid4().hex[:8]}"
    forget_queue_keys(redis_url, "webflow-test-")  # any earlier job test's leftovers (they run one by one)
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": db_url, "REDIS_URL": redis_url,
                      "WEBFLOW_QUEUE_PREFIX": prefix, "WEBFLOW_FLOWS": FLOWS,
                      "WEBFLOW_JOB_LOST_SECONDS": 4, "SECRET_KEY": "test"})
    with app.app_context():
        db.create_all()
        yield app
        db.session.remove()
        db.engine.dispose()
    forget_queue_keys(redis_url, prefix)


def forget_queue_keys(redis_url: str, prefix: str) -> None:
    """Delete what an app's queues left in Redis: its keys, and the job hashes of its jobs.
    Job hashes are named by job id only, and ids restart with every fresh database: a hash
    left behind made the next test's job of the same id look like another app's."""
    try:
        conn = Redis.from_url(redis_url, socket_connect_timeout=1)
        for key in conn.scan_iter(f"*{prefix}*"):
            conn.delete(key)
        for key in conn.scan_iter("rq:job:webflow-task-*"):
            if (conn.hget(key, "origin") or b"").startswith(prefix.encode()):
                conn.delete(key)
    except RedisError:
        pass  # a Redis server of the test's own, already stopped
