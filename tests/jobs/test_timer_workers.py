"""RQ workers fire due timers: a worker SIGKILLed in the middle loses none, and its
successor fires every one exactly once."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from job_support import wait_for
from timer_job_flows import SlowTimerFlow

from webflow import STATUS, db
from webflow.models import Process, Task, TaskEvent

TIMERS = 40


def fired_count() -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(Task).where(
        Task.node_name == "wait", Task.status == STATUS.DONE)) or 0


def test_a_killed_worker_loses_no_timer_and_a_new_one_fires_each_once(job_app, start_worker, monkeypatch):
    monkeypatch.setenv("WEBFLOW_TIMER_INTERVAL", "1")
    process_ids = [SlowTimerFlow.start.run().id for _ in range(TIMERS)]
    # Make them due now: the worker fires at the current time.
    db.session.execute(sa.update(Task).where(Task.node_name == "wait")
                       .values(due=datetime.now(UTC) - timedelta(seconds=1)))
    db.session.commit()

    first = start_worker()
    wait_for(lambda: fired_count() >= 3, 60, "the first worker to fire some timers")
    os.killpg(first.pid, signal.SIGKILL)  # in the middle of firing the rest
    first.wait(10)
    time.sleep(0.5)
    db.session.rollback()
    left = TIMERS - fired_count()
    assert left > 0, "the worker finished before it was killed: the test proves nothing"

    start_worker()
    wait_for(lambda: fired_count() == TIMERS, 60, "a new worker to fire the timers left")

    db.session.expire_all()
    fires = Counter(db.session.scalars(sa.select(TaskEvent.task_id).where(TaskEvent.transition == "fire")))
    timers = db.session.scalars(sa.select(Task.id).where(Task.node_name == "wait")).all()
    assert fires == Counter({task_id: 1 for task_id in timers})
    processes = db.session.scalars(sa.select(Process).where(Process.id.in_(process_ids))).all()
    assert Counter(p.data.get("runs") for p in processes) == Counter({1: TIMERS})
    assert {p.status for p in processes} == {STATUS.DONE}
