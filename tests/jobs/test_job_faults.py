"""Job tasks under faults, with real `rq` workers: data written by jobs and people at the
same time, lost and redelivered jobs, dead work horses, retries on their backoff, Redis
and PostgreSQL going away. Each job run notes itself in a ledger file."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from fault_support import (
    RedisServer,
    TcpProxy,
    assert_each_attempt_ran_once,
    assert_no_task_duplicated,
    ledger_runs,
    statuses,
)
from job_flows import BackoffFlow, FaultFlow, JobOnlyFlow, TimeoutFlow
from job_support import job_app_on, wait_for

from webflow import STATUS, db
from webflow.core import Context, unit_of_work
from webflow.core.models import utcnow
from webflow.jobqueue import get_queue, reconcile
from webflow.models import Process, Task, User

pytestmark = pytest.mark.redis


def all_done(ids: list[int]) -> bool:
    return statuses(ids) == {STATUS.DONE: len(ids)}


def job_task(process_id: int) -> Task:
    db.session.rollback()
    return db.session.scalars(sa.select(Task).where(Task.process_id == process_id,
                                                    Task.flow_task_type == "JOB")).one()


def failed_job(process_id: int, attempts: int, ledger: Path) -> Task:
    """Once the process's job is in ERROR: the task, after checking it ran ``attempts``
    times, each attempt once."""
    wait_for(lambda: job_task(process_id).status == STATUS.ERROR, 90, "the job in ERROR")
    task = job_task(process_id)
    assert task.attempts == attempts
    assert assert_each_attempt_ran_once(ledger) == {task.id: attempts}
    return task


def complete_review(process_id: int, note: str, user: User) -> None:
    """What a person's form submission does: assign, prepare, done (the engine's calls)."""
    task = db.session.scalars(sa.select(Task).where(Task.process_id == process_id,
                                                    Task.node_name == "review")).one()
    with Context(propagate_exception=False, user=user):
        activation = task.activate()
        activation.assign(user)
        activation.prepare({"note": note}, user=user)
        activation.done()


def no_lost_jobs(app) -> None:  # type: ignore[no-untyped-def]
    """The app's tasks never reach Redis (as if it were down at every enqueue)."""
    app.extensions["webflow_redis_down_until"] = time.monotonic() + 3600


def make_lost(task_ids: list[int]) -> None:
    """Their job ids were given a minute ago: long past the grace for a missing job."""
    with unit_of_work(db.session()):
        db.session.execute(sa.update(Task).where(Task.id.in_(task_ids))
                           .values(assigned=utcnow() - timedelta(minutes=1)))


# -- lost updates -------------------------------------------------------------------------


def test_job_writes_and_form_submissions_to_process_data_are_all_kept(job_app, start_worker, tmp_path):
    ledger = tmp_path / "ledger"
    user = User(username="ann", is_superuser=True)
    db.session.add(user)
    db.session.commit()
    ids = [FaultFlow.start.run(ledger=str(ledger), sleep=0.6).id for _ in range(6)]
    start_worker()
    wait_for(lambda: ledger_runs(ledger) != [], 60, "the first job to start")
    for process_id in ids:  # while the jobs run or wait their turn
        complete_review(process_id, f"note-{process_id}", user)

    wait_for(lambda: all_done(ids), 90, "every process DONE")
    for process_id in ids:
        data = db.session.get(Process, process_id).data
        assert data["note"] == f"note-{process_id}"  # the person's value
        assert data["job_value"] == f"job-{process_id}"  # the job's value
        assert data["counter"] == 1
    assert_no_task_duplicated(ids)
    runs = assert_each_attempt_ran_once(ledger)
    assert runs == {job_task(pid).id: 1 for pid in ids}


def test_a_job_whose_read_went_stale_is_retried_on_fresh_data(job_app, start_worker, tmp_path):
    ledger = tmp_path / "ledger"
    process = JobOnlyFlow.start.run(ledger=str(ledger), sleep=2, counter=0)
    start_worker()
    wait_for(lambda: ledger_runs(ledger) != [], 60, "the job to start")
    with unit_of_work(db.session(), process.id):  # someone sets the counter while it runs
        db.session.refresh(process)
        process.data["counter"] = 100

    wait_for(lambda: all_done([process.id]), 60, "the process DONE")
    assert db.session.get(Process, process.id).data["counter"] == 101  # not 1: nothing lost
    task = job_task(process.id)
    assert task.attempts == 2
    assert "process.data['counter'] changed while the job ran" in task.comments
    assert assert_each_attempt_ran_once(ledger) == {task.id: 2}


# -- lost and duplicated deliveries -------------------------------------------------------


