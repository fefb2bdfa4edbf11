"""Four OS processes fire the same 200 due timers at the same moment: each fires exactly once."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from timer_flows import DeadlineFlow, WaitingFlow, fire_or_complete, fire_together

from webflow import STATUS
from webflow.models import Process, Task, TaskEvent, User

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


def test_a_view_completed_while_its_timeout_fires_ends_one_way_only(db_url, session, children):  # type: ignore[no-untyped-def]

    ann = User(username="ann")
    session.add(ann)
    session.commit()
    approvals = []
    for _ in range(40):
        process = DeadlineFlow.start.run()
        task = process.get_task(DeadlineFlow.approve)
        task.activate().assign(ann)
        approvals.append(task.id)
    session.commit()
    now = datetime.now(UTC) + timedelta(hours=2)

    roles = ["fire", "complete"]
    approvals.reverse()  # the timers fire oldest first, the approvals are done newest first: they meet
    reports = children.run(
        fire_or_complete, lambda n, barrier, results: (roles[n], db_url, now, approvals, barrier, results), 2)
    completed = sum(r.get("done", 0) for r in reports)
    fired = sum(r.get("fired", 0) for r in reports)
    assert completed + fired == 40  # each approval went exactly one way
    session.expire_all()
    for task_id in approvals:
        approve = session.get(Task, task_id)
        timer, = [t for t in approve.leading if t.node_name == "approve_timeout"]
        escalations = [t for t in timer.leading if t.node_name == "escalate"]
        if approve.status == STATUS.DONE:
            assert timer.status == STATUS.CANCELED and escalations == []
        else:
            assert approve.status == STATUS.CANCELED and timer.status == STATUS.DONE
            assert [t.status for t in escalations] == [STATUS.DONE]
        assert approve.process.status == STATUS.DONE
