"""Every activation class has the state machine of the reference, declared and in the database.

The reference (``data/viewflow-activation-reference.txt``, viewflow 1.x's activation docs)
draws six classes as DOT digraphs; the README documents the three it does not draw.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from webflow import STATUS, Context, Flow, TransitionNotAllowed, flow, this
from webflow.core import nodes
from webflow.core.activation import Activation
from webflow.core.fsm import declared_transitions, state_machine_dot
from webflow.core.nodes import (
    AbstractGateActivation,
    AbstractJobActivation,
    EndActivation,
    FuncActivation,
    HandlerActivation,
    IfActivation,
    JobActivation,
    JoinActivation,
    SplitActivation,
    StartActivation,
    SubprocessActivation,
    SwitchActivation,
    TimeoutActivation,
    TimerActivation,
    ViewActivation,
)
from webflow.core.nodes.timer import AbstractTimerActivation
from webflow.models import Process, Task, User

REFERENCE = Path(__file__).parent / "data" / "viewflow-activation-reference.txt"

Edge = tuple[str, str, str]  # (source, target, transition name)

EDGE_RE = re.compile(r'(\w+)\s*->\s*(\w+)\s*\[label="(\w+)"\]')


def parse_dot(dot: str) -> set[Edge]:
    """The labelled edges of a DOT digraph."""
    edges = EDGE_RE.findall(dot)
    assert len(edges) == len(set(edges)), f"an edge is drawn twice in {dot}"
    return set(edges)


def parse_reference() -> dict[str, set[Edge]]:
    """Class name -> the edges of the digraph in its section of the reference."""
    text = REFERENCE.read_text()
    diagrams: dict[str, set[Edge]] = {}
    sections = re.split(r"\n(?=class viewflow\.)", text)
    for section in sections:
        header = re.match(r"class viewflow\.[\w.]+\.(\w+)\(", section)
        dot = re.search(r"digraph status \{.*?\n\}", section, re.S)
        if header and dot:
            diagrams[header.group(1)] = parse_dot(dot.group(0))
    return diagrams


REFERENCE_DIAGRAMS = parse_reference()

# The README's machines for the classes the reference describes without a diagram.
README_MACHINES: dict[str, set[Edge]] = {
    "FuncActivation": {
        ("NEW", "PREPARED", "prepare"), ("PREPARED", "DONE", "done"),
        ("DONE", "DONE", "activate_next"), ("DONE", "NEW", "undo"), ("NEW", "CANCELED", "cancel"),
    },
    "HandlerActivation": {
        ("NEW", "DONE", "perform"), ("NEW", "ERROR", "perform"),
        ("ERROR", "DONE", "retry"), ("ERROR", "ERROR", "retry"),
        ("DONE", "NEW", "undo"), ("ERROR", "NEW", "undo"),
        ("NEW", "CANCELED", "cancel"), ("DONE", "DONE", "activate_next"),
    },
    "JoinActivation": {
        ("NEW", "STARTED", "start"),
        ("STARTED", "DONE", "done"), ("STARTED", "ERROR", "done"),
        ("STARTED", "DONE", "perform"), ("STARTED", "ERROR", "perform"),
        ("ERROR", "DONE", "retry"), ("ERROR", "ERROR", "retry"),
        ("ERROR", "STARTED", "retry"),  # asked again: until does not hold yet, it waits
        ("DONE", "DONE", "activate_next"),
        ("DONE", "NEW", "undo"), ("ERROR", "NEW", "undo"),
        ("NEW", "CANCELED", "cancel"), ("STARTED", "CANCELED", "cancel"),
    },
    "SubprocessActivation": {
        ("NEW", "STARTED", "perform"), ("NEW", "DONE", "perform"), ("NEW", "ERROR", "perform"),
        ("ERROR", "STARTED", "retry"), ("ERROR", "DONE", "retry"), ("ERROR", "ERROR", "retry"),
        ("STARTED", "DONE", "done"), ("STARTED", "ERROR", "error"),
        ("DONE", "DONE", "activate_next"),
        ("DONE", "NEW", "undo"), ("ERROR", "NEW", "undo"),
        ("NEW", "CANCELED", "cancel"), ("STARTED", "CANCELED", "cancel"), ("ERROR", "CANCELED", "cancel"),
    },
    # Timers (flow.Timer, and the boundary timers of View.OnTimeout) wait in SCHEDULED.
    "AbstractTimerActivation": {
        ("NEW", "SCHEDULED", "schedule"), ("NEW", "ERROR", "schedule"),  # a wait callable failed
        ("SCHEDULED", "SCHEDULED", "reschedule"),
        ("SCHEDULED", "DONE", "fire"), ("SCHEDULED", "ERROR", "fire"),
        ("ERROR", "DONE", "retry"), ("ERROR", "ERROR", "retry"),
        ("DONE", "DONE", "activate_next"),
        ("DONE", "NEW", "undo"), ("ERROR", "NEW", "undo"),
        ("NEW", "CANCELED", "cancel"), ("SCHEDULED", "CANCELED", "cancel"),
    },
}


def reference_machine(name: str) -> set[Edge]:
    """The drawn diagram, plus the base class's cancel/undo where the drawing leaves them out.

    "Base class ensures that all tasks can be undone or cancelled": ViewActivation's drawing
    has no cancel edge, yet a view task is canceled like any other (NEW -> CANCELED).
    """
    edges = set(REFERENCE_DIAGRAMS[name])
    drawn = {label for _, _, label in edges}
    for label in ("cancel", "undo"):
        if label not in drawn:
            edges |= {e for e in REFERENCE_DIAGRAMS["Activation"] if e[2] == label}
    return edges


MACHINES: dict[type[Activation], set[Edge]] = {
    Activation: reference_machine("Activation"),
    StartActivation: reference_machine("StartActivation"),
    # Delegation (issue 16) is the owner's reassign: the reference's edge, no edge of its own.
    ViewActivation: reference_machine("ViewActivation"),
    EndActivation: reference_machine("EndActivation"),
    AbstractJobActivation: reference_machine("AbstractJobActivation"),
    JobActivation: reference_machine("AbstractJobActivation"),
    AbstractGateActivation: reference_machine("AbstractGateActivation"),
    IfActivation: reference_machine("AbstractGateActivation"),
    SwitchActivation: reference_machine("AbstractGateActivation"),
    SplitActivation: reference_machine("AbstractGateActivation"),
    FuncActivation: README_MACHINES["FuncActivation"],
    HandlerActivation: README_MACHINES["HandlerActivation"],
    JoinActivation: README_MACHINES["JoinActivation"],
    SubprocessActivation: README_MACHINES["SubprocessActivation"],
    AbstractTimerActivation: README_MACHINES["AbstractTimerActivation"],
    TimerActivation: README_MACHINES["AbstractTimerActivation"],
    TimeoutActivation: README_MACHINES["AbstractTimerActivation"],
}


def declared_edges(cls: type) -> set[Edge]:
    edges = [
        (source.value, target.value, name)
        for name, trans in declared_transitions(cls).items()
        for source, target in trans.edges()
    ]
    assert len(edges) == len(set(edges)), f"{cls.__name__} declares an edge twice"
    return set(edges)


def class_id(cls: type) -> str:
    return cls.__name__


# -- (a) the declarations ------------------------------------------------------------------


def test_the_reference_draws_the_six_classes():
    assert set(REFERENCE_DIAGRAMS) == {
        "Activation", "StartActivation", "ViewActivation", "EndActivation",
        "AbstractJobActivation", "AbstractGateActivation",
    }
    # The drawings are read in full: every arrow of the file is an edge of one of them.
    assert sum(map(len, REFERENCE_DIAGRAMS.values())) == REFERENCE.read_text().count("->")
    assert len(REFERENCE_DIAGRAMS["AbstractJobActivation"]) == 19
    assert ("ASSIGNED", "ERROR", "schedule") in REFERENCE_DIAGRAMS["AbstractJobActivation"]


def test_every_activation_class_of_the_engine_has_a_machine_here():
    exported = {getattr(nodes, name) for name in nodes.__all__ if name.endswith("Activation")}
    assert exported | {Activation} == set(MACHINES)


@pytest.mark.parametrize("cls", list(MACHINES), ids=class_id)
def test_declared_edges_are_exactly_the_documented_machine(cls):
    assert declared_edges(cls) == MACHINES[cls]


@pytest.mark.parametrize("cls", list(MACHINES), ids=class_id)
def test_the_dot_printer_draws_the_declarations(cls):
    dot = state_machine_dot(cls)
    assert dot.startswith("digraph status {")
    assert dot.rstrip().endswith("}")
    assert parse_dot(dot) == declared_edges(cls)


def test_the_dot_printer_output_matches_the_reference_drawing():
    assert parse_dot(state_machine_dot(AbstractJobActivation)) == REFERENCE_DIAGRAMS["AbstractJobActivation"]
    assert parse_dot(state_machine_dot(StartActivation)) == REFERENCE_DIAGRAMS["StartActivation"]


# -- (b) every status, on a real task ------------------------------------------------------


def fails_when_asked(activation: Any) -> bool:
    if activation.process.data.get("fail"):
        raise RuntimeError("asked to fail")
    return True


class FailingViewActivation(ViewActivation):
    """Fails when created if the process asks: a step of the node's own, outside the soft
    guard of a View's callables, so the node that created it fails (ERROR)."""

    def run_automatic(self) -> None:
        fails_when_asked(self)
        super().run_automatic()


