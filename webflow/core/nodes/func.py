"""Code nodes: ``Function`` (waits for code to run it) and ``Handler`` (runs at once)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import signals
from ..activation import Activation, next_tasks_missing, region_join_not_fired
from ..context import get_session
from ..exceptions import FlowRuntimeError
from ..flow import Node
from ..fsm import transition
from ..models import Task, utcnow
from ..permissions import managing
from ..status import STATUS
from ..transaction import unit_of_work


class FuncActivation(Activation):
    """A task that waits until code calls ``Flow.node.run(task, ...)``."""

    @transition(source=STATUS.NEW, target=STATUS.PREPARED, locked=False)
    def prepare(self) -> None:
        """Note the start time; writes nothing yet."""
        # Kept on the activation, not the row: a dirty row would be stored by the next
        # commit of the session, even by a refused transition's (PREPARED is memory only).
        self._started = utcnow()
        self._hold_in_memory(STATUS.PREPARED)

    @transition(source=STATUS.PREPARED, target=STATUS.DONE)
    def done(self) -> None:
        """Finish the task and continue the flow (the function's last call)."""
        self.task.started = getattr(self, "_started", None) or utcnow()
        self.task.finished = utcnow()
        self.set_status(STATUS.DONE)
        self.send(signals.task_started)  # preparing wrote nothing: the work is told of now
        self.send(signals.task_finished)
        self._activate_next()

    @transition(source=STATUS.DONE, conditions=[next_tasks_missing, region_join_not_fired],
                permission=managing, label="Activate next")
    def activate_next(self) -> None:
        """Activate the outgoing nodes again."""
        self._activate_next()


class Function(Node):
    """``flow.Function(func, task_loader=None)``: run later by ``Flow.node.run(task, ...)``."""

    task_type = "FUNCTION"
    activation_class = FuncActivation

    def __init__(self, func: Callable[..., Any], task_loader: Callable[..., Task] | None = None) -> None:
        super().__init__()
        self.func = func
        self.task_loader = task_loader

    def resolve(self, flow_class: Any) -> None:
        super().resolve(flow_class)
        self._func = flow_class.resolve_callable(self.func, self)

    def run(self, *args: Any, **kwargs: Any) -> Any:
        """Run the function on its waiting task: ``func(activation, **kwargs)``."""
        if args and isinstance(args[0], Task):
            task, args = args[0], args[1:]
        elif self.task_loader is not None:
            task = self.task_loader(self, *args, **kwargs)
        else:
            raise FlowRuntimeError(f"{self.name}.run() needs the task as its first argument")
        if task is None or task.node_name != self.name or task.flow_class_path != self.flow_class.path():
            raise FlowRuntimeError(f"{task!r} is not a task of {self!r}")
        with unit_of_work(get_session(), task.process_id):
            return self._func(task.activate(), *args, **kwargs)


class HandlerActivation(Activation):
    """Runs the handler as soon as the task is created."""

    automatic = True
    guards_itself = True

    def run_automatic(self) -> None:
        self.perform()

    def _execute(self) -> None:
        with self.exception_guard():
            self.task.started = utcnow()
            self.ensure_ids()  # the handler sees saved rows
            self.send(signals.task_started)
            self.flow_task._handler(self)
            self.task.finished = utcnow()
            self.set_status(STATUS.DONE)
            self.send(signals.task_finished)
            self._activate_next()

    @transition(source=STATUS.NEW, target=[STATUS.DONE, STATUS.ERROR], permission=managing, label="Run now")
    def perform(self) -> None:
        """Run the handler under the current exception policy."""
        self._execute()

    @transition(source=STATUS.ERROR, target=[STATUS.DONE, STATUS.ERROR], permission=managing, label="Retry")
    def retry(self) -> None:
        """Run the handler again after an error."""
        self.task.comments = None
        self._execute()

    @transition(source=STATUS.DONE, conditions=[next_tasks_missing, region_join_not_fired],
                permission=managing, label="Activate next")
    def activate_next(self) -> None:
        """Activate the outgoing nodes again."""
        self._activate_next()

    undo = Activation.undo.redeclare(source=[STATUS.DONE, STATUS.ERROR], target=STATUS.NEW)


class Handler(Node):
    """``flow.Handler(callable(activation))``, or ``this.method`` of the flow."""

    task_type = "HANDLER"
    activation_class = HandlerActivation

    def __init__(self, handler: Callable[..., Any] | Any) -> None:
        super().__init__()
        self.handler = handler

    def resolve(self, flow_class: Any) -> None:
        super().resolve(flow_class)
        self._handler = flow_class.resolve_callable(self.handler, self)
