"""A timer flow and the child-process driver of the timer race (importable by spawned children)."""

from __future__ import annotations

import traceback
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from webflow import Flow, fire_due_timers, flow, this
from webflow.core import create_engine, use_session

BARRIER_TIMEOUT = 30


class WaitingFlow(Flow):
    """Waits an hour, then notes that it went on"""

    start = flow.StartFunction().Next(this.wait)
    wait = flow.Timer(timedelta(hours=1)).Next(this.note)
    note = flow.Handler(this.count_run).Next(this.end)
    end = flow.End()

    def count_run(self, activation: Any) -> None:
        data = activation.process.data
        activation.process.data = {**data, "runs": data.get("runs", 0) + 1}


def fire_together(db_url: str, now: datetime, barrier: Any, results: Any) -> None:
    """Wait for the others, then fire every due timer; report how many this child fired."""
    engine = create_engine(db_url)
    try:
        with Session(engine) as session, use_session(session):
            barrier.wait(BARRIER_TIMEOUT)
            fired = fire_due_timers(now=now, session=session)
        results.put(("ok", {"fired": fired}))
    except Exception:
        results.put(("error", traceback.format_exc()))
    finally:
        engine.dispose()


class DeadlineFlow(Flow):
    """An approval escalated after an hour"""

    start = flow.StartFunction().Next(this.approve)
    approve = flow.View().OnTimeout(this.escalate, after=timedelta(hours=1)).Next(this.end)
    escalate = flow.Handler(lambda activation: None).Next(this.end)
    end = flow.End()


def complete_approvals(db_url: str, task_ids: list[int], barrier: Any, results: Any) -> None:
    """Wait for the others, then complete each (assigned) approval; report how many went through."""
    from webflow import STATUS, TransitionNotAllowed
    from webflow.models import Task, User

    engine = create_engine(db_url)
    try:
        with Session(engine) as session, use_session(session):
            barrier.wait(BARRIER_TIMEOUT)
            done = 0
            for task_id in task_ids:
                task = session.get(Task, task_id, populate_existing=True)
                user = session.get(User, task.owner_id)
                activation = task.activate()
                try:
                    if task.status == STATUS.ASSIGNED:
                        activation.prepare(data={"ok": True}, user=user)
                        activation.done()
                        done += 1
                except TransitionNotAllowed:
                    session.rollback()
        results.put(("ok", {"done": done}))
    except Exception:
        results.put(("error", traceback.format_exc()))
    finally:
        engine.dispose()


def fire_or_complete(role: str, db_url: str, now: datetime, task_ids: list[int], barrier: Any,
                     results: Any) -> None:
    """One child fires the due timers, the other completes the approvals, at the same moment."""
    if role == "fire":
        fire_together(db_url, now, barrier, results)
    else:
        complete_approvals(db_url, task_ids, barrier, results)
