"""``Subprocess``: a task that runs a whole process of another flow and waits for it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm.attributes import set_committed_value

from .. import signals
from ..activation import Activation, next_tasks_missing, region_join_not_fired
from ..exceptions import FlowRuntimeError
from ..flow import Node
from ..fsm import transition
from ..models import Process, utcnow
from ..permissions import managing
from ..status import STATUS


class SubprocessActivation(Activation):
    """NEW -> STARTED (the child process runs) -> DONE (child DONE, its data the result)
    or ERROR (child CANCELED). Parent and child are locked top process first (see
    ``transaction.UnitOfWork.lock``), so they are updated in one transaction each time.

    Only the task's current child (the newest it started: ``retry``, or ``undo`` then
    ``perform``, start a new one) decides it; an older child that ends later (a manager
    reopened and finished it) changes nothing in the parent."""

    automatic = True

    def run_automatic(self) -> None:
        self.perform()

    def children(self) -> list[Process]:
        """The processes this task started, oldest first."""
        if self.task.id is None:
            return []
        return list(self.session.scalars(
            sa.select(Process).where(Process.parent_task_id == self.task.id).order_by(Process.id)))

    def is_current_child(self, child: Process) -> bool:
        """True when ``child`` is the newest process this task started."""
        if child.id is None or self.task.id is None:
            return True  # not saved yet: the one being started now
        newer = self.session.scalar(
            sa.select(Process.id).where(Process.parent_task_id == self.task.id, Process.id > child.id).limit(1))
        return newer is None

    def _cancel_old_children(self) -> None:
        """A new child replaces the earlier ones: cancel those still running (a manager
        reopened one), where their tasks allow it; they no longer count in any case."""
        from ..engine import cancel_blocker, cancel_process

        for child in self.children():
            if child.status == STATUS.NEW and cancel_blocker(child) is None:
                cancel_process(child)

    def _start_child(self) -> None:
        from .start import StartActivation

        self._cancel_old_children()
        self.save_rows()  # the child's row points at this task's; data() sees saved rows
        node = self.flow_task
        self.task.started = utcnow()
        self.task.comments = None
        if "result" in (self.task.data or {}):  # an earlier child's: the new child gives its own
            self.task.data = {k: v for k, v in self.task.data.items() if k != "result"}
        self.set_status(STATUS.STARTED)
        kwargs = node._data(self) if node._data is not None else {}
        if not isinstance(kwargs, dict):
            raise FlowRuntimeError(f"{node.name}: data() must return a dict, got {type(kwargs).__name__}")
        child = StartActivation.new(node.start_node)
        # The id, not the relationship: a relationship in each direction between
        # processes and tasks made every flush sort rows one by one (a cycle).
        child.process.parent_task_id = self.task.id
        set_committed_value(child.process, "parent_task", self.task)
        child.process.root_process_id = self.process.root_process_id or self.process.id
        self.send(signals.task_started)
        start_func = getattr(node.start_node, "_func", None)
        if start_func is None:
            child.prepare(data=kwargs)
            child.done()
        else:
            start_func(child, **kwargs)
            if child.get_status() != STATUS.DONE:
                # Nothing was started, so nothing would ever end this task: it waited
                # STARTED for good, a process no list showed as stuck.
                raise FlowRuntimeError(
                    f"{node.name}: {node.start_node.flow_class.__name__}.{node.start_node.name} started no "
                    "process (its function returned without calling activation.done())")
        # A child that ran straight through has already finished this task (child_ended).

    def child_ended(self, child: Process) -> None:
        """The child finished or was canceled: finish this task, or fail it with why."""
        if self.task.status != STATUS.STARTED:
            return  # this task was canceled (and is canceling its children), or moved on
        if not self.is_current_child(child):
            # An older child, replaced by a retry or an undo then perform: it decides
            # nothing, and the trail says so (a manager reopened and ended it).
            self.note(f"subprocess {child.flow_class.process_title} #{child.id} ended "
                      f"({child.status.value.lower()}) after a newer one replaced it: ignored")
            return
        if child.status == STATUS.DONE:
            self.done(child)
        elif child.status == STATUS.CANCELED:
            self.error(f"subprocess {child.flow_class.process_title} #{child.id} was canceled")

    @transition(source=STATUS.NEW, target=[STATUS.STARTED, STATUS.DONE, STATUS.ERROR], permission=managing,
                label="Run now")
    def perform(self) -> None:
        """Start the child process (on creation, or again after an undo). A failing
        ``data`` callable (or child start) is this task's failure: ERROR with the
        traceback under the web policy, the branch that led here done all the same."""
        with self.exception_guard():
            self._start_child()

    @transition(source=STATUS.ERROR, target=[STATUS.STARTED, STATUS.DONE, STATUS.ERROR], permission=managing,
                label="Retry")
    def retry(self) -> None:
        """Start a new child process after the last one was canceled."""
        with self.exception_guard():
            self._start_child()

    @transition(source=STATUS.STARTED, target=STATUS.DONE)
    def done(self, child: Process) -> None:
        """The child is DONE: keep its data as the result and continue the flow."""
        self.task.data = {**(self.task.data or {}), "result": dict(child.data or {})}
        self.task.finished = utcnow()
        self.set_status(STATUS.DONE)
        self.send(signals.task_finished)
        self._activate_next()

    @transition(source=STATUS.STARTED, target=STATUS.ERROR)
    def error(self, comments: str = "") -> None:
        """The child was canceled: the task fails with the reason, for a manager to repair."""
        self.task.comments = comments
        self.set_status(STATUS.ERROR)
        self.send(signals.task_failed)

    @transition(source=STATUS.DONE, conditions=[next_tasks_missing, region_join_not_fired],
                permission=managing, label="Activate next")
    def activate_next(self) -> None:
        """Activate the outgoing nodes again."""
        self._activate_next()

    @transition(source=[STATUS.NEW, STATUS.STARTED, STATUS.ERROR], target=STATUS.CANCELED,
                permission=managing, label="Cancel this task")
    def cancel(self) -> None:
        """Cancel the task and every unfinished child process."""
        from ..engine import cancel_process

        self.task.finished = utcnow()
        self.set_status(STATUS.CANCELED)  # first: the children's end must not fail it
        for child in self.children():
            if child.status == STATUS.NEW:
                cancel_process(child)

    undo = Activation.undo.redeclare(source=[STATUS.DONE, STATUS.ERROR], target=STATUS.NEW)


class Subprocess(Node):
    """``flow.Subprocess(OtherFlow.start, data=callable(activation) -> dict)``."""

    task_type = "SUBPROCESS"
    activation_class = SubprocessActivation

    def __init__(self, start_node: Any, data: Callable[[Any], dict[str, Any]] | None = None) -> None:
        super().__init__()
        self.start_node = start_node
        self.data = data

    def resolve(self, flow_class: Any) -> None:
        super().resolve(flow_class)
        from .start import StartFunction

        start = self.start_node
        if not isinstance(start, StartFunction) or start.flow_class is None:
            # A Start (a form people fill in) was started by the engine without its form.
            what = ", a start form" if getattr(start, "task_type", None) == "START" else ""
            raise FlowRuntimeError(f"{flow_class.__name__}.{self.name}: Subprocess needs another flow's "
                                   f"StartFunction (OtherFlow.start), got {start!r}{what}")
        self._data = None if self.data is None else flow_class.resolve_callable(self.data, self)
