"""Four OS processes fire the same 200 due timers at the same moment: each fires exactly once."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from timer_flows import WaitingFlow, fire_together

from webflow import STATUS
from webflow.models import Process, Task, TaskEvent

TIMERS = 200
CALLERS = 4


def test_concurrent_callers_fire_every_timer_exactly_once(db_url, session, children):  # type: ignore[no-untyped-def]
    process_ids = [WaitingFlow.start.run().id for _ in range(TIMERS)]
    session.commit()
    now = datetime.now(UTC) + timedelta(hours=2)

    reports = children.run(fire_together, lambda n, barrier, results: (db_url, now, barrier, results), CALLERS)

    assert sum(r["fired"] for r in reports) == TIMERS
    session.expire_all()
    timers = session.scalars(sa.select(Task).where(Task.node_name == "wait")).all()
    assert len(timers) == TIMERS and {t.status for t in timers} == {STATUS.DONE}
    fires = Counter(session.scalars(sa.select(TaskEvent.task_id).where(TaskEvent.transition == "fire")))
    assert fires == Counter({t.id: 1 for t in timers})
    processes = session.scalars(sa.select(Process).where(Process.id.in_(process_ids))).all()
    assert {p.status for p in processes} == {STATUS.DONE}
    assert Counter(p.data["runs"] for p in processes) == Counter({1: TIMERS})
    notes = Counter(session.scalars(sa.select(Task.process_id).where(Task.node_name == "note")))
    assert set(notes.values()) == {1}