class FailingView(flow.View):
    activation_class = FailingViewActivation


def no_op(activation: Any) -> None:
    return None


class ViewMachineFlow(Flow):
    start = flow.StartFunction().Next(this.approve)
    approve = flow.View().Permission(auto_create=True).Next(this.end)
    end = flow.End()


class FuncMachineFlow(Flow):
    start = flow.StartFunction().Next(this.work)
    work = flow.Function(this.do_work).Next(this.end)
    end = flow.End()

    def do_work(self, activation: Any) -> None:
        activation.prepare()
        activation.done()


class HandlerMachineFlow(Flow):
    start = flow.StartFunction().Next(this.handle)
    handle = flow.Handler(fails_when_asked).Next(this.end)
    end = flow.End()


class IfMachineFlow(Flow):
    start = flow.StartFunction().Next(this.gate)
    gate = flow.If(fails_when_asked).Then(this.end).Else(this.end)
    end = flow.End()


class SwitchMachineFlow(Flow):
    start = flow.StartFunction().Next(this.gate)
    gate = flow.Switch().Case(this.end, fails_when_asked)
    end = flow.End()


class SplitMachineFlow(Flow):
    start = flow.StartFunction().Next(this.gate)
    gate = flow.Split().Next(this.end, cond=fails_when_asked)
    end = flow.End()


