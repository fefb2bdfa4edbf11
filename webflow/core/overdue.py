"""Noticing overdue tasks: once per task and due date, whoever looks, however many look.

A task is overdue when someone has it (ASSIGNED) and its ``due`` has passed. The pass
reads such tasks that have no ``OverdueNotice`` for their current due date yet (through
``ix_task_assigned_due``), and claims each by inserting that notice with ``ON CONFLICT DO
NOTHING``: of several callers at the same moment (web threads, RQ workers) exactly one
inserts it (PostgreSQL makes the others wait for its commit, then skips; SQLite holds one
writer at a time). Only the caller whose insert counted sends ``task_overdue``, inside the
same transaction: a receiver's rows (a notification to send) commit with the notice or not
at all.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from . import signals
from .context import get_session
from .models import OWNED_DUE_ROWS, OverdueNotice, Task, utcnow
from .transaction import unit_of_work

log = logging.getLogger(__name__)

#: Overdue tasks noticed per transaction.
BATCH = 100


def unnoticed_overdue_query(now: datetime) -> sa.Select[int, datetime | None]:
    """Assigned tasks past their due date at ``now`` without a notice for that date."""
    noticed = sa.exists().where(OverdueNotice.task_id == Task.id, OverdueNotice.due == Task.due)
    # The index's own condition spelled out literally: SQLite uses a partial index only
    # for a WHERE that repeats its terms (a bound status parameter would not).
    return (sa.select(Task.id, Task.due)
            .where(sa.text(OWNED_DUE_ROWS), Task.due <= now, Task.owner_id.is_not(None), ~noticed)
            .order_by(Task.due, Task.id))


def notice_overdue_tasks(now: datetime | None = None, session: Session | None = None,
                         max_seconds: float | None = None) -> int:
    """Notice every task that became overdue by ``now`` and was not noticed yet; send
    ``task_overdue`` for each (once, across all callers) and return how many this call noticed.

    ``max_seconds``: no new batch after this long (the first always runs; the rest waits
    for the next call)."""
    now = now or utcnow()
    session = session or get_session()
    deadline = None if max_seconds is None else time.monotonic() + max_seconds
    noticed = 0
    passed: set[int] = set()
    while True:
        with unit_of_work(session):
            query = unnoticed_overdue_query(now).limit(BATCH)
            if passed:
                query = query.where(Task.id.not_in(sorted(passed)))
            rows = [(row[0], row[1]) for row in session.execute(query)]
            for task_id, due in rows:
                try:
                    # One savepoint per task: a receiver that raises takes back its own
                    # task's notice and rows only. Before, it rolled back the whole batch,
                    # and since that task stays first in line (soonest due), no overdue
                    # task was ever noticed again, and fire_due_timers raised every round.
                    with session.begin_nested():
                        claimed = _claim(session, task_id, due, now)
                        if claimed:
                            _send(session, task_id, due)
                except Exception:
                    log.exception("overdue task %s: a task_overdue receiver failed; "
                                  "the next round tries it again", task_id)
                    claimed = False
                if claimed:
                    noticed += 1
                else:
                    passed.add(task_id)  # another caller noticed it a moment ago, or it failed
        if len(rows) < BATCH or (deadline is not None and time.monotonic() >= deadline):
            return noticed


def _claim(session: Session, task_id: int, due: datetime | None, now: datetime) -> bool:
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    result = session.execute(
        dialect.insert(OverdueNotice).values(task_id=task_id, due=due, noticed=now)
        .on_conflict_do_nothing().returning(OverdueNotice.task_id))
    return result.first() is not None


def _send(session: Session, task_id: int, due: datetime | None) -> None:
    task = session.get(Task, task_id)
    if task is None or task.owner is None:
        return
    signals.task_overdue.send(task.flow_class, process=task.process, task=task, user=task.owner, due=due)
