"""Whole processes: hello world, shipment, undo, cancel, errors, signals, definitions, locks."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from webflow import STATUS, Context, Flow, FlowLockFailed, FlowRuntimeError, TransitionNotAllowed, flow, this
from webflow import signals as webflow_signals
from webflow.core import TaskEvent, create_engine, use_session
from webflow.core import transaction as core_transaction
from webflow.models import Process, Task, User


def do_view(process: Process, node: Any, user: User, data: dict[str, Any] | None = None) -> Task:
    task = process.get_task(node, status=[STATUS.NEW, STATUS.ASSIGNED])
    activation = task.activate()
    if task.status == STATUS.NEW:
        activation.assign(user)
    activation.prepare(data=data or {}, user=user)
    activation.done()
    return task


def path(process: Process) -> list[tuple[str, str, str]]:
    return [(t.node_name, t.status.value, t.token) for t in process.tasks]


# -- hello world ----------------------------------------------------------------------------


class HelloFlow(Flow):
    """Hello world

    Somebody writes, somebody approves, the engine sends."""

    start = flow.Start().Permission(auto_create=True).Next(this.approve)
    approve = flow.View().Permission(auto_create=True).Next(this.check_approve)
    check_approve = flow.If(lambda act: act.process.data.get("approved")).Then(this.send).Else(this.end)
    send = flow.Handler(this.send_hello).Next(this.end)
    end = flow.End()

    def send_hello(self, activation: Any) -> None:
        if activation.process.data.get("text") == "boom":
            raise RuntimeError("mail server down")
        activation.process.data = {**activation.process.data, "sent": True}


@pytest.fixture
def writer(session, users) -> User:
    users["ann"].permissions = ["hello.can_start", "hello.can_approve"]
    session.commit()
    return users["ann"]


def test_hello_world_approved(session, writer):
    process = HelloFlow.start.run(data={"text": "hi"}, user=writer)
    assert path(process) == [("start", "DONE", "start"), ("approve", "NEW", "start")]
    do_view(process, HelloFlow.approve, writer, {"approved": True})
    session.expire_all()
    assert path(process) == [(name, "DONE", "start")
                             for name in ("start", "approve", "check_approve", "send", "end")]
    assert process.data == {"text": "hi", "approved": True, "sent": True}
    assert process.status == STATUS.DONE
    events = session.scalars(sa.select(TaskEvent).where(TaskEvent.process_id == process.id)).all()
    assert ("approve", "assign", STATUS.NEW, STATUS.ASSIGNED) in [
        (e.task.node_name, e.transition, e.from_status, e.to_status) for e in events if e.task
    ]


def test_hello_world_rejected(session, writer):
    process = HelloFlow.start.run(data={"text": "hi"}, user=writer)
    do_view(process, HelloFlow.approve, writer, {"approved": False})
    session.expire_all()
    assert [t.node_name for t in process.tasks] == ["start", "approve", "check_approve", "end"]
    assert process.status == STATUS.DONE
    assert "sent" not in process.data


# -- errors ---------------------------------------------------------------------------------


def test_a_failing_handler_without_propagation_is_stored_as_error(session, writer):
    process = HelloFlow.start.run(data={"text": "boom"}, user=writer)
    with Context(propagate_exception=False):
        do_view(process, HelloFlow.approve, writer, {"approved": True})
    session.expire_all()
    assert process.get_task(HelloFlow.approve).status == STATUS.DONE  # the user's work is kept
    send = process.get_task(HelloFlow.send)
    assert send.status == STATUS.ERROR
    assert "Traceback" in send.comments and "mail server down" in send.comments
    assert [t.node_name for t in process.tasks] == ["start", "approve", "check_approve", "send"]
    assert process.status == STATUS.NEW
    assert process.data == {"text": "boom", "approved": True}

    # Fix the data, retry: the handler runs again and the flow goes on.
    process.data = {**process.data, "text": "fixed"}
    session.commit()
    send.activate().retry()
    session.expire_all()
    assert send.status == STATUS.DONE
    assert send.comments is None
    assert process.status == STATUS.DONE
    assert process.data["sent"] is True


class PartlyFailingFlow(Flow):
    """Two branches, one fails"""

    start = flow.StartFunction().Next(this.split)
    split = flow.Split().Next(this.good).Next(this.bad)
    good = flow.Handler(this.mark).Next(this.after_good)
    after_good = flow.Handler(this.mark).Next(this.join)
    bad = flow.Handler(this.mark).Next(this.join)
    join = flow.Join().Next(this.end)
    end = flow.End()

    def mark(self, activation: Any) -> None:
        name = activation.task.node_name
        activation.process.data = {**activation.process.data, name: True}
        if name == "bad" and not activation.process.data.get("fixed"):
            raise RuntimeError("bad branch")


def test_a_failing_branch_keeps_its_siblings_work_and_only_its_own_is_undone(session):
    with Context(propagate_exception=False):
        process = PartlyFailingFlow.start.run()
    session.expire_all()
    statuses = {t.node_name: t.status for t in process.tasks}
    assert statuses == {"start": STATUS.DONE, "split": STATUS.DONE, "good": STATUS.DONE,
                        "after_good": STATUS.DONE, "bad": STATUS.ERROR, "join": STATUS.STARTED}
    assert process.data == {"good": True, "after_good": True}  # bad's own change is undone
    assert process.status == STATUS.NEW
    events = session.scalars(sa.select(TaskEvent).where(TaskEvent.process_id == process.id)
                             .order_by(TaskEvent.id)).all()
    first = {}
    for position, event in enumerate(events):
        first.setdefault(event.task.node_name, position)
    for earlier, later in (("start", "split"), ("split", "good"), ("good", "after_good"),
                           ("split", "bad"), ("after_good", "join")):
        assert first[earlier] < first[later], [(e.task.node_name, e.transition) for e in events]
    assert [(e.transition, e.to_status) for e in events if e.task.node_name == "bad"][-1] == \
        ("error", STATUS.ERROR)

    process.data = {**process.data, "fixed": True}
    session.commit()
    with Context(propagate_exception=False):
        process.get_task(PartlyFailingFlow.bad).activate().retry()
    session.expire_all()
    assert process.status == STATUS.DONE
    assert process.data == {"good": True, "after_good": True, "fixed": True, "bad": True}
    assert [t.node_name for t in process.tasks].count("join") == 1


def test_a_failing_handler_with_propagation_rolls_the_whole_call_back(session, writer, stored):
    process = HelloFlow.start.run(data={"text": "boom"}, user=writer)
    approve = process.get_task(HelloFlow.approve)
    activation = approve.activate()
    activation.assign(writer)
    before = stored()
    activation.prepare(data={"approved": True}, user=writer)
    with pytest.raises(RuntimeError, match="mail server down"):
        activation.done()
    assert stored() == before
    session.expire_all()
    assert approve.status == STATUS.ASSIGNED
    assert process.data == {"text": "boom"}


# -- shipment -------------------------------------------------------------------------------


def print_label(activation: Any) -> None:
    activation.task.data = {"label": f"LABEL {activation.process.data['customer']}"}


class ShipFlow(Flow):
    start = flow.StartFunction().Next(this.split_work)
    split_work = flow.Split().Next(this.set_carrier).Next(this.package_goods)
    set_carrier = flow.View().Assign(lambda act: act.process.created_by).Next(this.split_paperwork)
    split_paperwork = (flow.Split()
                       .Next(this.print_label)
                       .Next(this.take_insurance, cond=lambda act: act.process.data.get("insured")))
    print_label = flow.Job(print_label).Next(this.join_paperwork)
    take_insurance = flow.View().Next(this.join_paperwork)
    join_paperwork = flow.Join().Next(this.join_work)
    package_goods = flow.View().Next(this.check_packages)
    check_packages = (flow.If(lambda act: act.process.data.get("packages", 0) > 0)
                      .Then(this.join_work).Else(this.package_goods))
    join_work = flow.Join().Next(this.notify)
    notify = flow.Handler(lambda act: None).Next(this.end)
    end = flow.End()


def test_shipment_with_nested_splits_a_loop_and_a_job(session, users):
    ann = users["ann"]
    process = ShipFlow.start.run(customer="ACME", insured=True)
    split_work = process.get_task(ShipFlow.split_work)
    s1, s2 = f"start/{split_work.id}_1", f"start/{split_work.id}_2"
    assert [(t.node_name, t.token) for t in process.tasks[2:]] == [("set_carrier", s1), ("package_goods", s2)]

    do_view(process, ShipFlow.set_carrier, ann, {"carrier": "post"})
    split_paperwork = process.get_task(ShipFlow.split_paperwork)
    p1, p2 = f"{s1}/{split_paperwork.id}_1", f"{s1}/{split_paperwork.id}_2"
    session.expire_all()
    label = process.get_task(ShipFlow.print_label)
    assert (label.status, label.token, label.data) == (STATUS.DONE, p1, {"label": "LABEL ACME"})
    assert process.get_task(ShipFlow.take_insurance).token == p2
    assert process.get_task(ShipFlow.join_paperwork).status == STATUS.STARTED

    # The packer says 0 packages: If/Else loops back to package_goods, on the same token.
    do_view(process, ShipFlow.package_goods, ann, {"packages": 0})
    session.expire_all()
    loops = [t for t in process.tasks if t.node_name == "package_goods"]
    assert [(t.status, t.token) for t in loops] == [(STATUS.DONE, s2), (STATUS.NEW, s2)]
    do_view(process, ShipFlow.package_goods, ann, {"packages": 2})
    session.expire_all()
    join_work = process.get_task(ShipFlow.join_work)
    assert (join_work.status, join_work.token) == (STATUS.STARTED, "start")

    do_view(process, ShipFlow.take_insurance, ann, {"policy": "P-1"})
    session.expire_all()
    assert process.get_task(ShipFlow.join_paperwork).token == s1
    assert [t.node_name for t in process.tasks].count("join_paperwork") == 1
    assert [t.node_name for t in process.tasks].count("join_work") == 1
    assert process.get_task(ShipFlow.join_work).status == STATUS.DONE
    assert (process.get_task(ShipFlow.end).token, process.status) == ("start", STATUS.DONE)
    assert {t.token for t in process.tasks} == {"start", s1, s2, p1, p2}


def test_shipment_without_insurance_skips_that_branch(session, users):
    process = ShipFlow.start.run(customer="ACME", insured=False)
    do_view(process, ShipFlow.set_carrier, users["ann"])
    session.expire_all()
    assert "take_insurance" not in [t.node_name for t in process.tasks]
    assert process.get_task(ShipFlow.join_paperwork).status == STATUS.DONE
    do_view(process, ShipFlow.package_goods, users["ann"], {"packages": 1})
    session.expire_all()
    assert process.status == STATUS.DONE


class StraightFlow(Flow):
    start = flow.StartFunction().Next(this.split)
    split = flow.Split().Next(this.a).Next(this.b).Next(this.c)
    a = flow.Handler(lambda act: None).Next(this.join)
    b = flow.Handler(lambda act: None).Next(this.join)
    c = flow.Handler(lambda act: None).Next(this.join)
    join = flow.Join().Next(this.end)
    end = flow.End()


def test_branches_running_straight_through_meet_in_one_join(session):
    process = StraightFlow.start.run()
    session.expire_all()
    split = process.get_task(StraightFlow.split)
    assert [(t.node_name, t.token) for t in process.tasks] == [
        ("start", "start"), ("split", "start"),
        ("a", f"start/{split.id}_1"), ("b", f"start/{split.id}_2"), ("c", f"start/{split.id}_3"),
        ("join", "start"), ("end", "start"),
    ]
    join = process.get_task(StraightFlow.join)
    assert [t.node_name for t in join.previous] == ["a", "b", "c"]
    assert all(t.status == STATUS.DONE for t in process.tasks)
    assert process.status == STATUS.DONE


# -- undo and cancel ------------------------------------------------------------------------


def test_undo_in_reverse_order_back_to_a_canceled_process(session, writer):
    process = HelloFlow.start.run(data={"text": "hi"}, user=writer)
    do_view(process, HelloFlow.approve, writer, {"approved": True})
    session.expire_all()
    assert process.status == STATUS.DONE

    # The start cannot be undone while what it created is not canceled.
    with pytest.raises(TransitionNotAllowed, match="not canceled"):
        process.get_task(HelloFlow.start).activate().undo()

    for name in ("end", "send", "check_approve", "approve"):
        task = process.get_task(HelloFlow.node(name))
        activation = task.activate()
        activation.undo()
        assert task.status == STATUS.NEW
        if name == "end":
            session.expire_all()
            assert (process.status, process.finished) == (STATUS.NEW, None)  # reopened
        activation.cancel()
        assert task.status == STATUS.CANCELED
        assert process.status == STATUS.NEW

    process.get_task(HelloFlow.start).activate().undo()
    session.expire_all()
    assert process.status == STATUS.CANCELED
    assert process.finished is not None
    start = process.get_task(HelloFlow.start)
    assert start.status == STATUS.NEW
    start.activate().cancel()
    session.expire_all()
    assert {t.status for t in process.tasks} == {STATUS.CANCELED}
    transitions = session.scalars(
        sa.select(TaskEvent.transition).where(TaskEvent.process_id == process.id).order_by(TaskEvent.id)
    ).all()
    assert transitions[-2:] == ["undo", "cancel"]


def test_undo_runs_the_flow_undo_hook(session, users):
    undone: list[int] = []

    class HookFlow(Flow):
        start = flow.StartFunction().Next(this.work)
        work = flow.Handler(lambda act: None).Next(this.end)
        end = flow.End()

        def work_undo(self, activation: Any) -> None:
            undone.append(activation.task.id)

    process = HookFlow.start.run()
    end = process.get_task(HookFlow.end).activate()
    end.undo()
    end.cancel()
    work = process.get_task(HookFlow.work)
    work.activate().undo()
    assert undone == [work.id]


class CancelFlow(Flow):
    start = flow.StartFunction().Next(this.split)
    split = flow.Split().Next(this.queued).Next(this.assigned).Next(this.failing).Next(this.waiting)
    queued = flow.View().Next(this.join)
    assigned = flow.View().Assign(username="ann").Next(this.join)
    failing = flow.Handler(this.fail).Next(this.join)
    waiting = flow.Function(lambda act: None).Next(this.join)
    join = flow.Join().Next(this.end)
    end = flow.End()

    def fail(self, activation: Any) -> None:
        raise RuntimeError("nope")


def test_process_cancel_cancels_every_unfinished_task(session, users):
    with Context(propagate_exception=False):
        process = CancelFlow.start.run()
    session.expire_all()
    assert {t.node_name: t.status for t in process.tasks if t.status != STATUS.DONE} == {
        "queued": STATUS.NEW, "assigned": STATUS.ASSIGNED, "failing": STATUS.ERROR, "waiting": STATUS.NEW,
    }
    process.cancel()
    session.expire_all()
    assert process.status == STATUS.CANCELED
    assert process.finished is not None
    assert {t.node_name: t.status for t in process.tasks} == {
        "start": STATUS.DONE, "split": STATUS.DONE, "queued": STATUS.CANCELED,
        "assigned": STATUS.CANCELED, "failing": STATUS.CANCELED, "waiting": STATUS.CANCELED,
    }
    assert process.get_task(CancelFlow.assigned).owner is None
    with pytest.raises(TransitionNotAllowed):
        process.cancel()


def test_process_cancel_refuses_cleanly_and_changes_nothing(session, users, stored):
    with Context(propagate_exception=False):
        process = CancelFlow.start.run()
    # A task no transition of its machine can take to CANCELED (UNRIPE has no edges).
    waiting = process.get_task(CancelFlow.waiting)
    session.execute(sa.update(Task).where(Task.id == waiting.id).values(status=STATUS.UNRIPE))
    session.commit()
    before = stored()
    with pytest.raises(TransitionNotAllowed, match="waiting"):
        process.cancel()
    assert stored() == before
    session.expire_all()
    assert process.status == STATUS.NEW


def test_process_cancel_of_a_finished_process_is_refused(session, writer, stored):
    process = HelloFlow.start.run(data={"text": "hi"}, user=writer)
    do_view(process, HelloFlow.approve, writer, {"approved": False})
    before = stored()
    with pytest.raises(TransitionNotAllowed):
        process.cancel()
    assert stored() == before


# -- signals --------------------------------------------------------------------------------


def test_signals_are_sent_with_the_flow_class(session, writer):
    received: list[tuple[str, Any, str | None]] = []

    def listener(name: str):
        def receive(sender: Any, process: Any = None, task: Any = None, **kw: Any) -> None:
            received.append((name, sender, task.node_name if task is not None else None))
        return receive

    receivers = {name: listener(name) for name in
                 ("flow_started", "flow_finished", "task_started", "task_finished", "task_failed")}
    for name, receiver in receivers.items():
        getattr(webflow_signals, name).connect(receiver)
    try:
        process = HelloFlow.start.run(data={"text": "boom"}, user=writer)
        with Context(propagate_exception=False):
            do_view(process, HelloFlow.approve, writer, {"approved": True})
        process.data = {**process.data, "text": "ok"}
        session.commit()
        process.get_task(HelloFlow.send).activate().retry()
    finally:
        for name, receiver in receivers.items():
            getattr(webflow_signals, name).disconnect(receiver)
    assert all(sender is HelloFlow for _, sender, _ in received)
    names = [(name, node) for name, _, node in received]
    assert names[0] == ("flow_started", "start")
    assert ("task_failed", "send") in names
    assert ("task_finished", "approve") in names
    assert names[-1] == ("flow_finished", "end")
    assert names.count(("flow_finished", "end")) == 1


# -- definitions ----------------------------------------------------------------------------


def test_an_unknown_node_name_fails_when_the_class_is_created():
    with pytest.raises(FlowRuntimeError, match="aprove"):
        class TypoFlow(Flow):
            start = flow.StartFunction().Next(this.aprove)
            approve = flow.View().Next(this.end)
            end = flow.End()

    with pytest.raises(FlowRuntimeError, match="send_helo"):
        class TypoHandlerFlow(Flow):
            start = flow.StartFunction().Next(this.send)
            send = flow.Handler(this.send_helo).Next(this.end)
            end = flow.End()

    with pytest.raises(FlowRuntimeError, match="ending"):
        class TypoStringFlow(Flow):
            start = flow.StartFunction().Next("ending")
            end = flow.End()


def test_labels_titles_and_descriptions():
    assert HelloFlow.flow_label == "hello"
    assert HelloFlow.process_title == "Hello world"
    assert HelloFlow.process_description == "Somebody writes, somebody approves, the engine sends."
    assert ShipFlow.flow_label == "ship"
    assert ShipFlow.process_title == "ShipFlow"

    class ExpenseReportFlow(Flow):
        start = flow.StartFunction().Next(this.end)
        end = flow.End()

    class Custom(Flow):
        flow_label = "my_label"
        start = flow.StartFunction().Next(this.end)
        end = flow.End()

    assert ExpenseReportFlow.flow_label == "expense_report"
    assert Custom.flow_label == "my_label"
    assert HelloFlow.permissions() == ["hello.view", "hello.manage", "hello.can_start", "hello.can_approve"]


class ParentFlow(Flow):
    start = flow.StartFunction().Next(this.approve)
    approve = flow.View().Next(this.end)
    end = flow.End()


class ChildFlow(ParentFlow):
    approve = ParentFlow.approve.Next(this.review)
    review = flow.View().Next(this.end)


def test_a_child_flow_overrides_next_and_leaves_the_parent_alone(session, users):
    parent = ParentFlow.start.run()
    do_view(parent, ParentFlow.approve, users["ann"])
    child = ChildFlow.start.run()
    do_view(child, ChildFlow.approve, users["ann"])
    session.expire_all()
    assert [t.node_name for t in parent.tasks] == ["start", "approve", "end"]
    assert parent.status == STATUS.DONE
    assert [t.node_name for t in child.tasks] == ["start", "approve", "review"]
    assert child.get_task(ChildFlow.review).flow_task is ChildFlow.review
    assert child.get_task(ChildFlow.approve).flow_task is ChildFlow.approve
    assert ChildFlow.start is not ParentFlow.start
    assert ChildFlow.start.flow_class is ChildFlow
    assert ParentFlow.approve.flow_class is ParentFlow


def test_the_engine_imports_no_flask():
    code = ("import sys, webflow, webflow.core, webflow.models, webflow.signals, webflow.core.jobs; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('flask', 'flask_sqlalchemy')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- the process lock -----------------------------------------------------------------------


@pytest.fixture
def fast_lock_retries(monkeypatch):
    monkeypatch.setattr(core_transaction, "LOCK_ATTEMPTS", 3)
    monkeypatch.setattr(core_transaction, "LOCK_BACKOFF", 0.001)


def test_a_transition_inside_another_sessions_lock_fails_after_retries(
    session, engine, db_url, users, stored, fast_lock_retries
):
    process = HelloFlow.start.run(data={"text": "hi"}, user=users["root"])
    approve = process.get_task(HelloFlow.approve)
    task_id = approve.id

    if db_url.startswith("sqlite"):
        impatient = create_engine(db_url)
        sa.event.listen(impatient, "connect",
                        lambda conn, rec: conn.execute("PRAGMA busy_timeout=20"))
    else:
        impatient = create_engine(db_url, connect_args={"options": "-c lock_timeout=50"})
    before = stored()
    holder = engine.connect()
    try:
        holder.begin()
        if db_url.startswith("sqlite"):  # a write takes SQLite's database write lock
            holder.execute(sa.update(Process).where(Process.id == process.id).values(summary="held"))
        else:
            holder.execute(sa.select(Process.id).where(Process.id == process.id).with_for_update())
        with Session(impatient) as other, use_session(other):
            activation = other.get(Task, task_id).activate()
            with pytest.raises(FlowLockFailed, match="after 3 attempts"):
                activation.assign(other.get(User, users["root"].id))
        holder.rollback()
    finally:
        holder.close()
    assert stored() == before

    # Once the lock is released the same call goes through.
    with Session(impatient) as other, use_session(other):
        other.get(Task, task_id).activate().assign(other.get(User, users["root"].id))
    impatient.dispose()
    session.rollback()  # end this session's read snapshot
    assert session.get(Task, task_id).status == STATUS.ASSIGNED