def test_two_reconcilers_at_once_queue_each_of_50_lost_jobs_once(job_app, start_worker, tmp_path):
    ledger = tmp_path / "ledger"
    no_lost_jobs(job_app)
    # A task whose node no longer exists in its flow: it fails, the pass goes on.
    broken = JobOnlyFlow.start.run(ledger=str(ledger))
    db.session.execute(sa.update(Task).where(Task.process_id == broken.id, Task.node_name == "work")
                       .values(node_name="removed"))
    ids = [JobOnlyFlow.start.run(ledger=str(ledger)).id for _ in range(50)]
    task_ids = [job_task(pid).id for pid in ids]
    make_lost([*task_ids, job_task(broken.id).id])
    job_app.extensions.pop("webflow_redis_down_until")
    assert get_queue(job_app).count == 0

    barrier = threading.Barrier(2)
    settled: list[list[int]] = []

    def reconciler() -> None:
        with job_app.app_context():
            barrier.wait()
            settled.append(reconcile(job_app))
            db.session.remove()

    threads = [threading.Thread(target=reconciler) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(settled) == 2
    assert sorted(settled[0] + settled[1]) == task_ids  # each once, by one of the two
    queued = set(get_queue(job_app).job_ids)
    db.session.rollback()
    assert queued == {job_task(pid).external_task_id for pid in ids}

    start_worker("--burst").wait(120)
    wait_for(lambda: all_done(ids), 60, "every process DONE")
    assert assert_each_attempt_ran_once(ledger) == dict.fromkeys(task_ids, 1)
    assert_no_task_duplicated(ids)
    assert job_task(broken.id).status == STATUS.SCHEDULED  # left alone, and logged


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_the_reconciler_runs_while_every_worker_is_busy(job_app, start_worker, tmp_path):
    ledger = tmp_path / "ledger"
    busy = JobOnlyFlow.start.run(ledger=str(ledger), sleep=8)
    # A grace well above the heartbeat period: on a loaded machine 4 s took the busy
    # job's own worker for dead. The lost task's job id is a minute old either way.
    start_worker(env={"WEBFLOW_JOB_LOST_SECONDS": "20"})
    wait_for(lambda: ledger_runs(ledger) != [], 60, "the long job to start")
    no_lost_jobs(job_app)
    lost = JobOnlyFlow.start.run(ledger=str(ledger))
    lost_task = job_task(lost.id)
    lost_id, lost_job = lost_task.id, lost_task.external_task_id
    make_lost([lost_id])
    # Settled by the only worker, in the middle of its long job.
    wait_for(lambda: job_task(lost.id).external_task_id != lost_job, 6, "the lost job queued again")
    assert job_task(busy.id).status == STATUS.STARTED
    wait_for(lambda: all_done([busy.id, lost.id]), 60, "both processes DONE")
    assert assert_each_attempt_ran_once(ledger) == {job_task(busy.id).id: 1, lost_id: 1}


def test_a_delivery_that_is_not_the_current_job_does_nothing(job_app, start_worker, tmp_path):
    ledger = tmp_path / "ledger"
    process = JobOnlyFlow.start.run(ledger=str(ledger), sleep=1.5)
    task = job_task(process.id)
    # The same task delivered again while it runs, as a second reconciler would have.
    get_queue(job_app).enqueue("webflow.jobs.execute", task.id, job_id=f"stale-{task.id}")
    start_worker()
    start_worker()
    wait_for(lambda: all_done([process.id]), 60, "the process DONE")
    time.sleep(1)
    assert assert_each_attempt_ran_once(ledger) == {task.id: 1}
    assert job_task(process.id).attempts == 1


# -- every ending is an attempt -----------------------------------------------------------


def test_a_job_that_kills_its_own_horse_ends_in_error_after_its_retries(db_url, redis_url, start_worker,
                                                                        tmp_path):
    ledger = tmp_path / "ledger"
    with job_app_on(db_url, redis_url) as app:
        admin = User(username="root", is_superuser=True)
        db.session.add(admin)
        db.session.commit()
        process = JobOnlyFlow.start.run(ledger=str(ledger), kill_horse=True)
        start_worker(app=app)
        task = failed_job(process.id, 3, ledger)  # the first run and its two retries
        assert "no retries left" in task.comments and "work horse died (signal 9)" in task.comments
        time.sleep(2)  # nothing runs it again
        assert assert_each_attempt_ran_once(ledger) == {task.id: 3}

        client = app.test_client()
        with client.session_transaction() as session:
            session["_user_id"] = admin.get_id()
        page = client.get("/admin/").get_data(as_text=True)
        assert "work horse died (signal 9)" in page


def test_a_job_past_its_timeout_is_an_attempt_and_ends_in_error(job_app, start_worker, tmp_path):
    ledger = tmp_path / "ledger"
    process = TimeoutFlow.start.run(ledger=str(ledger), sleep=5)
    start_worker()
    assert "JobTimeoutException" in failed_job(process.id, 2, ledger).comments


def test_retries_wait_for_their_backoff(job_app, start_worker, tmp_path):
    ledger = tmp_path / "ledger"
    process = BackoffFlow.start.run(ledger=str(ledger), always_fail=True)
    start_worker()
    failed_job(process.id, 4, ledger)
    runs = ledger_runs(ledger)
    assert [attempt for _, attempt, _, _ in runs] == [1, 2, 3, 4]
    assert len({job_id for _, _, job_id, _ in runs}) == 4  # a job id of its own per attempt
    gaps = [later[3] - earlier[3] for earlier, later in zip(runs, runs[1:], strict=False)]
    for gap, backoff in zip(gaps, [1.0, 2.0, 4.0], strict=True):
        assert backoff - 0.05 <= gap <= backoff + 2.5, gaps


# -- outages ------------------------------------------------------------------------------

REDIS_OUTAGE = 30  # seconds
DB_OUTAGE = 15
REDIS_FROZEN = 20


def test_jobs_survive_redis_stopped_for_30_seconds(db_url, start_worker, tmp_path):
    ledger = tmp_path / "ledger"
    redis = RedisServer(tmp_path)
    redis.start()
    try:
        with job_app_on(db_url, redis.url) as app:
            ids = [JobOnlyFlow.start.run(ledger=str(ledger), sleep=0.3).id for _ in range(10)]
            workers = [start_worker(app=app), start_worker(app=app)]
            wait_for(lambda: len(ledger_runs(ledger)) >= 2, 60, "jobs to run")
            redis.stop()
            time.sleep(1)
            for _ in range(5):  # started while Redis is down: no request stalls on it
                began = time.monotonic()
                ids.append(JobOnlyFlow.start.run(ledger=str(ledger), sleep=0.3).id)
                assert time.monotonic() - began < 2.5
            time.sleep(REDIS_OUTAGE - 1)
            assert [w.poll() for w in workers] == [None, None]  # still there, waiting
            redis.start()

            wait_for(lambda: all_done(ids), 120, "every process DONE")
            assert [w.poll() for w in workers] == [None, None]
            assert_no_task_duplicated(ids)
            runs = assert_each_attempt_ran_once(ledger)
            for pid in ids:
                task = job_task(pid)
                assert runs[task.id] == task.attempts  # each run an attempt, none lost
    finally:
        redis.stop()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_frozen_redis_stalls_no_request_and_no_worker_for_good(db_url, start_worker, tmp_path):
    ledger = tmp_path / "ledger"
    redis = RedisServer(tmp_path)
    redis.start()
    try:
        with job_app_on(db_url, redis.url) as app:
            worker = start_worker(app=app)
            ids = [JobOnlyFlow.start.run(ledger=str(ledger)).id]
            wait_for(lambda: all_done(ids), 60, "the first process DONE")
            redis.freeze()
            began = time.monotonic()
            ids += [JobOnlyFlow.start.run(ledger=str(ledger)).id for _ in range(5)]
            assert time.monotonic() - began < 3  # one short timeout, not one per request
            assert {job_task(pid).status for pid in ids[1:]} == {STATUS.SCHEDULED}
            time.sleep(REDIS_FROZEN)  # longer than RQ's own read timeout in the worker
            redis.freeze(False)

            wait_for(lambda: all_done(ids), 90, "every process DONE")
            assert worker.poll() is None
            assert_no_task_duplicated(ids)
            assert assert_each_attempt_ran_once(ledger) == {job_task(pid).id: 1 for pid in ids}
    finally:
        redis.stop()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_jobs_and_pages_survive_postgresql_unreachable_for_15_seconds(db_url, redis_url, start_worker,
                                                                      tmp_path):
    ledger = tmp_path / "ledger"
    url = sa.make_url(db_url)
    proxy = TcpProxy(url.port or 5432)
    proxy.restore()
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    try:
        with job_app_on(proxied, redis_url) as app:
            user = User(username="ann", is_superuser=True)
            db.session.add(user)
            db.session.commit()
            session_id = user.get_id()  # read now: the database goes away below
            ids = [JobOnlyFlow.start.run(ledger=str(ledger), sleep=0.5).id for _ in range(10)]
            worker = start_worker(app=app)
            wait_for(lambda: len(ledger_runs(ledger)) >= 2, 60, "jobs to run")
            proxy.cut()

            client = app.test_client()
            with client.session_transaction() as session:
                session["_user_id"] = session_id
            page = client.get("/inbox/")
            assert page.status_code == 503 and page.headers["Retry-After"]
            assert "try again" in page.get_data(as_text=True)
            fragment = client.get("/inbox/", headers={"HX-Request": "true"})
            assert fragment.status_code == 503 and fragment.headers["HX-Reswap"] == "none"
            assert "try again" in fragment.get_data(as_text=True)

            time.sleep(DB_OUTAGE)
            assert worker.poll() is None
            proxy.restore()

            wait_for(lambda: all_done(ids), 120, "every process DONE")
            assert worker.poll() is None
            assert client.get("/inbox/").status_code == 200
            assert_no_task_duplicated(ids)
            runs = assert_each_attempt_ran_once(ledger)
            for pid in ids:
                task = job_task(pid)
                assert runs[task.id] == task.attempts
    finally:
        proxy.close()
