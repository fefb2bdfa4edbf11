"""Start nodes: ``Start`` (a form a person fills in) and ``StartFunction`` (from code)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .. import signals
from .. import token as tokens
from ..activation import Activation
from ..context import get_session
from ..exceptions import FlowRuntimeError, PermissionDenied
from ..fsm import condition, process_not_canceled, transition
from ..models import Process, Task, stored_user, utcnow
from ..permissions import managing, starter
from ..queries import hold_tasks, process_tasks
from ..status import FINISHED, STATUS
from ..transaction import current_unit_of_work, unit_of_work
from .base import PageNode, require_callable


@condition("the process has other unfinished tasks: cancel the process instead")
def nothing_else_unfinished(activation: Activation) -> bool:
    """Undoing the start cancels the process, which must not leave live tasks in it (a
    timeout's task, say, created by a task that is canceled now)."""
    task = activation.task
    return not any(other.status not in FINISHED and other.id != task.id
                   for other in process_tasks(activation.session, activation.process))


class StartActivation(Activation):
    """Creates the process: NEW -> PREPARED (in memory) -> DONE saves both rows."""

    def __init__(self, task: Task) -> None:
        super().__init__(task)
        self._data: dict[str, Any] = {}

    @classmethod
    def new(cls, flow_task: Any) -> StartActivation:
        """An activation for a process not created yet (nothing is stored)."""
        flow_class = flow_task.flow_class
        process = Process(flow_class_path=flow_class.path(), status=STATUS.NEW, data={})
        task = Task(
            process=process,
            flow_class_path=flow_class.path(),
            node_name=flow_task.name,
            flow_task_type=flow_task.task_type,
            status=STATUS.NEW,
            token=tokens.START,
            data={},
            created=utcnow(),  # as Activation.create: one INSERT with the tasks it leads to
            priority=0,
        )
        return cls(task)

    def has_perm(self, user: Any) -> bool:
        return bool(self.flow_task.can_execute(user, self.task))

    @transition(source=STATUS.NEW, target=STATUS.PREPARED, conditions=[process_not_canceled],
                locked=False, permission=starter)
    def prepare(self, data: dict[str, Any] | None = None, user: Any = None) -> None:
        """Take the start data and who starts; writes nothing (safe on GET)."""
        if user is not None:
            stored_user(user, "prepare()")  # a username, a User never stored: refused here
            if not self.flow_task.can_execute(user):
                raise PermissionDenied(f"{user} may not start {self.flow_class.process_title}")
            self.task.owner = user
            self.process.created_by = user
        if data is not None and not isinstance(data, Mapping):  # dict() raised TypeError or ValueError
            raise FlowRuntimeError(f"prepare() takes the start data as a dict, not {data!r:.80}")
        self._data = dict(data or {})
        self.task.started = utcnow()
        self._hold_in_memory(STATUS.PREPARED)

    @transition(source=STATUS.PREPARED, target=STATUS.DONE, permission=starter)
    def done(self) -> None:
        """Store the new process and its start task, then continue the flow."""
        process, task = self.process, self.task
        session = self.session
        process.data = {**(process.data or {}), **self._data}
        process.summary = self.flow_class.instance.summary(process)
        task.data = dict(self._data)
        task.finished = utcnow()
        self.set_status(STATUS.DONE)
        session.add(process)
        session.add(task)
        if process.id is None:
            # A new process has no other tasks: held from here on, no query asks for them.
            hold_tasks(process, [task])
        self.send(signals.flow_started)
        self.send(signals.task_started)
        self.send(signals.task_finished)
        self._activate_next()
        if process.id is None:
            # Callers of done() expect the new process to have its id: given now, the rows
            # go in with the transaction's last statement (core.row_inserts), or a flush.
            uow = current_unit_of_work()
            if uow is None or not uow.assign_ids():
                session.flush()

    # Not a transition: the reference's StartActivation diagram draws no activate_next
    # edge (unlike View's), so it is the engine's step only, as on gates.
    def activate_next(self) -> None:
        """Activate the outgoing nodes."""
        self._activate_next()

    @transition(source=STATUS.DONE, target=STATUS.NEW,
                conditions=(*Activation.undo.conditions, nothing_else_unfinished),
                permission=managing, label="Undo")
    def undo(self) -> None:
        """Undo the start: the process is canceled."""
        from ..engine import cancel_open_children, notify_parent

        Activation.undo.func(self)
        self.process.status = STATUS.CANCELED
        self.process.finished = utcnow()
        # The start is undone once its only task was canceled, which marked the process
        # stalled: a canceled process is no longer stalled (as cancel_process clears it).
        self.process.stalled = None
        cancel_open_children(self.process)  # a child reopened after its task finished
        notify_parent(self.process)


class Start(PageNode):
    """A start form; ``.Available(callable(user) -> bool)`` hides it from some users."""

    task_type = "START"
    activation_class = StartActivation

    def __init__(self, form: Any = None, view: Any = None) -> None:
        super().__init__(form, view)
        self._available: Callable[[Any], bool] | None = None

    def Available(self, func: Callable[[Any], bool]) -> Start:
        self = self._writable()
        self._available = func
        return self

    def resolve(self, flow_class: Any) -> None:
        super().resolve(flow_class)
        if self._available is not None:
            require_callable(flow_class, self, "Available", self._available, takes="user")

    def can_execute(self, user: Any, task: Any = None) -> bool:
        """True when the user may start a process here."""
        if not self.user_has_permission(user):
            return False
        return self._available is None or bool(self._available(user))

    def run(self, data: dict[str, Any] | None = None, user: Any = None) -> Process:
        """Start a process from code as if the form was submitted with ``data``."""
        activation = StartActivation.new(self)
        with unit_of_work(get_session()):
            activation.prepare(data=data, user=user)
            activation.done()
        return activation.process


class StartFunction(Start):
    """Starts a process from code: ``Flow.node.run(**kwargs)``."""

    def __init__(self, func: Callable[..., Any] | None = None) -> None:
        super().__init__()
        self.func = func

    def resolve(self, flow_class: Any) -> None:
        super().resolve(flow_class)
        self._func: Callable[..., Any] | None = (
            None if self.func is None else flow_class.resolve_callable(self.func, self))

    def can_execute(self, user: Any, task: Any = None) -> bool:
        return False  # not a thing people start from the web

    def run(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        """Run the start function; the default one stores kwargs in process.data."""
        if self._func is None and args:  # they were dropped without a word
            raise FlowRuntimeError(
                f"{self.flow_class.__name__}.{self.name}.run() takes keyword arguments only (the default "
                f"start function stores them in process.data), got {len(args)} positional")
        activation = StartActivation.new(self)
        with unit_of_work(get_session()):
            if self._func is None:
                activation.prepare(data=kwargs)
                activation.done()
                return activation.process
            return self._func(activation, *args, **kwargs)
