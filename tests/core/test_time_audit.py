"""Audit of timers, due dates and the overdue pass on the unhappy path, driven by
``fire_due_timers(now=...)`` / ``notice_overdue_tasks(now)`` on SQLite and PostgreSQL.

Defects found: a timer whose firing failed where no node's guard catches it (at the commit:
what came after it left text the database refuses; or its flow is gone) raised out of
``fire_due_timers``, and since it stayed due and first
in line, no timer fired again; a ``task_overdue`` receiver that raised rolled back the
whole batch of notices, and its task, first in line, kept every overdue task unnoticed.
The rest checks boundaries and time zones that were found to hold."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from webflow import STATUS, Context, Flow, fire_due_timers, flow, this
from webflow.core import signals, timers
from webflow.core.overdue import notice_overdue_tasks
from webflow.core.timers import change_due
from webflow.models import OverdueNotice, Process, Task, TaskEvent, User

BERLIN = ZoneInfo("Europe/Berlin")


def waiting(session: Session, process: Process, node: str = "wait") -> Task:
    session.expire_all()
    return session.scalars(sa.select(Task).where(Task.process_id == process.id,
                                                 Task.node_name == node)).one()


ODD = b"caf\xe9".decode("utf-8", "surrogateescape")  # a lone surrogate: not UTF-8


class PoisonFlow(Flow):
    """A timer, then a handler that may leave what the database cannot store."""

    start = flow.StartFunction().Next(this.wait)
    wait = flow.Timer(lambda act: timedelta(minutes=act.process.data["minutes"])).Next(this.after)
    after = flow.Handler(this.write).Next(this.end)
    end = flow.End()

    def write(self, activation: Any) -> None:
        data = activation.process.data
        if data.get("poison") == "raise":
            raise RuntimeError(ODD)  # the handler's traceback: no database stores it
        if data.get("poison") == "write":
            data["name"] = ODD  # PostgreSQL would refuse it: refused on this line
        if data.get("poison") == "summary":
            activation.process.summary = "a\x00b"  # stored written out (Process.summary)
        if data.get("poison") == "dangling":
            activation.process.created_by_id = 2**31 - 1  # no such user: refused at the commit
        data["ran"] = True


def stored_as_failed(session: Session, process: Process, expected: str) -> None:
    """The timer of ``process`` could not be fired: it is in ERROR with the reason, for a
    manager to retry, and nothing after it was kept."""
    timer = waiting(session, process)
    assert timer.status == STATUS.ERROR
    assert "firing the timer failed" in timer.comments and expected in timer.comments
    assert session.scalars(sa.select(Task.node_name).where(Task.process_id == process.id)).all() == \
        ["start", "wait"]
    events = session.scalars(sa.select(TaskEvent.transition).where(TaskEvent.task_id == timer.id)
                             .order_by(TaskEvent.id)).all()
    assert events[-2:] == ["fire", "error"]


def after_task(session: Session, process: Process) -> Task:
    session.expire_all()
    return session.scalars(sa.select(Task).where(Task.process_id == process.id,
                                                 Task.node_name == "after")).one()


@pytest.mark.parametrize("poison", ["raise", "write", "receiver", "summary", "dangling", "flow gone"])
def test_a_timer_whose_firing_cannot_be_committed_does_not_stop_the_others(session, poison):
    """One due timer is poisoned; the others fire in the same call, and the poisoned one
    ends where a manager can act. What the handler after it leaves that no database
    stores is the handler's failure (its text written out, or refused where it is
    written); a receiver of the timer's end that refuses it fails the timer (its own
    guard); a firing whose commit fails (a row the node changed points at nothing)
    stores the timer as ERROR through its own fire; a timer whose flow is gone is left."""
    bad = PoisonFlow.start.run(minutes=1, poison=poison)  # due first
    good = [PoisonFlow.start.run(minutes=2 + i) for i in range(3)]
    if poison == "flow gone":  # its flow's class can no longer be imported
        session.execute(sa.update(Task).where(Task.process_id == bad.id, Task.node_name == "wait")
                        .values(flow_class_path="gone_module.GoneFlow"))
        session.commit()
    later = datetime.now(UTC) + timedelta(hours=1)

    def refuse(sender: Any, task: Task, **kwargs: Any) -> None:
        if task.node_name == "wait" and task.process_id == bad.id:
            raise RuntimeError("a receiver refused the timer's end")

    if poison == "receiver":
        signals.task_finished.connect(refuse)
    try:
        fired = fire_due_timers(now=later)  # raised before the fix, and fired nothing
    finally:
        signals.task_finished.disconnect(refuse)
    assert [waiting(session, p).status for p in good] == [STATUS.DONE] * 3
    assert all(session.get(Process, p.id).data["ran"] for p in good)
    if poison == "raise":
        assert fired == 4 and waiting(session, bad).status == STATUS.DONE
        after = after_task(session, bad)
        assert after.status == STATUS.ERROR and "caf\\udce9" in after.comments
    elif poison == "write":  # refused where it is written, on both databases
        assert fired == 4 and waiting(session, bad).status == STATUS.DONE
        after = after_task(session, bad)
        assert after.status == STATUS.ERROR and "cannot hold a character that is not UTF-8" in after.comments
    elif poison == "receiver":
        assert fired == 4 and waiting(session, bad).status == STATUS.ERROR
        assert "a receiver refused the timer's end" in waiting(session, bad).comments
    elif poison == "summary":  # written out, on both databases: the flow went on
        assert fired == 4 and waiting(session, bad).status == STATUS.DONE
        assert session.get(Process, bad.id).summary == "a\\x00b"
    elif poison == "dangling":
        assert fired == 4
        stored_as_failed(session, bad, "IntegrityError")
    else:  # nothing can be done with it: left waiting (and logged), the others fire
        assert fired == 3 and waiting(session, bad).status == STATUS.SCHEDULED
    assert fire_due_timers(now=later) == 0  # no exception either


class ApproveFlow(Flow):
    start = flow.StartFunction().Next(this.approve)
    approve = (flow.View().Permission(auto_create=True)
               .Due(lambda act: timedelta(hours=act.process.data["hours"])).Next(this.end))
    end = flow.End()


@pytest.fixture
def overdue_seen() -> Iterator[list[int]]:
    """task_overdue receivers: one that records, one that fails for processes marked ``broken``."""
    seen: list[int] = []

    def receiver(sender: Any, task: Any = None, **extra: Any) -> None:
        if task.process.data.get("broken"):
            raise RuntimeError("the receiver broke")
        seen.append(task.id)

    signals.task_overdue.connect(receiver)
    yield seen
    signals.task_overdue.disconnect(receiver)


def assigned_approval(session: Session, user: User, **data: Any) -> Task:
    process = ApproveFlow.start.run(**data)
    task = waiting(session, process, "approve")
    task.activate().assign(user)  # code that sets no user is trusted
    return waiting(session, process, "approve")


def test_a_failing_overdue_receiver_does_not_keep_the_others_unnoticed(session, users, overdue_seen):
    ann = users["ann"]
    broken = assigned_approval(session, ann, hours=1, broken=True)  # due first
    others = [assigned_approval(session, ann, hours=2 + i) for i in range(3)]
    later = datetime.now(UTC) + timedelta(days=1)

    assert notice_overdue_tasks(later) == 3  # raised before the fix, and noticed none
    assert overdue_seen == [t.id for t in others]
    fire_due_timers(now=later)  # no exception from the overdue pass either
    notices = session.scalars(sa.select(OverdueNotice.task_id)).all()
    assert sorted(notices) == sorted(t.id for t in others)  # the broken one is tried again later

    process = session.get(Process, broken.process_id)
    with Context():
        process.data = {**process.data, "broken": False}
        session.commit()
    assert notice_overdue_tasks(later) == 1
    assert overdue_seen[-1] == broken.id
    assert notice_overdue_tasks(later) == 0  # each once


# -- checked and found to hold ------------------------------------------------------------


class AtFlow(Flow):
    """A timer that fires at the datetime in ``process.data['at']`` (ISO, any zone or none)."""

    start = flow.StartFunction().Next(this.wait)
    wait = flow.Timer(lambda act: datetime.fromisoformat(act.process.data["at"])).Next(this.end)
    end = flow.End()


@pytest.mark.parametrize("at,utc", [
    # 02:30 happens twice in Berlin on 2026-10-25: the first (fold=0) is CEST, UTC+2.
    (datetime(2026, 10, 25, 2, 30, tzinfo=BERLIN), datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),
    (datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=BERLIN), datetime(2026, 10, 25, 1, 30, tzinfo=UTC)),
    # 02:30 does not exist on 2026-03-29 (clocks jump 02:00 -> 03:00): read with UTC+1.
    (datetime(2026, 3, 29, 2, 30, tzinfo=BERLIN), datetime(2026, 3, 29, 1, 30, tzinfo=UTC)),
    (datetime(2026, 7, 1, 9, 0, tzinfo=ZoneInfo("America/New_York")), datetime(2026, 7, 1, 13, 0, tzinfo=UTC)),
    (datetime(2026, 7, 1, 9, 0), datetime(2026, 7, 1, 9, 0, tzinfo=UTC)),  # naive: taken as UTC
])
def test_a_timer_fires_at_the_instant_its_zone_names_not_a_microsecond_before(session, at, utc):
    process = AtFlow.start.run(at=at.isoformat())
    timer = waiting(session, process)
    assert timer.due == utc
    assert fire_due_timers(now=utc - timedelta(microseconds=1)) == 0
    assert fire_due_timers(now=(utc - timedelta(microseconds=1)).astimezone(BERLIN)) == 0  # any zone
    assert fire_due_timers(now=utc.astimezone(BERLIN)) == 1  # due == now fires
    assert waiting(session, process).status == STATUS.DONE


def test_a_due_date_in_the_past_fires_on_the_next_call_and_naive_now_is_utc(session):
    process = AtFlow.start.run(at="2001-01-01T00:00:00+00:00")
    assert fire_due_timers(now=datetime(2000, 12, 31, 23, 59)) == 0  # naive now: UTC
    assert fire_due_timers() == 1
    assert waiting(session, process).status == STATUS.DONE


def test_the_overdue_boundary_and_a_new_due_date_noticed_again(session, users, overdue_seen):
    task = assigned_approval(session, users["ann"], hours=5)
    due = task.due
    assert notice_overdue_tasks(due - timedelta(microseconds=1)) == 0
    assert notice_overdue_tasks(due) == 1  # due == now is overdue
    assert notice_overdue_tasks(due + timedelta(days=1)) == 0  # once per due date
    with Context():
        change_due(task, (due + timedelta(hours=1)).astimezone(BERLIN).replace(tzinfo=None))  # naive: UTC
    assert waiting(session, session.get(Process, task.process_id), "approve").due == \
        (due + timedelta(hours=1)).astimezone(BERLIN).replace(tzinfo=UTC)
    assert notice_overdue_tasks(due + timedelta(days=1)) == 1
    assert overdue_seen == [task.id, task.id]


def test_a_timer_canceled_or_its_process_canceled_before_it_fires_never_fires(session):
    one, two = AtFlow.start.run(at="2001-01-01T00:00:00"), AtFlow.start.run(at="2001-01-01T00:00:00")
    waiting(session, one).activate().cancel()
    session.get(Process, two.id).cancel()
    assert fire_due_timers() == 0
    assert [waiting(session, p).status for p in (one, two)] == [STATUS.CANCELED] * 2


def count_round(activation: Any) -> None:
    activation.process.data["rounds"] = activation.process.data.get("rounds", 0) + 1


class RoundsFlow(Flow):
    """A timer due at once that leads back to itself: a poll every 0 minutes."""

    start = flow.StartFunction().Next(this.wait)
    wait = flow.Timer(timedelta(0)).Next(this.count)
    count = flow.Handler(count_round).Next(this.wait)


def test_flows_looping_back_to_a_timer_due_at_once_fire_once_per_call(session, monkeypatch):
    """Before, fire_due_timers without max_seconds (the web thread, ``fire-timers``) never
    returned once a whole batch of timers did this: each firing made a new timer already
    due, and a full batch meant another batch, which found the new ones."""
    monkeypatch.setattr(timers, "BATCH", 2)
    processes = [RoundsFlow.start.run() for _ in range(3)]
    later = datetime.now(UTC) + timedelta(minutes=1)
    assert fire_due_timers(now=later) == 3
    assert fire_due_timers(now=later) == 3  # the new timers wait for the next call
    session.expire_all()
    for process in processes:
        assert session.get(Process, process.id).data == {"rounds": 2}
        statuses = session.scalars(sa.select(Task.status).where(
            Task.process_id == process.id, Task.node_name == "wait").order_by(Task.id)).all()
        assert statuses == [STATUS.DONE, STATUS.DONE, STATUS.SCHEDULED]
