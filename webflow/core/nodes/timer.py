"""Time: due dates and priorities, ``Timer`` nodes and the boundary timers of ``OnTimeout``.

A timer is a task row: it waits in SCHEDULED with ``task.due`` = when it fires, so the
database, not a queue, holds every timer; ``core.timers.fire_due_timers`` fires the due
ones under the process lock. ``View.OnTimeout`` adds a boundary node to the flow (named
``<view>_timeout``, ``<view>_timeout_2``, ...): each task of the view gets one timer task
of it, linked to the view task, on the same token.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from .. import signals
from ..activation import Activation, next_tasks_missing, region_join_not_fired
from ..exceptions import FlowRuntimeError
from ..flow import Node
from ..fsm import transition
from ..models import TIMER_TYPES, Task, utcnow
from ..permissions import managing
from ..queries import as_tasks, process_tasks
from ..status import FINISHED, STATUS
from ..transaction import current_unit_of_work

N = TypeVar("N", bound=Node)
When = timedelta | Callable[[Any], "datetime | timedelta | None"]

__all__ = ["TIMER_TYPES", "TimeFields", "Timeout", "TimeoutActivation", "Timer", "TimerActivation",
           "AbstractTimerActivation", "aware_utc", "check_priority"]


#: What ``task.priority`` can hold: the column is an INTEGER, which PostgreSQL keeps in 32
#: bits (SQLite took a larger int, PostgreSQL failed the transaction with a DataError).
PRIORITY_RANGE = range(-(2**31), 2**31)


def aware_utc(value: datetime) -> datetime:
    """The instant in UTC; a naive datetime is taken to be UTC already (the database's rule).
    A value that is not a datetime, or whose UTC instant no datetime holds (the year 1 east
    of Greenwich), is refused with FlowRuntimeError (it raised AttributeError or
    OverflowError from deep inside, out of the engine's own family)."""
    if not isinstance(value, datetime):
        raise FlowRuntimeError(f"a due time must be a datetime, not {value!r}")
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise FlowRuntimeError(f"{value.isoformat()} is out of the range of datetimes in UTC") from None


def check_priority(value: Any, where: str) -> int:
    """``value`` as a task's priority: an int (not a bool) that the column stores on both
    databases; anything else is refused with FlowRuntimeError, nothing stored."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise FlowRuntimeError(f"{where}: priority must be an int, not {value!r}")
    if value not in PRIORITY_RANGE:
        raise FlowRuntimeError(f"{where}: priority {value} is out of range "
                               f"({PRIORITY_RANGE.start} to {PRIORITY_RANGE.stop - 1})")
    return value


def _check_when(when: Any, builder: str) -> None:
    if not (isinstance(when, timedelta) or callable(when)):
        raise FlowRuntimeError(f"{builder} takes a timedelta or a callable(activation), not {when!r}")


def resolve_when(when: Any, activation: Any, start: datetime) -> datetime | None:
    """A ``timedelta`` after ``start``, or what ``when(activation)`` answers (a datetime or a
    timedelta after ``start``; None for no time)."""
    value = when(activation) if callable(when) and not isinstance(when, timedelta) else when
    if value is None:
        return None
    if isinstance(value, timedelta):
        try:
            return start + value
        except OverflowError:  # past the year 9999: the callable's mistake, in our family
            raise FlowRuntimeError(f"a due time {value} after {start.isoformat()} is past the "
                                   "last datetime") from None
    if isinstance(value, datetime):
        return aware_utc(value)
    raise FlowRuntimeError(f"a due time must be a datetime or a timedelta, not {value!r}")


def note_on_event(task: Task, transition_name: str, comments: str) -> None:
    """Put ``comments`` on the audit row of the transition running now on the task."""
    uow = current_unit_of_work()
    for _process, event_task, values in reversed(uow.events if uow is not None else []):
        if event_task is task and values["transition"] == transition_name:
            values["comments"] = comments
            return


class TimeFields(Node):
    """``.Due(when)`` and ``.Priority(value)``: a task's deadline and rank, set when it is created."""

    _due: Any = None
    _priority: Any = 0

    def Due(self: N, when: When) -> N:
        """``when``: a timedelta from the task's creation, or callable(activation) -> datetime | timedelta."""
        _check_when(when, "Due()")
        self = self._writable()
        self._due = when  # type: ignore[attr-defined]
        return self

    def Priority(self: N, value: int | Callable[[Any], int]) -> N:
        """An int, or callable(activation) -> int; higher comes first in the lists."""
        if isinstance(value, bool) or not (isinstance(value, int) or callable(value)):
            raise FlowRuntimeError(f"Priority() takes an int or a callable(activation), not {value!r}")
        if not callable(value):
            check_priority(value, "Priority()")  # out of range: refused with the flow class
        self = self._writable()
        self._priority = value  # type: ignore[attr-defined]
        return self

    def apply_time_fields(self, activation: Any) -> None:
        """Stamp a new task with its creation time, due date and priority."""
        task = activation.task
        task.created = task.created or utcnow()
        if self._due is not None:
            task.due = resolve_when(self._due, activation, aware_utc(task.created))
        priority = self._priority(activation) if callable(self._priority) else self._priority
        task.priority = check_priority(priority, self.name)


class AbstractTimerActivation(Activation):
    """NEW -> SCHEDULED (due set) -> DONE when it fires; canceled while it waits."""

    automatic = True
    guards_itself = False

    def run_automatic(self) -> None:
        self.schedule()

    def fire_time(self) -> datetime | None:
        raise NotImplementedError

    @transition(source=STATUS.NEW, target=[STATUS.SCHEDULED, STATUS.ERROR])
    def schedule(self) -> None:
        """Wait until the fire time (stored as ``task.due``). A ``wait`` callable that fails
        is this timer's failure (ERROR with the traceback under the web policy, as a job's
        schedule can fail), not the task that led here; a manager's *retry* fires it."""
        with self.exception_guard():
            due = self.fire_time()
            if due is None:
                raise FlowRuntimeError(f"timer {self.describe()} has no time to fire at")
            self.task.due = due
            self.task.assigned = utcnow()
            self.set_status(STATUS.SCHEDULED)

    @transition(source=STATUS.SCHEDULED, permission=managing)
    def reschedule(self, when: datetime) -> None:
        """Fire at another time instead (an aware datetime; naive is taken as UTC)."""
        if not isinstance(when, datetime):
            raise FlowRuntimeError(f"reschedule() needs a datetime, not {when!r}")
        before = self.task.due
        self.task.due = aware_utc(when)
        note_on_event(self.task, "reschedule",
                      f"due {aware_utc(before).isoformat() if before else '-'} -> {self.task.due.isoformat()}")

    #: Set by ``core.timers.fail_timer``: the firing's commit failed; ``fire`` then stores
    #: ERROR with this reason instead of going on.
    failed_firing: str | None = None

    def _fire(self) -> None:
        with self.exception_guard():
            if self.failed_firing is not None:
                raise FlowRuntimeError(self.failed_firing)
            # First, while this timer is still open: canceling the view task then never
            # leaves the process without an unfinished task, even for a moment.
            self.on_fire()
            self.task.started = self.task.finished = utcnow()
            self.send(signals.task_started)
            self.set_status(STATUS.DONE)
            self.send(signals.task_finished)
            self._activate_next()

    def on_fire(self) -> None:
        """What the timer does before the flow goes on (a boundary timer cancels its task)."""

    @transition(source=STATUS.SCHEDULED, target=[STATUS.DONE, STATUS.ERROR], permission=managing,
                label="Fire now")
    def fire(self) -> None:
        """The time has come: continue the flow (``fire_due_timers`` calls it, or a manager)."""
        self._fire()

    @transition(source=STATUS.ERROR, target=[STATUS.DONE, STATUS.ERROR], permission=managing, label="Retry")
    def retry(self) -> None:
        """Fire again after what came next failed."""
        self.task.comments = None
        self._fire()

    @transition(source=STATUS.DONE, conditions=[next_tasks_missing, region_join_not_fired],
                permission=managing, label="Activate next")
    def activate_next(self) -> None:
        """Activate the outgoing nodes again."""
        self._activate_next()

    undo = Activation.undo.redeclare(source=[STATUS.DONE, STATUS.ERROR], target=STATUS.NEW)
    cancel = Activation.cancel.redeclare(source=[STATUS.NEW, STATUS.SCHEDULED], target=STATUS.CANCELED)


class TimerActivation(AbstractTimerActivation):
    """A ``flow.Timer`` task."""

    def fire_time(self) -> datetime | None:
        task = self.task
        task.created = task.created or utcnow()
        wait = self.flow_task.wait
        if callable(wait) and not isinstance(wait, timedelta):
            self.ensure_ids()  # the flow's callable sees saved rows, as every node callable does
        return resolve_when(wait, self, aware_utc(task.created))


class Timer(Node):
    """``flow.Timer(wait)``: wait ``wait`` (a timedelta from creation, or callable(activation)
    -> datetime | timedelta), then continue with ``.Next``."""

    task_type = "TIMER"
    activation_class = TimerActivation

    def __init__(self, wait: When) -> None:
        super().__init__()
        _check_when(wait, "Timer()")
        self.wait = wait

    def resolve(self, flow_class: Any) -> None:
        super().resolve(flow_class)
        if isinstance(self.wait, timedelta) and self.wait < timedelta(0):
            raise FlowRuntimeError(f"{flow_class.__name__}.{self.name}: Timer() wait is negative")


class TimeoutActivation(AbstractTimerActivation):
    """A boundary timer on a view task: when it fires the view task is still open."""

    def host_task(self) -> Task:
        """The view task this timer watches."""
        with self.session.no_autoflush:
            hosts = [t for t in self.task.previous if t.node_name == self.flow_task.host.name]
        if not hosts:
            raise FlowRuntimeError(f"timer {self.describe()} has no view task")
        return hosts[0]

    def fire_time(self) -> datetime | None:
        return self.flow_task.fire_time(self._host or self.host_task())

    _host: Task | None = None

    def on_fire(self) -> None:
        if not self.flow_task.cancel:
            return  # a reminder: the view task stays open
        host = self.host_task().activate()
        host.firing_timer = self.task  # the view's cancel leaves this one to finish
        from ..engine import CANCEL_PLANS

        available = {t.name for t in host.get_available_transitions()}
        plan = next((p for p in CANCEL_PLANS if p[0] in available), None)
        if plan is None:
            raise FlowRuntimeError(f"{host.describe()} in status {host.get_status()} cannot be canceled")
        for step in plan:
            getattr(host, step)()

    @transition(source=[STATUS.DONE, STATUS.ERROR], target=STATUS.NEW,
                conditions=Activation.undo.conditions, permission=managing, label="Undo")
    def undo(self) -> None:
        """Undo the timeout; an escalation that canceled its view task opens a new one."""
        Activation.undo.func(self)
        node = self.flow_task
        if node.cancel and self.host_task().status == STATUS.CANCELED:
            self._activate([(node.host, self.task.token)])


class Timeout(Node):
    """The boundary timer ``View.OnTimeout`` adds: fires ``after`` past the view task's
    creation (or at its ``due``), then creates ``target`` on the view task's token."""

    task_type = "TIMEOUT"
    activation_class = TimeoutActivation

    def __init__(self, host: Node, target: Any, after: timedelta | None, cancel: bool) -> None:
        super().__init__()
        self.host = host
        self.target = target
        self.after = after
        self.cancel = cancel
        self._next = [target]

    @property
    def title(self) -> str:
        when = f"after {describe_delta(self.after)}" if self.after is not None else "when due"
        return f"{self.host.title}: {'escalate' if self.cancel else 'remind'} {when}"

    def fire_time(self, host_task: Task) -> datetime | None:
        if self.after is None:
            return aware_utc(host_task.due) if host_task.due is not None else None
        try:
            return aware_utc(host_task.created or utcnow()) + self.after
        except OverflowError:  # as a .Due past the last datetime: in the engine's family
            raise FlowRuntimeError(f"{self.title}: {self.after} after the task's creation is past the "
                                   "last datetime") from None

    def create_for(self, host: Activation) -> Activation | None:
        """The timer task for a new view task, or None when the view task has no due time."""
        if self.fire_time(host.task) is None:
            return None
        timer = self.activation_class.create(self, host, host.task.token)
        timer._host = host.task  # type: ignore[attr-defined]  # its link row is still pending
        return timer


class TimeoutOwner(Node):
    """``.OnTimeout(node, after=None, cancel=True)`` for the nodes people work on."""

    _timeouts: tuple[tuple[Any, timedelta | None, bool], ...] = ()

    def OnTimeout(self: N, node: Any, after: timedelta | None = None, cancel: bool = True) -> N:
        """Create ``node`` on the task's token once it is unfinished ``after`` past its creation
        (or at ``task.due``); ``cancel=True`` cancels the task first (escalation),
        ``cancel=False`` leaves it open (a reminder)."""
        if after is not None and (not isinstance(after, timedelta) or after < timedelta(0)):
            raise FlowRuntimeError(f"OnTimeout() after= takes a timedelta of zero or more, not {after!r}")
        if after is not None and after > datetime.max.replace(tzinfo=UTC) - utcnow():
            # timedelta.max meant as "never": every task of the view failed to be created
            # with an OverflowError. (Leave out .OnTimeout for a task that never times out.)
            raise FlowRuntimeError(f"OnTimeout() after={after} reaches past the year 9999")
        self = self._writable()
        self._timeouts = (*self._timeouts, (node, after, bool(cancel)))  # type: ignore[attr-defined]
        return self

    def attached_nodes(self) -> list[tuple[str, Node]]:
        """The boundary nodes, by name, that the flow class adds beside this one."""
        attached: list[tuple[str, Node]] = []
        for n, (target, after, cancel) in enumerate(self._timeouts, start=1):
            name = f"{self.name}_timeout" + ("" if n == 1 else f"_{n}")
            attached.append((name, Timeout(self, target, after, cancel)))
        return attached

    def resolve(self, flow_class: Any) -> None:
        super().resolve(flow_class)
        self.timeout_nodes: list[Timeout] = [
            node for node in flow_class.nodes()
            if isinstance(node, Timeout) and node.host is self]
        for node in self.timeout_nodes:
            if node.after is None and self._due is None:  # type: ignore[attr-defined]
                raise FlowRuntimeError(
                    f"{flow_class.__name__}.{self.name}: OnTimeout() without after= needs .Due()")

    def start_timers(self, activation: Activation) -> None:
        """Create the timer tasks of a new task of this node."""
        created = [t for t in (node.create_for(activation) for node in self.timeout_nodes) if t]
        activation.run_created(created)

    def rearm_timers(self, activation: Activation) -> None:
        """Give a task reopened by undo its timers again: one new timer task for each
        boundary node whose timers of this task were all canceled when it finished (a
        timer that fired, or still waits, is not repeated). It fires as a new task's would:
        ``after`` past the task's creation (or at its ``due``), at once if that has passed.
        ``ViewActivation.undo`` calls it."""
        task = activation.task
        names = {node.name for node in self.timeout_nodes}
        if not names or task.id is None:
            return
        others = as_tasks(activation.session, [
            other for other in process_tasks(activation.session, activation.process)
            if other.node_name in names and other.token == task.token and other.status != STATUS.CANCELED])
        kept = {other.node_name for other in others if task in other.previous}
        created = [timer for timer in (node.create_for(activation) for node in self.timeout_nodes
                                       if node.name not in kept) if timer]
        activation.run_created(created)

    def cancel_timers(self, activation: Activation) -> None:
        """Cancel the unfinished timers of the task (before it finishes: nothing that
        watches for the process's last open task sees the timers go first)."""
        names = {node.name for node in self.timeout_nodes}
        if not names:
            return
        task, firing = activation.task, getattr(activation, "firing_timer", None)
        timers = as_tasks(activation.session, [
            other for other in process_tasks(activation.session, activation.process)
            if other.node_name in names and other.token == task.token and other is not firing
            and other.status not in FINISHED])
        from ..engine import cancel_plan

        for other in timers:
            if other.status in FINISHED:  # canceled meanwhile (a timer's own cancel)
                continue
            # Through the timer's own transitions: a waiting one is canceled; one in ERROR
            # (what came after it failed, nothing of it was kept) is undone, then canceled.
            timer = other.activate()
            for step in cancel_plan(timer) or ():  # no plan the machine allows: left as it is
                getattr(timer, step)()


def describe_delta(delta: timedelta) -> str:
    """``2 minutes``, ``1 day``, ``36 hours``: the largest whole unit."""
    seconds = int(delta.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"
