"""Transitions declared on activation classes.

A transition names the statuses it may start from, the statuses it may end in, and
conditions; the activation runs it inside the process lock (see ``transaction``). The
declarations are data, so the same objects answer "what may happen now" for the UI and
render the state machine as DOT for comparison with the reference diagrams.

A transition also declares who may run it (``permission=``, a rule of ``permissions``)
and, when people run it from a page, its button's ``label=``: the rule book every page,
button and test reads. A transition without a label is the engine's own step.
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .exceptions import TransitionNotAllowed
from .status import STATUS

if TYPE_CHECKING:
    from .activation import Activation
    from .permissions import Rule

Condition = Callable[["Activation"], bool]


def _statuses(value: STATUS | Iterable[STATUS] | None) -> tuple[STATUS, ...]:
    if value is None:
        return ()
    if isinstance(value, STATUS):
        return (value,)
    return tuple(value)


#: What the transitions people run do, by name, for the ones that share a name across node
#: families (a declaration's own ``help=`` wins).
HELP = {
    "assign": "Take this task: it moves to your inbox and nobody else works on it.",
    "unassign": "Give the task back to the queue, for someone who may do it to take.",
    "reassign": "Give the task to another person who may do it.",
    "perform": "Run this step now instead of waiting for the engine to run it.",
    "activate_next": "Create the steps that follow this one (when a repair left them missing).",
    "retry": "Run the failed step again, after fixing what made it fail.",
    "undo": "Reopen this finished step: the steps after it must not have started yet; "
            "the history keeps what happened.",
    "cancel": "Stop this task without finishing it: the process does not go on from here.",
}


class Transition:
    """A declared transition: sources x targets edges, conditions, and the method body."""

    def __init__(
        self,
        func: Callable[..., Any],
        source: STATUS | Iterable[STATUS],
        target: STATUS | Iterable[STATUS] | None = None,
        conditions: Iterable[Condition] = (),
        *,
        locked: bool = True,
        name: str | None = None,
        permission: Rule | None = None,
        label: str | None = None,
        help: str | None = None,
    ) -> None:
        self.func = func
        self.name = name or func.__name__
        # Who may run it when a user acts (None: anyone, it is the engine's own step).
        self.permission = permission
        # The button's text; a transition without one is never offered to people.
        self.label = label
        self._help = help
        self.sources = _statuses(source)
        # No target means the status does not change (DONE -> DONE activate_next).
        self.targets = _statuses(target) or self.sources
        self.conditions = tuple(conditions)
        # locked=False: the transition writes nothing (prepare), so it takes no lock.
        self.locked = locked
        self.__doc__ = func.__doc__

    def edges(self) -> list[tuple[STATUS, STATUS]]:
        """Every (source, target) pair this transition can take."""
        if self.targets == self.sources:
            return [(s, s) for s in self.sources]
        return list(itertools.product(self.sources, self.targets))

    def redeclare(
        self,
        source: STATUS | Iterable[STATUS],
        target: STATUS | Iterable[STATUS] | None = None,
        conditions: Iterable[Condition] | None = None,
    ) -> Transition:
        """The same body, rule and label with other edges, for a subclass whose diagram differs."""
        return Transition(
            self.func,
            source,
            target,
            self.conditions if conditions is None else conditions,
            locked=self.locked,
            name=self.name,
            permission=self.permission,
            label=self.label,
            help=self._help,
        )

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @property
    def help(self) -> str | None:
        """What the button does, in a sentence for people (its tooltip and confirmation)."""
        return self._help or HELP.get(self.name)

    def __get__(self, activation: Activation | None, owner: type) -> Any:
        if activation is None:
            return self
        return BoundTransition(self, activation)

    def blocked_reason(self, activation: Activation) -> str | None:
        """Why this transition cannot run now, or None when it can."""
        if self.name != "cancel" and _process_canceled(activation, load=self.locked):
            return (f"{self.name} is not allowed for task {activation.describe()}: "
                    f"its process was canceled")
        if self.name != "cancel" and _parent_canceled(activation, load=self.locked):
            return (f"{self.name} is not allowed for task {activation.describe()}: "
                    f"the process that started it was canceled")
        status = activation.get_status()
        if status not in self.sources:
            return (
                f"{self.name} is not allowed for task {activation.describe()} "
                f"in status {status}"
            )
        for condition in self.conditions:
            if not condition(activation):
                reason = getattr(condition, "reason", condition.__name__)
                return f"{self.name} is not allowed for task {activation.describe()}: {reason}"
        return None

    def check(self, activation: Activation) -> None:
        """Raise TransitionNotAllowed unless the transition may run now."""
        reason = self.blocked_reason(activation)
        if reason is not None:
            raise TransitionNotAllowed(reason)

    def allows(self, activation: Activation, user: Any, arguments: Mapping[str, Any] | None = None) -> bool:
        """True when the rule lets ``user`` run it (with these call arguments).

        A transition that gives the task to another ``user`` gives it, while that user is
        out of office, to their substitute (core.away): the rule is asked about both, so a
        hand-over the rule refuses for the one who would really get it (a delegation that
        would come back to the owner) is refused, wherever it is asked from."""
        if self.permission is None:
            return True
        if not self.permission.allows(activation, user, arguments):
            return False
        target = (arguments or {}).get("user")
        if target is None or user is None or getattr(target, "id", None) == user.id:
            return True  # taking a task yourself is never redirected
        from .away import substitute_for

        recipient = substitute_for(activation.session, target, activation.flow_task)
        return recipient.id == target.id or self.permission.allows(
            activation, user, {**(arguments or {}), "user": recipient})

    def takes(self, parameter: str) -> bool:
        """True when the transition's method has this parameter (``assign`` takes ``user``)."""
        return parameter in inspect.signature(self.func).parameters

    def call_arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """The call's arguments by parameter name, for the permission rule."""
        try:
            bound = inspect.signature(self.func).bind(None, *args, **kwargs)
        except TypeError:
            return dict(kwargs)  # the call itself fails with the right message
        return {name: value for name, value in list(bound.arguments.items())[1:]}

    def __repr__(self) -> str:
        return f"<Transition {self.name} {[(s.value, t.value) for s, t in self.edges()]}>"


