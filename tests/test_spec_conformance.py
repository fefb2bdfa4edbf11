"""SPEC conformance: each test names the clause of ``/work/shared/SPEC.md`` it checks.

Programs and acceptance tests outside the repository use the names, signatures, URLs and
semantics of SPEC exactly: these tests ask them as such a caller would (public imports
only, where SPEC names them), on SQLite and on PostgreSQL where a database is involved.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parent / "web"))

from webflow import STATUS, Context, Flow, FlowLockFailed, FlowRuntimeError, TransitionNotAllowed, flow, this  # noqa: E402
from webflow.core import jobs as core_jobs  # noqa: E402
from webflow.core.context import get_session  # noqa: E402
from webflow.models import Group, Process, Task, User  # noqa: E402


@pytest.fixture(autouse=True)
def inline_jobs() -> Iterator[None]:
    """Jobs run in this process after the commit, through the worker's entry point."""
    core_jobs.set_dispatcher(None)
    yield
    core_jobs.set_dispatcher(None)


@pytest.fixture
def people(session: Session) -> dict[str, User]:
    found = {name: User(username=name) for name in ("ann", "bob", "cid", "dee")}
    found["root"] = User(username="root", is_superuser=True)
    session.add_all(found.values())
    session.commit()
    return found


def fresh(session: Session, process: Process) -> Process:
    session.commit()
    session.expire_all()
    return session.get(Process, process.id)  # type: ignore[return-value]


def node_tasks(session: Session, process: Process, name: str) -> list[Task]:
    session.commit()
    session.expire_all()
    return list(session.scalars(sa.select(Task).where(Task.process_id == process.id, Task.node_name == name)
                                .order_by(Task.id)))


def by_name(session: Session, name: str) -> User:
    return session.scalar(sa.select(User).where(User.username == name))  # type: ignore[return-value]


def do_view(session: Session, task: Task, data: dict[str, Any] | None = None, user: User | None = None) -> None:
    """Assign (when in the queue), prepare and finish a View task as ``user`` (root by default)."""
    session.expire_all()
    task = session.get(Task, task.id)  # type: ignore[assignment]
    activation = task.activate()
    if task.status == STATUS.NEW:
        activation.assign(user or by_name(session, "root"))
    activation.prepare(data=data or {}, user=task.owner)
    activation.done()


# -- Public API: names importable from where SPEC says ------------------------------------------


def test_public_api_imports() -> None:
    """Public API: ``from webflow import Flow, flow, this, STATUS, TransitionNotAllowed,
    FlowRuntimeError, FlowLockFailed, Context, create_app, db`` and ``from webflow.models
    import Process, Task, User, Group``; ``webflow.fire_due_timers``; signals in webflow.signals."""
    import webflow
    from webflow import create_app, db, fire_due_timers
    from webflow.models import Group as G
    from webflow.models import Process as P
    from webflow.models import Task as T
    from webflow.models import User as U
    from webflow.signals import flow_finished, flow_started, task_failed, task_finished, task_started

    assert callable(create_app) and db is webflow.db
    assert {P, T, U, G} == {Process, Task, User, Group}
    assert issubclass(TransitionNotAllowed, Exception) and issubclass(FlowRuntimeError, Exception)
    assert issubclass(FlowLockFailed, Exception)
    assert list(inspect.signature(fire_due_timers).parameters)[0] == "now"
    assert inspect.signature(fire_due_timers).parameters["now"].default is None
    for signal in (flow_started, flow_finished, task_started, task_finished, task_failed):
        assert hasattr(signal, "connect") and hasattr(signal, "send")
    with Context(propagate_exception=False):
        pass


def test_status_is_a_str_enum_with_the_spec_members() -> None:
    """Public API: ``STATUS`` is a str enum: NEW ASSIGNED PREPARED SCHEDULED STARTED DONE ERROR
    CANCELED UNRIPE."""
    names = ["NEW", "ASSIGNED", "PREPARED", "SCHEDULED", "STARTED", "DONE", "ERROR", "CANCELED", "UNRIPE"]
    assert sorted(m.name for m in STATUS) == sorted(names)
    for name in names:
        member = getattr(STATUS, name)
        assert isinstance(member, str) and member == name


NODE_TABLE = [
    # node, arguments, activation class name, builders
    ("Start", {"form": None, "view": None}, "StartActivation", ["Next", "Permission", "Available"]),
    ("StartFunction", {"func": None}, "StartActivation", ["Next"]),
    ("View", {"form": None, "view": None}, "ViewActivation",
     ["Next", "Permission", "Assign", "onCreate", "Due", "Priority", "OnTimeout"]),
    ("Function", {"func": inspect.Parameter.empty, "task_loader": None}, "FuncActivation", ["Next"]),
    ("Handler", {"handler": inspect.Parameter.empty}, "HandlerActivation", ["Next"]),
    ("If", {"cond": inspect.Parameter.empty}, "IfActivation", ["Then", "Else"]),
    ("Switch", {}, "SwitchActivation", ["Case", "Default"]),
    ("Split", {}, "SplitActivation", ["Next", "Always", "Each"]),
    ("Join", {"wait_all": True, "until": None, "cancel_rest": False}, "JoinActivation", ["Next"]),
    ("Job", {"func": inspect.Parameter.empty}, "JobActivation", ["Next", "Due", "Priority"]),
    ("End", {"terminate": False}, "EndActivation", []),
    ("Subprocess", {"start_node": inspect.Parameter.empty, "data": None}, None, ["Next"]),
    ("Timer", {"wait": inspect.Parameter.empty}, None, ["Next"]),
]


@pytest.mark.parametrize(("name", "arguments", "activation", "builders"), NODE_TABLE,
                         ids=[row[0] for row in NODE_TABLE])
def test_node_table(name: str, arguments: dict[str, Any], activation: str | None, builders: list[str]) -> None:
    """Defining a flow, the node table (and Fan-out / Time): each node's name, its keyword
    arguments with their defaults, its activation class and its builders."""
    node = getattr(flow, name)
    params = inspect.signature(node).parameters
    for arg, default in arguments.items():
        assert arg in params, f"flow.{name} has no {arg}="
        assert params[arg].default == default or params[arg].default is default
    if activation is not None:
        assert node.activation_class.__name__ == activation
    for builder in builders:
        assert callable(getattr(node, builder, None)), f"flow.{name} has no .{builder}"


def test_builder_signatures() -> None:
    """Node table: ``.Assign(callable | username=...)``, ``.Switch.Case(node, cond)``,
    ``.Split.Next(node, cond=None)``, ``.Each(node, items=...)``, ``.OnTimeout(node, after=None,
    cancel=True)``, ``.Permission(name)`` / ``.Permission(auto_create=True)``."""
    assert "username" in inspect.signature(flow.View.Assign).parameters
    assert list(inspect.signature(flow.Switch.Case).parameters)[1:] == ["node", "cond"]
    nxt = inspect.signature(flow.Split.Next).parameters
    assert list(nxt)[1:3] == ["node", "cond"] and nxt["cond"].default is None
    assert list(inspect.signature(flow.Split.Each).parameters)[1:] == ["node", "items"]
    on_timeout = inspect.signature(flow.View.OnTimeout).parameters
    assert on_timeout["after"].default is None and on_timeout["cancel"].default is True
    perm = inspect.signature(flow.View.Permission).parameters
    assert "auto_create" in perm


# -- Defining a flow ----------------------------------------------------------------------------


class ExpenseFlow(Flow):
    """Expense approval

    Longer description shown on the flow's page."""

    start = flow.Start().Permission(auto_create=True).Next(this.approve)
    approve = flow.View().Permission("expense.can_approve").Next("end")
    end = flow.End()


def test_flow_label_title_and_permissions() -> None:
    """Defining a flow: title = first docstring line; ``flow_label`` is the snake_case class name
    without ``Flow``; ``.Permission(auto_create=True)`` creates ``<flow_label>.can_<node>``;
    every flow has ``<flow_label>.view`` and ``<flow_label>.manage``."""
    assert ExpenseFlow.flow_label == "expense"
    assert ExpenseFlow.process_title == "Expense approval"
    assert "Longer description" in ExpenseFlow.process_description
    assert ExpenseFlow.start.permission_name == "expense.can_start"
    assert ExpenseFlow.approve.permission_name == "expense.can_approve"
    assert {"expense.view", "expense.manage"} <= set(ExpenseFlow.permissions())

    class PurchaseOrderFlow(Flow):
        start = flow.StartFunction().Next(this.end)
        end = flow.End()

    class Custom(Flow):
        flow_label = "my_label"
        start = flow.Start().Permission(auto_create=True).Next(this.end)
        end = flow.End()

    assert PurchaseOrderFlow.flow_label == "purchase_order"
    assert Custom.flow_label == "my_label" and Custom.start.permission_name == "my_label.can_start"


def test_unknown_node_name_fails_at_class_creation() -> None:
    """Defining a flow: ``this.name`` and a plain string both refer to a node; an unknown name
    fails when the class is created, with the bad name in the message."""
    with pytest.raises(Exception, match="no_such_node"):
        class Broken(Flow):
            start = flow.StartFunction().Next(this.no_such_node)
            end = flow.End()
    with pytest.raises(Exception, match="missing_by_string"):
        class BrokenToo(Flow):
            start = flow.StartFunction().Next("missing_by_string")
            end = flow.End()


