"""Where job tasks go after commit, and the one function every worker runs for them.

The app installs a dispatcher (RQ when ``REDIS_URL`` is set); without one, jobs run in
this process through ``run_job``, the same entry point an RQ worker uses.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from .context import Context, get_session
from .models import Task
from .status import STATUS
from .transaction import unit_of_work

log = logging.getLogger(__name__)

Dispatcher = Callable[[int, str, str, float, int], Any]


def run_inline(task_id: int, job_id: str, queue: str, delay: float, timeout: int) -> None:
    """Run the job now, in this process (no queue server)."""
    if delay:
        time.sleep(min(delay, 5))
    run_job(task_id)


_dispatcher: Dispatcher = run_inline


def set_dispatcher(dispatcher: Dispatcher | None) -> None:
    """Choose where jobs go (None: run inline)."""
    global _dispatcher
    _dispatcher = dispatcher or run_inline


def dispatch(task_id: int, job_id: str, queue: str, delay: float = 0, timeout: int = 600) -> None:
    _dispatcher(task_id, job_id, queue, delay, timeout)


def _load(session: Session, task_id: int) -> Task | None:
    return session.get(Task, task_id, populate_existing=True)


def run_job(task_id: int, session: Session | None = None) -> str:
    """Run a job task once: start under the lock, run outside it, finish under it.

    Safe to call twice for the same task (a redelivered job): a missing, CANCELED, DONE or
    ERROR task is left alone, and a STARTED one (its worker died) restarts.
    """
    session = session or get_session()
    with Context(propagate_exception=False):
        with unit_of_work(session) as uow:
            task = _load(session, task_id)
            if task is None:
                return "missing"
            uow.lock(task.process_id)
            session.refresh(task)
            activation = task.activate()
            status = activation.get_status()
            if status == STATUS.SCHEDULED:
                activation.start()
            elif status == STATUS.STARTED:
                activation.restart()  # type: ignore[attr-defined]
            else:
                return f"skipped: task is {status}"
            process_id = task.process_id
            node = activation.flow_task

        try:
            node._func(activation)  # type: ignore[attr-defined]
            failure = None
        except Exception:
            failure = traceback.format_exc()
            log.warning("job task %s failed:\n%s", task_id, failure)
        if session.in_transaction():
            session.commit()  # end whatever the function read, keep what it wrote

        with unit_of_work(session, process_id):
            task = _load(session, task_id)
            if task is None or task.status != STATUS.STARTED:
                return f"discarded: task is {task.status if task else 'missing'}"
            activation = task.activate()
            if failure is None:
                activation.done()  # type: ignore[attr-defined]
                return "done"
            if task.attempts <= node.retries:  # type: ignore[attr-defined]
                activation.retry(delay=node.backoff * 2 ** (task.attempts - 1))  # type: ignore[attr-defined]
                return "retrying"
            activation.error(failure)  # type: ignore[attr-defined]
            return "error"