def _process_canceled(activation: Activation, *, load: bool) -> bool:
    """True when the task's process is CANCELED and is not being canceled right now: a
    canceled process is final, so none of its tasks may move but to CANCELED (an undo
    there would bring it back to life, a done would create tasks in it; a cancel only
    tidies, e.g. the start task an undo of the start left NEW). While ``cancel_process`` runs, its
    process is CANCELED already and the tasks are canceled through their own transitions
    (``engine.cancel_tasks`` marks the process in ``uow.quiet``). ``load=False`` (a
    transition that writes nothing, like a View's prepare, checked outside the lock) asks
    only a process already in memory, sparing the human path a statement: its locked
    follow-up (done) asks under the lock. The start's prepare asks always
    (``process_not_canceled``): an undone start is the one task a canceled process keeps
    unfinished."""
    if not load and "process" not in activation.task.__dict__:
        return False
    process = activation.process
    if process is None or process.status != STATUS.CANCELED:
        return False
    from .transaction import current_unit_of_work

    uow = current_unit_of_work()
    return uow is None or process not in uow.quiet


def _parent_canceled(activation: Activation, *, load: bool) -> bool:
    """True for a task of a finished child process whose parent (or the top of its tree)
    was canceled: an undo or activate_next there reopened the child, alive for good under
    a canceled parent, which cancels its open children only once. A child still open when
    its parent is canceled is canceled with it, so only a DONE one is asked (no statement
    for the tasks of a top-level process, nor of an open one)."""
    if not load and "process" not in activation.task.__dict__:
        return False
    process = activation.process
    if process is None or process.status != STATUS.DONE or process.parent_task_id is None:
        return False
    parent = process.parent_task
    if parent is not None and parent.process.status == STATUS.CANCELED:
        return True
    from .context import get_session
    from .models import Process

    top = get_session().get(Process, process.root_process_id) if process.root_process_id else None
    return top is not None and top.status == STATUS.CANCELED


class BoundTransition:
    """A transition bound to one activation: call it to run it."""

    def __init__(self, transition: Transition, activation: Activation) -> None:
        self.transition = transition
        self.activation = activation

    @property
    def name(self) -> str:
        return self.transition.name

    @property
    def label(self) -> str | None:
        return self.transition.label

    def can_proceed(self) -> bool:
        return self.transition.blocked_reason(self.activation) is None

    def has_perm(self, actor: Any, /, **arguments: Any) -> bool:
        """True when the rule lets ``actor`` run it (``assign.has_perm(me, user=bob)``)."""
        return self.transition.allows(self.activation, actor, arguments)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.activation.run_transition(self.transition, args, kwargs)

    def __repr__(self) -> str:
        return f"<BoundTransition {self.name} of {self.activation!r}>"


def transition(
    source: STATUS | Iterable[STATUS],
    target: STATUS | Iterable[STATUS] | None = None,
    conditions: Iterable[Condition] = (),
    *,
    locked: bool = True,
    permission: Rule | None = None,
    label: str | None = None,
    help: str | None = None,
) -> Callable[[Callable[..., Any]], Transition]:
    """Declare an activation method as a transition, who may run it, its button's label and
    what the button does (``help``; the transitions every node family shares have one in ``HELP``)."""

    def decorate(func: Callable[..., Any]) -> Transition:
        return Transition(func, source, target, conditions, locked=locked,
                          permission=permission, label=label, help=help)

    return decorate


def condition(reason: str) -> Callable[[Condition], Condition]:
    """Give a condition the human reason shown when it blocks a transition."""

    def decorate(func: Condition) -> Condition:
        func.reason = reason  # type: ignore[attr-defined]
        return func

    return decorate


@condition("its process was canceled")
def process_not_canceled(activation: Activation) -> bool:
    """``_process_canceled`` as a condition, for a transition that writes nothing yet must ask."""
    return not _process_canceled(activation, load=True)


def declared_transitions(cls: type) -> dict[str, Transition]:
    """The transitions of an activation class, subclass declarations winning."""
    found: dict[str, Transition] = {}
    for klass in reversed(cls.__mro__):
        for name, value in vars(klass).items():
            if isinstance(value, Transition):
                found[name] = value
            elif name in found and value is None:
                # A subclass sets a transition to None to drop it.
                del found[name]
    return found


def state_machine_dot(cls: type) -> str:
    """The class's state machine as Graphviz DOT, in the reference's notation."""
    lines = ["digraph status {", "    UNRIPE;"]
    for trans in declared_transitions(cls).values():
        for source, target in trans.edges():
            lines.append(f'    {source.value} -> {target.value} [label="{trans.name}"];')
    lines.append("    {rank = min;NEW}")
    lines.append("}")
    return "\n".join(lines)