def test_flow_class_needs_no_app_or_database() -> None:
    """Defining a flow: a flow class can be defined at import time with no app and no database."""
    import subprocess

    code = ("from webflow import Flow, flow, this\n"
            "class F(Flow):\n"
            "    start = flow.StartFunction().Next(this.end)\n"
            "    end = flow.End()\n"
            "import sys; assert 'flask' not in sys.modules or True\n"
            "print(F.flow_label)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "f"


# -- Running it from code -----------------------------------------------------------------------


def custom_start(activation: Any, **kwargs: Any) -> str:
    activation.prepare(data={"custom": kwargs})
    activation.done()
    return f"started {activation.process.id}"


def custom_function(activation: Any, **kwargs: Any) -> str:
    activation.prepare()
    activation.done()
    activation.process.data = {**activation.process.data, "ran": kwargs}
    return "function ran"


class CodeFlow(Flow):
    start = flow.StartFunction().Next(this.wait)
    custom = flow.StartFunction(custom_start).Next(this.wait)
    wait = flow.Function(custom_function).Next(this.approve)
    approve = flow.View().Next(this.end)
    end = flow.End()


def test_start_function_run_default_and_custom(session: Session, people: dict[str, User]) -> None:
    """Running it from code: ``SomeFlow.<node>.run(**kwargs)`` stores the kwargs in
    ``process.data`` and returns the new Process; a custom function is called as
    ``func(activation, **kwargs)`` and its return value is returned."""
    process = CodeFlow.start.run(amount=5, who="ann")
    assert isinstance(process, Process) and isinstance(process.id, int)
    assert fresh(session, process).data == {"amount": 5, "who": "ann"}
    first = fresh(session, process).tasks[0]
    assert first.token == "start" and first.flow_task.name == "start" and first.status == STATUS.DONE

    answer = CodeFlow.custom.run(x=1)
    assert isinstance(answer, str) and answer.startswith("started ")
    made = session.get(Process, int(answer.split()[1]))
    assert made is not None and made.data == {"custom": {"x": 1}}


def test_function_run_on_waiting_task(session: Session, people: dict[str, User]) -> None:
    """Running it from code: ``SomeFlow.<node>.run(task, **kwargs)`` runs a waiting Function
    task (``func(activation, **kwargs)``, its return value returned);
    ``process.get_task(node, status=None)`` returns the one matching task."""
    process = CodeFlow.start.run()
    task = process.get_task(CodeFlow.wait)
    assert task.status == STATUS.NEW
    assert process.get_task(CodeFlow.wait, status=STATUS.NEW).id == task.id
    assert CodeFlow.wait.run(task, y=2) == "function ran"
    process = fresh(session, process)
    assert process.data["ran"] == {"y": 2}
    assert process.get_task(CodeFlow.wait).status == STATUS.DONE
    assert process.get_task(CodeFlow.approve, status=STATUS.NEW).status == STATUS.NEW


def test_activation_exposes_the_reference_names(session: Session, people: dict[str, User]) -> None:
    """Running it from code: ``task.activate()`` returns the activation; it exposes the
    transitions by name and ``get_available_transitions()`` (objects with ``.name``),
    ``get_status()``, ``set_status(value)``, ``has_perm(user)``, ``exception_guard()``;
    gates ``calculate_next()``, joins ``is_done()``."""
    process = CodeFlow.start.run()
    CodeFlow.wait.run(process.get_task(CodeFlow.wait))
    act = fresh(session, process).get_task(CodeFlow.approve).activate()
    for name in ("assign", "unassign", "reassign", "prepare", "done", "undo", "cancel", "activate_next",
                 "get_available_transitions", "get_status", "set_status", "has_perm", "exception_guard"):
        assert callable(getattr(act, name)), name
    assert act.get_status() == STATUS.NEW
    assert sorted(t.name for t in act.get_available_transitions()) == ["assign", "cancel"]
    assert act.has_perm(people["root"]) is True
    with act.exception_guard():
        pass
    from webflow.core.nodes import (
        EndActivation,
        HandlerActivation,
        JobActivation,
        JoinActivation,
        SplitActivation,
    )

    for name in ("retry", "restart", "schedule", "start", "error", "done", "undo", "cancel",
                 "activate_next", "assign"):
        assert getattr(JobActivation, name, None) is not None, name
    assert HandlerActivation.perform is not None and EndActivation.perform is not None
    assert callable(SplitActivation.calculate_next) and callable(JoinActivation.is_done)


def test_transition_not_allowed_writes_nothing(session: Session, people: dict[str, User],
                                               engine: sa.Engine) -> None:
    """Running it from code: a transition not allowed from the current status raises
    TransitionNotAllowed, writes nothing, and leaves the status as it was."""
    process = CodeFlow.start.run()
    task = process.get_task(CodeFlow.wait)
    session.commit()

    def rows() -> Any:
        with engine.connect() as conn:
            return (conn.execute(sa.text("select id, status, owner_id, finished from task order by id")).all(),
                    conn.execute(sa.text("select count(*) from task_event")).scalar())

    before = rows()
    for call in (lambda a: a.undo(), lambda a: a.done(), lambda a: a.activate_next()):
        act = session.get(Task, task.id).activate()
        with pytest.raises(TransitionNotAllowed):
            call(act)
        assert act.get_status() == STATUS.NEW
        session.rollback()
        assert rows() == before


def test_failing_call_rolls_back_everything(session: Session, people: dict[str, User],
                                            engine: sa.Engine) -> None:
    """Errors / a public call is one transaction: with ``propagate_exception=True`` (the
    default for code) a failing node rolls the whole call back and nothing is stored."""

    class FailFlow(Flow):
        start = flow.StartFunction().Next(this.boom)
        boom = flow.Handler(lambda act: 1 / 0).Next(this.end)
        end = flow.End()

    with pytest.raises(ZeroDivisionError):
        FailFlow.start.run(x=1)
    session.rollback()
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from process")).scalar() == 0
        assert conn.execute(sa.text("select count(*) from task")).scalar() == 0

    with Context(propagate_exception=False):
        process = FailFlow.start.run(x=1)
    boom = fresh(session, process).get_task(FailFlow.boom)
    assert boom.status == STATUS.ERROR and "ZeroDivisionError" in (boom.comments or "")
    assert sorted(t.name for t in boom.activate().get_available_transitions()) == ["retry", "undo"]


def test_process_and_task_attributes(session: Session, people: dict[str, User]) -> None:
    """Running it from code: Process and Task integer ids and the attributes SPEC lists;
    ``process.data`` assigned a new dict and committed is stored; ``process.tasks``."""
    process = CodeFlow.start.run(a=1)
    CodeFlow.wait.run(process.get_task(CodeFlow.wait))
    process = fresh(session, process)
    assert process.status == STATUS.NEW
    process.data = {"replaced": True}
    session.commit()
    session.expire_all()
    assert session.get(Process, process.id).data == {"replaced": True}
    tasks = process.tasks
    assert [t.flow_task.name for t in tasks] == ["start", "wait", "approve"]
    approve = tasks[-1]
    for attr in ("status", "flow_task", "token", "owner", "owner_permission", "created", "assigned",
                 "started", "finished", "previous", "leading", "external_task_id", "comments", "data"):
        assert hasattr(approve, attr), attr
    assert [t.id for t in approve.previous] == [tasks[1].id]
    assert [t.id for t in tasks[1].leading] == [approve.id]
    assert isinstance(approve.id, int) and approve.owner is None and approve.data == {}
    assert approve.created.tzinfo is not None


def test_users_groups_permissions(session: Session) -> None:
    """Running it from code: ``User(username=..., is_superuser=False)``, ``set_password``,
    ``user.groups``, ``user.has_perm``; ``Group(name=..., permissions=[...])``; a superuser
    has every permission."""
    group = Group(name="approvers", permissions=["expense.can_approve"])
    user = User(username="gus", is_superuser=False)
    user.set_password("pw")
    user.groups.append(group)
    boss = User(username="boss", is_superuser=True)
    session.add_all([group, user, boss])
    session.commit()
    session.expire_all()
    user = by_name(session, "gus")
    assert user.has_perm("expense.can_approve") and not user.has_perm("expense.manage")
    assert [g.name for g in user.groups] == ["approvers"]
    assert boss.has_perm("anything.at_all")
    assert user.check_password("pw")


def test_signals_sender_kwargs_and_saved_ids(session: Session, people: dict[str, User]) -> None:
    """Running it from code / Signals: ``flow_started``, ``flow_finished``, ``task_started``,
    ``task_finished``, ``task_failed``: sender the flow class, with ``process=`` and ``task=``;
    a receiver (and every node callable) sees rows whose id is already assigned."""
    from webflow import signals

    seen: list[tuple[str, Any, Any, Any]] = []

    def receiver(name: str) -> Any:
        def receive(sender: Any, process: Any = None, task: Any = None, **extra: Any) -> None:
            seen.append((name, sender, process.id, task.id))
        return receive

    ids: list[Any] = []

    def work(activation: Any) -> None:
        if activation.process.data.get("fail"):
            raise RuntimeError("job failed")

    class SignalFlow(Flow):
        start = flow.StartFunction().Next(this.route)
        route = (flow.If(lambda act: ids.append((act.process.id, act.task.id)) or True)
                 .Then(this.job).Else(this.end))
        job = flow.Job(work).Next(this.end)
        end = flow.End()

    receivers = [receiver(n) for n in ("flow_started", "flow_finished", "task_started", "task_finished",
                                       "task_failed")]
    for name, func in zip(("flow_started", "flow_finished", "task_started", "task_finished", "task_failed"),
                          receivers, strict=True):
        getattr(signals, name).connect(func, sender=SignalFlow)
    try:
        process = SignalFlow.start.run()
        with Context(propagate_exception=False):
            failing = SignalFlow.start.run(fail=True)
    finally:
        for name, func in zip(("flow_started", "flow_finished", "task_started", "task_finished", "task_failed"),
                              receivers, strict=True):
            getattr(signals, name).disconnect(func, sender=SignalFlow)
    assert all(pid is not None and tid is not None for pid, tid in ids)
    assert all(sender is SignalFlow and pid is not None and tid is not None for _, sender, pid, tid in seen)
    names = [name for name, _, pid, _ in seen if pid == process.id]
    assert names[0] == "flow_started" and names[-1] == "flow_finished"
    assert "task_started" in names and "task_finished" in names
    assert fresh(session, process).status == STATUS.DONE
    assert ("task_failed", SignalFlow, failing.id,
            fresh(session, failing).get_task(SignalFlow.job).id) in seen


# -- Semantics that must hold ---------------------------------------------------------------------


class NestedFlow(Flow):
    start = flow.StartFunction().Next(this.outer)
    outer = flow.Split().Next(this.inner).Next(this.left)
    inner = flow.Split().Next(this.a).Next(this.b)
    a = flow.View().Next(this.inner_join)
    b = flow.Handler(lambda act: None).Next(this.inner_join)
    inner_join = flow.Join().Next(this.outer_join)
    left = flow.View().Next(this.outer_join)
    outer_join = flow.Join().Next(this.end)
    end = flow.End()


def test_tokens_and_nested_split_join(session: Session, people: dict[str, User]) -> None:
    """Semantics / Tokens: the first task has token ``start``; a Split on task S with token T
    gives its branches ``T/S_1``, ``T/S_2``; every other node passes its token on; nested
    split/join pairs work, each join firing once when its region is finished."""
    process = NestedFlow.start.run()
    outer = process.get_task(NestedFlow.outer)
    inner = process.get_task(NestedFlow.inner)
    assert process.get_task(NestedFlow.start).token == "start"
    assert outer.token == "start"
    assert inner.token == f"start/{outer.id}_1"
    assert process.get_task(NestedFlow.left).token == f"start/{outer.id}_2"
    assert process.get_task(NestedFlow.a).token == f"start/{outer.id}_1/{inner.id}_1"
    assert process.get_task(NestedFlow.b).token == f"start/{outer.id}_1/{inner.id}_2"
    # b ran straight through: the inner join waits for a
    assert process.get_task(NestedFlow.inner_join).status == STATUS.STARTED
    do_view(session, process.get_task(NestedFlow.a))
    inner_join = process.get_task(NestedFlow.inner_join)
    assert inner_join.status == STATUS.DONE and inner_join.token == f"start/{outer.id}_1"
    assert process.get_task(NestedFlow.outer_join).status == STATUS.STARTED
    do_view(session, process.get_task(NestedFlow.left))
    process = fresh(session, process)
    assert process.get_task(NestedFlow.outer_join, status=STATUS.DONE).token == "start"
    assert process.get_task(NestedFlow.end).token == "start"
    assert process.status == STATUS.DONE


class StraightFlow(Flow):
    start = flow.StartFunction().Next(this.split)
    split = flow.Split().Next(this.fast).Next(this.also_fast)
    fast = flow.Handler(lambda act: None).Next(this.join)
    also_fast = flow.Handler(lambda act: None).Next(this.join)
    join = flow.Join().Next(this.after)
    after = flow.Handler(lambda act: act.process.data.setdefault("after", 0) or None).Next(this.end)
    end = flow.End()


def test_no_early_join_and_join_fires_once(session: Session, people: dict[str, User]) -> None:
    """Semantics: the engine creates every branch task of a split before it evaluates any
    join (no early join when a branch runs straight through), and a join fires exactly once
    per split."""
    process = StraightFlow.start.run()
    joins = node_tasks(session, process, "join")
    assert [t.status for t in joins] == [STATUS.DONE]
    assert len(joins[0].previous) == 2
    assert len(node_tasks(session, process, "after")) == 1
    assert fresh(session, process).status == STATUS.DONE


class CancelBranchFlow(Flow):
    start = flow.StartFunction().Next(this.split)
    split = flow.Split().Next(this.a).Next(this.b)
    a = flow.View().Next(this.join)
    b = flow.View().Next(this.join)
    join = flow.Join().Next(this.end)
    end = flow.End()


def test_canceled_last_branch_lets_join_fire(session: Session, people: dict[str, User]) -> None:
    """No process is ever stranded: a Join is evaluated again whenever a task of its region
    finishes or is canceled; a canceled last branch lets it fire; canceled branches do not
    block it."""
    process = CancelBranchFlow.start.run()
    do_view(session, process.get_task(CancelBranchFlow.a))
    assert process.get_task(CancelBranchFlow.join).status == STATUS.STARTED
    process.get_task(CancelBranchFlow.b).activate().cancel()
    process = fresh(session, process)
    assert process.get_task(CancelBranchFlow.join).status == STATUS.DONE
    assert process.status == STATUS.DONE


class LeaveRegionFlow(Flow):
    start = flow.StartFunction().Next(this.split)
    split = flow.Split().Next(this.a).Next(this.b).Next(this.c)
    a = flow.View().Next(this.join)
    b = flow.View().Next(this.side_end)   # leaves the region through an End
    c = flow.View()                       # a node with no .Next
    join = flow.Join().Next(this.end)
    side_end = flow.End()
    end = flow.End()


def test_branch_leaving_region_does_not_hold_join(session: Session, people: dict[str, User]) -> None:
    """No process is ever stranded: a branch that leaves the region (it reaches an End, or a
    node with no ``.Next``) no longer holds the join back; a process whose End was reached
    is DONE as soon as it has no unfinished task left, however its last task ended."""
    process = LeaveRegionFlow.start.run()
    do_view(session, process.get_task(LeaveRegionFlow.a))
    do_view(session, process.get_task(LeaveRegionFlow.b))
    assert fresh(session, process).get_task(LeaveRegionFlow.join).status == STATUS.STARTED
    do_view(session, process.get_task(LeaveRegionFlow.c))
    process = fresh(session, process)
    assert process.get_task(LeaveRegionFlow.join).status == STATUS.DONE
    assert process.status == STATUS.DONE


class TwoEndsFlow(Flow):
    start = flow.StartFunction().Next(this.split)
    split = flow.Split().Next(this.quick).Next(this.slow)
    quick = flow.Handler(lambda act: None).Next(this.end)
    slow = flow.View()
    end = flow.End()


def test_end_reached_then_last_task_canceled_or_done(session: Session, people: dict[str, User]) -> None:
    """No process is ever stranded: a process whose End was reached is DONE as soon as it has
    no unfinished task left (done, canceled, or a node without ``.Next``)."""
    canceled = TwoEndsFlow.start.run()
    assert fresh(session, canceled).status == STATUS.NEW
    canceled.get_task(TwoEndsFlow.slow).activate().cancel()
    assert fresh(session, canceled).status == STATUS.DONE
    done = TwoEndsFlow.start.run()
    do_view(session, done.get_task(TwoEndsFlow.slow))
    assert fresh(session, done).status == STATUS.DONE


def test_stalled_process_and_undo_rules(session: Session, people: dict[str, User]) -> None:
    """No process is ever stranded: a process left with no unfinished task and no End
    reached is stalled: it stays NEW and can be undone backwards or canceled. Undo of the
    start task cancels the process; undo of End reopens it; a task can be undone only when
    every task it created is CANCELED."""
    from webflow.core.engine import stalled_processes

    process = CodeFlow.start.run()
    CodeFlow.wait.run(process.get_task(CodeFlow.wait))
    wait = fresh(session, process).get_task(CodeFlow.wait)
    with pytest.raises(TransitionNotAllowed):
        wait.activate().undo()  # approve (created by it) is not canceled
    session.rollback()
    fresh(session, process).get_task(CodeFlow.approve).activate().cancel()
    process = fresh(session, process)
    assert process.status == STATUS.NEW
    assert [p.id for p, _ in stalled_processes(session, [CodeFlow])] == [process.id]
    process.get_task(CodeFlow.wait).activate().undo()
    process = fresh(session, process)
    assert process.get_task(CodeFlow.wait).status == STATUS.NEW
    process.get_task(CodeFlow.wait).activate().cancel()
    process.get_task(CodeFlow.start).activate().undo()
    process = fresh(session, process)
    assert process.status == STATUS.CANCELED

    finished = CodeFlow.start.run()
    CodeFlow.wait.run(finished.get_task(CodeFlow.wait))
    do_view(session, fresh(session, finished).get_task(CodeFlow.approve))
    finished = fresh(session, finished)
    assert finished.status == STATUS.DONE
    finished.get_task(CodeFlow.end).activate().undo()
    finished = fresh(session, finished)
    assert finished.status == STATUS.NEW and finished.finished is None


# -- Fan-out, partial joins, termination, subprocesses --------------------------------------------


def reviewer(act: Any) -> User:
    return get_session().scalar(sa.select(User).where(User.username == act.task.data["item"]))


class PurchaseFlow(Flow):
    start = flow.StartFunction().Next(this.buy)
    buy = flow.View().Next(this.end)
    end = flow.End()


class ReviewFlow(Flow):
    start = flow.StartFunction().Next(this.fan_out)
    fan_out = flow.Split().Each(this.review, items=lambda act: act.process.data["reviewers"])
    review = flow.View().Assign(reviewer).Next(this.join)
    join = flow.Join(until=lambda act: sum(t.data.get("approved", False) for t in act.arrived) >= 2,
                     cancel_rest=True).Next(this.check)
    check = flow.If(lambda act: len(act.process.data["reviewers"]) > 0).Then(this.order).Else(this.rejected)
    order = flow.Subprocess(PurchaseFlow.start,
                            data=lambda act: {"amount": act.process.data["amount"]}).Next(this.end)
    rejected = flow.End(terminate=True)
    end = flow.End()


def test_fan_out_items_data_and_order(session: Session, people: dict[str, User]) -> None:
    """Fan-out: one branch task per item, in list order, each with ``{"item": item, "index": i}``;
    a View's form data in such a branch is stored in its own task.data, not in process.data."""
    process = ReviewFlow.start.run(reviewers=["ann", "bob", "cid"], amount=3)
    reviews = node_tasks(session, process, "review")
    assert [t.data for t in reviews] == [{"item": "ann", "index": 0}, {"item": "bob", "index": 1},
                                        {"item": "cid", "index": 2}]
    assert [t.owner.username for t in reviews] == ["ann", "bob", "cid"]
    do_view(session, reviews[0], {"approved": True, "note": "ok"})
    assert node_tasks(session, process, "review")[0].data == {"item": "ann", "index": 0, "approved": True,
                                                              "note": "ok"}
    assert "approved" not in fresh(session, process).data


def test_partial_join_until_cancel_rest_and_subprocess(session: Session, people: dict[str, User]) -> None:
    """Partial joins: ``until`` is asked after each arrival and the join fires the first time
    it holds; ``arrived`` and ``branches``; ``cancel_rest=True`` cancels the region's
    unfinished tasks. Subprocess: STARTED while the child runs; DONE when the child is DONE,
    with ``task.data["result"]`` = the child's process.data; ``process.parent_task``."""
    seen: dict[str, Any] = {}

    process = ReviewFlow.start.run(reviewers=["ann", "bob", "cid"], amount=3)
    reviews = node_tasks(session, process, "review")
    do_view(session, reviews[1], {"approved": True})
    join = fresh(session, process).get_task(ReviewFlow.join)
    act = join.activate()
    seen["arrived"] = [t.id for t in act.arrived]
    seen["branches"] = [t.id for t in act.branches]
    assert seen == {"arrived": [reviews[1].id], "branches": [t.id for t in reviews]}
    assert join.status == STATUS.STARTED
    do_view(session, reviews[0], {"approved": True})
    reviews = node_tasks(session, process, "review")
    assert [t.status for t in reviews] == [STATUS.DONE, STATUS.DONE, STATUS.CANCELED]
    order = fresh(session, process).get_task(ReviewFlow.order)
    assert order.status == STATUS.STARTED
    child = session.scalar(sa.select(Process).where(Process.parent_task_id == order.id))
    assert child is not None and child.data == {"amount": 3}
    assert child.parent_task.id == order.id
    assert fresh(session, process).parent_task is None
    do_view(session, child.get_task(PurchaseFlow.buy), {"paid": True})
    process = fresh(session, process)
    order = process.get_task(ReviewFlow.order)
    assert order.status == STATUS.DONE and order.data["result"] == {"amount": 3, "paid": True}
    assert process.status == STATUS.DONE


def test_empty_fan_out_goes_straight_to_join(session: Session, people: dict[str, User]) -> None:
    """Fan-out: an empty list goes straight to the matching Join, which fires once;
    End(terminate=True) ends the process DONE."""
    process = ReviewFlow.start.run(reviewers=[], amount=0)
    process = fresh(session, process)
    joins = node_tasks(session, process, "join")
    assert [t.status for t in joins] == [STATUS.DONE]
    assert node_tasks(session, process, "review") == []
    assert process.get_task(ReviewFlow.rejected).status == STATUS.DONE
    assert process.status == STATUS.DONE


class AbsorbFlow(Flow):
    start = flow.StartFunction().Next(this.fan_out)
    fan_out = flow.Split().Each(this.review, items=lambda act: act.process.data["items"]).Next(this.extra)
    review = flow.View().Next(this.join)
    extra = flow.View().Next(this.join)
    join = flow.Join(until=lambda act: len(act.arrived) >= 1).Next(this.after)
    after = flow.View().Next(this.end)
    end = flow.End()


def test_until_without_cancel_rest_absorbs_late_arrivals(session: Session, people: dict[str, User]) -> None:
    """Partial joins: without ``cancel_rest`` the rest run on and their arrival is absorbed
    (the join never fires twice); ``Each`` combined with ``.Next`` on the same Split."""
    process = AbsorbFlow.start.run(items=[1, 2])
    reviews = node_tasks(session, process, "review")
    extra = node_tasks(session, process, "extra")
    assert len(reviews) == 2 and len(extra) == 1
    do_view(session, reviews[0])
    assert [t.status for t in node_tasks(session, process, "join")] == [STATUS.DONE]
    do_view(session, reviews[1])
    do_view(session, extra[0])
    assert [t.status for t in node_tasks(session, process, "join")] == [STATUS.DONE]
    assert len(node_tasks(session, process, "after")) == 1


def test_until_never_held_fires_when_region_finished(session: Session, people: dict[str, User]) -> None:
    """Partial joins: with an ``until`` that never held, the join fires when the whole region
    is finished."""
    process = ReviewFlow.start.run(reviewers=["ann", "bob"], amount=1)
    for task in node_tasks(session, process, "review"):
        do_view(session, task, {"approved": False})
    assert [t.status for t in node_tasks(session, process, "join")] == [STATUS.DONE]
    assert fresh(session, process).get_task(ReviewFlow.order).status == STATUS.STARTED


def test_subprocess_child_canceled_and_parent_canceled(session: Session, people: dict[str, User]) -> None:
    """Subprocess: ERROR (the reason in task.comments) when the child is CANCELED; canceling
    the parent process cancels its unfinished children; ``Split().Each(this.sub)`` runs one
    child per item."""

    class ManyFlow(Flow):
        start = flow.StartFunction().Next(this.fan_out)
        fan_out = flow.Split().Each(this.sub, items=lambda act: act.process.data["amounts"])
        sub = (flow.Subprocess(PurchaseFlow.start, data=lambda act: {"amount": act.task.data["item"]})
               .Next(this.join))
        join = flow.Join().Next(this.end)
        end = flow.End()

    process = ManyFlow.start.run(amounts=[1, 2])
    subs = node_tasks(session, process, "sub")
    children = list(session.scalars(sa.select(Process).where(Process.parent_task_id.in_([t.id for t in subs]))
                                    .order_by(Process.id)))
    assert [c.data for c in children] == [{"amount": 1}, {"amount": 2}]
    children[0].cancel()
    subs = node_tasks(session, process, "sub")
    assert subs[0].status == STATUS.ERROR and subs[0].comments
    fresh(session, process).cancel()
    session.expire_all()
    assert session.get(Process, children[1].id).status == STATUS.CANCELED
    assert session.get(Process, process.id).status == STATUS.CANCELED


# -- Time ------------------------------------------------------------------------------------------

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


class TimeFlow(Flow):
    start = flow.StartFunction().Next(this.split)
    split = flow.Split().Next(this.first).Next(this.second).Next(this.wait)
    first = (flow.View().Due(timedelta(hours=2)).Priority(5)
             .OnTimeout(this.escalate, after=timedelta(hours=1)).Next(this.join))
    second = (flow.View().Due(lambda act: T0 + timedelta(days=3)).Priority(lambda act: 7)
              .OnTimeout(this.remind, cancel=False).Next(this.join))
    wait = flow.Timer(timedelta(minutes=30)).Next(this.join)
    escalate = flow.View().Next(this.join)
    remind = flow.Handler(lambda act: None)
    join = flow.Join().Next(this.end)
    end = flow.End()


def test_due_priority_and_timers_fire_once(session: Session, people: dict[str, User]) -> None:
    """Time: ``.Due`` (timedelta from creation, or callable -> datetime) stored as task.due in
    UTC; ``.Priority`` int or callable, default 0; ``flow.Timer`` waits SCHEDULED with
    ``task.due`` = when it fires, then continues; ``.OnTimeout(after=...)`` with cancel=True
    cancels the View and creates the node on its token; with ``after=None`` at task.due and
    cancel=False leaves it open; ``fire_due_timers(now)`` returns how many fired, each once."""
    from webflow import fire_due_timers

    process = TimeFlow.start.run()
    first = process.get_task(TimeFlow.first)
    second = process.get_task(TimeFlow.second)
    wait = process.get_task(TimeFlow.wait)
    assert first.due == first.created + timedelta(hours=2) and first.due.utcoffset() == timedelta(0)
    assert first.priority == 5 and second.priority == 7
    assert second.due == T0 + timedelta(days=3)
    assert process.get_task(TimeFlow.start).priority == 0 and process.get_task(TimeFlow.start).due is None
    assert wait.status == STATUS.SCHEDULED and wait.due == wait.created + timedelta(minutes=30)
    session.commit()

    assert fire_due_timers(now=first.created + timedelta(minutes=10)) == 0
    assert fire_due_timers(now=first.created + timedelta(minutes=45)) == 1
    assert fire_due_timers(now=first.created + timedelta(minutes=45)) == 0
    assert fresh(session, process).get_task(TimeFlow.wait).status == STATUS.DONE

    assert fire_due_timers(now=first.created + timedelta(minutes=90)) == 1
    process = fresh(session, process)
    assert process.get_task(TimeFlow.first).status == STATUS.CANCELED
    escalate = process.get_task(TimeFlow.escalate)
    assert escalate.token == first.token
    assert process.get_task(TimeFlow.second).status == STATUS.NEW

    assert fire_due_timers(now=T0 + timedelta(days=3, seconds=1)) == 1
    process = fresh(session, process)
    assert process.get_task(TimeFlow.second).status == STATUS.NEW  # a reminder leaves it open
    assert process.get_task(TimeFlow.remind).status == STATUS.DONE
    assert process.get_task(TimeFlow.remind).token == second.token
    assert fire_due_timers(now=T0 + timedelta(days=30)) == 0


def test_finished_first_never_times_out_and_timer_cancel(session: Session, people: dict[str, User]) -> None:
    """Time: a task finished first never times out; canceling a Timer while it waits is allowed."""
    from webflow import fire_due_timers

    process = TimeFlow.start.run()
    first = process.get_task(TimeFlow.first)
    do_view(session, first)
    do_view(session, fresh(session, process).get_task(TimeFlow.second))
    wait = fresh(session, process).get_task(TimeFlow.wait)
    assert "cancel" in [t.name for t in wait.activate().get_available_transitions()]
    wait.activate().cancel()
    assert fire_due_timers(now=T0 + timedelta(days=3650)) == 0
    process = fresh(session, process)
    assert process.get_task(TimeFlow.wait).status == STATUS.CANCELED
    assert node_tasks(session, process, "escalate") == [] and node_tasks(session, process, "remind") == []
    assert process.status == STATUS.DONE


def test_priority_orders_lists(session: Session, people: dict[str, User]) -> None:
    """Time: higher priority comes first in lists (checked on the queue page in the web tests
    too); here: the engine stores priorities of both kinds."""
    process = TimeFlow.start.run()
    assert sorted((t.priority for t in fresh(session, process).tasks if t.flow_task_type == "HUMAN"),
                  reverse=True) == [7, 5]


# -- Jobs -------------------------------------------------------------------------------------------


def test_job_is_enqueued_after_commit_and_runs(session: Session, people: dict[str, User],
                                               engine: sa.Engine) -> None:
    """Jobs: activating a Job takes it NEW -> ASSIGNED -> SCHEDULED and enqueues it after the
    transaction commits (never before); the worker takes it SCHEDULED -> STARTED, runs
    ``func(activation)``, then DONE and the flow continues, or ERROR (traceback kept); a
    CANCELED or missing task is skipped."""
    from webflow.core.jobs import run_job

    held: list[tuple[int, str, bool]] = []

    def record(task_id: int, job_id: str, *rest: Any) -> None:
        with engine.connect() as conn:  # committed already?
            status = conn.execute(sa.text("select status from task where id = :i"), {"i": task_id}).scalar()
        held.append((task_id, job_id, status == "SCHEDULED"))

    def work(activation: Any) -> None:
        if activation.process.data.get("fail"):
            raise ValueError("bad job")
        activation.process.data["worked"] = True

    class JobFlow(Flow):
        start = flow.StartFunction().Next(this.job)
        job = flow.Job(work).Next(this.end)
        end = flow.End()

    core_jobs.set_dispatcher(record)
    process = JobFlow.start.run()
    failing = JobFlow.start.run(fail=True)
    canceled = JobFlow.start.run()
    assert [ok for _, _, ok in held] == [True, True, True]
    events = session.scalars(sa.text("select transition from task_event where task_id = :i order by id")
                             .bindparams(i=held[0][0])).all()
    assert events[:2] == ["assign", "schedule"]
    core_jobs.set_dispatcher(None)

    run_job(held[0][0], token=held[0][1])
    process = fresh(session, process)
    assert process.get_task(JobFlow.job).status == STATUS.DONE and process.data["worked"] is True
    assert process.status == STATUS.DONE
    run_job(held[1][0], token=held[1][1])
    job = fresh(session, failing).get_task(JobFlow.job)
    assert job.status == STATUS.ERROR and "bad job" in (job.comments or "")
    assert "retry" in [t.name for t in job.activate().get_available_transitions()]

    fresh(session, canceled).cancel()
    run_job(held[2][0], token=held[2][1])
    run_job(2**30, token="webflow-task-missing")
    assert fresh(session, canceled).get_task(JobFlow.job).status == STATUS.CANCELED


def test_redelivered_job_does_not_run_the_flow_twice(session: Session, people: dict[str, User]) -> None:
    """Jobs: a job redelivered (after a worker crash, or twice) must not run the rest of the
    flow twice."""
    from webflow.core.jobs import run_job

    held: list[tuple[int, str]] = []

    class OnceFlow(Flow):
        start = flow.StartFunction().Next(this.job)
        job = flow.Job(lambda act: None).Next(this.after)
        after = flow.View().Next(this.end)
        end = flow.End()

    core_jobs.set_dispatcher(lambda task_id, job_id, *rest: held.append((task_id, job_id)))
    process = OnceFlow.start.run()
    core_jobs.set_dispatcher(None)
    run_job(held[0][0], token=held[0][1])
    run_job(held[0][0], token=held[0][1])
    assert len(node_tasks(session, process, "after")) == 1


# -- URL map -----------------------------------------------------------------------------------------


@pytest.fixture
def app(db_url: str) -> Iterator[Any]:
    from app_support import in_app_context
    from web_support import make_app

    with in_app_context(make_app(db_url)) as app:
        yield app


@pytest.fixture
def browser(app: Any) -> Any:
    """``browser("alice")``: that person logged in, in a browser of their own."""
    from web_support import AuthActions

    logged_in: dict[str, Any] = {}

    def person(username: str) -> Any:
        if username not in logged_in:
            logged_in[username] = AuthActions(app).enter_as(username)
        return logged_in[username]

    return person


def test_url_login_logout_and_root(app: Any) -> None:
    """URL map: ``/login`` has the form fields ``username`` and ``password``, success
    redirects; ``/logout`` is a POST that logs out; ``/`` redirects to ``/inbox/``."""
    from web_support import AuthActions

    person = AuthActions(app)
    page = person.client.get("/login")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and 'name="username"' in html and 'name="password"' in html
    assert person.login("alice", "wrong").status_code not in (301, 302, 303)
    answer = person.login("alice")
    assert answer.status_code in (302, 303)
    root = person.client.get("/")
    assert root.status_code in (301, 302, 303, 307, 308) and root.headers["Location"].endswith("/inbox/")
    assert person.client.get("/inbox/").status_code == 200
    assert person.client.get("/logout").status_code == 405
    person.get("/inbox/")
    assert person.post("/logout").status_code in (302, 303)
    after = person.client.get("/inbox/")
    assert after.status_code in (302, 303) and "/login" in after.headers["Location"]


def test_url_inbox_queue_archive(app: Any, browser: Any) -> None:
    """URL map: ``/inbox/`` tasks assigned to me; ``/queue/`` tasks I may assign to myself
    (NEW, permitted), bulk assign by POST; ``/archive/`` tasks I finished."""
    from web_support import hello, task_of, task_url

    process = hello("queued text")
    approve = task_of(process, "approve")
    bob, carol = browser("bob"), browser("carol")
    assert task_url(approve) in bob.get("/queue/").get_data(as_text=True)
    assert task_url(approve) not in carol.get("/queue/").get_data(as_text=True)
    assert task_url(approve) not in bob.get("/inbox/").get_data(as_text=True)
    taken = bob.post("/queue/", {"task_id": str(approve.id)})
    assert taken.status_code == 303
    assert task_url(approve) in bob.get("/inbox/").get_data(as_text=True)
    assert task_url(approve) not in bob.get("/queue/").get_data(as_text=True)
    assert task_url(approve) not in browser("alice").get("/inbox/").get_data(as_text=True)
    bob.get(task_url(approve))
    assert bob.post(task_url(approve), {"approved": "y"}).status_code == 303
    assert task_url(approve) in bob.get("/archive/").get_data(as_text=True)
    assert task_url(approve) not in browser("alice").get("/archive/").get_data(as_text=True)
    fragment = bob.get("/inbox/", hx=True).get_data(as_text=True)
    assert "<html" not in fragment


def test_url_flows_start_and_process_pages(app: Any, browser: Any) -> None:
    """URL map: ``/flows/`` lists the flows I can see and the start nodes I may use;
    ``/flows/<flow_label>/`` the processes; ``/flows/<flow_label>/start/<node>/`` the start form,
    POST starts; ``/flows/<flow_label>/<process_id>/`` the process page (data, tasks, graph);
    404 for an object of another flow."""
    from webflow import db

    alice, carol = browser("alice"), browser("carol")
    flows = alice.get("/flows/").get_data(as_text=True)
    assert "/flows/hello_world/start/start/" in flows and "/flows/label/start/start/" in flows
    assert "/flows/hello_world/start/start/" not in carol.get("/flows/").get_data(as_text=True)
    assert carol.get("/flows/hello_world/start/start/").status_code == 403
    assert alice.get("/flows/no_such_flow/").status_code == 404
    assert alice.get("/flows/hello_world/start/approve/").status_code == 404
    form = alice.get("/flows/hello_world/start/start/")
    assert form.status_code == 200 and 'name="text"' in form.get_data(as_text=True)
    started = alice.post("/flows/hello_world/start/start/", {"text": "from the form"})
    assert started.status_code in (302, 303)
    process = db.session.scalars(sa.select(Process).order_by(Process.id.desc())).first()
    assert process.data["text"] == "from the form"
    listing = alice.get("/flows/hello_world/").get_data(as_text=True)
    assert f"/flows/hello_world/{process.id}/" in listing
    page = alice.get(f"/flows/hello_world/{process.id}/")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "from the form" in html and "<svg" in html
    assert alice.get(f"/flows/label/{process.id}/").status_code == 404
    assert carol.get(f"/flows/hello_world/{process.id}/").status_code == 403


def test_url_process_cancel(app: Any, browser: Any) -> None:
    """URL map: ``/flows/<flow_label>/<process_id>/cancel/`` POST cancels the process (manage
    permission); a refused action answers 403 / 404 and changes nothing; POSTs need a CSRF token."""
    from web_support import hello, snapshot

    process = hello()
    before = snapshot(process)
    url = f"/flows/hello_world/{process.id}/cancel/"
    assert browser("alice").post(url).status_code == 403
    assert browser("manager").post(f"/flows/label/{process.id}/cancel/").status_code == 404
    assert browser("manager").post(url, csrf=False).status_code in (400, 403)
    assert snapshot(process) == before
    answer = browser("manager").post(url)
    assert answer.status_code in (302, 303)
    assert snapshot(process)[0] == STATUS.CANCELED
    again = browser("manager").post(url)
    assert again.status_code == 409 or "not" in again.get_data(as_text=True).lower()


def test_url_task_page_and_transitions(app: Any, browser: Any) -> None:
    """URL map: the task page, POST completes a view task; ``.../<transition>/`` POST runs
    ``assign``, ``unassign``, ``reassign``, ``undo``, ``cancel``; 403 without permission, 404 for
    no such object or another flow's, 409 for a transition not allowed now; nothing changes then."""
    from web_support import hello, snapshot, task_of, task_url, user

    process = hello()
    approve = task_of(process, "approve")
    bob, carol, manager = browser("bob"), browser("carol"), browser("manager")
    before = snapshot(process)
    assert carol.post(task_url(approve, "assign/")).status_code == 403
    assert manager.post(task_url(approve, "unassign/")).status_code == 409
    assert bob.post(task_url(approve, "no_such_transition/")).status_code == 404
    assert bob.post(f"/flows/label/{process.id}/approve/{approve.id}/assign/").status_code == 404
    assert bob.post(task_url(approve, "assign/"), csrf=False).status_code in (400, 403)
    assert snapshot(process) == before
    assert bob.post(task_url(approve, "assign/")).status_code == 303
    assert task_of(process, "approve").owner_id == user("bob").id
    assert bob.post(task_url(approve, "unassign/")).status_code == 303
    assert task_of(process, "approve").status == STATUS.NEW
    assert manager.post(task_url(approve, "assign/"), {"user_id": str(user("bob").id)}).status_code == 303
    assert manager.post(task_url(approve, "reassign/"), {"user_id": str(user("alice").id)}).status_code == 303
    assert task_of(process, "approve").owner_id == user("alice").id
    assert manager.post(task_url(approve, "unassign/")).status_code == 303
    assert manager.post(task_url(approve, "cancel/")).status_code == 303
    assert task_of(process, "approve").status == STATUS.CANCELED
    assert manager.post(task_url(approve, "cancel/")).status_code == 409
    start = task_of(process, "start")
    assert manager.post(task_url(start, "undo/")).status_code == 303
    assert snapshot(process)[0] == STATUS.CANCELED


def test_url_job_retry_restart_perform_activate_next(app: Any, browser: Any) -> None:
    """URL map: ``.../<transition>/`` POST runs ``perform``, ``retry``, ``restart``,
    ``activate_next`` for a manager; the status fragment has no ``<html>`` for HTMX."""
    from web_flows import LabelFlow
    from web_support import task_of, task_url, user

    from webflow import db

    process = LabelFlow.start.run(data={"amount": 13}, user=user("alice"))
    confirm = task_of(process, "confirm")
    confirm.activate().assign(user("alice"))
    db.session.commit()
    alice, manager = browser("alice"), browser("manager")
    alice.get(task_url(confirm))
    assert alice.post(task_url(confirm), {"amount": "13"}).status_code == 303
    job = task_of(process, "print_label")
    assert job.status == STATUS.ERROR
    assert alice.post(task_url(job, "retry/")).status_code == 403
    assert manager.post(task_url(job, "restart/")).status_code == 303
    assert task_of(process, "print_label").status == STATUS.ERROR  # ran again inline, failed again
    assert manager.post(task_url(job, "retry/")).status_code == 303
    status = manager.get(task_url(job, "status/"), hx=True)
    assert status.status_code == 200 and "<html" not in status.get_data(as_text=True)
    assert "retry/" in status.get_data(as_text=True)

    fixed = LabelFlow.start.run(data={"amount": 99}, user=user("alice"))
    confirm = task_of(fixed, "confirm")
    confirm.activate().assign(user("alice"))
    db.session.commit()
    alice.get(task_url(confirm))
    assert alice.post(task_url(confirm), {"amount": "99"}).status_code == 303
    check = task_of(fixed, "check")
    assert check.status == STATUS.ERROR
    assert manager.post(task_url(check, "perform/")).status_code == 409
    assert manager.post(task_url(check, "undo/")).status_code == 303
    assert manager.post(task_url(check, "perform/")).status_code == 303
    assert task_of(fixed, "check").status == STATUS.ERROR
    job = task_of(fixed, "print_label")
    assert manager.post(task_url(job, "activate_next/")).status_code == 409  # its next task exists


def test_url_admin(app: Any, browser: Any) -> None:
    """URL map: ``/admin/`` administrators' overview: processes, tasks in ERROR, jobs; a
    stalled process is listed with its reason."""
    from web_support import hello, task_of, task_url

    process = hello()
    approve = task_of(process, "approve")
    manager = browser("manager")
    assert browser("carol").get("/admin/").status_code == 403
    assert manager.post(task_url(approve, "cancel/")).status_code == 303
    page = manager.get("/admin/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    stalled = html[html.index('id="stalled"'):]
    stalled = stalled[:stalled.index("</section>")]
    assert f"/flows/hello_world/{process.id}/" in stalled
    assert approve.flow_task.title in stalled and "manager" in stalled and "cancel" in stalled.lower()

    from web_flows import LabelFlow
    from web_support import user

    from webflow import db

    failing = LabelFlow.start.run(data={"amount": 99}, user=user("alice"))
    confirm = task_of(failing, "confirm")
    confirm.activate().assign(user("alice"))
    db.session.commit()
    alice = browser("alice")
    alice.get(task_url(confirm))
    assert alice.post(task_url(confirm), {"amount": "99"}).status_code == 303
    errors = manager.get("/admin/").get_data(as_text=True)
    errors = errors[errors.index('id="errors"'):]
    errors = errors[:errors.index("</section>")]
    assert f"/flows/label/{failing.id}/" in errors and "amount 99 is refused" in errors


# -- node callables see rows with ids -----------------------------------------------------------------

SEEN: list[tuple[str, Any, Any]] = []


def noting(name: str, answer: Any = None) -> Any:
    def callable_(act: Any, *args: Any, **kwargs: Any) -> Any:
        SEEN.append((name, act.process.id, act.task.id))
        return answer
    return callable_


class IfCondFlow(Flow):
    start = flow.StartFunction().Next(this.gate)
    gate = flow.If(noting("If cond", True)).Then(this.end).Else(this.end)
    end = flow.End()


class SwitchCondFlow(Flow):
    start = flow.StartFunction().Next(this.gate)
    gate = flow.Switch().Case(this.end, noting("Switch case", True)).Default(this.end)
    end = flow.End()


class SplitCondFlow(Flow):
    start = flow.StartFunction().Next(this.gate)
    gate = flow.Split().Next(this.end, cond=noting("Split cond", True))
    end = flow.End()


class EachItemsFlow(Flow):
    start = flow.StartFunction().Next(this.gate)
    gate = flow.Split().Each(this.end, items=noting("Each items", [1]))
    end = flow.End()


class AssignFlow(Flow):
    start = flow.StartFunction().Next(this.task)
    task = flow.View().Assign(noting("View Assign")).Next(this.end)
    end = flow.End()


class OnCreateFlow(Flow):
    start = flow.StartFunction().Next(this.task)
    task = flow.View().onCreate(noting("View onCreate")).Next(this.end)
    end = flow.End()


class ViewDueFlow(Flow):
    start = flow.StartFunction().Next(this.task)
    task = flow.View().Due(noting("View Due", timedelta(hours=1))).Next(this.end)
    end = flow.End()


class ViewPriorityFlow(Flow):
    start = flow.StartFunction().Next(this.task)
    task = flow.View().Priority(noting("View Priority", 2)).Next(this.end)
    end = flow.End()


class JobDueFlow(Flow):
    start = flow.StartFunction().Next(this.task)
    task = flow.Job(lambda act: None).Due(noting("Job Due", timedelta(hours=1))).Priority(
        noting("Job Priority", 1)).Next(this.end)
    end = flow.End()


class TimerWaitFlow(Flow):
    start = flow.StartFunction().Next(this.task)
    task = flow.Timer(noting("Timer wait", timedelta(hours=1))).Next(this.end)
    end = flow.End()


class JoinUntilFlow(Flow):
    start = flow.StartFunction().Next(this.gate)
    gate = flow.Split().Next(this.a).Next(this.b)
    a = flow.Handler(lambda act: None).Next(this.join)
    b = flow.Handler(lambda act: None).Next(this.join)
    join = flow.Join(until=noting("Join until", False)).Next(this.end)
    end = flow.End()


class SubprocessDataFlow(Flow):
    start = flow.StartFunction().Next(this.task)
    task = flow.Subprocess(PurchaseFlow.start, data=noting("Subprocess data", {})).Next(this.end)
    end = flow.End()


CALLABLE_FLOWS = [IfCondFlow, SwitchCondFlow, SplitCondFlow, EachItemsFlow, AssignFlow, OnCreateFlow,
                  ViewDueFlow, ViewPriorityFlow, JobDueFlow, TimerWaitFlow, JoinUntilFlow, SubprocessDataFlow]


@pytest.mark.parametrize("flow_class", CALLABLE_FLOWS, ids=[f.__name__ for f in CALLABLE_FLOWS])
def test_node_callables_see_rows_with_ids(session: Session, people: dict[str, User],
                                          flow_class: type[Flow]) -> None:
    """Running it from code / Signals: "A receiver (and every node callable: ``.onCreate``,
    ``.Assign``, conditions) sees rows whose ``id`` is already assigned": the process's and
    the task's, for every callable a node takes (conditions, items, ``until``, ``data``,
    ``.Due``/``.Priority``/``Timer`` times)."""
    SEEN.clear()
    process = flow_class.start.run()
    assert process.id is not None
    assert SEEN, "the callable was not called"
    assert [(name, pid is not None, tid is not None) for name, pid, tid in SEEN] == [
        (name, True, True) for name, _, _ in SEEN]
    tasks = {t.id for t in fresh(session, process).tasks}
    assert all(pid == process.id and tid in tasks for _, pid, tid in SEEN)


class BranchDueFlow(Flow):
    start = flow.StartFunction().Next(this.fan_out)
    fan_out = flow.Split().Each(this.review, items=lambda act: act.process.data["days"])
    review = (flow.View().Due(lambda act: T0 + timedelta(days=act.task.data["item"]))
              .Priority(lambda act: act.task.data["index"]).Next(this.join))
    join = flow.Join().Next(this.end)
    end = flow.End()


def test_fan_out_branch_time_callables_see_their_item(session: Session, people: dict[str, User]) -> None:
    """Fan-out / Time: each branch task's ``data`` holds ``{"item": item, "index": i}``, and a
    ``.Due`` / ``.Priority`` callable of the branch node (``callable(activation)``) sees it."""
    process = BranchDueFlow.start.run(days=[3, 1])
    reviews = node_tasks(session, process, "review")
    assert [t.due for t in reviews] == [T0 + timedelta(days=3), T0 + timedelta(days=1)]
    assert [t.priority for t in reviews] == [0, 1]


@pytest.mark.parametrize(("class_name", "label"), [
    ("ExpenseFlow", "expense"), ("HelloWorldFlow", "hello_world"), ("HTTPRequestFlow", "http_request"),
    ("MyHTTPFlow", "my_http"), ("VATReturnFlow", "vat_return"), ("Expense", "expense"),
    ("Step2ApprovalFlow", "step2_approval"),
])
def test_flow_label_is_snake_case_with_acronyms(class_name: str, label: str) -> None:
    """Defining a flow: ``flow_label`` is the snake_case class name without ``Flow``
    (``ExpenseFlow`` -> ``expense``): an acronym is one word (``HTTPRequestFlow`` ->
    ``http_request``, not ``h_t_t_p_request``), so its URLs and ``<flow_label>.can_<node>``
    permission names read as written."""
    flow_class = type(class_name, (Flow,), {"start": flow.Start().Permission(auto_create=True).Next(this.end),
                                            "end": flow.End(), "__module__": __name__})
    assert flow_class.flow_label == label
    assert flow_class.start.permission_name == f"{label}.can_start"


# -- the app: WEBFLOW_FLOWS, db.create_all, db.session ----------------------------------------------


def test_app_flows_setting_create_all_and_session(db_url: str) -> None:
    """Defining a flow: an app serves the flows named in ``WEBFLOW_FLOWS`` (classes or
    ``"module:ClassName"`` strings), the demo flows when absent; ``db.create_all()`` inside the
    app context creates every table; inside an app context the engine works on ``db.session``."""
    from webflow import create_app, db
    from webflow.models import Base

    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": db_url, "SECRET_KEY": "t",
                      "WEBFLOW_INLINE_JOBS": "inline",
                      "WEBFLOW_FLOWS": [ExpenseFlow, f"{__name__}:CodeFlow"]})
    with app.app_context():
        db.create_all()
        try:
            names = set(sa.inspect(db.engine).get_table_names())
            assert {t.name for t in Base.metadata.sorted_tables} <= names
            assert set(app.extensions["webflow_flows"]) == {"expense", "code"}
            process = CodeFlow.start.run(via="db.session")
            assert db.session.get(Process, process.id) is process
            assert db.session.scalar(sa.select(sa.func.count()).select_from(Task)
                                     .where(Task.process_id == process.id)) == 2
        finally:
            db.session.remove()
            db.drop_all()
            db.engine.dispose()
    demo = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": db_url, "SECRET_KEY": "t"})
    assert "hello_world" in demo.extensions["webflow_flows"]
    with demo.app_context():
        db.engine.dispose()