class JobMachineFlow(Flow):
    start = flow.StartFunction().Next(this.job)
    job = flow.Job(no_op).Next(this.end)
    end = flow.End()


class JoinMachineFlow(Flow):
    start = flow.StartFunction().Next(this.split)
    split = flow.Split().Next(this.left).Next(this.right)
    left = flow.View().Permission(auto_create=True).Next(this.join)
    right = flow.Handler(no_op).Next(this.join)
    join = flow.Join().Next(this.after)
    after = FailingView().Next(this.end)
    end = flow.End()


class ChildMachineFlow(Flow):
    start = flow.StartFunction().Next(this.work)
    work = flow.View().Permission(auto_create=True).Next(this.end)
    end = flow.End()


class SubMachineFlow(Flow):
    start = flow.StartFunction().Next(this.sub)
    sub = flow.Subprocess(ChildMachineFlow.start, data=lambda act: {"asked": True}).Next(this.after)
    after = flow.View().Permission(auto_create=True).Next(this.end)
    end = flow.End()


def act(process: Process, node: Any) -> Activation:
    return process.get_task(node).activate()


def retire(task: Task) -> None:
    """Take one task to CANCELED through its own transitions."""
    activation = task.activate()
    if activation.get_status() in (STATUS.DONE, STATUS.ERROR):
        activation.undo()
    if activation.get_status() == STATUS.ASSIGNED:
        activation.unassign()
    activation.cancel()
    assert task.status == STATUS.CANCELED


def do_view(process: Process, node: Any, user: User) -> Activation:
    activation = act(process, node)
    activation.assign(user)
    activation.prepare(data={"seen": True}, user=user)
    activation.done()
    return activation


def error_out(flow_class: type[Flow], node: Any) -> Activation:
    with Context(propagate_exception=False):
        process = flow_class.start.run(fail=True)
    return act(process, node)


