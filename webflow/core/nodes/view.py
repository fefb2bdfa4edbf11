"""Human tasks: ``View`` and its activation."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa

from .. import signals
from ..activation import Activation, next_tasks_missing, region_join_not_fired
from ..away import substitute_for
from ..checks import BRANCH_FIELDS
from ..context import current_actor, get_session
from ..drafts import clear_draft
from ..exceptions import FlowRuntimeError, InputRejected, PermissionDenied
from ..fsm import transition
from ..json_data import text_problem
from ..models import User, stored_user, utcnow
from ..permissions import assigning, managing, owner, reassigning, to_permitted
from ..status import STATUS
from .base import PageNode, require_callable
from .timer import TimeFields, TimeoutOwner

#: The longest note a delegation takes, in characters.
MAX_NOTE = 1000


class ViewActivation(Activation):
    """A task a person does: assigned, prepared with form data, done."""

    def __init__(self, task: Any) -> None:
        super().__init__(task)
        self._data: dict[str, Any] = {}
        #: Why the next ``assign`` happens, for the ``task_assigned`` signal.
        self._assign_reason = "assign"
        #: ``delegate()`` runs ``reassign`` as the owner's hand-over.
        self._delegating = False

    @classmethod
    def create(cls, flow_task: Any, prev_activation: Any, token: str) -> Activation:
        activation = super().create(flow_task, prev_activation, token)
        activation.task.owner_permission = flow_task.permission_name
        return activation

    def run_automatic(self) -> None:
        node = self.flow_task
        if node._assign_func is not None or node._on_create:
            self.ensure_ids()  # the flow's callables see saved rows
        # A failing .Assign or .onCreate is the flow's bug, not the work of whoever finished
        # the task before: under the web policy the task waits unassigned in the queue and
        # the trail keeps the traceback (a View has no ERROR status).
        if node._assign_func is not None or node._assign_username is not None or node._on_create:
            with self.exception_guard(store_error=False):
                self._assign_and_call_on_create()
        self.flow_task.start_timers(self)

    def _assign_and_call_on_create(self) -> None:
        node = self.flow_task
        owner = node.resolve_assignee(self)
        if owner is not None:
            self._assign_reason = "auto"
            self.assign(owner)
        for callback in node._on_create:
            callback(self)

    def has_perm(self, user: Any) -> bool:
        node = self.flow_task
        return bool(node.can_execute(user, self.task) or node.can_assign(user, self.task))

    def _give_to(self, user: User, reason: str) -> User:
        """Make ``user`` the owner, or their substitute while they are out of office (see
        core.away); the audit trail and ``task_assigned`` say so. Returns the new owner."""
        if user is None:
            raise FlowRuntimeError("a task is given to a user; none was named")
        actor = current_actor()
        owner = user
        if actor is None or actor.id != user.id:  # taking a task yourself is never redirected
            owner = substitute_for(self.session, user, self.flow_task)
        if reason != "assign":  # a task in the queue has no draft: unassign dropped it
            clear_draft(self.session, self.task)  # what the last owner typed is theirs
        self.task.owner = owner
        self.task.assigned = utcnow()
        if owner is not user:
            self.note(f"assigned to {owner.username}, substituting for {user.username}")
            self.send_assigned(owner, "substitute")
        elif reason == "reassign" or (reason != "delegate" and (actor is None or actor.id != owner.id)):
            # Given by someone else (a manager, the engine's .Assign) or handed over: the
            # row's user is the giver, so the row names who got it (a delegation's note
            # says so already; taking a task yourself needs no note).
            self.note(f"assigned to {owner.username}")
        return owner

    @transition(source=STATUS.NEW, target=STATUS.ASSIGNED, permission=assigning, label="Assign")
    def assign(self, user: User) -> None:
        """Make the user the task's owner (their substitute while they are away)."""
        stored_user(user, "assign()")  # None, a username, a User never stored: refused here
        owner = self._give_to(user, "assign")
        self.set_status(STATUS.ASSIGNED)
        if owner is user:  # a substitute was told already (reason "substitute")
            self.send_assigned(user, self._assign_reason)

    def send_assigned(self, user: User, reason: str) -> None:
        """Tell receivers (notifications, live pages) who has the task now, and why."""
        if signals.task_assigned.receivers:
            self.save_rows()
        signals.task_assigned.send(self.flow_class, process=self.process, task=self.task, user=user,
                                   by=current_actor(), reason=reason)

    @transition(source=STATUS.ASSIGNED, target=STATUS.NEW, permission=owner | managing,
                label="Put back in the queue")
    def unassign(self) -> None:
        """Put the task back in the queue."""
        clear_draft(self.session, self.task)
        self.task.owner = None
        self.task.assigned = None

    @transition(source=STATUS.ASSIGNED, permission=reassigning, label="Reassign")
    def reassign(self, user: User, note: str = "") -> None:
        """Give the task to another user (their substitute while they are away).

        Run by the task's owner it is a *delegation* (the reference's one reassign edge; the
        rule book lets the owner hand it to a colleague who may do it): the note goes into the
        audit trail and ``task_delegated`` tells the new owner."""
        stored_user(user, "reassign()")
        note = (note or "").strip()
        if len(note) > MAX_NOTE or text_problem(note) is not None:  # json_data's rule for text
            raise InputRejected(f"A note holds at most {MAX_NOTE:,} characters "
                                "(and no NUL character or character that is not UTF-8).")
        actor = current_actor()
        if self._delegating or self.is_delegation(actor):
            self._delegate(user, note)
            return
        if note:
            self.note(note)
        if self._give_to(user, "reassign") is user:  # a substitute was told already
            self.send_assigned(user, "reassign")

    def is_delegation(self, actor: Any) -> bool:
        """A reassign by the task's own owner is a delegation (the pages say "Delegate", the
        pick is checked by the rule, the trail and ``task_delegated`` say so)."""
        return actor is not None and self.task.owner_id is not None and self.task.owner_id == actor.id

    def delegate(self, user: User, note: str = "") -> None:
        """The owner hands the task to a colleague who may do it, with a note: ``reassign``
        run by the owner (from code without a context user, the owner is taken to act)."""
        actor = current_actor()
        if actor is not None and actor.id != self.task.owner_id:
            raise PermissionDenied(f"only the owner delegates task {self.describe()}")
        self._delegating = True
        try:
            self.reassign(user, note=note)
        finally:
            self._delegating = False

    def _delegate(self, user: User, note: str) -> None:
        before = self.task.owner
        # The rule book decides, asked as the owner (from code the owner is taken to act;
        # a caller with a user was asked the same rule by the engine already), about the
        # colleague and whoever would really get the task (Transition.allows).
        if before is None or not self.transitions()["reassign"].allows(self, before, {"user": user}):
            raise PermissionDenied(self._delegation_refused(before, user))
        self.note(f"{before.username} delegated to {user.username}"
                  + (f": {note}" if note else ""))
        new_owner = self._give_to(user, "delegate")
        self.save_rows()
        if new_owner is user:  # a substitute was told already (reason "substitute")
            signals.task_assigned.send(self.flow_class, process=self.process, task=self.task,
                                       user=new_owner, by=before, reason="delegate")
        signals.task_delegated.send(self.flow_class, process=self.process, task=self.task,
                                    user=new_owner, by=before, note=note)

    def refusal(self, trans: Any, actor: Any, arguments: dict[str, Any]) -> str:
        target = arguments.get("user")
        if trans.name == "reassign" and self.is_delegation(actor) and target is not None:
            return self._delegation_refused(actor, target)
        return super().refusal(trans, actor, arguments)

    def _delegation_refused(self, before: User | None, user: User) -> str:
        """Why the rule refuses the owner's hand-over to ``user``, in words (the rule has
        decided already: this only names which part of it said no)."""
        if before is None:
            return f"task {self.describe()} has no owner to delegate it"
        if not before.is_active:
            return f"task {self.describe()}'s owner {before} is no longer active"
        if user.id == before.id:
            return f"task {self.describe()} is {user}'s already"
        if not to_permitted.allows(self, before, {"user": user}):
            return f"{user} may not work on task {self.describe()}"
        recipient = substitute_for(self.session, user, self.flow_task)
        if recipient.id == before.id:
            return (f"{user} is out of office with {before} as their substitute: "
                    f"task {self.describe()} would come back to {before}")
        return f"{user} is out of office and {recipient}, who would get task {self.describe()}, may not"

    @transition(source=STATUS.ASSIGNED, target=STATUS.PREPARED, locked=False, permission=owner)
    def prepare(self, data: dict[str, Any] | None = None, user: Any = None) -> None:
        """Take the form data; writes nothing (safe on GET)."""
        if user is not None and self.task.owner_id != stored_user(user, "prepare()").id:
            raise PermissionDenied(f"task {self.describe()} is not assigned to {user}")
        if data is not None and not isinstance(data, Mapping):  # a list made dict() raise TypeError
            raise FlowRuntimeError(f"prepare() takes the form's data as a dict, not {data!r:.80}")
        self._data = dict(data or {})
        self._hold_in_memory(STATUS.PREPARED)

    @transition(source=STATUS.PREPARED, target=STATUS.DONE, permission=owner)
    def done(self) -> None:
        """Finish the task: its data goes into process.data, then the flow goes on."""
        task, process = self.task, self.process
        self.flow_task.cancel_timers(self)  # a task done in time never times out
        clear_draft(self.session, self.task)
        if self.flow_task.fan_out:
            # One of several parallel reviewers: their answers stay apart, beside the item.
            # The item and index stay the branch's: an answer of that name replaced them,
            # and a text "index" broke the task page (the flow checker calls such a form
            # field an error, see checks.BRANCH_FIELDS).
            before = dict(task.data or {})
            task.data = {**before, **self._data, **{k: before[k] for k in BRANCH_FIELDS if k in before}}
        else:
            if self._data:
                process.data = {**(process.data or {}), **self._data}
                process.summary = self.flow_class.instance.summary(process)
            task.data = dict(self._data)
        task.started = task.started or task.assigned or utcnow()
        task.finished = utcnow()
        self.set_status(STATUS.DONE)
        self.send(signals.task_started)  # preparing wrote nothing: the work is told of now
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
        clear_draft(self.session, self.task)
        Activation.cancel.func(self)

    @transition(source=STATUS.DONE, target=STATUS.NEW, conditions=Activation.undo.conditions,
                permission=managing, label="Undo")
    def undo(self) -> None:
        """Reopen the task for the queue; its timeouts are armed again (they were
        canceled when it was done)."""
        Activation.undo.func(self)
        self.task.owner = None
        self.task.assigned = None
        self.flow_task.rearm_timers(self)


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

    def resolve(self, flow_class: Any) -> None:
        super().resolve(flow_class)
        if self._assign_func is not None:
            require_callable(flow_class, self, "Assign", self._assign_func)
        for func in self._on_create:
            require_callable(flow_class, self, "onCreate", func)

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