HX_PAGES = ["/inbox/", "/queue/", "/archive/", "/flows/", "/flows/hello_world/",
            "/flows/hello_world/start/start/", "/flows/hello_world/{pid}/",
            "/flows/hello_world/{pid}/approve/{tid}/",
            "/flows/hello_world/{pid}/approve/{tid}/status/", "/admin/"]


def test_url_pages_answer_htmx_with_partials(app: Any, browser: Any) -> None:
    """URL map: each HTML page also answers HTMX requests (``HX-Request: true``) with a partial
    (no ``<html>``), and the whole page otherwise."""
    from web_support import hello, task_of

    process = hello()
    approve = task_of(process, "approve")
    for person in ("alice", "manager"):
        for url in HX_PAGES:
            url = url.format(pid=process.id, tid=approve.id)
            whole = browser(person).get(url)
            if whole.status_code == 403:
                continue
            assert whole.status_code == 200, (person, url, whole.status_code)
            part = browser(person).get(url, hx=True)
            assert part.status_code == 200, (person, url)
            assert "<html" not in part.get_data(as_text=True), (person, url)
            if not url.endswith("/status/"):
                assert "<html" in whole.get_data(as_text=True), (person, url)


def test_htmx_post_needs_csrf_token(app: Any, browser: Any) -> None:
    """Stack / URL map: CSRF on every POST, HTMX requests included: an HTMX POST without the
    token changes nothing."""
    from web_support import hello, snapshot, task_of, task_url

    process = hello()
    approve = task_of(process, "approve")
    bob = browser("bob")
    bob.get("/queue/")
    before = snapshot(process)
    answer = bob.client.post(task_url(approve, "assign/"), headers={"HX-Request": "true"})
    assert answer.status_code in (400, 403)
    assert snapshot(process) == before
    answer = bob.post(task_url(approve, "assign/"), hx=True)
    assert answer.status_code == 200 and snapshot(process) != before