@dataclass
class Scenario:
    cls: type[Activation]
    status: STATUS
    build: Callable[[dict[str, User]], Activation]
    blocked: set[str] = field(default_factory=set)  # drawn from the status, refused by a condition
    note: str = ""
    jobs_held: bool = False
    stored_status: STATUS | None = None  # when the status is held in memory (PREPARED)

    @property
    def id(self) -> str:
        return f"{self.cls.__name__}-{self.status.value}{'-' + self.note if self.note else ''}"


# Builders: each takes a fresh task there with the engine's own public calls.

def view_assigned(u: dict[str, User]) -> Activation:
    activation = act(ViewMachineFlow.start.run(), ViewMachineFlow.approve)
    activation.assign(u["ann"])
    return activation


def view_prepared(u: dict[str, User]) -> Activation:
    activation = view_assigned(u)
    activation.prepare(data={"ok": True}, user=u["ann"])
    return activation


def view_done(u: dict[str, User]) -> Activation:
    return do_view(ViewMachineFlow.start.run(), ViewMachineFlow.approve, u["ann"])


def view_done_end_canceled(u: dict[str, User]) -> Activation:
    activation = view_done(u)
    retire(activation.process.get_task(ViewMachineFlow.end))
    return activation


def view_canceled(u: dict[str, User]) -> Activation:
    activation = act(ViewMachineFlow.start.run(), ViewMachineFlow.approve)
    activation.cancel()
    return activation


def start_fresh(u: dict[str, User]) -> Activation:
    return StartActivation.new(ViewMachineFlow.start)


def start_prepared(u: dict[str, User]) -> Activation:
    activation = StartActivation.new(ViewMachineFlow.start)
    activation.prepare(data={"a": 1})
    return activation


def start_done(u: dict[str, User]) -> Activation:
    return act(ViewMachineFlow.start.run(), ViewMachineFlow.start)


def start_done_next_canceled(u: dict[str, User]) -> Activation:
    activation = start_done(u)
    retire(activation.process.get_task(ViewMachineFlow.approve))
    return activation


def start_undone(u: dict[str, User]) -> Activation:
    activation = start_done_next_canceled(u)
    activation.undo()
    return activation


def start_canceled(u: dict[str, User]) -> Activation:
    activation = start_undone(u)
    activation.cancel()
    return activation


def end_done(u: dict[str, User]) -> Activation:
    return act(view_done(u).process, ViewMachineFlow.end)


def end_undone(u: dict[str, User]) -> Activation:
    activation = end_done(u)
    activation.undo()
    return activation


def end_canceled(u: dict[str, User]) -> Activation:
    activation = end_undone(u)
    activation.cancel()
    return activation


def func_new(u: dict[str, User]) -> Activation:
    return act(FuncMachineFlow.start.run(), FuncMachineFlow.work)


def func_prepared(u: dict[str, User]) -> Activation:
    activation = func_new(u)
    activation.prepare()
    return activation


def func_done(u: dict[str, User]) -> Activation:
    process = FuncMachineFlow.start.run()
    FuncMachineFlow.work.run(process.get_task(FuncMachineFlow.work))
    return act(process, FuncMachineFlow.work)


def func_done_end_canceled(u: dict[str, User]) -> Activation:
    activation = func_done(u)
    retire(activation.process.get_task(FuncMachineFlow.end))
    return activation


def func_canceled(u: dict[str, User]) -> Activation:
    activation = func_new(u)
    activation.cancel()
    return activation


def gate_builders(flow_class: type[Flow]) -> dict[str, Callable[[dict[str, User]], Activation]]:
    node = flow_class.node("handle" if "handle" in flow_class._nodes else "gate")

    def done(u: dict[str, User]) -> Activation:
        return act(flow_class.start.run(), node)

    def done_end_canceled(u: dict[str, User]) -> Activation:
        activation = done(u)
        retire(activation.process.get_task(flow_class.node("end")))
        return activation

    def error(u: dict[str, User]) -> Activation:
        return error_out(flow_class, node)

    def undone(u: dict[str, User]) -> Activation:
        activation = error(u)
        activation.undo()
        return activation

    def canceled(u: dict[str, User]) -> Activation:
        activation = undone(u)
        activation.cancel()
        return activation

    return {"done": done, "done_end_canceled": done_end_canceled, "error": error,
            "undone": undone, "canceled": canceled}


