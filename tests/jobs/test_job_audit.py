"""Audit of jobs and timers with real `rq` worker processes (real Redis, PostgreSQL).

Defects found: a worker fired due timers on RQ's heartbeat, also while it watched a running
job; a slow timer (one whose next step takes a while) held that heartbeat back, the job's
worker looked dead to the reconciler of another worker, and the job ran a second time.
And about one worker teardown in three (a burst worker's exit, a stop) hung for a minute
in RQ's pubsub thread."""

from __future__ import annotations

import subprocess
import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from audit_flows import SlowFireFlow
from fault_support import assert_each_attempt_ran_once, ledger_runs
from job_flows import JobOnlyFlow
from job_support import wait_for

from webflow import STATUS, db
from webflow.models import Process, Task

pytestmark = pytest.mark.redis


def status_of(process_id: int) -> STATUS:
    db.session.rollback()
    return db.session.get(Process, process_id).status


# PostgreSQL: on SQLite the slow firing would hold the one write lock of the whole database.
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_slow_timer_does_not_hold_back_the_heartbeat_of_a_running_job(job_app, start_worker, tmp_path):
    ledger = tmp_path / "ledger"
    # The reconciler's worker: serves another queue, fires timers on its first beat only.
    start_worker("--queue", "other", env={"WEBFLOW_TIMER_INTERVAL": "3600"})
    # The job's worker fires due timers every second.
    start_worker(env={"WEBFLOW_TIMER_INTERVAL": "1"})
    job = JobOnlyFlow.start.run(ledger=str(ledger), sleep=10)
    wait_for(lambda: ledger_runs(ledger) != [], 60, "the job to start")

    slow = SlowFireFlow.start.run(sleep=8)  # far longer than WEBFLOW_JOB_LOST_SECONDS (4)
    db.session.execute(sa.update(Task).where(Task.process_id == slow.id, Task.node_name == "wait")
                       .values(due=datetime.now(UTC) - timedelta(seconds=1)))
    db.session.commit()

    wait_for(lambda: status_of(slow.id) == STATUS.DONE, 30, "the slow timer to fire")
    wait_for(lambda: status_of(job.id) == STATUS.DONE, 60, "the job's process DONE")
    task = db.session.scalars(sa.select(Task).where(Task.process_id == job.id, Task.node_name == "work")).one()
    assert (task.attempts, task.comments) == (1, None)  # never taken for lost
    assert assert_each_attempt_ran_once(ledger) == {task.id: 1}  # the job ran once


def test_burst_workers_exit_at_once_when_the_queue_is_empty(job_app, start_worker):
    # Before the fix about one exit in three took 61 s (redis-py joined RQ's pubsub thread,
    # which waited 60 s for a subscription): six at once all exited in time 9% of runs.
    began = time.monotonic()
    workers = [start_worker("--burst") for _ in range(6)]
    for worker in workers:
        try:
            assert worker.wait(max(1.0, 40 - (time.monotonic() - began))) == 0
        except subprocess.TimeoutExpired:
            pytest.fail(f"a burst worker was still there {time.monotonic() - began:.0f} s after its start")
