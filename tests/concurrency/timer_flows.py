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