def gate_scenarios(cls: type[Activation], flow_class: type[Flow]) -> list[Scenario]:
    b = gate_builders(flow_class)
    return [
        # Both refused while the task it led to is alive (activate_next where drawn).
        Scenario(cls, STATUS.DONE, b["done"], {"undo"} | ({"activate_next"} & set(cls.transitions())),
                 "end-not-canceled"),
        Scenario(cls, STATUS.DONE, b["done_end_canceled"]),
        Scenario(cls, STATUS.ERROR, b["error"]),
        Scenario(cls, STATUS.NEW, b["undone"]),
        Scenario(cls, STATUS.CANCELED, b["canceled"]),
    ]


def job_scheduled(u: dict[str, User]) -> Activation:
    return act(JobMachineFlow.start.run(), JobMachineFlow.job)


def job_started(u: dict[str, User]) -> Activation:
    activation = job_scheduled(u)
    activation.start()
    return activation


def job_error(u: dict[str, User]) -> Activation:
    activation = job_started(u)
    activation.error("Traceback: it broke")
    return activation


def job_done(u: dict[str, User]) -> Activation:
    activation = job_started(u)
    activation.done()
    return activation


def job_done_end_canceled(u: dict[str, User]) -> Activation:
    activation = job_done(u)
    retire(activation.process.get_task(JobMachineFlow.end))
    return activation


def job_new(u: dict[str, User]) -> Activation:
    activation = job_scheduled(u)
    activation.undo()
    return activation


def job_assigned(u: dict[str, User]) -> Activation:
    activation = job_new(u)
    activation.assign()
    return activation


def job_canceled(u: dict[str, User]) -> Activation:
    activation = job_assigned(u)
    activation.cancel()
    return activation


def join_started(u: dict[str, User]) -> Activation:
    return act(JoinMachineFlow.start.run(), JoinMachineFlow.join)


def join_done(u: dict[str, User]) -> Activation:
    process = JoinMachineFlow.start.run()
    do_view(process, JoinMachineFlow.left, u["ann"])
    return act(process, JoinMachineFlow.join)


def join_done_next_canceled(u: dict[str, User]) -> Activation:
    activation = join_done(u)
    retire(activation.process.get_task(JoinMachineFlow.after))
    return activation


def join_error(u: dict[str, User]) -> Activation:
    process = JoinMachineFlow.start.run(fail=True)
    with Context(propagate_exception=False):
        do_view(process, JoinMachineFlow.left, u["ann"])
    return act(process, JoinMachineFlow.join)


def join_undone(u: dict[str, User]) -> Activation:
    activation = join_error(u)
    activation.undo()
    return activation


def join_canceled(u: dict[str, User]) -> Activation:
    activation = join_started(u)
    activation.cancel()
    return activation


def sub_started(u: dict[str, User]) -> Activation:
    return act(SubMachineFlow.start.run(), SubMachineFlow.sub)


def child_of(activation: Activation) -> Process:
    (child,) = activation.children()  # type: ignore[attr-defined]
    return child


def sub_done(u: dict[str, User]) -> Activation:
    activation = sub_started(u)
    do_view(child_of(activation), ChildMachineFlow.work, u["root"])
    return act(activation.process, SubMachineFlow.sub)


def sub_done_next_canceled(u: dict[str, User]) -> Activation:
    activation = sub_done(u)
    retire(activation.process.get_task(SubMachineFlow.after))
    return activation


def sub_error(u: dict[str, User]) -> Activation:
    activation = sub_started(u)
    child_of(activation).cancel()
    return act(activation.process, SubMachineFlow.sub)


def sub_undone(u: dict[str, User]) -> Activation:
    activation = sub_error(u)
    activation.undo()
    return activation


def sub_canceled(u: dict[str, User]) -> Activation:
    activation = sub_started(u)
    activation.cancel()
    return activation
class TimerMachineFlow(Flow):
    start = flow.StartFunction().Next(this.wait)
    wait = flow.Timer(timedelta(hours=1)).Next(this.after)
    after = FailingView().Next(this.end)
    end = flow.End()