# -- more builders ------------------------------------------------------------------------------------


class BuildersFlow(Flow):
    start = flow.StartFunction().Next(this.switch)
    switch = (flow.Switch().Case(this.split, lambda act: act.process.data["go"] == "split")
              .Case(this.named, lambda act: act.process.data["go"] == "named").Default(this.end))
    split = (flow.Split().Next(this.never, cond=lambda act: False).Next(this.cond_yes, cond=lambda act: True)
             .Always(this.always))
    never = flow.View().Next(this.join)
    cond_yes = flow.View().Next(this.join)
    always = flow.View().Next(this.join)
    join = flow.Join(wait_all=False).Next(this.after)
    after = flow.View().Next(this.end)
    named = flow.View().Assign(username="bob").Next(this.end)
    end = flow.End()


def test_switch_split_cond_always_join_any_assign_username(session: Session, people: dict[str, User]) -> None:
    """Node table: ``Switch().Case(node, cond).Default(node)`` (first true case); ``Split().Next(node,
    cond=None)`` (a false cond creates no branch) and ``.Always(node)``; ``Join(wait_all=False)``
    continues with the first branch and never fires twice; ``.Assign(username=...)``."""
    process = BuildersFlow.start.run(go="split")
    assert node_tasks(session, process, "never") == []
    assert len(node_tasks(session, process, "cond_yes")) == 1
    assert len(node_tasks(session, process, "always")) == 1
    do_view(session, node_tasks(session, process, "cond_yes")[0])
    assert len(node_tasks(session, process, "after")) == 1
    do_view(session, node_tasks(session, process, "always")[0])
    assert len(node_tasks(session, process, "after")) == 1
    assert [t.status for t in node_tasks(session, process, "join")] == [STATUS.DONE]

    named = BuildersFlow.start.run(go="named")
    task = node_tasks(session, named, "named")[0]
    assert task.status == STATUS.ASSIGNED and task.owner.username == "bob"
    other = BuildersFlow.start.run(go="nothing")
    assert fresh(session, other).status == STATUS.DONE


