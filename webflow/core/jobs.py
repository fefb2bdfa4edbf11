"""Where job tasks go after commit, and the one function every worker runs for them.

The app installs a dispatcher (RQ when ``REDIS_URL`` is set); without one, jobs run in
this process through ``run_job``, the same entry point an RQ worker uses.

A job function runs outside the process lock, so it never writes the process row itself:
what it changes in ``activation.process.data`` / ``activation.task.data`` (or returns as
a dict) is taken as a patch against what it read, and the engine applies that patch
under the lock in the transaction that finishes the task. A key that someone else
changed meanwhile to another value is a conflict: the attempt fails loudly (and is
retried like any failure), nothing is overwritten unseen.
"""

from __future__ import annotations

import copy
import logging
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from .context import Context, get_session
from .exceptions import FlowLockFailed, StaleData, failure_text
from .json_data import same_json, unstorable
from .models import Task, is_row_id
from .status import STATUS
from .transaction import UnitOfWork, is_unreachable, unit_of_work

log = logging.getLogger(__name__)

Dispatcher = Callable[[int, str, str, float, int], Any]
T = TypeVar("T")

#: How long a job keeps retrying a transaction while the database cannot be reached or
#: stays locked, before the attempt gives up (and the reconciler takes over).
DB_RETRY_SECONDS = 60.0
_MISSING = object()


def run_inline(task_id: int, job_id: str, queue: str, delay: float, timeout: int) -> None:
    """Run the job now, in this process (no queue server)."""
    if delay:
        time.sleep(min(delay, 5))
    run_job(task_id, token=job_id)


_dispatcher: Dispatcher = run_inline


def set_dispatcher(dispatcher: Dispatcher | None) -> None:
    """Choose where jobs go (None: run inline)."""
    global _dispatcher
    _dispatcher = dispatcher or run_inline


def dispatch(task_id: int, job_id: str, queue: str, delay: float = 0, timeout: int = 600) -> None:
    _dispatcher(task_id, job_id, queue, delay, timeout)


def _load(session: Session, task_id: int) -> Task | None:
    if not is_row_id(task_id):
        return None  # names no task: "missing", as on SQLite (PostgreSQL raised a DataError)
    return session.get(Task, task_id, populate_existing=True)


def with_db_retry(session: Session, step: Callable[[], T], seconds: float = DB_RETRY_SECONDS) -> T:
    """Run a transaction, again while the database is unreachable or locked (bounded).

    Each step re-reads and re-checks everything under the lock, so running it again after
    a failure whose outcome is unknown (a dropped COMMIT) is harmless."""
    deadline = time.monotonic() + seconds
    pause = 0.2
    while True:
        try:
            return step()
        except Exception as exc:
            if not (isinstance(exc, FlowLockFailed) or is_unreachable(exc)):
                raise
            session.rollback()
            if time.monotonic() + pause > deadline:
                raise
            log.warning("database unavailable (%s); trying again in %.1fs", exc, pause)
            time.sleep(pause * (1 + random.random() / 2))
            pause = min(pause * 2, 5.0)


def data_patch(before: dict[str, Any], after: dict[str, Any] | None,
               returned: Any = None) -> dict[str, tuple[Any, Any]]:
    """What changed between two versions of a data dict: ``{key: (old, new)}``, with
    ``_MISSING`` for an absent key; a returned dict's items are changes too."""
    after = dict(after or {})
    if isinstance(returned, dict):
        after.update(copy.deepcopy(returned))
    patch: dict[str, tuple[Any, Any]] = {}
    for key in before.keys() | after.keys():
        old, new = before.get(key, _MISSING), after.get(key, _MISSING)
        if not same_json(old, new):  # not !=: True for 1, 1.0 for 1 was a change lost
            patch[key] = (old, new)
    return patch


def apply_patch(what: str, current: dict[str, Any] | None,
                patch: dict[str, tuple[Any, Any]]) -> dict[str, Any]:
    """The current data with the patch applied; StaleData when a patched key was changed
    by someone else to a value other than the patch's."""
    merged = dict(current or {})
    for key, (old, new) in sorted(patch.items()):
        now = merged.get(key, _MISSING)
        if not same_json(now, old) and not same_json(now, new):
            raise StaleData(
                f"{what}[{key!r}] changed while the job ran (it read {_show(old)}, it is now "
                f"{_show(now)}, the job wrote {_show(new)}); nothing was applied"
            )
        if new is _MISSING:
            merged.pop(key, None)
        else:
            merged[key] = new
    return merged


def _show(value: Any) -> str:
    return "nothing" if value is _MISSING else repr(value)[:80]


def patch_problem(what: str, patch: dict[str, tuple[Any, Any]]) -> str | None:
    """Why the job's patch cannot be stored, or None. Checked before the attempt is
    finished: a value JSON cannot hold (a datetime, a Decimal, a set, NaN), returned or
    written into ``process.data``, failed the commit that finishes the task, so the task
    stayed STARTED (without Redis for good; with RQ until the reconciler found the failed
    job). Now it fails the attempt like an exception of the job, with this reason."""
    for key, (_old, new) in sorted(patch.items(), key=lambda item: repr(item[0])):
        if not isinstance(key, str):
            return f"{what} keys must be strings, the job wrote the key {key!r}"
        if new is _MISSING:
            continue
        problem = unstorable(new)
        if problem is not None:
            return f"the job wrote {what}[{key!r}] that cannot be stored as JSON: {problem}"
    return None


