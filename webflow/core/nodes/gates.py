"""Gateways the engine decides: ``If``, ``Switch`` and the parallel ``Split``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import signals
from .. import token as tokens
from ..activation import Activation
from ..exceptions import FlowRuntimeError
from ..flow import Node
from ..fsm import transition
from ..models import utcnow
from ..permissions import managing
from ..status import STATUS

Cond = Callable[[Any], Any]


class AbstractGateActivation(Activation):
    """Calculates the next nodes and activates them, right after it is created."""

    automatic = True
    guards_itself = True

    def run_automatic(self) -> None:
        self.perform()

    def calculate_next(self) -> list[tuple[Node, str]]:
        """The nodes to activate, each with its token (a Split's fan-out branches carry
        their item too, which the engine keeps: ``_targets``)."""
        return [(target[0], target[1]) for target in self._targets()]

    def _targets(self) -> list[Any]:
        """What ``_activate`` takes: (node, token), or (node, token, branch data)."""
        return self.flow_task.calculate(self)  # type: ignore[no-any-return]

    def activate_next(self) -> None:
        """Activate the calculated nodes (the engine's step, not a transition of gates)."""
        self._activate_next()

    def _execute(self) -> None:
        with self.exception_guard():
            self.task.started = utcnow()
            self.ensure_ids()  # conditions see saved rows (and split tokens need the id)
            self.send(signals.task_started)
            targets = self._targets()  # first: a failing condition leaves nothing behind
            # Finished before anything downstream runs: a join downstream sees the gate
            # DONE, and nothing of it is left to write when its savepoint ends.
            self.task.finished = utcnow()
            self.set_status(STATUS.DONE)
            self.send(signals.task_finished)
            self._activate(targets)

    def _activate_next(self) -> None:
        self._activate(self._targets())

    @transition(source=STATUS.NEW, target=[STATUS.DONE, STATUS.ERROR], permission=managing, label="Run now")
    def perform(self) -> None:
        """Calculate the next nodes and activate them."""
        self._execute()

    @transition(source=STATUS.ERROR, target=[STATUS.DONE, STATUS.ERROR], permission=managing, label="Retry")
    def retry(self) -> None:
        """Calculate and activate again after an error."""
        self.task.comments = None
        self._execute()

    undo = Activation.undo.redeclare(source=[STATUS.DONE, STATUS.ERROR], target=STATUS.NEW)


class IfActivation(AbstractGateActivation):
    pass


class SwitchActivation(AbstractGateActivation):
    pass


class SplitActivation(AbstractGateActivation):
    pass


class If(Node):
    """``flow.If(cond).Then(node).Else(node)``."""

    task_type = "IF"
    activation_class = IfActivation

    def __init__(self, cond: Cond) -> None:
        super().__init__()
        self.cond = cond
        self._then: Any = None
        self._else: Any = None

    def Then(self, node: Any) -> If:
        self = self._writable()
        self._then = node
        return self

    def Else(self, node: Any) -> If:
        self = self._writable()
        self._else = node
        return self

    def resolve(self, flow_class: Any) -> None:
        if self._then is None or self._else is None:
            raise FlowRuntimeError(f"{flow_class.__name__}.{self.name}: If needs .Then() and .Else()")
        if self._next:  # was dropped without a word
            raise FlowRuntimeError(f"{flow_class.__name__}.{self.name}: an If continues with .Then() "
                                   "and .Else(), not .Next()")
        self._next_nodes = []
        self._cond = flow_class.resolve_callable(self.cond, self)
        self._then_node = flow_class.resolve_node(self._then, self)
        self._else_node = flow_class.resolve_node(self._else, self)

    def calculate(self, activation: Any) -> list[tuple[Node, str]]:
        node = self._then_node if self._cond(activation) else self._else_node
        return [(node, activation.task.token)]

    def outgoing(self) -> list[tuple[Node, str]]:
        return [(self._then_node, "then"), (self._else_node, "else")]


class Switch(Node):
    """``flow.Switch().Case(node, cond)...Default(node)``: the first true case wins."""

    task_type = "SWITCH"
    activation_class = SwitchActivation

    def __init__(self) -> None:
        super().__init__()
        self._cases: list[tuple[Any, Cond]] = []
        self._default: Any = None

    def Case(self, node: Any, cond: Cond) -> Switch:
        self = self._writable()
        self._cases = [*self._cases, (node, cond)]
        return self

    def Default(self, node: Any) -> Switch:
        self = self._writable()
        self._default = node
        return self

    def resolve(self, flow_class: Any) -> None:
        if self._next:  # was dropped without a word
            raise FlowRuntimeError(f"{flow_class.__name__}.{self.name}: a Switch continues with .Case() "
                                   "and .Default(), not .Next()")
        if not self._cases and self._default is None:  # every process failed here at run time
            raise FlowRuntimeError(f"{flow_class.__name__}.{self.name}: a Switch needs .Case() or .Default()")
        self._next_nodes = []
        self._resolved_cases = [
            (flow_class.resolve_node(node, self), flow_class.resolve_callable(cond, self))
            for node, cond in self._cases
        ]
        self._default_node = (
            flow_class.resolve_node(self._default, self) if self._default is not None else None
        )

    def calculate(self, activation: Any) -> list[tuple[Node, str]]:
        for node, cond in self._resolved_cases:
            if cond(activation):
                return [(node, activation.task.token)]
        if self._default_node is None:
            raise FlowRuntimeError(f"{self.name}: no case matched and there is no Default")
        return [(self._default_node, activation.task.token)]

    def outgoing(self) -> list[tuple[Node, str]]:
        edges = [(node, "case") for node, _ in self._resolved_cases]
        if self._default_node is not None:
            edges.append((self._default_node, "default"))
        return edges


class Split(Node):
    """``flow.Split().Next(node, cond=None).Always(node).Each(node, items=...)``: parallel
    branches, fixed ones and one per item of a list computed at run time."""

    task_type = "SPLIT"
    activation_class = SplitActivation

    def __init__(self) -> None:
        super().__init__()
        self._branches: list[tuple[Any, Cond | None]] = []
        self._each: list[tuple[Any, Cond]] = []

    def Next(self, node: Any, cond: Cond | None = None) -> Split:  # type: ignore[override]
        self = self._writable()
        if self._next_overridden:
            self._branches, self._each = [], []
            self._next_overridden = False
        self._branches = [*self._branches, (node, cond)]
        return self

    def Always(self, node: Any) -> Split:
        return self.Next(node)

    def Each(self, node: Any, items: Cond) -> Split:
        """One branch of ``node`` per item of ``items(activation)`` (a list of JSON values);
        each branch task starts with ``task.data == {"item": item, "index": i}``."""
        self = self._writable()
        if self._next_overridden:
            self._branches, self._each = [], []
            self._next_overridden = False
        self._each = [*self._each, (node, items)]
        return self

    def resolve(self, flow_class: Any) -> None:
        if not self._branches and not self._each:
            raise FlowRuntimeError(f"{flow_class.__name__}.{self.name}: Split needs .Next() or .Each()")
        self._next_nodes = []
        self._resolved = [
            (flow_class.resolve_node(node, self),
             None if cond is None else flow_class.resolve_callable(cond, self))
            for node, cond in self._branches
        ]
        self._resolved_each = [(flow_class.resolve_node(node, self), flow_class.resolve_callable(items, self))
                               for node, items in self._each]
        for node, _ in self._resolved_each:
            node.fan_out = True  # its tasks keep their form data to themselves (see View)

    def calculate(self, activation: Any) -> list[Any]:
        task = activation.task
        if task.id is None:
            activation.session.flush()  # branch tokens carry the split task's id
        targets: list[Any] = [(node, None) for node, cond in self._resolved if cond is None or cond(activation)]
        for node, items in self._resolved_each:
            values = items(activation)
            if not isinstance(values, list | tuple):
                raise FlowRuntimeError(f"{self.name}: Each items must be a list, got {type(values).__name__}")
            targets += [(node, {"item": item, "index": i}) for i, item in enumerate(values)]
        if not targets:
            join = self.matching_join() if self._resolved_each else None
            if join is None:
                raise FlowRuntimeError(f"{self.name}: no branch of the split was enabled")
            return [(join, task.token)]  # nothing to fan out over: straight to the join
        return [(node, tokens.branch(task.token, task.id, n), data)
                for n, (node, data) in enumerate(targets, start=1)]

    def matching_join(self) -> Node | None:
        """The first Join the fan-out branches lead to (where an empty list goes)."""
        seen: set[str] = set()
        todo = [node for node, _ in self._resolved_each]
        while todo:
            node = todo.pop(0)
            if node.name in seen:
                continue
            seen.add(node.name)
            if node.task_type == "JOIN":
                return node
            todo += [target for target, _ in node.outgoing()]
        return None

    def outgoing(self) -> list[tuple[Node, str]]:
        return ([(node, "" if cond is None else "if") for node, cond in self._resolved]
                + [(node, "each") for node, _ in self._resolved_each])