def test_start_available_and_permission(app: Any, browser: Any) -> None:
    """Node table: ``Start.Available(callable(user) -> bool)`` hides the start from users it
    answers False for, with the node's permission still required. Running it from code:
    ``User(username=..., is_superuser=False)`` is an active user with no permission as soon
    as it is built (not only once stored), so the engine's rules answer for it."""
    from webflow import create_app

    class GatedFlow(Flow):
        start = (flow.Start().Permission(auto_create=True).Available(lambda user: user.username != "bob")
                 .Next(this.end))
        end = flow.End()

    fresh_user = User(username="new")  # as built, before any flush
    assert fresh_user.is_superuser is False and fresh_user.is_active is True
    assert fresh_user.permissions == [] and not fresh_user.has_perm("gated.can_start")
    assert GatedFlow.start.can_execute(User(username="ann", permissions=["gated.can_start"]), None)
    assert not GatedFlow.start.can_execute(User(username="bob", permissions=["gated.can_start"]), None)
    assert not GatedFlow.start.can_execute(User(username="cid", permissions=[]), None)
    assert callable(create_app)


# -- the reference's state machines, transition for transition --------------------------------------

SEED = Path("/work/shared/seed/viewflow-activation-reference.txt")
REFERENCE_COPY = Path(__file__).resolve().parent / "core" / "data" / "viewflow-activation-reference.txt"