class TimeoutMachineFlow(Flow):
    start = flow.StartFunction().Next(this.approve)
    approve = flow.View().OnTimeout(this.after, after=timedelta(hours=1)).Next(this.end)
    after = FailingView().Next(this.end)
    end = flow.End()


def timer_builders(flow_class: type[Flow], node_name: str
                   ) -> dict[str, Callable[[dict[str, User]], Activation]]:
    node = flow_class.node(node_name)

    def scheduled(u: dict[str, User]) -> Activation:
        return act(flow_class.start.run(), node)

    def fired(u: dict[str, User]) -> Activation:
        activation = scheduled(u)
        activation.fire()
        return activation

    def fired_next_canceled(u: dict[str, User]) -> Activation:
        activation = fired(u)
        retire(activation.process.get_task(flow_class.node("after")))
        return activation

    def error(u: dict[str, User]) -> Activation:
        with Context(propagate_exception=False):
            activation = act(flow_class.start.run(fail=True), node)
            activation.fire()
        return activation

    def undone(u: dict[str, User]) -> Activation:
        activation = error(u)
        activation.undo()
        return activation

    def canceled(u: dict[str, User]) -> Activation:
        activation = scheduled(u)
        activation.cancel()
        return activation

    return {"scheduled": scheduled, "fired": fired, "fired_next_canceled": fired_next_canceled,
            "error": error, "undone": undone, "canceled": canceled}


def timer_scenarios(cls: type[Activation], flow_class: type[Flow], node_name: str) -> list[Scenario]:
    b = timer_builders(flow_class, node_name)
    return [
        Scenario(cls, STATUS.SCHEDULED, b["scheduled"]),
        Scenario(cls, STATUS.DONE, b["fired"], {"undo", "activate_next"}, "next-not-canceled"),
        Scenario(cls, STATUS.DONE, b["fired_next_canceled"]),
        Scenario(cls, STATUS.ERROR, b["error"]),
        Scenario(cls, STATUS.NEW, b["undone"]),
        Scenario(cls, STATUS.CANCELED, b["canceled"]),
    ]


SCENARIOS = [
    Scenario(ViewActivation, STATUS.NEW, lambda u: act(ViewMachineFlow.start.run(), ViewMachineFlow.approve)),
    Scenario(ViewActivation, STATUS.ASSIGNED, view_assigned),
    Scenario(ViewActivation, STATUS.PREPARED, view_prepared, stored_status=STATUS.ASSIGNED),
    Scenario(ViewActivation, STATUS.DONE, view_done, {"undo", "activate_next"}, "end-not-canceled"),
    Scenario(ViewActivation, STATUS.DONE, view_done_end_canceled),
    Scenario(ViewActivation, STATUS.CANCELED, view_canceled),
    Scenario(StartActivation, STATUS.NEW, start_fresh, note="not-stored-yet"),
    Scenario(StartActivation, STATUS.PREPARED, start_prepared),
    Scenario(StartActivation, STATUS.DONE, start_done, {"undo"}, "next-not-canceled"),
    Scenario(StartActivation, STATUS.DONE, start_done_next_canceled),
    # Undoing the start canceled the process: only the cancel that tidies the start is left.
    Scenario(StartActivation, STATUS.NEW, start_undone, {"prepare"}, "undone-process-canceled"),
    Scenario(StartActivation, STATUS.CANCELED, start_canceled),
    Scenario(EndActivation, STATUS.DONE, end_done),
    Scenario(EndActivation, STATUS.NEW, end_undone),
    Scenario(EndActivation, STATUS.CANCELED, end_canceled),
    Scenario(FuncActivation, STATUS.NEW, func_new),
    Scenario(FuncActivation, STATUS.PREPARED, func_prepared, stored_status=STATUS.NEW),
    Scenario(FuncActivation, STATUS.DONE, func_done, {"undo", "activate_next"}, "end-not-canceled"),
    Scenario(FuncActivation, STATUS.DONE, func_done_end_canceled),
    Scenario(FuncActivation, STATUS.CANCELED, func_canceled),
    *gate_scenarios(HandlerActivation, HandlerMachineFlow),
    *gate_scenarios(IfActivation, IfMachineFlow),
    *gate_scenarios(SwitchActivation, SwitchMachineFlow),
    *gate_scenarios(SplitActivation, SplitMachineFlow),
    Scenario(JobActivation, STATUS.NEW, job_new, jobs_held=True),
    Scenario(JobActivation, STATUS.ASSIGNED, job_assigned, jobs_held=True),
    Scenario(JobActivation, STATUS.SCHEDULED, job_scheduled, jobs_held=True),
    Scenario(JobActivation, STATUS.STARTED, job_started, jobs_held=True),
    Scenario(JobActivation, STATUS.ERROR, job_error, jobs_held=True),
    Scenario(JobActivation, STATUS.DONE, job_done, {"undo", "activate_next"}, "end-not-canceled",
             jobs_held=True),
    Scenario(JobActivation, STATUS.DONE, job_done_end_canceled, jobs_held=True),
    Scenario(JobActivation, STATUS.CANCELED, job_canceled, jobs_held=True),
    Scenario(JoinActivation, STATUS.STARTED, join_started),
    Scenario(JoinActivation, STATUS.DONE, join_done, {"undo", "activate_next"}, "next-not-canceled"),
    Scenario(JoinActivation, STATUS.DONE, join_done_next_canceled),
    Scenario(JoinActivation, STATUS.ERROR, join_error),
    Scenario(JoinActivation, STATUS.NEW, join_undone),
    Scenario(JoinActivation, STATUS.CANCELED, join_canceled),
    Scenario(SubprocessActivation, STATUS.STARTED, sub_started),
    Scenario(SubprocessActivation, STATUS.DONE, sub_done, {"undo", "activate_next"}, "next-not-canceled"),
    Scenario(SubprocessActivation, STATUS.DONE, sub_done_next_canceled),
    Scenario(SubprocessActivation, STATUS.ERROR, sub_error),
    Scenario(SubprocessActivation, STATUS.NEW, sub_undone),
    Scenario(SubprocessActivation, STATUS.CANCELED, sub_canceled),
    *timer_scenarios(TimerActivation, TimerMachineFlow, "wait"),
    *timer_scenarios(TimeoutActivation, TimeoutMachineFlow, "approve_timeout"),
]


