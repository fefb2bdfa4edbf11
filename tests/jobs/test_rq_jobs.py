"""Job tasks on a real Redis with real `rq` worker processes."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import sqlalchemy as sa
from job_flows import JobFlow
from job_support import wait_for
from redis import Redis

from webflow import STATUS, db
from webflow.core import unit_of_work
from webflow.jobqueue import get_queue
from webflow.models import Process, Task

pytestmark = pytest.mark.redis


def tasks_of(process: Process) -> dict[str, list[STATUS]]:
    rows = db.session.scalars(sa.select(Task).where(Task.process_id == process.id).order_by(Task.id))
    found: dict[str, list[STATUS]] = {}
    for task in rows:
        found.setdefault(task.node_name, []).append(task.status)
    return found


def test_a_job_is_enqueued_after_commit_and_the_flow_completes(job_app, start_worker):
    process = JobFlow.start.run(note="hello")
    job_task = process.get_task(JobFlow.work)
    assert job_task.status == STATUS.SCHEDULED
    assert job_task.external_task_id == f"webflow-task-{job_task.id}"
    queued = get_queue(job_app).job_ids
    assert queued == [job_task.external_task_id]

    start_worker("--burst")
    wait_for(lambda: db.session.get(Process, process.id).status == STATUS.DONE, 60, "process DONE")
    assert tasks_of(process) == {"start": [STATUS.DONE], "work": [STATUS.DONE],
                                 "after": [STATUS.DONE], "end": [STATUS.DONE]}


def test_a_rolled_back_transaction_enqueues_nothing(job_app, start_worker):
    with pytest.raises(RuntimeError, match="changed my mind"):
        with unit_of_work(db.session()):
            JobFlow.start.run(note="never")
            raise RuntimeError("changed my mind")
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Process)) == 0
    assert get_queue(job_app).count == 0
    start_worker("--burst").wait(60)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Task)) == 0


def test_a_failing_job_retries_then_errors_and_an_admin_retry_completes_it(job_app, start_worker, tmp_path):
    flag = tmp_path / "fixed"
    process = JobFlow.start.run(always_fail=str(flag))
    start_worker()
    task_id = process.get_task(JobFlow.work).id

    def errored() -> bool:
        return db.session.get(Task, task_id).status == STATUS.ERROR

    wait_for(errored, 60, "the job to land in ERROR")
    task = db.session.get(Task, task_id)
    assert task.attempts == 3  # the first run and two retries
    assert "the flag file is missing" in task.comments
    assert "Traceback" in task.comments

    flag.write_text("ok")
    task.activate().retry()
    wait_for(lambda: db.session.get(Process, process.id).status == STATUS.DONE, 60, "process DONE")
    assert tasks_of(process)["after"] == [STATUS.DONE]


def test_a_failing_handler_after_a_job_leaves_the_job_done(job_app, start_worker):
    process = JobFlow.start.run(break_after=True)
    start_worker("--burst")
    wait_for(lambda: tasks_of(process).get("after") == [STATUS.ERROR], 60, "the handler in ERROR")
    assert tasks_of(process)["work"] == [STATUS.DONE]
    after = process.get_task(JobFlow.after)
    assert "the handler after the job broke" in after.comments


def test_a_job_survives_its_worker_being_killed(job_app, start_worker, tmp_path):
    pid_file = tmp_path / "horse.pid"
    process = JobFlow.start.run(sleep=4, pid_file=str(pid_file))
    task_id = process.get_task(JobFlow.work).id
    worker = start_worker()

    wait_for(pid_file.exists, 60, "the job to start")
    horse = int(pid_file.read_text())
    os.killpg(worker.pid, signal.SIGKILL)  # the worker ...
    os.kill(horse, signal.SIGKILL)  # ... and its work horse, in the middle of the job
    worker.wait(10)
    assert db.session.get(Task, task_id).status == STATUS.STARTED

    pid_file.unlink()
    start_worker()
    wait_for(lambda: db.session.get(Task, task_id).status in (STATUS.DONE, STATUS.ERROR), 120,
             "the killed job to finish")
    wait_for(lambda: db.session.get(Process, process.id).status == STATUS.DONE, 30, "process DONE")
    assert tasks_of(process) == {"start": [STATUS.DONE], "work": [STATUS.DONE],
                                 "after": [STATUS.DONE], "end": [STATUS.DONE]}
    assert Path(pid_file).exists()  # the job really ran again


def test_a_redelivered_job_does_not_run_the_flow_twice(job_app, start_worker):
    process = JobFlow.start.run()
    task = process.get_task(JobFlow.work)
    get_queue(job_app).enqueue("webflow.jobs.execute", task.id, job_id=f"dup-{task.id}")
    start_worker("--burst")
    wait_for(lambda: db.session.get(Process, process.id).status == STATUS.DONE, 60, "process DONE")
    start_worker("--burst").wait(60)
    assert tasks_of(process)["after"] == [STATUS.DONE]
    assert tasks_of(process)["end"] == [STATUS.DONE]
    assert Redis.from_url(job_app.config["REDIS_URL"]).ping()