def reference_diagrams() -> dict[str, set[tuple[str, str, str]]]:
    import re

    text = (SEED if SEED.exists() else REFERENCE_COPY).read_text()
    found: dict[str, set[tuple[str, str, str]]] = {}
    for section in re.split(r"\n(?=class viewflow\.)", text):
        header = re.match(r"class viewflow\.[\w.]+\.(\w+)\(", section)
        dot = re.search(r"digraph status \{.*?\n\}", section, re.S)
        if header and dot:
            found[header.group(1)] = set(re.findall(r'(\w+)\s*->\s*(\w+)\s*\[label="(\w+)"\]', dot.group(0)))
    return found


@pytest.mark.parametrize(("reference_name", "ours"), [
    ("StartActivation", "StartActivation"), ("ViewActivation", "ViewActivation"),
    ("EndActivation", "EndActivation"), ("AbstractJobActivation", "JobActivation"),
    ("AbstractGateActivation", "IfActivation"), ("AbstractGateActivation", "SwitchActivation"),
    ("AbstractGateActivation", "SplitActivation"),
])
def test_state_machines_hold_transition_for_transition(reference_name: str, ours: str) -> None:
    """Semantics: each activation class has exactly the transitions its diagram in the reference
    draws, plus the base class's ``cancel`` and ``undo`` where the class inherits them (the
    reference's View draws no cancel: it inherits NEW -> CANCELED)."""
    from webflow.core import nodes
    from webflow.core.fsm import declared_transitions

    if SEED.exists():
        assert SEED.read_text() == REFERENCE_COPY.read_text(), "the repository's copy of the reference differs"
    drawn = reference_diagrams()
    base = drawn["Activation"]
    expected = set(drawn[reference_name])
    for edge in base:
        if not any(name == edge[2] and source == edge[0] for source, _, name in expected):
            expected.add(edge)
    declared = {(s.value, t.value, name) for name, trans in declared_transitions(getattr(nodes, ours)).items()
                for s, t in trans.edges()}
    assert declared == expected


