"""Fan-out (``Split().Each``), partial joins (``Join(until=, cancel_rest=)``), explicit
termination (``End(terminate=True)``) and subprocesses, with the workflow patterns they
support directly (WCP numbers from the workflow patterns catalogue)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from webflow import STATUS, Context, Flow, TransitionNotAllowed, flow, this
from webflow.core import jobs as core_jobs
from webflow.core.context import get_session
from webflow.models import Process, Task, User


def reviewer(act: Any) -> User:
    return get_session().scalar(sa.select(User).where(User.username == act.task.data["item"]))


def approvals(act: Any) -> int:
    return sum(bool(t.data.get("approved")) for t in act.arrived)


def tasks_of(session: Session, process: Process, node: str) -> list[Task]:
    session.expire_all()
    return [t for t in process.tasks if t.node_name == node]


def statuses(session: Session, process: Process, node: str) -> list[str]:
    return [t.status.value for t in tasks_of(session, process, node)]


def answer(session: Session, task: Task, data: dict[str, Any]) -> None:
    session.expire_all()
    activation = task.activate()
    if task.status == STATUS.NEW:
        activation.assign(task.owner or session.scalar(sa.select(User).where(User.username == "root")))
    activation.prepare(data=data, user=task.owner)
    activation.done()


@pytest.fixture
def reviewers(session: Session) -> list[str]:
    names = [f"r{n:02d}" for n in range(20)]
    session.add_all(User(username=name) for name in names)
    session.commit()
    return names


# -- fan-out -------------------------------------------------------------------------------------


class AllReviewFlow(Flow):
    start = flow.StartFunction().Next(this.fan_out)
    fan_out = flow.Split().Each(this.review, items=lambda act: act.process.data["reviewers"])
    review = flow.View().Assign(reviewer).Next(this.join)
    join = flow.Join().Next(this.decide)
    decide = flow.View().Next(this.end)
    end = flow.End()


class FixedReviewFlow(Flow):
    start = flow.StartFunction().Next(this.fan_out)
    fan_out = flow.Split().Each(this.review, items=lambda act: ["r00", "r01", "r02"])
    review = flow.View().Assign(reviewer).Next(this.join)
    join = flow.Join().Next(this.end)
    end = flow.End()


def test_wcp13_multiple_instances_with_design_time_knowledge(session, reviewers, users):
    process = FixedReviewFlow.start.run()
    review = tasks_of(session, process, "review")
    assert [(t.data, t.owner.username, t.status.value) for t in review] == [
        ({"item": f"r0{i}", "index": i}, f"r0{i}", "ASSIGNED") for i in range(3)]
    assert len({t.token for t in review}) == 3
    for task in review:
        assert statuses(session, process, "join") in ([], ["STARTED"])
        answer(session, task, {"ok": task.data["index"]})
    session.expire_all()
    assert statuses(session, process, "join") == ["DONE"] and process.status == STATUS.DONE
    assert process.data == {}  # each reviewer's answer stays on their own task
    assert [t.data for t in tasks_of(session, process, "review")] == [
        {"item": f"r0{i}", "index": i, "ok": i} for i in range(3)]


@pytest.mark.parametrize("count", [0, 1, 20])
def test_wcp14_multiple_instances_with_run_time_knowledge(session, reviewers, users, count):
    process = AllReviewFlow.start.run(reviewers=reviewers[:count])
    review = tasks_of(session, process, "review")
    assert [t.owner.username for t in review] == reviewers[:count]
    assert [t.data["index"] for t in review] == list(range(count))
    for task in reversed(review):  # the order does not matter
        answer(session, task, {"approved": True})
    assert statuses(session, process, "join") == ["DONE"]  # fired once, also for no item at all
    assert statuses(session, process, "decide") == ["NEW"]
    join = tasks_of(session, process, "join")[0].activate()
    assert [t.id for t in join.branches] == [t.id for t in review]
    assert sorted(t.id for t in join.arrived) == sorted(t.id for t in review)


def test_each_items_that_are_not_a_list_put_the_split_in_error(session, users):
    with Context(propagate_exception=False):
        process = AllReviewFlow.start.run(reviewers="r00")
    (split,) = tasks_of(session, process, "fan_out")
    assert split.status == STATUS.ERROR and "must be a list" in split.comments
    assert tasks_of(session, process, "review") == []


# -- partial joins -------------------------------------------------------------------------------


def two_of_three(name: str, cancel_rest: bool) -> type[Flow]:
    """Reviewers on a list; two approvals are enough; a rejection terminates."""
    return type(name, (Flow,), {
        "__module__": __name__,
        "start": flow.StartFunction().Next(this.fan_out),
        "fan_out": flow.Split().Each(this.review, items=lambda act: act.process.data["reviewers"]),
        "review": flow.View().Assign(reviewer).Next(this.join),
        "join": flow.Join(until=lambda act: approvals(act) >= 2, cancel_rest=cancel_rest).Next(this.check),
        "check": (flow.If(lambda act: sum(bool(t.data.get("approved")) for t in act.process.tasks
                                          if t.node_name == "review") >= 2)
                  .Then(this.order).Else(this.rejected)),
        "order": flow.View().Next(this.end),
        "rejected": flow.End(terminate=True),
        "end": flow.End(),
    })


CANCELING = two_of_three("TwoOfThreeCancelFlow", cancel_rest=True)
KEEPING = two_of_three("TwoOfThreeKeepFlow", cancel_rest=False)


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))), ids=str)
@pytest.mark.parametrize("answers", [(True, True, True), (True, False, True), (False, True, False)],
                         ids=["all-yes", "two-yes", "one-yes"])
def test_wcp32_cancelling_partial_join_in_every_order(session, reviewers, users, order, answers):
    process = CANCELING.start.run(reviewers=reviewers[:3])
    review = tasks_of(session, process, "review")
    answered = 0
    for i in order:
        task = next(t for t in tasks_of(session, process, "review") if t.id == review[i].id)
        if task.status == STATUS.CANCELED:
            with pytest.raises(TransitionNotAllowed):
                answer(session, task, {"approved": answers[i]})
            continue
        answer(session, task, {"approved": answers[i]})
        answered += 1
    joins = statuses(session, process, "join")
    assert joins == ["DONE"]
    final = statuses(session, process, "review")
    yes_first = [answers[i] for i in order]
    if sum(answers) >= 2:
        # The join fired on the second yes; whatever had not answered by then was canceled.
        second_yes = [n for n, yes in enumerate(yes_first) if yes][1]
        assert final.count("DONE") == second_yes + 1 == answered
        assert final.count("CANCELED") == 3 - answered
        assert statuses(session, process, "order") == ["NEW"]
        assert process.status == STATUS.NEW
    else:
        # Never two yes: it fired when the region was finished, and the rejection terminates.
        assert final == ["DONE"] * 3
        assert statuses(session, process, "rejected") == ["DONE"]
        assert process.status == STATUS.DONE


def test_wcp30_structured_partial_join_absorbs_the_late_branch(session, reviewers, users):
    process = KEEPING.start.run(reviewers=reviewers[:3])
    first, second, third = tasks_of(session, process, "review")
    answer(session, first, {"approved": True})
    assert statuses(session, process, "join") == ["STARTED"]
    answer(session, second, {"approved": True})
    assert statuses(session, process, "join") == ["DONE"]
    assert statuses(session, process, "review") == ["DONE", "DONE", "ASSIGNED"]  # runs on
    order = tasks_of(session, process, "order")[0]
    answer(session, order, {})
    session.expire_all()
    assert process.status == STATUS.NEW  # the third reviewer is still to answer
    answer(session, third, {"approved": False})
    session.expire_all()
    assert statuses(session, process, "join") == ["DONE"]  # absorbed: never fires twice
    assert len(tasks_of(session, process, "check")) == 1
    assert process.status == STATUS.DONE


class FirstAnswerFlow(Flow):
    start = flow.StartFunction().Next(this.split)
    split = flow.Split().Next(this.phone).Next(this.mail).Next(this.fax)
    phone = flow.View().Next(this.join)
    mail = flow.View().Next(this.join)
    fax = flow.View().Next(this.join)
    join = flow.Join(until=lambda act: len(act.arrived) >= 1, cancel_rest=True).Next(this.end)
    end = flow.End()


@pytest.mark.parametrize("winner", ["phone", "mail", "fax"])
def test_wcp29_cancelling_discriminator(session, users, winner):
    process = FirstAnswerFlow.start.run()
    answer(session, tasks_of(session, process, winner)[0], {"via": winner})
    for node in ("phone", "mail", "fax"):
        assert statuses(session, process, node) == ["DONE" if node == winner else "CANCELED"]
    join = tasks_of(session, process, "join")[0]
    assert [t.node_name for t in join.previous] == [winner]
    session.expire_all()
    assert process.status == STATUS.DONE


def test_wcp34_static_partial_join_for_multiple_instances(session, reviewers, users):
    process = KEEPING.start.run(reviewers=reviewers[:5])
    review = tasks_of(session, process, "review")
    for task in review[:2]:
        answer(session, task, {"approved": True})
    assert statuses(session, process, "join") == ["DONE"]
    for task in review[2:]:
        answer(session, task, {"approved": False})
    assert statuses(session, process, "join") == ["DONE"]
    assert len(tasks_of(session, process, "order")) == 1


def test_wcp35_cancelling_partial_join_for_multiple_instances(session, reviewers, users):
    process = CANCELING.start.run(reviewers=reviewers[:5])
    review = tasks_of(session, process, "review")
    answer(session, review[3], {"approved": True})
    answer(session, review[0], {"approved": True})
    assert statuses(session, process, "review") == ["DONE", "CANCELED", "CANCELED", "DONE", "CANCELED"]
    join = tasks_of(session, process, "join")[0].activate()
    assert [t.id for t in join.arrived] == [review[3].id, review[0].id]  # in finishing order
    assert len(join.branches) == 5


def test_wcp26_cancel_multiple_instance_activity(session, reviewers, users):
    process = AllReviewFlow.start.run(reviewers=reviewers[:4])
    review = tasks_of(session, process, "review")
    answer(session, review[0], {"approved": True})
    for task in review[1:]:  # the whole activity is withdrawn: every open instance canceled
        activation = task.activate()
        activation.unassign()
        activation.cancel()
    assert statuses(session, process, "review") == ["DONE", "CANCELED", "CANCELED", "CANCELED"]
    assert statuses(session, process, "join") == ["DONE"]
    assert statuses(session, process, "decide") == ["NEW"]


# -- explicit termination ------------------------------------------------------------------------


def shipped(act: Any) -> None:
    act.process.data = {**act.process.data, "shipped": True}


class TerminateFlow(Flow):
    start = flow.StartFunction().Next(this.split)
    split = flow.Split().Next(this.approve).Next(this.pack).Next(this.ship)
    approve = flow.View().Next(this.check)
    check = flow.If(lambda act: act.process.data.get("reject")).Then(this.stop).Else(this.join)
    stop = flow.End(terminate=True)
    pack = flow.View().Assign(lambda act: get_session().scalar(sa.select(User).where(User.username == "bob")))\
        .Next(this.join)
    ship = flow.Job(shipped).Next(this.join)
    join = flow.Join().Next(this.end)
    end = flow.End()


def test_wcp43_explicit_termination_cancels_assigned_and_queued_work(session, users, held_jobs):
    process = TerminateFlow.start.run()
    assert statuses(session, process, "pack") == ["ASSIGNED"]
    assert statuses(session, process, "ship") == ["SCHEDULED"] and len(held_jobs) == 1
    answer(session, tasks_of(session, process, "approve")[0], {"reject": True})
    session.expire_all()
    assert process.status == STATUS.DONE and process.finished is not None
    assert statuses(session, process, "pack") == ["CANCELED"]
    assert statuses(session, process, "ship") == ["CANCELED"]
    assert statuses(session, process, "stop") == ["DONE"] and statuses(session, process, "join") == []
    # The queued job is skipped by the worker.
    assert core_jobs.run_job(held_jobs[0], session) == "skipped: task is CANCELED"
    session.expire_all()
    assert "shipped" not in process.data


def test_terminate_while_the_job_runs_drops_its_result(session, users, held_jobs):
    process = TerminateFlow.start.run()
    approve = tasks_of(session, process, "approve")[0]

    def rejecting_meanwhile(act: Any) -> None:
        answer(session, approve, {"reject": True})  # someone rejects while the job runs
        shipped(act)

    node = TerminateFlow.ship
    original = node._func
    node._func = rejecting_meanwhile
    try:
        outcome = core_jobs.run_job(held_jobs[0], session)
    finally:
        node._func = original
    assert outcome.startswith("discarded: task is CANCELED")
    session.expire_all()
    assert statuses(session, process, "ship") == ["CANCELED"]
    assert process.status == STATUS.DONE


def test_undo_of_a_terminating_end_reopens_the_process(session, users, held_jobs):
    process = TerminateFlow.start.run()
    answer(session, tasks_of(session, process, "approve")[0], {"reject": True})
    stop = tasks_of(session, process, "stop")[0]
    stop.activate().undo()
    session.expire_all()
    assert process.status == STATUS.NEW and process.finished is None
    assert statuses(session, process, "stop") == ["NEW"]
    stop.activate().cancel()  # the rest stays canceled: nothing left, no End reached
    session.expire_all()
    assert process.stalled is not None


# -- subprocesses --------------------------------------------------------------------------------


class PurchaseFlow(Flow):
    start = flow.StartFunction().Next(this.buy)
    buy = flow.View().Next(this.end)
    end = flow.End()


class OrderFlow(Flow):
    start = flow.StartFunction().Next(this.purchase)
    purchase = (flow.Subprocess(PurchaseFlow.start, data=lambda act: {"amount": act.process.data["amount"]})
                .Next(this.receive))
    receive = flow.View().Next(this.end)
    end = flow.End()


class AutomaticChildFlow(Flow):
    start = flow.StartFunction().Next(this.end)
    end = flow.End()


class ManyOrdersFlow(Flow):
    start = flow.StartFunction().Next(this.each)
    each = flow.Split().Each(this.purchase, items=lambda act: act.process.data["amounts"])
    purchase = flow.Subprocess(PurchaseFlow.start, data=lambda act: {"amount": act.task.data["item"]})\
        .Next(this.join)
    join = flow.Join().Next(this.quick)
    quick = flow.Subprocess(AutomaticChildFlow.start).Next(this.end)
    end = flow.End()


def child_of(session: Session, task: Task) -> Process:
    session.expire_all()
    (child,) = session.scalars(sa.select(Process).where(Process.parent_task_id == task.id)).all()
    return child


def test_a_subprocess_runs_a_child_and_keeps_its_result(session, users):
    process = OrderFlow.start.run(amount=12)
    (purchase,) = tasks_of(session, process, "purchase")
    assert purchase.status == STATUS.STARTED
    child = child_of(session, purchase)
    assert child.flow_class is PurchaseFlow and child.data == {"amount": 12}
    assert child.parent_task.id == purchase.id and process.parent_task is None
    answer(session, tasks_of(session, child, "buy")[0], {"vendor": "acme"})
    session.expire_all()
    assert child.status == STATUS.DONE
    assert purchase.status == STATUS.DONE and purchase.data == {"result": {"amount": 12, "vendor": "acme"}}
    assert statuses(session, process, "receive") == ["NEW"]


def test_a_canceled_child_puts_the_parent_task_in_error_with_the_reason(session, users):
    process = OrderFlow.start.run(amount=5)
    (purchase,) = tasks_of(session, process, "purchase")
    child = child_of(session, purchase)
    child.cancel()
    session.expire_all()
    assert purchase.status == STATUS.ERROR
    assert purchase.comments == f"subprocess {PurchaseFlow.process_title} #{child.id} was canceled"
    # Repair: retry starts a new child; it finishes and the parent goes on.
    purchase.activate().retry()
    session.expire_all()
    children = session.scalars(sa.select(Process).where(Process.parent_task_id == purchase.id)
                               .order_by(Process.id)).all()
    assert [c.status for c in children] == [STATUS.CANCELED, STATUS.NEW]
    answer(session, tasks_of(session, children[1], "buy")[0], {})
    session.expire_all()
    assert purchase.status == STATUS.DONE


def test_canceling_the_parent_cancels_its_children(session, users):
    process = OrderFlow.start.run(amount=5)
    (purchase,) = tasks_of(session, process, "purchase")
    child = child_of(session, purchase)
    process.cancel()
    session.expire_all()
    assert process.status == STATUS.CANCELED and child.status == STATUS.CANCELED
    assert purchase.status == STATUS.CANCELED
    assert statuses(session, child, "buy") == ["CANCELED"]


def test_a_fan_out_of_subprocesses_and_a_child_that_runs_straight_through(session, users):
    process = ManyOrdersFlow.start.run(amounts=[1, 2, 3])
    purchases = tasks_of(session, process, "purchase")
    children = [child_of(session, t) for t in purchases]
    assert [c.data["amount"] for c in children] == [1, 2, 3]
    for child in reversed(children):
        answer(session, tasks_of(session, child, "buy")[0], {})
    session.expire_all()
    assert statuses(session, process, "join") == ["DONE"]
    (quick,) = tasks_of(session, process, "quick")
    assert quick.status == STATUS.DONE and child_of(session, quick).status == STATUS.DONE
    assert process.status == STATUS.DONE
    assert [t.data["result"]["amount"] for t in purchases] == [1, 2, 3]


def test_undo_of_a_subprocess_task_and_perform_again(session, users):
    process = OrderFlow.start.run(amount=7)
    (purchase,) = tasks_of(session, process, "purchase")
    answer(session, tasks_of(session, child_of(session, purchase), "buy")[0], {})
    (receive,) = tasks_of(session, process, "receive")
    receive.activate().cancel()
    session.expire_all()
    purchase.activate().undo()
    session.expire_all()
    assert purchase.status == STATUS.NEW
    purchase.activate().perform()
    session.expire_all()
    assert purchase.status == STATUS.STARTED
    assert len(session.scalars(sa.select(Process).where(Process.parent_task_id == purchase.id)).all()) == 2


def test_undo_of_a_partial_join_and_the_fan_out(session, reviewers, users):
    process = CANCELING.start.run(reviewers=reviewers[:2])
    review = tasks_of(session, process, "review")
    answer(session, review[0], {"approved": True})
    answer(session, review[1], {"approved": True})
    (order,) = tasks_of(session, process, "order")
    order.activate().cancel()
    (check,) = tasks_of(session, process, "check")
    check.activate().undo()
    check.activate().cancel()
    (join,) = tasks_of(session, process, "join")
    join.activate().undo()
    session.expire_all()
    assert join.status == STATUS.NEW
    join.activate().cancel()
    for task in review:
        task.activate().undo()
        task.activate().cancel()
    (split,) = tasks_of(session, process, "fan_out")
    split.activate().undo()
    session.expire_all()
    assert split.status == STATUS.NEW
