"""The worker process: the app is built once, then RQ's worker runs job tasks.

The worker outlives Redis and database outages: RQ's loop waits for Redis while idle,
our monitor keeps watching a running job through Redis errors, and if RQ's loop gives up
anyway (a Redis timeout makes it quit, an error ends it) ``run_worker`` starts a fresh
worker after a backoff. It returns only when asked to stop (SIGTERM/SIGINT) or, with
``--burst``, when the queues are empty.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from typing import Any

from flask import Flask
from redis.exceptions import RedisError
from rq.exceptions import StopRequested
from rq.worker import HerokuWorker

from .extensions import db
from .jobqueue import get_queue, reconcile, redis_connection, settle_lost_job
from .timers import fire_in_app

log = logging.getLogger(__name__)

#: Longest pause between two attempts to get the worker going again.
MAX_RESTART_PAUSE = 10.0
#: Seconds a worker spends firing due timers per beat; what is left fires on the next one.
TIMER_BUDGET = 5.0


class AppWorker(HerokuWorker):
    """An RQ worker whose jobs run in the app's context, and which reconciles lost jobs
    every ``WEBFLOW_RECONCILE_SECONDS``, idle or busy with a job."""

    app: Flask
    stop_asked = False

    def request_stop(self, signum, frame):  # type: ignore[no-untyped-def]
        self.stop_asked = True  # RQ's loop then ends normally: tell that from a lost Redis
        super().request_stop(signum, frame)
    parent_pid = 0
    timers_fired_at = float("-inf")
    #: True while the parent watches a running job (see ``heartbeat``).
    monitoring = False
    timer_thread: threading.Thread | None = None

    def subscribe(self) -> None:
        """RQ's own, with a pubsub thread that looks for the stop every second (RQ: 60 s).

        redis-py's ``stop()`` joins that thread without a timeout, and the thread, once it
        has read the reply to RQ's UNSUBSCRIBE, waits ``sleep_time`` for a subscription
        that never comes: about one teardown in three (a burst worker's exit, a stop, the
        fresh worker after a lost Redis) hung for a minute."""
        self.log.info("Worker %s: subscribing to channel %s", self.name, self.pubsub_channel_name)
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub_thread = self.pubsub.run_in_thread(  # type: ignore[assignment]
            sleep_time=1, daemon=True, exception_handler=self._pubsub_exception_handler)

    def main_work_horse(self, job, queue):  # type: ignore[no-untyped-def]
        # The forked horse must not reuse the parent's pooled database connections.
        with self.app.app_context():
            db.engine.dispose(close=False)
        return super().main_work_horse(job, queue)

    def perform_job(self, job, queue, *args, **kwargs):  # type: ignore[no-untyped-def]
        with self.app.app_context():
            return super().perform_job(job, queue, *args, **kwargs)

    def run_maintenance_tasks(self) -> None:
        super().run_maintenance_tasks()
        self.reconcile_if_due()

    def maintain_heartbeats(self, job, execution):  # type: ignore[no-untyped-def]
        # Called every few seconds while a job runs: a Redis outage must not end the
        # monitoring (RQ would quit and leave the horse without a parent).
        try:
            super().maintain_heartbeats(job, execution)
        except RedisError as exc:
            log.warning("heartbeat for job %s failed (%s); still watching the job", job.id, exc)
        self.reconcile_if_due()

    def handle_work_horse_killed(self, job, retpid, ret_val, rusage):  # type: ignore[no-untyped-def]
        """The horse died (killed, crashed, or ended by the timeout): that attempt is over.
        Settle it now instead of waiting for the reconciler."""
        super().handle_work_horse_killed(job, retpid, ret_val, rusage)
        how = f"signal {os.WTERMSIG(ret_val)}" if ret_val and os.WIFSIGNALED(ret_val) else f"status {ret_val}"
        with self.app.app_context():
            try:
                settle_lost_job(int(job.args[0]), job.id, f"its work horse died ({how})")
            except Exception:
                log.exception("could not settle job %s after its work horse died", job.id)
            finally:
                db.session.remove()

    def reconcile_if_due(self) -> None:
        interval = float(self.app.config.get("WEBFLOW_RECONCILE_SECONDS", 15))
        last = getattr(self, "_last_reconcile", None)
        if last is not None and time.monotonic() - last < interval:
            return
        self._last_reconcile = time.monotonic()
        with self.app.app_context():
            try:
                settled = reconcile(self.app)
                if settled:
                    log.warning("reconciler settled lost job tasks: %s", settled)
            except Exception as exc:
                log.warning("job reconciler could not run (%s); next pass in %ss", exc, interval)
            finally:
                db.session.remove()


    def heartbeat(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        # RQ beats every few seconds while idle and while a job runs: the worker fires due
        # timers on that beat (in the parent only, never in a work horse).
        super().heartbeat(*args, **kwargs)
        interval = float(self.app.config["WEBFLOW_TIMER_INTERVAL"])
        if os.getpid() != self.parent_pid or time.monotonic() - self.timers_fired_at < interval:
            return
        if self.timer_thread is not None and self.timer_thread.is_alive():
            return  # the last round still fires
        self.timers_fired_at = time.monotonic()
        if not self.monitoring:
            # Idle: no job's heartbeat waits for this. Bounded, so the beat is not late for long.
            fire_in_app(self.app, max_seconds=TIMER_BUDGET)
            return
        # While a job runs, the job's heartbeat is sent from this very beat. The budget is
        # only checked between timers: one slow timer (a slow step after it) held the beat
        # back past WEBFLOW_JOB_LOST_SECONDS, another worker's reconciler took the job for
        # lost and it ran twice. So the round runs on a thread of its own; it is joined
        # before the job's monitoring ends (no thread is left when RQ forks again).
        self.timer_thread = threading.Thread(target=fire_in_app, args=(self.app,),
                                             kwargs={"max_seconds": TIMER_BUDGET},
                                             name="webflow-timers", daemon=True)
        self.timer_thread.start()

    def monitor_work_horse(self, job, queue, execution):  # type: ignore[no-untyped-def]
        self.monitoring = True
        try:
            return super().monitor_work_horse(job, queue, execution)
        finally:
            self.monitoring = False
            if self.timer_thread is not None:
                self.timer_thread.join()  # before RQ forks a horse or a scheduler again
                self.timer_thread = None


def build_worker(app: Flask, queues: list[str]) -> AppWorker:
    lost = float(app.config.get("WEBFLOW_JOB_LOST_SECONDS", 30))
    reconcile_every = float(app.config.get("WEBFLOW_RECONCILE_SECONDS", 15))
    # RQ's defaults notice a dead worker after ~7 minutes. Heartbeats at least three times
    # per "lost" period; an idle worker wakes at least every 5 s (its dequeue timeout is
    # the TTL minus 15 s) to reconcile.
    monitoring = max(1, min(5, int(lost // 3)))
    return AppWorker(
        [get_queue(app, name) for name in queues],
        connection=redis_connection(app),
        worker_ttl=15 + max(1, min(5, int(reconcile_every))),
        job_monitoring_interval=monitoring,
        maintenance_interval=max(1, int(reconcile_every)),
    )


def run_worker(app: Flask, queues: list[str], burst: bool = False) -> None:
    """Run the worker until stopped (or until the queues are empty with ``burst``),
    starting it again with backoff when Redis went away under it."""
    if not app.config.get("REDIS_URL"):
        raise SystemExit("REDIS_URL is not set: without Redis, jobs run in the web process.")
    AppWorker.app = app
    AppWorker.parent_pid = os.getpid()
    pause = 1.0
    stopping = False

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True
        raise StopRequested()

    while True:
        worker: AppWorker | None = None
        started = time.monotonic()
        try:
            worker = build_worker(app, queues)  # this talks to Redis already
            worker.work(burst=burst, with_scheduler=True, logging_level="INFO")
        except (StopRequested, SystemExit, KeyboardInterrupt):
            return
        except Exception as exc:
            log.error("worker ended: %s", exc)
        if stopping or (worker is not None and (burst or worker.stop_asked or worker._stop_requested)):
            return
        if time.monotonic() - started > 60:
            pause = 1.0  # it ran a good while: a fresh outage starts the backoff again
        log.error("the worker lost Redis; starting a new worker in %.0fs", pause)
        # Between two workers, SIGTERM/SIGINT end the loop at once.
        previous = signal.signal(signal.SIGTERM, stop), signal.signal(signal.SIGINT, stop)
        try:
            time.sleep(pause)
        except StopRequested:
            return
        finally:
            signal.signal(signal.SIGTERM, previous[0])
            signal.signal(signal.SIGINT, previous[1])
        pause = min(pause * 2, MAX_RESTART_PAUSE)
