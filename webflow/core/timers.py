"""Firing due timers: each exactly once, whoever calls, however many call at once.

Timers are task rows (``flow.Timer`` and ``OnTimeout`` tasks) waiting in SCHEDULED with
``due`` = when they fire. A caller reads a batch of due ones through the timer index
(``ix_task_timer_due``: waiting timers only, by due time, so future timers are never read);
on PostgreSQL with ``FOR UPDATE SKIP LOCKED``, which passes over timers another caller is
firing right now. That read commits at once (no lock is held while waiting for another),
then each timer is fired in a unit of work of its own holding its process's lock, after
checking again that it still waits and is due: of two callers that picked the same timer,
the second finds it DONE. A caller that dies mid-fire rolls back, so the timer is still
due for the next caller: none is lost, none fires twice.
"""

from __future__ import annotations

import logging
import time
import traceback
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from .activation import record_event
from .context import Context, get_session
from .exceptions import FlowLockFailed, TransitionNotAllowed
from .fsm import process_not_canceled
from .models import TIMER_TYPES, Task, is_row_id, utcnow
from .nodes.timer import aware_utc, check_priority, note_on_event
from .overdue import notice_overdue_tasks
from .status import FINISHED, STATUS
from .transaction import unit_of_work

log = logging.getLogger(__name__)

#: Timers read per query; each is then fired in a transaction of its own.
BATCH = 100


def due_timers_query(now: datetime) -> sa.Select[int, int, datetime | None]:
    """Waiting timers due at ``now``, soonest first (answered by the timer index)."""
    return (sa.select(Task.id, Task.process_id, Task.due)
            .where(Task.status == STATUS.SCHEDULED, Task.flow_task_type.in_(TIMER_TYPES),
                   Task.due <= now)
            .order_by(Task.due, Task.id))


def _pick(session: Session, now: datetime, passed: set[int], limit: int,
          newest: int | None = None) -> list[tuple[int, int]]:
    query = due_timers_query(now).limit(limit)
    if newest is not None:
        query = query.where(Task.id <= newest)
    if passed:
        query = query.where(Task.id.not_in(sorted(passed)))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=Task)
    if session.in_transaction():
        session.commit()
    try:
        rows = [(row[0], row[1]) for row in session.execute(query)]
    except BaseException:
        session.rollback()
        raise
    session.commit()  # the row locks only served to skip timers being fired now
    return rows


def fire_timer(session: Session, task_id: int, now: datetime | None = None,
               process_id: int | None = None) -> bool:
    """Fire one timer if it still waits (and is due at ``now``, when given); True if it fired."""
    if not is_row_id(task_id):
        return False  # names no timer (PostgreSQL raised a DataError for an id above its int)
    if process_id is None:
        process_id = session.scalar(sa.select(Task.process_id).where(Task.id == task_id))
        if process_id is None:
            return False
    with unit_of_work(session, process_id):
        task = session.get(Task, task_id, populate_existing=True)
        if (task is None or task.status != STATUS.SCHEDULED or task.flow_task_type not in TIMER_TYPES
                or task.due is None or (now is not None and aware_utc(task.due) > now)):
            return False
        task.activate().fire()
    return True


def fire_or_fail(session: Session, task_id: int, now: datetime | None = None,
                 process_id: int | None = None) -> bool:
    """``fire_timer``; when the firing cannot be committed (what came after the timer left a
    value the database refuses only when the rows are written, past every node's guard),
    the timer is stored as ERROR with the reason instead, for a manager to retry. True if
    the timer fired or was stored as failed. A busy process (FlowLockFailed) is raised."""
    try:
        return fire_timer(session, task_id, now, process_id)
    except FlowLockFailed:
        raise
    except Exception:
        session.rollback()
        reason = traceback.format_exc()
        log.error("timer task %s could not be fired:\n%s", task_id, reason)
        if process_id is None:
            process_id = session.scalar(sa.select(Task.process_id).where(Task.id == task_id))
        return process_id is not None and _fail_safely(session, task_id, process_id, reason)


def fail_timer(session: Session, task_id: int, process_id: int, reason: str) -> bool:
    """Store a waiting timer as ERROR with ``reason`` (its firing could not be committed);
    True if it was still waiting. It goes through the timer's own ``fire`` (SCHEDULED ->
    ERROR, as when what comes after it fails), so a manager retries it from the admin page."""
    with unit_of_work(session, process_id):
        task = session.get(Task, task_id, populate_existing=True)
        if task is None or task.status != STATUS.SCHEDULED or task.flow_task_type not in TIMER_TYPES:
            return False
        activation = task.activate()
        # Raised as the firing's error inside the timer's guard, which stores it as text a
        # row can hold (exceptions.failure_text).
        activation.failed_firing = reason  # type: ignore[attr-defined]
        activation.fire()
    return True


def fire_due_timers(now: datetime | None = None, session: Session | None = None,
                    max_seconds: float | None = None) -> int:
    """Fire every timer due at ``now`` (an aware datetime; default: the current time) and
    return how many this call fired; then notice the tasks that became overdue (the
    ``task_overdue`` signal, once per task and due date). A node after a timer that fails
    is stored as ERROR on the timer (an administrator can retry it); it does not stop the
    other timers.

    ``max_seconds``: stop firing after about this long, leaving the rest for the next call
    (a worker must get back to its heartbeat)."""
    now = aware_utc(now) if now is not None else utcnow()
    session = session or get_session()
    started = time.monotonic()
    fired = _fire_timers(now, session, max_seconds)
    # Then the tasks whose due date passed while someone has them (a timer that fired may
    # just have canceled or escalated one): each noticed once, see core/overdue.py.
    left = None if max_seconds is None else max(0.0, max_seconds - (time.monotonic() - started))
    try:
        notice_overdue_tasks(now, session, max_seconds=left)
    except FlowLockFailed:
        log.warning("overdue tasks: the database is busy; the next round notices them")
    return fired