def run_job(task_id: int, session: Session | None = None, token: str | None = None) -> str:
    """Run one delivery of a job task: start under the lock, run outside it, finish under it.

    ``token`` is the delivery's job id: a delivery whose job id is no longer the task's
    ``external_task_id`` (the task was queued again meanwhile) does nothing, so only one
    copy's result ever counts. A missing, CANCELED, DONE or ERROR task is left alone.
    Every started run is an attempt; a failure is retried with backoff until the node's
    ``retries`` are spent, then the task goes to ERROR with the reason."""
    session = session or get_session()
    with Context(propagate_exception=False):
        started = with_db_retry(session, lambda: _start(session, task_id, token))
        if isinstance(started, str):
            return started
        activation, node = started
        token = activation.task.external_task_id
        process, task = activation.process, activation.task
        read = copy.deepcopy(dict(process.data or {}))
        read_task = copy.deepcopy(dict(task.data or {}))
        patches: tuple[dict[str, tuple[Any, Any]], dict[str, tuple[Any, Any]]] = ({}, {})
        failure: str | None = None
        try:
            returned = node._func(activation)
            patches = (data_patch(read, process.data, returned), data_patch(read_task, task.data))
            failure = (patch_problem("process.data", patches[0])
                       or patch_problem("task.data", patches[1]))
            # What the function wrote to the process and task rows outside the lock is
            # dropped here and applied as the patch above; its other writes are kept.
            session.expire(process)
            session.expire(task)
            session.commit()
        except (Exception, SystemExit):
            # SystemExit too (a library calling sys.exit()): the attempt failed. Before, it
            # left run_job with the task STARTED: for good on a thread without Redis, inline
            # out of the caller that had committed, with RQ until the reconciler came by.
            session.rollback()
            failure = failure_text()
        if failure is not None:
            log.warning("job task %s failed:\n%s", task_id, failure)
        try:
            return with_db_retry(session, lambda: _finish(session, task_id, token, patches, failure))
        except Exception as exc:
            if isinstance(exc, FlowLockFailed) or is_unreachable(exc):
                raise  # the database is away: the attempt is left to the reconciler
            # Finishing failed for a reason that trying again will not cure (what came after
            # the job wrote something the database refuses, say). Before, the exception left
            # the task STARTED: for good without Redis, and with RQ until the reconciler
            # took the failed job for lost. The attempt ends here instead, with the reason.
            session.rollback()
            reason = f"finishing the job failed:\n{failure_text()}"
            log.warning("job task %s: %s", task_id, reason)
            return with_db_retry(session, lambda: _end_attempt(session, task_id, token, reason))


def _end_attempt(session: Session, task_id: int, token: str | None, reason: str) -> str:
    """End the attempt of delivery ``token`` without its result (if it is still current)."""
    with unit_of_work(session) as uow:
        task = _lock_task(session, uow, task_id)
        if task is None or task.status != STATUS.STARTED or task.external_task_id != token:
            return "discarded: the task moved on while it finished"
        return str(task.activate().end_attempt(reason))


def _lock_task(session: Session, uow: UnitOfWork, task_id: int) -> Task | None:
    """The task re-read under its process's lock, or None when it is gone."""
    task = _load(session, task_id)
    if task is not None:
        uow.lock(task.process_id)
        session.refresh(task)
    return task


def _start(session: Session, task_id: int, token: str | None) -> str | tuple[Any, Any]:
    with unit_of_work(session) as uow:
        task = _lock_task(session, uow, task_id)
        if task is None:
            return "missing"
        activation = task.activate()
        status = activation.get_status()
        if status not in (STATUS.SCHEDULED, STATUS.STARTED):
            return f"skipped: task is {status}"
        if token is not None and task.external_task_id != token:
            return f"skipped: job {token} is not the task's current job {task.external_task_id}"
        if status == STATUS.SCHEDULED:
            activation.start()
        else:
            # This very job was delivered again: RQ took its earlier run for dead. That
            # run was an attempt; restart counts another one, within the budget.
            if not activation.attempts_left():
                activation.error(f"attempt {task.attempts} ended without a result (job "
                                 f"{task.external_task_id} was delivered again); no attempts left")
                return "error"
            activation.restart(delivery=task.external_task_id)
        return activation, activation.flow_task


def _finish(session: Session, task_id: int, token: str | None,
            patches: tuple[dict[str, tuple[Any, Any]], dict[str, tuple[Any, Any]]],
            failure: str | None) -> str:
    with unit_of_work(session) as uow:
        task = _lock_task(session, uow, task_id)
        if task is None:
            return "discarded: task is missing"
        if task.status != STATUS.STARTED or task.external_task_id != token:
            return (f"discarded: task is {task.status} under job {task.external_task_id}, "
                    f"this run was job {token}")
        process = task.process
        session.refresh(process)
        activation = task.activate()
        if failure is None:
            try:
                data = apply_patch("process.data", process.data, patches[0])
                task_data = apply_patch("task.data", task.data, patches[1])
            except StaleData as exc:
                failure = str(exc)
                log.warning("job task %s: %s", task_id, failure)
            else:
                if patches[0]:
                    process.data = data
                    process.summary = activation.flow_class.instance.summary(process)
                if patches[1]:
                    task.data = task_data
        if failure is None:
            activation.done()
            return "done"
        return str(activation.end_attempt(failure))