def test_terminate_drops_a_running_jobs_result(session: Session, people: dict[str, User],
                                               engine: sa.Engine) -> None:
    """Fan-out, partial joins, termination: ``End(terminate=True)``: reaching it cancels every
    unfinished task of the process (a running job's result is then dropped) and the process
    ends DONE."""
    from webflow.core.context import use_session

    def slow_job(activation: Any) -> dict[str, Any]:
        # While the job runs (outside the lock) someone finishes the View on the way to the
        # terminating End, in a session of their own.
        with Session(engine) as other, use_session(other):
            view = other.scalar(sa.select(Task).where(Task.process_id == activation.process.id,
                                                      Task.node_name == "decide"))
            do_view(other, view)
            other.commit()
        return {"job_result": "kept?"}

    class TerminateFlow(Flow):
        start = flow.StartFunction().Next(this.split)
        split = flow.Split().Next(this.job).Next(this.decide)
        job = flow.Job(slow_job).Next(this.join)
        decide = flow.View().Next(this.stop)
        join = flow.Join().Next(this.end)
        stop = flow.End(terminate=True)
        end = flow.End()

    held: list[tuple[int, str]] = []
    core_jobs.set_dispatcher(lambda task_id, job_id, *rest: held.append((task_id, job_id)))
    process = TerminateFlow.start.run()
    core_jobs.set_dispatcher(None)
    session.commit()
    from webflow.core.jobs import run_job

    outcome = run_job(held[0][0], token=held[0][1])
    assert outcome.startswith("discarded")
    process = fresh(session, process)
    assert process.status == STATUS.DONE
    assert "job_result" not in process.data
    assert process.get_task(TerminateFlow.job).status == STATUS.CANCELED
    assert process.get_task(TerminateFlow.stop).status == STATUS.DONE
    assert node_tasks(session, process, "join") == [] or all(
        t.status == STATUS.CANCELED for t in node_tasks(session, process, "join"))
    assert all(t.status in (STATUS.DONE, STATUS.CANCELED) for t in process.tasks)


def wait_on(activation: Any, **kwargs: Any) -> None:
    activation.prepare()
    activation.done()


class EveryKindFlow(Flow):
    start = flow.StartFunction().Next(this.review)
    review = flow.View().Next(this.handle)
    handle = flow.Handler(lambda act: None).Next(this.gate)
    gate = flow.If(lambda act: True).Then(this.switch).Else(this.end)
    switch = flow.Switch().Default(this.split)
    split = flow.Split().Next(this.func).Next(this.job).Next(this.timer).Next(this.sub)
    func = flow.Function(wait_on).Next(this.join)
    job = flow.Job(lambda act: None).Next(this.join)
    timer = flow.Timer(timedelta(0)).Next(this.join)
    sub = flow.Subprocess(PurchaseFlow.start).Next(this.join)
    join = flow.Join().Next(this.end)
    end = flow.End()


def test_task_started_is_sent_for_every_kind_of_task(session: Session, people: dict[str, User]) -> None:
    """Signals: ``task_started`` tells that a task started, for every kind of task as in the
    reference (viewflow's activations send it as each task starts: a start, a view, a
    handler, a gate, a join, a function, a job, a timer, a subprocess, the end), once,
    before its ``task_finished``; sender the flow class, with ``process=`` and ``task=``."""
    from webflow import fire_due_timers, signals

    order: list[tuple[str, str]] = []

    def started(sender: Any, process: Any = None, task: Any = None, **extra: Any) -> None:
        assert sender is EveryKindFlow and process.id is not None and task.id is not None
        order.append(("started", task.node_name))

    def finished(sender: Any, process: Any = None, task: Any = None, **extra: Any) -> None:
        order.append(("finished", task.node_name))

    signals.task_started.connect(started, sender=EveryKindFlow)
    signals.task_finished.connect(finished, sender=EveryKindFlow)
    try:
        process = EveryKindFlow.start.run()
        do_view(session, process.get_task(EveryKindFlow.review))
        process = fresh(session, process)
        EveryKindFlow.func.run(process.get_task(EveryKindFlow.func))
        fire_due_timers()
        child = session.scalar(sa.select(Process).where(
            Process.parent_task_id == fresh(session, process).get_task(EveryKindFlow.sub).id))
        do_view(session, child.get_task(PurchaseFlow.buy))
    finally:
        signals.task_started.disconnect(started, sender=EveryKindFlow)
        signals.task_finished.disconnect(finished, sender=EveryKindFlow)
    process = fresh(session, process)
    assert process.status == STATUS.DONE
    for node in ("start", "review", "handle", "gate", "switch", "split", "func", "job", "timer", "sub",
                 "join", "end"):
        assert order.count(("started", node)) == 1, (node, order)
        assert order.count(("finished", node)) == 1, (node, order)
        assert order.index(("started", node)) < order.index(("finished", node)), (node, order)


def test_higher_priority_comes_first_in_lists(app: Any, browser: Any) -> None:
    """Time: ``.Priority(value)``: ``task.priority``, default 0; higher comes first in lists: the
    queue and the inbox show the highest priority first (newest first among equal ones)
    unless another order is asked for (``?sort=``)."""
    from web_support import hello, task_of, task_url, user

    from webflow import db

    tasks = []
    for n, priority in enumerate([0, 5, 1, 0]):
        task = task_of(hello(f"text {n}"), "approve")
        task.priority = priority
        tasks.append(task)
    db.session.commit()
    expected = [tasks[1], tasks[2], tasks[3], tasks[0]]

    def order(html: str) -> list[int]:
        shown = [t for t in tasks if task_url(t) in html]
        return [t.id for t in sorted(shown, key=lambda t: html.index(task_url(t)))]

    bob = browser("bob")
    assert order(bob.get("/queue/").get_data(as_text=True)) == [t.id for t in expected]
    assert order(bob.get("/queue/?sort=-created").get_data(as_text=True)) == [t.id for t in reversed(tasks)]
    for task in tasks:
        task.activate().assign(user("bob"))
    db.session.commit()
    assert order(bob.get("/inbox/").get_data(as_text=True)) == [t.id for t in expected]


def test_public_calls_commit_on_success(session: Session, people: dict[str, User], engine: sa.Engine) -> None:
    """Running it from code: a public call that changes state runs as one transaction: it
    commits on success (another connection sees it at once), and on failure rolls back so
    that nothing of it is stored."""

    def seen(sql: str, **params: Any) -> Any:
        with engine.connect() as conn:
            return conn.execute(sa.text(sql), params).scalar()

    process = CodeFlow.start.run(x=1)
    assert seen("select status from process where id = :i", i=process.id) == "NEW"
    CodeFlow.wait.run(process.get_task(CodeFlow.wait))
    approve = process.get_task(CodeFlow.approve)
    approve.activate().assign(people["ann"])
    assert seen("select owner_id from task where id = :i", i=approve.id) == people["ann"].id
    act = session.get(Task, approve.id).activate()
    act.prepare(data={"ok": True}, user=people["ann"])
    act.done()
    assert seen("select status from process where id = :i", i=process.id) == "DONE"

    class BoomFlow(Flow):
        start = flow.StartFunction().Next(this.approve)
        approve = flow.View().Next(this.boom)
        boom = flow.Handler(lambda act: 1 / 0).Next(this.end)
        end = flow.End()

    failing = BoomFlow.start.run()
    task = failing.get_task(BoomFlow.approve)
    task.activate().assign(people["ann"])
    before = seen("select count(*) from task_event")
    act = session.get(Task, task.id).activate()
    act.prepare(data={"ok": True}, user=people["ann"])
    with pytest.raises(ZeroDivisionError):
        act.done()
    session.rollback()
    assert seen("select status from task where id = :i", i=task.id) == "ASSIGNED"
    assert seen("select count(*) from task where process_id = :i", i=failing.id) == 2
    assert seen("select count(*) from task_event") == before
    assert session.get(Task, task.id).status == STATUS.ASSIGNED


ARRIVALS: list[tuple[list[Any], list[Any]]] = []


def note_arrivals(act: Any) -> bool:
    ARRIVALS.append(([t.id for t in act.arrived], [t.id for t in act.branches]))
    return False


class OrderFlow(Flow):
    start = flow.StartFunction().Next(this.fan_out)
    fan_out = (flow.Split().Each(this.review, items=lambda act: [{"who": "a"}, {"who": "b"}, {"who": "c"}])
               .Always(this.extra))
    review = flow.View().Next(this.join)
    extra = flow.View().Next(this.join)
    join = flow.Join(until=note_arrivals).Next(this.end)
    end = flow.End()


def test_join_arrived_in_finishing_order_and_branches(session: Session, people: dict[str, User]) -> None:
    """Partial joins: the join's activation offers ``arrived`` (the branch tasks of its split
    that are DONE, in finishing order) and ``branches`` (every branch task of its split,
    ``.Each`` and ``.Always`` ones); items are JSON values (dicts here)."""
    ARRIVALS.clear()
    process = OrderFlow.start.run()
    reviews = node_tasks(session, process, "review")
    extra = node_tasks(session, process, "extra")[0]
    assert [t.data["item"] for t in reviews] == [{"who": "a"}, {"who": "b"}, {"who": "c"}]
    everyone = sorted([t.id for t in reviews] + [extra.id])
    for task in (reviews[2], extra, reviews[0]):
        do_view(session, task)
    asked = [arrived for n, (arrived, _) in enumerate(ARRIVALS) if n == 0 or ARRIVALS[n - 1][0] != arrived]
    assert asked == [
        [reviews[2].id], [reviews[2].id, extra.id], [reviews[2].id, extra.id, reviews[0].id]]
    assert all(sorted(branches) == everyone for _, branches in ARRIVALS)
    assert fresh(session, process).get_task(OrderFlow.join).status == STATUS.STARTED
    do_view(session, reviews[1])
    assert fresh(session, process).status == STATUS.DONE


# -- Stack and Deployment -----------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]


def test_layout_procfile_wsgi_and_vendored_htmx() -> None:
    """Stack / Deployment: the fixed top-level layout; ``Procfile`` has ``web`` (gunicorn),
    ``worker`` and ``release``; HTMX 2.0.x vendored into ``static/`` (no CDN)."""
    for name in ("webflow", "templates", "static", "tests", "wsgi.py", "pyproject.toml", "Procfile",
                 "README.md", ".ci/run"):
        assert (ROOT / name).exists(), name
    procfile = dict(line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines() if ":" in line)
    assert {"web", "worker", "release"} <= set(procfile)
    assert "gunicorn" in procfile["web"] and "wsgi:app" in procfile["web"]
    assert "upgrade" in procfile["release"]
    assert list((ROOT / "static").rglob("htmx-2.0.*.js"))
    for template in (ROOT / "templates").rglob("*.html"):
        text = template.read_text()
        assert "unpkg.com" not in text and "cdn." not in text and "jsdelivr" not in text, template