def _fire_timers(now: datetime, session: Session, max_seconds: float | None) -> int:
    deadline = None if max_seconds is None else time.monotonic() + max_seconds
    fired = 0
    # Fired timers leave the index; the ones this call could not fire (another caller fired
    # them first, their process stayed busy) are passed over in the next batches.
    passed: set[int] = set()
    # Only timers that existed when the call began: a flow that loops back to a timer due
    # at once (a retry every 0 minutes, a due date already past) creates a new timer with
    # every firing, and picking those up too never returned. They fire on the next call.
    newest = session.scalar(sa.select(sa.func.max(Task.id)))  # _pick ends the read
    with Context(propagate_exception=False):
        while True:
            batch = _pick(session, now, passed, BATCH, newest)
            for task_id, process_id in batch:
                if deadline is not None and time.monotonic() > deadline:
                    return fired
                try:
                    # A firing that fails where no node's guard catches it (at the commit:
                    # what came after the timer wrote a value the database refuses, or a
                    # traceback with a NUL in it) ended the whole call before, and as this
                    # timer stays due and first in line, no timer fired ever again. Now the
                    # timer is stored as ERROR (a manager retries it) and the rest fire.
                    done = fire_or_fail(session, task_id, now, process_id)
                except FlowLockFailed:
                    log.warning("timer task %s: its process is busy; the next round fires it", task_id)
                    done = False
                fired += done
                if not done:
                    passed.add(task_id)
            if len(batch) < BATCH:
                return fired


def _fail_safely(session: Session, task_id: int, process_id: int, reason: str) -> bool:
    try:
        return fail_timer(session, task_id, process_id, f"firing the timer failed:\n{reason}")
    except Exception:
        session.rollback()
        log.exception("timer task %s could not be stored as failed either", task_id)
        return False


class Unchanged:
    """``change_due(task, UNCHANGED, priority)``: keep the due date the task has when the
    change runs (under the lock), whatever it was when the caller read it."""

    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED = Unchanged()


def change_due(task: Task, due: datetime | None | Unchanged, priority: int | None = None) -> None:
    """A manager's new due date (None: none; ``UNCHANGED``: keep it) and priority (None:
    keep it) for an unfinished task, audited.

    A waiting timer fires at its new due time; the boundary timers of a view that fire
    "at task.due" (``OnTimeout(after=None)``) move with it."""
    session = get_session()
    with unit_of_work(session, task.process_id):
        session.refresh(task)
        if task.status in FINISHED:
            raise TransitionNotAllowed(
                f"task {task.node_name} #{task.id} is {task.status}: its due date is final")
        if not process_not_canceled(task.activate()):
            # The engine's rule: a canceled process is final (the start task its undone
            # start leaves NEW took a due date and counted as overdue for good).
            raise TransitionNotAllowed(
                f"process {task.process_id} is CANCELED: the due date of task "
                f"{task.node_name} #{task.id} is final")
        old_due = aware_utc(task.due) if task.due is not None else None
        new_due = old_due if isinstance(due, Unchanged) else aware_utc(due) if due is not None else None
        if priority is not None:  # the rule a node's .Priority answers by, checked before anything moves
            priority = check_priority(priority, f"task {task.node_name} #{task.id}")
        is_timer = task.flow_task_type in TIMER_TYPES
        if is_timer and new_due is None:
            raise TransitionNotAllowed("a timer needs a time to fire at")
        # The waiting boundary timers that fire at this task's due date (OnTimeout(after=None)).
        followers = [] if new_due == old_due else [
            other for node in getattr(task.flow_task, "timeout_nodes", ()) if node.after is None
            for other in session.scalars(sa.select(Task).where(
                Task.process_id == task.process_id, Task.node_name == node.name,
                Task.token == task.token, Task.status == STATUS.SCHEDULED))]
        if new_due is None and followers:
            # Taking the date away left them due at the old one: the task timed out (an
            # escalation canceled it) at a date it no longer had.
            raise TransitionNotAllowed(
                f"task {task.node_name} #{task.id} times out at its due date: give it another "
                "date, not none")
        rescheduled = is_timer and task.status == STATUS.SCHEDULED and new_due != old_due
        if rescheduled:
            assert new_due is not None
            task.activate().reschedule(new_due)
        else:
            task.due = new_due
        changes = []
        if new_due != old_due:
            changes.append(f"due {_text(old_due)} -> {_text(new_due)}")
        if priority is not None and priority != task.priority:
            changes.append(f"priority {task.priority} -> {priority}")
            task.priority = priority
        if rescheduled:
            # The timer's own reschedule is this change's audit row: a change_due row beside
            # it told the same change twice (two rows, one press of Reschedule).
            note_on_event(task, "reschedule", "; ".join(changes))
        elif changes:
            record_event(session, task.process, task, "change_due", task.status, task.status,
                         "; ".join(changes))
        for other in followers:
            assert new_due is not None
            other.activate().reschedule(new_due)


def _text(value: datetime | None) -> str:
    return value.isoformat() if value is not None else "none"
