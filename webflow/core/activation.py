"""The activation: one task at run time, and the transitions every task shares."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.orm import Session

from . import signals
from .context import current_actor, get_session, propagate_exception
from .exceptions import FlowRuntimeError, PermissionDenied, failure_text
from .fsm import BoundTransition, Transition, condition, declared_transitions, transition
from .guard import Guard
from .models import Process, Task, TaskEvent, utcnow
from .permissions import managing
from .queries import remember_task
from .status import STATUS
from .transaction import current_unit_of_work

if TYPE_CHECKING:
    from .flow import Flow, Node


def record_event(session: Session, process: Process, task: Task | None, name: str,
                 before: STATUS | None, after: STATUS | None,
                 comments: str | None = None) -> dict[str, Any]:
    """Note a transition for the audit trail; the values stay editable until the commit."""
    actor = current_actor()
    values = {"transition": name, "from_status": before, "to_status": after,
              "user_id": getattr(actor, "id", None), "comments": comments, "created": utcnow()}
    uow = current_unit_of_work()
    if uow is not None and uow.session is session:
        uow.events.append((process, task, values))
    else:
        session.add(TaskEvent(process=process, task=task, **values))
    return values


def is_saved(row: Any) -> bool:
    """True when the row is in the table (a new one may have its id before its INSERT)."""
    return row.id is not None and not sa.inspect(row).pending


def link_tasks(previous: Task, task: Task) -> None:
    """Record that ``previous`` led to ``task``; the row is written before the commit."""
    from sqlalchemy.orm.attributes import set_committed_value
    from sqlalchemy.orm.collections import collection_adapter

    uow = current_unit_of_work()
    if uow is None:
        raise FlowRuntimeError("tasks are linked inside a unit of work only")
    uow.links.append((previous, task))
    # Keep the read-only collections true in memory for the rest of the transaction: added
    # to in place (a split's ``leading`` gets one task per item of a fan-out; a new list
    # each time made a fan-out's start quadratic in its items).
    for obj, name, other in ((task, "previous", previous), (previous, "leading", task)):
        state = sa.inspect(obj)
        held = state.dict.get(name)
        if held is not None:
            if other not in held:
                collection_adapter(held).append_without_event(other)
        elif state.pending or state.transient:
            set_committed_value(obj, name, [other])


def alive_leading_tasks(activation: Activation) -> int:
    """How many of the tasks this task led to are not CANCELED.

    Outside a unit of work (a page asking which buttons to show) the count the page's
    query made (``queries.with_alive_leading``) or a ``leading`` list it loaded answers it;
    inside one, the links written so far are counted."""
    task = activation.task
    if task.id is None:
        return 0
    uow = current_unit_of_work()
    if uow is None:
        loaded = sa.inspect(task).dict
        if loaded.get("alive_leading") is not None:
            return int(loaded["alive_leading"])
        if "leading" in loaded:
            return sum(1 for t in task.leading if t.status != STATUS.CANCELED)
    from .queries import alive_leading_count

    if uow is not None:
        uow.write_links()
    return activation.session.scalar(alive_leading_count(task.id)) or 0


@condition("a task it created is not canceled yet")
def leading_tasks_canceled(activation: Activation) -> bool:
    """Undo only once everything the task started has been canceled."""
    return not alive_leading_tasks(activation)


@condition("the join after it already fired: undo from the join backwards first")
def region_join_not_fired(activation: Activation) -> bool:
    """Work reopened inside a parallel region whose join already fired would reach that
    join a second time: refused, so each join fires once per split. A task that has not
    finished (a queued or failed job undone on its way to CANCELED, as a join's
    ``cancel_rest``, a terminating End or a process cancel do) reopens nothing: it has not
    reached the join, and if it runs on, its late arrival is absorbed like any other."""
    task = activation.task
    if task.id is None or "/" not in task.token or activation.get_status() != STATUS.DONE:
        return True
    from . import token as tokens
    from .queries import as_tasks, process_tasks

    levels = {}  # join token -> the prefix of that split's branches
    current = task.token
    while tokens.is_branch(current):
        levels[tokens.base(current)] = tokens.split_prefix(current)
        current = tokens.base(current)
    fired = as_tasks(activation.session, [t for t in process_tasks(activation.session, activation.process)
                                          if t.flow_task_type == "JOIN" and t.status == STATUS.DONE
                                          and t.token in levels])
    if not fired:
        return True
    uow = current_unit_of_work()
    if uow is not None:
        uow.write_links()
    return not any(prev.token.startswith(levels[join.token]) for join in fired for prev in join.previous)


@condition("its next tasks already exist")
def next_tasks_missing(activation: Activation) -> bool:
    """activate_next only where what the task leads to is gone (all of it canceled):
    again it would link the task twice to a join that waits, or start a second branch."""
    return not alive_leading_tasks(activation)


_leaves_error: dict[type, bool] = {}


def leaves_error(cls: type) -> bool:
    """True when some transition of the activation class starts at ERROR."""
    if cls not in _leaves_error:
        _leaves_error[cls] = any(STATUS.ERROR in t.sources for t in declared_transitions(cls).values())
    return _leaves_error[cls]


class Activation:
    """Wraps one task; its transitions change the task's status under the process lock."""

    #: The node types this activation runs automatically right after it is created.
    automatic: ClassVar[bool] = False
    #: run_automatic enters exception_guard before anything can fail (see run_created).
    guards_itself: ClassVar[bool] = False

    def __init__(self, task: Task) -> None:
        self.task = task
        # PREPARED is held in memory only: preparing writes nothing (safe on GET).
        self._memory_status: STATUS | None = None
        self._memory_base: STATUS | None = None
        # The audit row of the transition running now, for note().
        self._event: dict[str, Any] | None = None

    # -- what the activation is about -------------------------------------------------

    @property
    def process(self) -> Process:
        return self.task.process

    @property
    def flow_task(self) -> Any:
        return self.task.flow_task  # the node of this activation's own kind

    @property
    def flow_class(self) -> type[Flow]:
        return self.task.flow_class

    @property
    def session(self) -> Session:
        return get_session()

    def describe(self) -> str:
        return f"{self.task.node_name} #{self.task.id}" if self.task.id else self.task.node_name

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()} {self.get_status()}>"

    # -- status ------------------------------------------------------------------------

    def get_status(self) -> STATUS:
        """The task's status, as this activation sees it."""
        if self._memory_status is not None:
            if self.task.status == self._memory_base:
                return self._memory_status
            self._memory_status = None  # someone else moved the task meanwhile
        return self.task.status

    def set_status(self, value: STATUS) -> None:
        """Set the task's status (no transition checks: the FSM's building block)."""
        self._memory_status = None
        self.task.status = STATUS(value)

    def _hold_in_memory(self, value: STATUS) -> None:
        self._memory_base = self.task.status
        self._memory_status = value

    # -- transitions -------------------------------------------------------------------

    @classmethod
    def transitions(cls) -> dict[str, Transition]:
        return declared_transitions(cls)

    def get_available_transitions(self, user: Any = None) -> list[BoundTransition]:
        """The transitions allowed from the current status, in declaration order; with a
        user, only those people run (a ``label``) that the user's rule allows."""
        return [
            BoundTransition(t, self)
            for t in self.transitions().values()
            if t.blocked_reason(self) is None
            and (user is None or (t.label is not None and t.allows(self, user)))
        ]

    def check_permission(self, trans: Transition, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Raise PermissionDenied unless the acting user may run the transition."""
        actor = current_actor()
        if actor is None:
            return
        arguments = trans.call_arguments(args, kwargs)
        if not trans.allows(self, actor, arguments):
            raise PermissionDenied(self.refusal(trans, actor, arguments))

    def refusal(self, trans: Transition, actor: Any, arguments: dict[str, Any]) -> str:
        """Why the rule refused ``actor`` the transition, in words (nodes say more)."""
        return f"{actor} may not {trans.name} task {self.describe()}"

    def run_transition(self, trans: Transition, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Check and run a transition as one locked, all-or-nothing unit of work.

        The rule of who may run it is checked for a call from outside only: the steps a
        transition sets off (the next task's assignment, a job's scheduling) are the
        engine's own, whoever started it."""
        from_outside = current_unit_of_work() is None
        if not trans.locked:
            trans.check(self)
            if from_outside:
                self.check_permission(trans, args, kwargs)
            return trans.func(self, *args, **kwargs)

        from .transaction import unit_of_work

        with unit_of_work(self.session, self.task.process_id, self.task.id):
            trans.check(self)  # under the lock: the status and owner read are current
            if from_outside:
                self.check_permission(trans, args, kwargs)
            before = self.get_status()
            # Noted before the body runs, so the trail lists a transition before the
            # transitions it sets off; the target status is filled in below.
            event = self.log(trans.name, before, None)
            outer, self._event = self._event, event
            try:
                result = trans.func(self, *args, **kwargs)
            finally:
                self._event = outer
            after = self.get_status()
            if after not in trans.targets:
                if after == before and len(trans.targets) == 1:
                    self.set_status(trans.targets[0])
                    after = trans.targets[0]
                else:
                    raise FlowRuntimeError(
                        f"{trans.name} left {self.describe()} in {after}, "
                        f"expected one of {[t.value for t in trans.targets]}"
                    )
            event["to_status"] = after
            from .engine import settle

            settle(self)
        return result

    def log(self, name: str, before: STATUS | None, after: STATUS | None,
            comments: str | None = None) -> dict[str, Any]:
        """Add a row to the audit trail (written when the unit of work commits)."""
        return record_event(self.session, self.process, self.task, name, before, after, comments)

    def note(self, text: str) -> None:
        """Say in the audit trail what the running transition did (``alice delegated to bob: ...``)."""
        event = self._event
        if event is None:
            self.log("note", self.get_status(), self.get_status(), text)
        else:
            event["comments"] = f"{event['comments']}; {text}" if event.get("comments") else text

    def ensure_ids(self) -> None:
        """Give the task and its process their ids if they are new, so callables see
        them: taken from the sequences where the database has them (the rows are
        inserted with the next flush, together), else by a flush."""
        if self.task.id is None or self.process.id is None:
            uow = current_unit_of_work()
            if uow is None or uow.session is not self.session or not uow.assign_ids():
                self.session.flush()

    def save_rows(self) -> None:
        """Flush the task and its process if they are not in the table yet: signal
        receivers are told about saved rows (they may write rows that point at them)."""
        if not is_saved(self.task) or not is_saved(self.process):
            self.session.flush()

    def send(self, signal: Any) -> None:
        """Send a signal about this task; receivers see saved rows with their ids."""
        if signal.receivers:
            self.save_rows()
        signal.send(self.flow_class, process=self.process, task=self.task)

    def has_perm(self, user: Any) -> bool:
        """True when the user may work on this task."""
        return bool(user is not None and (user.is_superuser or self.task.owner_id == user.id))

    # -- creation and the cascade ------------------------------------------------------

    @classmethod
    def create(cls, flow_task: Node, prev_activation: Activation | None, token: str) -> Activation:
        """Create and persist a new task of the node, linked to the task that led here."""
        process = prev_activation.process if prev_activation else None
        task = Task(
            process=process,
            flow_class_path=flow_task.flow_class.path(),
            node_name=flow_task.name,
            flow_task_type=flow_task.task_type,
            status=STATUS.NEW,
            token=token,
            data={},
            # Set here, not by the column defaults, so that every new task of a flush
            # carries the same columns and the ORM sends them as one INSERT.
            created=utcnow(),
            priority=0,
        )
        get_session().add(task)
        remember_task(task)
        if prev_activation is not None:
            link_tasks(prev_activation.task, task)
        return cls(task)

    def apply_time_fields(self) -> None:
        """Give a new task its node's ``.Due`` and ``.Priority`` (View, Job). Called once the
        task has its start data (a fan-out branch's item and index), so a callable reads it;
        a callable sees saved rows: the task and its process have their ids, as every node
        callable's do (given to every task created with it at once, see ``_activate``)."""
        node = self.flow_task
        apply = getattr(node, "apply_time_fields", None)
        if apply is None:
            return
        if callable(getattr(node, "_due", None)) or callable(getattr(node, "_priority", None)):
            self.ensure_ids()
            # The flow's callables may fail: that is the new task's trouble, not the
            # work of whoever finished the task before (web policy: the task keeps no
            # due date and priority 0, and its trail keeps the traceback).
            with self.exception_guard(store_error=False):
                apply(self)
        else:
            apply(self)

    def run_automatic(self) -> None:
        """What the node does by itself once created (nothing for tasks that wait)."""

    def _activate_next(self) -> None:
        self._activate(self.flow_task.next_targets(self))

    def _activate(self, targets: list[Any]) -> None:
        """Create every next task first, then let each run: no join sees half a split.

        A target is ``(node, token)``, or ``(node, token, data)`` for a fan-out branch whose
        task starts with that ``task.data`` (its item and index)."""
        created = []
        for node, token, *data in targets:
            activation = node.activation_class.create(node, self, token)
            if data and data[0] is not None:
                activation.task.data = dict(data[0])
            created.append(activation)
        for activation in created:
            activation.apply_time_fields()
        self.run_created(created)

    @staticmethod
    def run_created(created: list[Activation]) -> None:
        """Let new tasks do what they do by themselves.

        Inside an ``exception_guard`` savepoint, tasks that guard themselves (handlers,
        gates) run once that savepoint is released, each in its own: savepoints stay one
        deep and each costs one flush instead of two, while a failure still rolls back only
        the node that failed. The others (a View's assignment and onCreate, a Job's
        scheduling, a Join's check, the End) run at once, inside the caller's savepoint."""
        uow = current_unit_of_work()
        waiting = uow.deferred[-1] if uow is not None and uow.deferred else None
        for activation in created:
            if activation.task.status == STATUS.CANCELED:
                # Canceled before its turn came: a sibling created with it ran first and
                # ended the region (a partial join's cancel_rest, a terminating End).
                continue
            if waiting is not None and activation.guards_itself:
                waiting.append(activation)
            else:
                activation.run_automatic()

    @contextmanager
    def exception_guard(self, *, store_error: bool = True) -> Iterator[None]:
        """Run the block; on failure propagate, or store ERROR with the traceback.

        Under the web policy the block runs in a Guard: a savepoint that reaches the
        database only if something inside the block writes (see webflow.core.guard).
        ``store_error=False`` is for a task whose state machine has no ERROR (a View's
        ``.Assign`` and ``.onCreate``): what the block did is undone and the failure is an
        ``error`` row of the audit trail, with the traceback; the task stays as it was. A
        task whose state machine has no way out of ERROR (a View's) is always kept so:
        stored in ERROR it could be neither retried, undone nor canceled."""
        if propagate_exception():
            yield
            return
        store_error = store_error and leaves_error(type(self))
        guarded = Guard(self.session)
        uow = current_unit_of_work()
        events_before = len(uow.events) if uow is not None else 0
        links_before = len(uow.links) if uow is not None else 0
        if uow is not None:
            uow.deferred.append([])
        try:
            yield
            guarded.settle()  # a row the database refuses fails this node, not the commit
        except Exception:
            if uow is not None:
                uow.deferred.pop()  # tasks created in the block are gone with it
            guarded.roll_back()
            if uow is not None:
                del uow.events[events_before:]  # what the block did is undone
                del uow.links[links_before:]
                uow.cache.clear()
            before = self.task.status
            if not store_error:
                self.log("error", before, before, failure_text())
                self.send(signals.task_failed)
                return
            self.set_status(STATUS.ERROR)
            self.task.comments = failure_text()
            self.log("error", before, STATUS.ERROR, self.task.comments)
            self.send(signals.task_failed)
        except BaseException:
            guarded.roll_back()
            raise
        else:
            waiting = uow.deferred.pop() if uow is not None else []
            guarded.release()
            self.run_created(waiting)

    # -- transitions every activation has ------------------------------------------------

    @transition(source=STATUS.DONE, target=STATUS.NEW,
                conditions=[leading_tasks_canceled, region_join_not_fired],
                permission=managing, label="Undo")
    def undo(self) -> None:
        """Undo the task; the flow's ``<node>_undo(activation)`` runs first if defined."""
        undo_func = getattr(self.flow_class.instance, f"{self.flow_task.name}_undo", None)
        if undo_func is not None:
            undo_func(self)
        self.task.finished = None
        self.set_status(STATUS.NEW)

    @transition(source=STATUS.NEW, target=STATUS.CANCELED, permission=managing, label="Cancel this task")
    def cancel(self) -> None:
        """Cancel the task."""
        self.task.finished = utcnow()
        self.set_status(STATUS.CANCELED)
