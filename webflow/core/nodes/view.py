"""Human tasks: ``View`` and its activation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from .. import signals
from ..activation import Activation, next_tasks_missing, region_join_not_fired
from ..context import get_session
from ..exceptions import FlowRuntimeError, PermissionDenied
from ..fsm import transition
from ..models import User, utcnow
from ..permissions import assigning, flow_manage, managing, owner, to_permitted
from ..status import STATUS
from .base import PageNode
from .timer import TimeFields, TimeoutOwner


class ViewActivation(Activation):
    """A task a person does: assigned, prepared with form data, done."""

    def __init__(self, task: Any) -> None:
        super().__init__(task)
        self._data: dict[str, Any] = {}

    @classmethod
    def create(cls, flow_task: Any, prev_activation: Any, token: str) -> Activation:
        activation = super().create(flow_task, prev_activation, token)
        activation.task.owner_permission = flow_task.permission_name
        return activation

    def run_automatic(self) -> None:
        node = self.flow_task
        if node._assign_func is not None or node._on_create:
            self.ensure_ids()  # the flow's callables see saved rows
        owner = node.resolve_assignee(self)
        if owner is not None:
            self.assign(owner)
        for callback in node._on_create:
            callback(self)
        self.flow_task.start_timers(self)

    def has_perm(self, user: Any) -> bool:
        node = self.flow_task
        return bool(node.can_execute(user, self.task) or node.can_assign(user, self.task))

    @transition(source=STATUS.NEW, target=STATUS.ASSIGNED, permission=assigning, label="Assign")
    def assign(self, user: User) -> None:
        """Make the user the task's owner."""
        if user is None:
            raise FlowRuntimeError("assign() needs a user")
        self.task.owner = user
        self.task.assigned = utcnow()

    @transition(source=STATUS.ASSIGNED, target=STATUS.NEW, permission=owner | managing,
                label="Put back in the queue")
    def unassign(self) -> None:
        """Put the task back in the queue."""
        self.task.owner = None
        self.task.assigned = None

    @transition(source=STATUS.ASSIGNED, permission=flow_manage & to_permitted, label="Reassign")
    def reassign(self, user: User) -> None:
        """Give the task to another user."""
        if user is None:
            raise FlowRuntimeError("reassign() needs a user")
        self.task.owner = user
        self.task.assigned = utcnow()

    @transition(source=STATUS.ASSIGNED, target=STATUS.PREPARED, locked=False, permission=owner)
    def prepare(self, data: dict[str, Any] | None = None, user: Any = None) -> None:
        """Take the form data; writes nothing (safe on GET)."""
        if user is not None and self.task.owner_id != user.id:
            raise PermissionDenied(f"task {self.describe()} is not assigned to {user}")
        self._data = dict(data or {})
        self._hold_in_memory(STATUS.PREPARED)

    @transition(source=STATUS.PREPARED, target=STATUS.DONE, permission=owner)
    def done(self) -> None:
        """Finish the task: its data goes into process.data, then the flow goes on."""
        task, process = self.task, self.process
        self.flow_task.cancel_timers(self)  # a task done in time never times out
        if self.flow_task.fan_out:
            # One of several parallel reviewers: their answers stay apart, beside the item.
            task.data = {**(task.data or {}), **self._data}
        else:
            if self._data:
                process.data = {**(process.data or {}), **self._data}
                process.summary = self.flow_class.instance.summary(process)
            task.data = dict(self._data)
        task.started = task.started or task.assigned or utcnow()
        task.finished = utcnow()
        self.set_status(STATUS.DONE)
        self.send(signals.task_finished)
        self._activate_next()

    @transition(source=STATUS.DONE, conditions=[next_tasks_missing, region_join_not_fired],
                permission=managing, label="Activate next")
    def activate_next(self) -> None:
        """Activate the outgoing nodes again."""
        self._activate_next()

    @transition(source=STATUS.NEW, target=STATUS.CANCELED, permission=managing, label="Cancel this task")
    def cancel(self) -> None:
        """Cancel the task and its timers."""
        self.flow_task.cancel_timers(self)
        Activation.cancel.func(self)

    @transition(source=STATUS.DONE, target=STATUS.NEW, conditions=Activation.undo.conditions,
                permission=managing, label="Undo")
    def undo(self) -> None:
        """Reopen the task for the queue."""
        Activation.undo.func(self)
        self.task.owner = None
        self.task.assigned = None


class View(TimeFields, TimeoutOwner, PageNode):
    """A task for a person, with a Flask-WTF ``form`` or a full ``view`` function."""

    task_type = "HUMAN"
    activation_class = ViewActivation

    def __init__(self, form: Any = None, view: Any = None) -> None:
        super().__init__(form, view)
        self._assign_func: Callable[[Any], Any] | None = None
        self._assign_username: str | None = None
        self._on_create: list[Callable[[Any], Any]] = []

    def Assign(self, func: Callable[[Any], Any] | None = None, *, username: str | None = None) -> View:
        """Assign new tasks to ``func(activation)`` (a User) or to ``username``."""
        if (func is None) == (username is None):
            raise ValueError("Assign() takes a callable or username=..., not both")
        self = self._writable()
        self._assign_func, self._assign_username = func, username
        return self

    def onCreate(self, func: Callable[[Any], Any]) -> View:
        """Call ``func(activation)`` when a task of this node is created."""
        self = self._writable()
        self._on_create = [*self._on_create, func]
        return self

    def resolve_assignee(self, activation: Any) -> User | None:
        if self._assign_func is not None:
            return self._assign_func(activation)  # type: ignore[no-any-return]
        if self._assign_username is not None:
            user = get_session().scalar(sa.select(User).where(User.username == self._assign_username))
            if user is None:
                raise FlowRuntimeError(
                    f"{self.flow_class.__name__}.{self.name}: no user {self._assign_username!r}"
                )
            return user
        return None

    def can_execute(self, user: Any, task: Any) -> bool:
        """The owner works on an assigned task."""
        return bool(user is not None and task.owner_id is not None and task.owner_id == user.id)

    def can_assign(self, user: Any, task: Any) -> bool:
        """Anyone with the node's permission may take an unassigned task."""
        return task.owner_id is None and task.status == STATUS.NEW and self.user_has_permission(user)