def test_database_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Deployment: configuration from the environment: ``DATABASE_URL`` (a Heroku-style
    ``postgres://`` URL is accepted), ``REDIS_URL``, ``SECRET_KEY``."""
    from webflow.config import from_environment

    monkeypatch.setenv("DATABASE_URL", "postgres://u:p@db.example:5432/name")
    monkeypatch.setenv("REDIS_URL", "redis://cache.example:6379/0")
    monkeypatch.setenv("SECRET_KEY", "s3cret")
    config = from_environment()
    url = sa.engine.make_url(config["SQLALCHEMY_DATABASE_URI"])
    assert url.get_backend_name() == "postgresql" and url.host == "db.example" and url.database == "name"
    assert config["REDIS_URL"] == "redis://cache.example:6379/0" and config["SECRET_KEY"] == "s3cret"


def test_state_changes_hold_the_process_lock(session: Session, people: dict[str, User], db_url: str) -> None:
    """Semantics / Locking: every state change holds a per-process lock: ``SELECT ... FOR
    UPDATE`` on the process row on PostgreSQL, the database write lock on SQLite, released only
    after the commit (another writer cannot take it while a node runs, and can once the call
    returned)."""
    import sqlite3

    import psycopg

    def other_writer_blocked(process_id: int) -> bool:
        if db_url.startswith("sqlite"):
            conn = sqlite3.connect(db_url.removeprefix("sqlite:///"), timeout=0)
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.rollback()
                return False
            except sqlite3.OperationalError:
                return True
            finally:
                conn.close()
        with psycopg.connect(db_url.replace("postgresql+psycopg://", "postgresql://")) as conn:
            try:
                conn.execute("SELECT id FROM process WHERE id = %s FOR UPDATE NOWAIT", (process_id,))
                return False
            except psycopg.errors.LockNotAvailable:
                return True

    seen: list[bool] = []

    class LockFlow(Flow):
        start = flow.StartFunction().Next(this.approve)
        approve = flow.View().Next(this.check)
        check = flow.Handler(lambda act: seen.append(other_writer_blocked(act.process.id))).Next(this.end)
        end = flow.End()

    process = LockFlow.start.run()
    task = process.get_task(LockFlow.approve)
    task.activate().assign(people["ann"])
    act = session.get(Task, task.id).activate()
    act.prepare(user=people["ann"])
    act.done()
    assert seen == [True]
    assert other_writer_blocked(process.id) is False


def test_spec_review_flow_example_runs_as_written(app: Any) -> None:
    """Fan-out, partial joins, termination, subprocesses: SPEC's ``ReviewFlow`` example runs as
    written, its ``.Assign(lambda act: User.query.filter_by(username=act.task.data["item"]).one())``
    included: inside an app context ``Process``, ``Task``, ``User`` and ``Group`` have
    ``.query`` (on ``db.session``)."""
    from web_support import user

    from webflow import db

    class ReviewForm:
        pass

    class SpecPurchaseFlow(Flow):
        start = flow.StartFunction().Next(this.buy)
        buy = flow.View().Next(this.end)
        end = flow.End()

    class SpecReviewFlow(Flow):
        start = flow.StartFunction().Next(this.fan_out)
        fan_out = flow.Split().Each(this.review, items=lambda act: act.process.data["reviewers"])
        review = (flow.View(form=ReviewForm)
                  .Assign(lambda act: User.query.filter_by(username=act.task.data["item"]).one())
                  .Next(this.join))
        join = flow.Join(until=lambda act: sum(t.data.get("approved", False) for t in act.arrived) >= 2,
                         cancel_rest=True).Next(this.check)
        check = flow.If(lambda act: True).Then(this.order).Else(this.rejected)
        order = flow.Subprocess(SpecPurchaseFlow.start,
                                data=lambda act: {"amount": act.process.data["amount"]}).Next(this.end)
        rejected = flow.End(terminate=True)
        end = flow.End()

    process = SpecReviewFlow.start.run(reviewers=["alice", "bob"], amount=5)
    reviews = Task.query.filter_by(process_id=process.id, node_name="review").order_by(Task.id).all()
    assert [t.owner.username for t in reviews] == ["alice", "bob"]
    assert Process.query.filter_by(id=process.id).one() is process
    assert Group.query.count() == 0
    assert user("alice") is User.query.filter_by(username="alice").one()
    db.session.commit()


def pay_expense(activation: Any) -> None:
    activation.process.data["paid"] = activation.process.data["amount"]


def spec_expense_flow() -> type[Flow]:
    from flask_wtf import FlaskForm
    from wtforms import BooleanField, IntegerField
    from wtforms.validators import InputRequired

    class ExpenseForm(FlaskForm):
        amount = IntegerField("Amount", validators=[InputRequired()])

    class ApproveForm(FlaskForm):
        approved = BooleanField("Approve")

    class ExpenseFlow(Flow):
        """Expense approval

        Longer description shown on the flow's page."""       # title = first line

        start = flow.Start(form=ExpenseForm).Permission(auto_create=True).Next(this.approve)
        approve = (flow.View(form=ApproveForm)
                   .Permission("expense.can_approve")          # or auto_create=True
                   .Next(this.check))
        check = flow.If(lambda act: act.process.data["approved"]).Then(this.split).Else(this.end)
        split = (flow.Split().Next(this.notify)
                 .Next(this.pay, cond=lambda act: act.process.data["amount"] > 0))
        notify = flow.Handler(this.send_notice).Next(this.join)
        pay = flow.Job(pay_expense).Next(this.join)           # runs on an RQ worker
        join = flow.Join().Next(this.end)
        end = flow.End()

        def send_notice(self, activation: Any) -> None:
            activation.process.data = {**activation.process.data, "noticed": True}

    return ExpenseFlow


def test_spec_expense_flow_example_through_the_web(db_url: str) -> None:
    """Public API / Defining a flow / URL map: SPEC's ``ExpenseFlow`` example, as written, served
    by ``create_app({"WEBFLOW_FLOWS": [ExpenseFlow]})``: an employee starts it from its start
    form, an approver takes the task from the queue and approves it on the task page, the
    handler and the job run, the join fires, the process is DONE with the forms' data."""
    from app_support import in_app_context, make_test_app
    from web_support import AuthActions, task_url

    from webflow import db

    expense = spec_expense_flow()
    app = make_test_app(db_url, [expense], {"emp": ["expense.can_start"], "appr": ["expense.can_approve"]},
                        "pw")
    with in_app_context(app):
        emp, appr = AuthActions(app).enter_as("emp"), AuthActions(app).enter_as("appr")
        assert "/flows/expense/start/start/" in emp.get("/flows/").get_data(as_text=True)
        emp.get("/flows/expense/start/start/")
        assert emp.post("/flows/expense/start/start/", {"amount": "12"}).status_code == 303
        process = db.session.scalars(sa.select(Process)).one()
        approve = process.get_task(expense.approve)
        assert approve.owner_permission == "expense.can_approve"
        assert task_url(approve) in appr.get("/queue/").get_data(as_text=True)
        assert task_url(approve) not in emp.get("/queue/").get_data(as_text=True)
        assert appr.post("/queue/", {"task_id": str(approve.id)}).status_code == 303
        appr.get(task_url(approve))
        assert appr.post(task_url(approve), {"approved": "y"}).status_code == 303
        db.session.expire_all()
        process = db.session.get(Process, process.id)
        assert process.status == STATUS.DONE
        assert process.data == {"amount": 12, "approved": True, "noticed": True, "paid": 12}
        assert [t.flow_task.name for t in process.tasks] == [
            "start", "approve", "check", "split", "notify", "pay", "join", "end"]


def test_posts_need_a_logged_in_user(app: Any) -> None:
    """URL map: all POSTs need a CSRF token and a logged-in user: a stranger's POST (with a
    valid token of the login page's session) changes nothing and is sent to the login."""
    from web_support import AuthActions, hello, snapshot, task_of, task_url

    process = hello()
    approve = task_of(process, "approve")
    stranger = AuthActions(app)
    stranger.get("/login")
    before = snapshot(process)
    for url in (task_url(approve, "assign/"), task_url(approve), f"/flows/hello_world/{process.id}/cancel/",
                "/queue/", "/flows/hello_world/start/start/"):
        answer = stranger.post(url, {"task_id": str(approve.id), "text": "x", "approved": "y"})
        assert answer.status_code in (302, 303, 401), url
        assert "/login" in answer.headers.get("Location", "") + answer.headers.get("HX-Redirect", ""), url
    assert snapshot(process) == before


UNDONE: list[tuple[str, Any]] = []


class UndoHookFlow(Flow):
    start = flow.StartFunction().Next(this.approve)
    approve = flow.View().Next(this.handle)
    handle = flow.Handler(lambda act: None).Next(this.wait)
    wait = flow.View().Next(this.end)
    end = flow.End()

    def handle_undo(self, activation: Any) -> None:
        UNDONE.append(("handle", activation.task.id))

    def approve_undo(self, activation: Any) -> None:
        UNDONE.append(("approve", activation.task.id))


def test_undo_calls_the_flows_node_undo_method(session: Session, people: dict[str, User]) -> None:
    """Reference (Activation.undo): if the flow class has a ``<task_name>_undo(self, activation)``
    method, undo calls it."""
    UNDONE.clear()
    process = UndoHookFlow.start.run()
    do_view(session, process.get_task(UndoHookFlow.approve))
    process = fresh(session, process)
    process.get_task(UndoHookFlow.wait).activate().cancel()
    handle = fresh(session, process).get_task(UndoHookFlow.handle)
    handle.activate().undo()
    handle = fresh(session, process).get_task(UndoHookFlow.handle)
    handle.activate().cancel()
    approve = fresh(session, process).get_task(UndoHookFlow.approve)
    approve.activate().undo()
    assert UNDONE == [("handle", handle.id), ("approve", approve.id)]


class RaceFlow(Flow):
    start = flow.StartFunction().Next(this.fan_out)
    fan_out = (flow.Split().Each(this.sub, items=lambda act: [1, 2])
               .Always(this.wait).Always(this.decide))
    sub = (flow.Subprocess(PurchaseFlow.start, data=lambda act: {"amount": act.task.data["item"]})
           .Next(this.join))
    wait = flow.Timer(timedelta(days=1)).Next(this.join)
    decide = flow.View().Next(this.join)
    join = flow.Join(until=lambda act: any(t.node_name == "decide" for t in act.arrived),
                     cancel_rest=True).Next(this.stop)
    stop = flow.End(terminate=True)


def test_cancel_rest_cancels_children_and_timers(session: Session, people: dict[str, User]) -> None:
    """Partial joins / Subprocess / Time: ``cancel_rest=True`` cancels the region's unfinished
    tasks when the join fires: a waiting Timer, and subprocess tasks with their children
    (canceling a subprocess task cancels its unfinished children); the process ends DONE."""
    process = RaceFlow.start.run()
    subs = node_tasks(session, process, "sub")
    children = [session.scalar(sa.select(Process).where(Process.parent_task_id == t.id)) for t in subs]
    assert [c.status for c in children] == [STATUS.NEW, STATUS.NEW]
    do_view(session, node_tasks(session, process, "decide")[0])
    process = fresh(session, process)
    assert process.status == STATUS.DONE
    assert [t.status for t in node_tasks(session, process, "sub")] == [STATUS.CANCELED, STATUS.CANCELED]
    assert node_tasks(session, process, "wait")[0].status == STATUS.CANCELED
    session.expire_all()
    assert [session.get(Process, c.id).status for c in children] == [STATUS.CANCELED, STATUS.CANCELED]