def test_the_walk_reaches_every_status_of_every_concrete_machine():
    for cls in {s.cls for s in SCENARIOS}:
        sources = {source for source, _, _ in MACHINES[cls]}
        targets = {target for _, target, _ in MACHINES[cls]}
        walked = {s.status.value for s in SCENARIOS if s.cls is cls}
        assert walked == sources | targets, cls.__name__


def stored_task(snapshot: dict[str, Any], task_id: int) -> Any:
    (row,) = [r for r in snapshot["task"] if r[0] == task_id]
    return SimpleNamespace(**dict(zip(Task.__table__.c.keys(), row, strict=True)))


def call_transition(activation: Activation, name: str, user: User) -> Any:
    method = getattr(activation, name)
    if name == "reschedule":
        return method(datetime.now(UTC))
    if name in ("assign", "reassign") and isinstance(activation, ViewActivation):
        return method(user)
    if name == "error":
        return method("a failure")
    return method()


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.id)
def test_each_status_offers_exactly_its_edges_and_refuses_the_rest(
    scenario, request, session, users, stored
):
    if scenario.jobs_held:
        request.getfixturevalue("held_jobs")
    activation = scenario.build(users)
    assert type(activation) is scenario.cls
    status = scenario.status
    assert activation.get_status() == status
    if activation.task.id is not None:
        # PREPARED is held in memory: the stored row keeps the status it was prepared from.
        row = stored_task(stored(), activation.task.id)
        assert row.status == (scenario.stored_status or status)

    drawn = {label for source, _, label in MACHINES[scenario.cls] if source == status.value}
    assert scenario.blocked <= drawn
    available = [t.name for t in activation.get_available_transitions()]
    assert len(available) == len(set(available))
    assert set(available) == drawn - scenario.blocked

    refused = sorted(set(declared_transitions(scenario.cls)) - set(available))
    before = stored()
    for name in refused:
        with pytest.raises(TransitionNotAllowed) as excinfo:
            call_transition(activation, name, users["bob"])
        assert name in str(excinfo.value)
        assert stored() == before, f"{name} from {status} wrote to the database"
        assert activation.get_status() == status, f"{name} from {status} changed the status"
