"""Audit 3: unhappy paths of fan-out, partial joins, terminating Ends and subprocesses,
on both databases, from code."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from webflow import STATUS, Context, Flow, FlowRuntimeError, TransitionNotAllowed, flow, this
from webflow.models import Process, Task, User


def rows(session: Any, process: Process) -> list[tuple[str, str]]:
    session.expire_all()
    return [(t.node_name, t.status.value) for t in sorted(process.tasks, key=lambda t: t.id)]


def of(session: Any, process: Process, node: str) -> list[Task]:
    session.expire_all()
    return sorted((t for t in process.tasks if t.node_name == node), key=lambda t: t.id)


def complete(session: Any, task: Task, user: User, data: dict[str, Any] | None = None) -> None:
    session.expire_all()
    activation = task.activate()
    if task.status == STATUS.NEW:
        activation.assign(user)
    activation.prepare(data=data or {}, user=user)
    activation.done()
    session.commit()


def children(session: Any, task: Task) -> list[Process]:
    session.expire_all()
    return list(session.scalars(sa.select(Process).where(Process.parent_task_id == task.id)
                                .order_by(Process.id)))


def first_arrival(act: Any) -> bool:
    return len(act.arrived) >= 1


def noop(act: Any) -> None:
    pass


# -- branches that run straight through ------------------------------------------------------


class FirstHandlerFlow(Flow):
    start = flow.StartFunction().Next(this.fan)
    fan = flow.Split().Each(this.h, items=lambda act: act.process.data["items"])
    h = flow.Handler(noop).Next(this.join)
    join = flow.Join(until=first_arrival, cancel_rest=True).Next(this.end)
    end = flow.End()


class AutoKidFlow(Flow):
    start = flow.StartFunction().Next(this.end)
    end = flow.End()


class FirstChildFlow(Flow):
    start = flow.StartFunction().Next(this.fan)
    fan = flow.Split().Each(this.sub, items=lambda act: act.process.data["items"])
    sub = flow.Subprocess(AutoKidFlow.start).Next(this.join)
    join = flow.Join(until=first_arrival, cancel_rest=True).Next(this.end)
    end = flow.End()


class RaceToTheEndFlow(Flow):
    start = flow.StartFunction().Next(this.split)
    split = flow.Split().Next(this.quit).Next(this.work)
    quit = flow.Handler(noop).Next(this.stop)
    stop = flow.End(terminate=True)
    work = flow.Handler(noop).Next(this.end)
    end = flow.End()


@pytest.mark.parametrize("propagate", [True, False], ids=["code", "web"])
@pytest.mark.parametrize("flow_class", [FirstHandlerFlow, FirstChildFlow], ids=["handlers", "subprocesses"])
def test_a_branch_that_runs_straight_through_to_a_cancel_rest_join_cancels_its_siblings(
        session, flow_class, propagate):
    """The first automatic branch fires the partial join, which cancels its siblings before
    they had their turn: they stay canceled. The process used to fail to start
    (``perform is not allowed for task h #4 in status CANCELED``), under the web policy too."""
    with Context(propagate_exception=propagate):
        process = flow_class.start.run(items=[1, 2, 3])
    node = "h" if flow_class is FirstHandlerFlow else "sub"
    assert rows(session, process) == [("start", "DONE"), ("fan", "DONE"), (node, "DONE"), (node, "CANCELED"),
                                      (node, "CANCELED"), ("join", "DONE"), ("end", "DONE")]
    assert process.status == STATUS.DONE
    if node == "sub":  # only the branch that ran started a child
        assert [len(children(session, t)) for t in of(session, process, "sub")] == [1, 0, 0]


@pytest.mark.parametrize("propagate", [True, False], ids=["code", "web"])
def test_a_terminating_end_reached_before_a_sibling_ran_cancels_it(session, propagate):
    with Context(propagate_exception=propagate):
        process = RaceToTheEndFlow.start.run()
    assert dict(rows(session, process)) == {"start": "DONE", "split": "DONE", "quit": "DONE",
                                                 "stop": "DONE", "work": "CANCELED"}
    assert process.status == STATUS.DONE


# -- a partial join whose until failed ------------------------------------------------------------


def enough_approvals(act: Any) -> bool:
    return sum(bool(t.data.get("approved")) for t in act.arrived) >= act.process.data["needed"]


class ThresholdFlow(Flow):
    start = flow.StartFunction().Next(this.fan)
    fan = flow.Split().Each(this.review, items=lambda act: act.process.data["items"])
    review = flow.View().Next(this.join)
    join = flow.Join(until=enough_approvals, cancel_rest=True).Next(this.after)
    after = flow.View().Next(this.end)
    end = flow.End()


def test_retry_of_a_join_whose_until_failed_asks_the_until_again(session, root):
    """The until failed on the first arrival (``needed`` was missing); the manager puts it
    in and presses Retry. One approval of the two needed: the join waits again for the
    other reviewers. It used to fire at once and cancel their open tasks."""
    process = ThresholdFlow.start.run(items=["a", "b", "c"])
    session.commit()
    with Context(propagate_exception=False, user=root):
        complete(session, of(session, process, "review")[0], root, {"approved": True})
        (join,) = of(session, process, "join")
        assert join.status == STATUS.ERROR and "KeyError: 'needed'" in join.comments
        process.data = {**process.data, "needed": 2}
        session.commit()
        join.activate().retry()
        session.commit()
        assert rows(session, process) == [("start", "DONE"), ("fan", "DONE"), ("review", "DONE"),
                                          ("review", "NEW"), ("review", "NEW"), ("join", "STARTED")]
        assert join.comments is None
        complete(session, of(session, process, "review")[2], root, {"approved": True})
    assert rows(session, process) == [("start", "DONE"), ("fan", "DONE"), ("review", "DONE"),
                                      ("review", "CANCELED"), ("review", "DONE"), ("join", "DONE"),
                                      ("after", "NEW")]


def test_retry_of_a_join_whose_until_still_fails_leaves_it_in_error(session, root):
    process = ThresholdFlow.start.run(items=["a", "b"])
    session.commit()
    with Context(propagate_exception=False, user=root):
        complete(session, of(session, process, "review")[0], root, {"approved": True})
        (join,) = of(session, process, "join")
        join.activate().retry()
        session.commit()
    assert rows(session, process) == [("start", "DONE"), ("fan", "DONE"), ("review", "DONE"),
                                      ("review", "NEW"), ("join", "ERROR")]
    assert "KeyError: 'needed'" in of(session, process, "join")[0].comments


def test_retry_of_a_failed_join_fires_it_when_its_region_is_finished(session, root):
    """Every branch arrived while the join was in ERROR: the retry fires it, as before."""
    process = ThresholdFlow.start.run(items=["a", "b"])
    session.commit()
    with Context(propagate_exception=False, user=root):
        for task in of(session, process, "review"):
            complete(session, task, root, {"approved": False})
        process.data = {**process.data, "needed": 2}
        session.commit()
        of(session, process, "join")[0].activate().retry()
        session.commit()
    assert [s for n, s in rows(session, process) if n in ("join", "after")] == ["DONE", "NEW"]


def two_approvals(act: Any) -> bool:
    return sum(bool(t.data.get("approved")) for t in act.arrived) >= 2


class TwoOfThreeFlow(Flow):
    start = flow.StartFunction().Next(this.fan)
    fan = flow.Split().Each(this.review, items=lambda act: ["a", "b", "c"])
    review = flow.View().Next(this.join)
    join = flow.Join(until=two_approvals, cancel_rest=True).Next(this.after)
    after = flow.View().Next(this.end)
    end = flow.End()


def test_an_answer_redone_before_the_join_fired_counts_with_the_earlier_arrivals(session, root):
    """a approves, b rejects; the manager takes b back before the join fired (cancel the
    waiting join, undo b) and b approves: two approvals, the join fires and c's open
    review is canceled. The new join used to see b's arrival only (a's had reached the
    canceled one), waited for c and fired only once c answered too."""
    process = TwoOfThreeFlow.start.run()
    session.commit()
    with Context(propagate_exception=False, user=root):
        a, b, c = of(session, process, "review")
        complete(session, a, root, {"approved": True})
        complete(session, b, root, {"approved": False})
        (join,) = of(session, process, "join")
        join.activate().cancel()
        session.commit()
        b.activate().undo()
        session.commit()
        complete(session, b, root, {"approved": True})
    assert rows(session, process) == [("start", "DONE"), ("fan", "DONE"), ("review", "DONE"),
                                      ("review", "DONE"), ("review", "CANCELED"), ("join", "CANCELED"),
                                      ("join", "DONE"), ("after", "NEW")]
    join = of(session, process, "join")[1].activate()
    assert [t.id for t in join.arrived] == [a.id, b.id]


# -- a subprocess whose child never starts -------------------------------------------------------


def maybe_start(activation: Any, go: bool = False) -> Any:
    """A start function that starts a process only when asked to."""
    if go:
        activation.prepare(data={"go": True})
        activation.done()
    return activation


class MaybeKidFlow(Flow):
    start = flow.StartFunction(maybe_start).Next(this.end)
    end = flow.End()


class MaybeParentFlow(Flow):
    start = flow.StartFunction().Next(this.sub)
    sub = flow.Subprocess(MaybeKidFlow.start, data=lambda act: {"go": act.process.data["go"]}).Next(this.end)
    end = flow.End()


def test_a_child_start_function_that_starts_nothing_fails_the_subprocess_task(session, root):
    """The child's start function returned without ``activation.done()``: no child exists,
    so nothing would ever end the subprocess task. It used to wait STARTED for good (the
    process neither stalled nor in ERROR, in no list); it is the task's failure now, and
    a retry once the data says go starts the child."""
    with Context(propagate_exception=False, user=root):
        process = MaybeParentFlow.start.run(go=False)
        session.commit()
        (sub,) = of(session, process, "sub")
        assert sub.status == STATUS.ERROR
        assert "MaybeKidFlow.start started no process" in sub.comments
        assert children(session, sub) == []
        process.data = {"go": True}
        session.commit()
        sub.activate().retry()
        session.commit()
    assert [c.status for c in children(session, sub)] == [STATUS.DONE]
    assert rows(session, process) == [("start", "DONE"), ("sub", "DONE"), ("end", "DONE")]
    assert process.status == STATUS.DONE


def test_a_child_start_function_that_starts_nothing_raises_under_the_code_policy(session):
    with pytest.raises(FlowRuntimeError, match="started no process"):
        MaybeParentFlow.start.run(go=False)
    session.rollback()
    assert session.scalars(sa.select(Process)).all() == []


# -- a child reopened after its parent moved on --------------------------------------------------


class ErrandFlow(Flow):
    start = flow.StartFunction().Next(this.work)
    work = flow.View().Next(this.end)
    end = flow.End()


class ErrandsFlow(Flow):
    start = flow.StartFunction().Next(this.fan)
    fan = flow.Split().Each(this.sub, items=lambda act: [1, 2])
    sub = flow.Subprocess(ErrandFlow.start).Next(this.join)
    join = flow.Join().Next(this.after)
    after = flow.View().Next(this.end)
    end = flow.End()


def test_canceling_the_parent_cancels_a_child_reopened_after_its_task_finished(session, root):
    """Both errands were done and the parent went on; a manager reopened one errand (undo
    of its End). Canceling the parent left that child open, alive under a canceled parent
    for good; it is canceled with the parent now, like the children of open tasks."""
    with Context(propagate_exception=False, user=root):
        process = ErrandsFlow.start.run()
        session.commit()
        subs = of(session, process, "sub")
        kids = [children(session, t)[0] for t in subs]
        for kid in kids:
            complete(session, of(session, kid, "work")[0], root)
        assert [t.status for t in of(session, process, "sub")] == [STATUS.DONE, STATUS.DONE]
        of(session, kids[0], "end")[0].activate().undo()
        session.commit()
        session.expire_all()
        assert kids[0].status == STATUS.NEW
        process.cancel()
        session.commit()
    session.expire_all()
    assert process.status == STATUS.CANCELED
    assert [k.status for k in kids] == [STATUS.CANCELED, STATUS.DONE]
    assert rows(session, kids[0]) == [("start", "DONE"), ("work", "DONE"), ("end", "CANCELED")]
    assert [t.status for t in of(session, process, "sub")] == [STATUS.DONE, STATUS.DONE]


# -- a fan-out run again over a shorter list -----------------------------------------------------


def majority(act: Any) -> bool:
    return len(act.arrived) * 2 > len(act.branches)


class MajorityFlow(Flow):
    start = flow.StartFunction().Next(this.fan)
    fan = flow.Split().Each(this.review, items=lambda act: act.process.data["items"])
    review = flow.View().Next(this.join)
    join = flow.Join(until=majority, cancel_rest=True).Next(this.after)
    after = flow.View().Next(this.end)
    end = flow.End()


def test_branches_of_a_fan_out_run_again_over_fewer_items_are_this_runs_only(session, root):
    """Four reviewers, then the list is cut to three: the manager cancels the branches,
    undoes the split, mends the data and runs it again. A majority of three is two; the
    join counted the fourth, canceled branch of the first run too (four branches), so two
    answers were no majority and the third reviewer had to answer as well."""
    with Context(propagate_exception=False, user=root):
        process = MajorityFlow.start.run(items=["a", "b", "c", "d"])
        session.commit()
        for task in of(session, process, "review"):
            task.activate().cancel()
        session.commit()
        (fan,) = of(session, process, "fan")
        fan.activate().undo()
        process.data = {"items": ["a", "b", "c"]}
        session.commit()
        fan.activate().perform()
        session.commit()
        fresh = [t for t in of(session, process, "review") if t.status == STATUS.NEW]
        assert len(fresh) == 3
        complete(session, fresh[0], root)
        complete(session, fresh[1], root)
        join = of(session, process, "join")[0]
        assert len(join.activate().branches) == 3
    assert [t.status for t in of(session, process, "review")] == [STATUS.CANCELED] * 4 + [
        STATUS.DONE, STATUS.DONE, STATUS.CANCELED]
    assert [t.status for t in of(session, process, "join")] == [STATUS.DONE]
    assert [t.status for t in of(session, process, "after")] == [STATUS.NEW]


def test_the_end_of_a_child_of_a_canceled_parent_cannot_be_undone(session, root):
    """The errand was done, then the parent canceled. Undo of the errand's End reopened
    it: a live child under a canceled parent, which nothing would cancel again. Refused
    now, with the reason; a child of a parent that is still open can be reopened as before."""
    with Context(propagate_exception=False, user=root):
        process = ErrandsFlow.start.run()
        session.commit()
        kids = [children(session, t)[0] for t in of(session, process, "sub")]
        complete(session, of(session, kids[0], "work")[0], root)
        end = of(session, kids[0], "end")[0].activate()
        assert "undo" in [t.name for t in end.get_available_transitions()]
        process.cancel()
        session.commit()
        session.expire_all()
        end = of(session, kids[0], "end")[0].activate()
        assert "undo" not in [t.name for t in end.get_available_transitions()]
        with pytest.raises(TransitionNotAllowed, match="the process that started it was canceled"):
            end.undo()
        session.rollback()
    session.expire_all()
    assert [k.status for k in kids] == [STATUS.DONE, STATUS.CANCELED]


class OneErrandFlow(Flow):
    start = flow.StartFunction().Next(this.sub)
    sub = flow.Subprocess(ErrandFlow.start).Next(this.after)
    after = flow.View().Next(this.end)
    end = flow.End()


def test_undo_of_the_start_cancels_a_child_reopened_after_its_task_finished(session, root):
    """The manager unwinds the parent backwards (the errand's task undone and canceled, its
    finished errand reopened meanwhile) to its start: undo of the start cancels the parent,
    and used to leave the errand open under it for good. It is canceled with the parent,
    as by a process cancel."""
    with Context(propagate_exception=False, user=root):
        process = OneErrandFlow.start.run()
        session.commit()
        (sub,) = of(session, process, "sub")
        (kid,) = children(session, sub)
        complete(session, of(session, kid, "work")[0], root)
        of(session, process, "after")[0].activate().cancel()
        session.commit()
        sub.activate().undo()
        session.commit()
        sub.activate().cancel()
        session.commit()
        of(session, kid, "end")[0].activate().undo()  # the errand reopened
        session.commit()
        of(session, process, "start")[0].activate().undo()
        session.commit()
    session.expire_all()
    assert process.status == STATUS.CANCELED
    assert kid.status == STATUS.CANCELED
    assert rows(session, kid) == [("start", "DONE"), ("work", "DONE"), ("end", "CANCELED")]


class TwoEndsFlow(Flow):
    start = flow.StartFunction().Next(this.split)
    split = flow.Split().Next(this.a).Next(this.b)
    a = flow.View().Next(this.end_a)
    b = flow.View().Next(this.end_b)
    end_a = flow.End()
    end_b = flow.End()


class TwoEndsParentFlow(Flow):
    start = flow.StartFunction().Next(this.sub)
    sub = flow.Subprocess(TwoEndsFlow.start).Next(this.after)
    after = flow.View().Next(this.end)
    end = flow.End()


def test_no_task_of_a_finished_child_of_a_canceled_parent_reopens_it(session, root):
    """The child is DONE (one End canceled by a manager, the other reached), the parent is
    canceled. Undo (or Activate next) of the branch whose End was canceled reopened the
    child under its canceled parent; every transition but cancel is refused there now."""
    with Context(propagate_exception=False, user=root):
        process = TwoEndsParentFlow.start.run()
        session.commit()
        (kid,) = children(session, of(session, process, "sub")[0])
        for node in ("a", "b"):
            complete(session, of(session, kid, node)[0], root)
        of(session, kid, "end_b")[0].activate().undo()
        session.commit()
        of(session, kid, "end_b")[0].activate().cancel()
        session.commit()
        session.expire_all()
        assert kid.status == STATUS.DONE
        b = of(session, kid, "b")[0].activate()
        assert {"undo", "activate_next"} <= {t.name for t in b.get_available_transitions()}
        process.cancel()
        session.commit()
        session.expire_all()
        b = of(session, kid, "b")[0].activate()
        assert b.get_available_transitions() == []
        for name in ("undo", "activate_next"):
            with pytest.raises(TransitionNotAllowed, match="the process that started it was canceled"):
                getattr(b, name)()
            session.rollback()
    session.expire_all()
    assert kid.status == STATUS.DONE and process.status == STATUS.CANCELED
