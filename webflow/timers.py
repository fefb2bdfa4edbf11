"""Who calls ``fire_due_timers`` in a deployment: RQ workers, or a thread of the web process.

With ``REDIS_URL`` set, every ``flask webflow worker`` fires due timers every
``WEBFLOW_TIMER_INTERVAL`` seconds (see ``worker.py``). Without Redis, each web process
starts one daemon thread on its first request that does the same, so the demo works on a
bare machine. Several of either at once are safe: each timer fires exactly once.
``WEBFLOW_TIMER_THREAD`` = ``auto`` (the thread only without Redis and outside tests),
``1`` (always) or ``0`` (never).
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from flask import Flask

from .core.timers import fire_due_timers
from .extensions import db
from .notifications import requeue_unsent

log = logging.getLogger(__name__)


def fire_in_app(app: Flask, max_seconds: float | None = None) -> int:
    """Fire the due timers in a fresh app context; errors are logged, never raised."""
    with app.app_context():
        try:
            fired = fire_due_timers(session=db.session(), max_seconds=max_seconds)
            if fired:
                log.info("fired %s due timer%s", fired, "s" if fired != 1 else "")
            # Notifications whose job was lost (Redis down) or whose sending failed.
            requeue_unsent(app)
            return fired
        except Exception:
            log.exception("firing due timers failed; the next round tries again")
            db.session.rollback()
            return 0
        finally:
            db.session.remove()


def timer_thread_wanted(app: Flask) -> bool:
    setting = str(app.config.get("WEBFLOW_TIMER_THREAD", "auto")).lower()
    if setting in ("1", "true", "yes", "on"):
        return True
    if setting in ("0", "false", "no", "off"):
        return False
    return not app.config.get("REDIS_URL") and not app.testing


class TimerThread:
    """A daemon thread firing due timers every ``interval`` seconds, one per process."""

    def __init__(self, app: Flask, interval: float) -> None:
        self.app = app
        self.interval = interval
        self.pid = os.getpid()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, name="webflow-timers", daemon=True)

    def run(self) -> None:
        while not self.stopped.is_set():
            fire_in_app(self.app)
            self.stopped.wait(self.interval)

    def stop(self, timeout: float = 10) -> None:
        self.stopped.set()
        self.thread.join(timeout)


_lock = threading.Lock()


def ensure_timer_thread(app: Flask) -> TimerThread:
    """The process's timer thread, started if it is not running (a forked child starts its own)."""
    with _lock:
        current: TimerThread | None = app.extensions.get("webflow_timer_thread")
        if current is None or current.pid != os.getpid() or not current.thread.is_alive():
            current = TimerThread(app, float(app.config["WEBFLOW_TIMER_INTERVAL"]))
            app.extensions["webflow_timer_thread"] = current
            current.thread.start()
        return current


def init_app(app: Flask) -> None:
    """Start the timer thread with the first request (never in CLI commands or the worker)."""
    if not timer_thread_wanted(app):
        return

    @app.before_request
    def _start_timer_thread() -> Any:
        current = app.extensions.get("webflow_timer_thread")
        if current is None or current.pid != os.getpid():
            ensure_timer_thread(app)
        return None
