"""Operations on a whole process."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from . import signals
from . import token as tokens
from .activation import is_saved, record_event
from .context import get_session
from .exceptions import TransitionNotAllowed
from .models import Process, Task, TaskEvent, User, utcnow
from .queries import as_tasks, process_tasks, tasks_by_id, unfinished_tasks
from .status import FINISHED, STATUS
from .transaction import current_unit_of_work, unit_of_work

if TYPE_CHECKING:
    from .activation import Activation

# How each unfinished task is brought to CANCELED, tried in order: every step is one
# of the task's own transitions, so the state machines hold here too.
CANCEL_PLANS: tuple[tuple[str, ...], ...] = (
    ("cancel",),
    ("unassign", "cancel"),
    ("undo", "cancel"),
)


def finish_process(process: Process, flow_class: type, task: Task) -> None:
    """Mark the process DONE (its End was reached and nothing is left to do)."""
    process.status = STATUS.DONE
    process.finished = utcnow()
    process.stalled = None
    if signals.flow_finished.receivers and not (is_saved(process) and is_saved(task)):
        get_session().flush()  # receivers see the saved rows they are told about
    signals.flow_finished.send(flow_class, process=process, task=task)
    notify_parent(process)


def notify_parent(process: Process) -> None:
    """A subprocess ended (DONE or CANCELED): its parent's task finishes or fails, in the
    same transaction (the tree's top process is locked already, see UnitOfWork.lock)."""
    parent = process.parent_task  # no query for a top-level process (no parent id)
    if parent is not None:
        parent.activate().child_ended(process)


def settle(activation: Activation) -> None:
    """After a transition: fire the joins it no longer holds back, then end the process,
    or mark it stalled, or reopen it, as its tasks now say.

    Runs after every locked transition (see ``Activation.run_transition``), so a join or
    the process end is decided whichever way a branch ended: it arrived, was canceled or
    undone, reached an End, or stopped at a node without ``.Next``."""
    task, process = activation.task, activation.process
    if process.status == STATUS.CANCELED:
        return  # a process being canceled fires nothing on the way
    uow = current_unit_of_work()
    if uow is not None and process in uow.quiet:
        return  # tasks are being canceled wholesale: settled once that is done
    session = get_session()
    if task.status in FINISHED and tokens.is_branch(task.token):
        _fire_released_joins(session, process, task)
    # The task itself still open answers "is anything unfinished?" without a query (unless
    # it is an undone join, job or timer, which may be open and still unable to move).
    if task.status not in FINISHED and not _undone_join(task) and not _still_when_new(task):
        tasks: list[Any] = []
        unfinished = moving = True
    else:
        tasks = process_tasks(session, process)
        unfinished = any(t.status not in FINISHED for t in tasks)
        moving = unfinished and any(_may_move(t, tasks) for t in tasks)
    if unfinished:
        if process.status == STATUS.DONE:  # a task of a finished process was reopened
            process.status = STATUS.NEW
            process.finished = None
        if moving and process.stalled is not None:
            process.stalled = None
        elif not moving and process.stalled is None:
            process.stalled = utcnow()  # only undone joins nothing will reach are open
        return
    if process.status != STATUS.NEW:
        return
    end = next((t for t in tasks if t.flow_task_type == "END" and t.status == STATUS.DONE), None)
    if end is not None:
        finish_process(process, activation.flow_class, as_tasks(session, [end])[0])
    elif process.stalled is None:
        process.stalled = utcnow()


def _undone_join(task: Any) -> bool:
    return bool(task.flow_task_type == "JOIN" and task.status == STATUS.NEW)


#: Nodes whose task, once undone back to NEW, nothing moves again but a cancel: a job or a
#: timer is activated (queued, scheduled) only when it is created, and its NEW -> ASSIGNED /
#: SCHEDULED edges are the engine's, not a person's (no undo ever brings a branch back to
#: them: activate_next creates a new task). Such a task is NEW only after an undo, but
#: for the moment between its creation and its activation in the same transaction, which
#: the next transition's settle (the task activated) answers again.
_STILL_WHEN_NEW = frozenset({"JOB", "TIMER", "TIMEOUT"})


def _still_when_new(task: Any) -> bool:
    return bool(task.status == STATUS.NEW and task.flow_task_type in _STILL_WHEN_NEW)


def _may_move(task: Any, tasks: list[Any]) -> bool:
    """True for an unfinished task that something can still move: not an undone join (NEW
    after its undo) with nothing unfinished left in its region, which no branch will reach
    again and which has no transition but cancel. A process whose only open tasks are
    such joins is stranded unless it is marked stalled, for a manager to cancel the join
    and undo backwards."""
    if task.status in FINISHED:
        return False
    if _still_when_new(task):
        # An undone job or timer: its process, with nothing else open, looked alive forever
        # (not listed as stalled) while only a cancel could move it, as an undone join did.
        return False
    if not _undone_join(task):
        return True
    return any(t.status not in FINISHED and tokens.inside(t.token, task.token) for t in tasks)


def _fire_released_joins(session: Session, process: Process, finished: Task) -> None:
    """Complete the waiting joins of the regions the finished task was part of."""
    waiting = as_tasks(session, [t for t in process_tasks(session, process)
                                 if t.flow_task_type == "JOIN" and t.status == STATUS.STARTED
                                 and tokens.inside(finished.token, t.token)])
    # A join reads what reached it from task_link and adds the links not written yet
    # (JoinActivation._previous): nothing to write first.
    for join_task in sorted(waiting, key=lambda t: -len(t.token)):  # inner joins first
        join_task.activate().fire_if_done()  # type: ignore[attr-defined]  # a JoinActivation


@dataclass
class StallReason:
    """The task whose end left a process with nothing to do, and who ended it."""

    task: Task | None
    transition: str
    user: User | None


def stalled_query(flows: Iterable[type[Any]]) -> sa.Select[Process]:
    """The processes of the flows left with nothing to do and no End reached."""
    return sa.select(Process).where(Process.status == STATUS.NEW, Process.stalled.is_not(None),
                                    Process.flow_class_path.in_([f.path() for f in flows]))


def stalled_processes(session: Session, flows: Iterable[type[Any]],
                      limit: int = 50) -> list[tuple[Process, StallReason | None]]:
    """Processes left with nothing to do and no End reached, newest first, with why."""
    processes = list(session.scalars(
        stalled_query(flows).order_by(Process.stalled.desc(), Process.id.desc()).limit(limit)))
    return [(process, stall_reason(session, process)) for process in processes]


def stall_reason(session: Session, process: Process) -> StallReason | None:
    """The last task event that ended a task of the process (cancel, or a done), or undid
    one (a join undone when nothing will reach it again)."""
    event = session.scalars(
        sa.select(TaskEvent).where(TaskEvent.process_id == process.id, TaskEvent.task_id.is_not(None),
                                   sa.or_(TaskEvent.to_status.in_(list(FINISHED)),
                                          TaskEvent.transition == "undo"))
        .order_by(TaskEvent.id.desc()).limit(1)).first()
    if event is None:
        return None
    return StallReason(task=event.task, transition=event.transition, user=event.user)


def cancel_tasks(process: Process, tasks: Iterable[Task]) -> None:
    """Cancel the tasks, each through its own transitions (unassigning or undoing first
    where its state machine needs it); no join fires and the process is not settled
    until all are canceled. Waiting joins go first, then the newest tasks."""
    uow = current_unit_of_work()
    if uow is None:
        raise TransitionNotAllowed("tasks are canceled inside a unit of work only")
    ordered = sorted(tasks, key=lambda t: (t.flow_task_type != "JOIN", -(t.id or 0)))
    quiet_before = process in uow.quiet
    uow.quiet.add(process)
    try:
        for task in ordered:
            if task.status in FINISHED:
                continue  # canceled meanwhile (a subprocess's children, say)
            activation = task.activate()
            plan = cancel_plan(activation)
            if plan is None:
                raise TransitionNotAllowed(
                    f"task {activation.describe()} in status {task.status} cannot be canceled")
            for step in plan:
                getattr(activation, step)()
    finally:
        if not quiet_before:
            uow.quiet.discard(process)


def cancel_blocker(process: Process) -> str | None:
    """Why the process cannot be canceled now (naming its newest task that cannot be), or None.

    Each unfinished task's own transitions answer. Tasks of one node in one status get the
    same answer where the transitions that could begin a plan from that status have no
    conditions (their sources alone decide), so one task of such a group is asked for all:
    the process page of a fan-out over thousands of items asks a handful of tasks."""
    if process.status != STATUS.NEW:
        return f"process {process.id} is {process.status}"
    session = get_session()
    rows = session.execute(
        sa.select(Task.id, Task.node_name, Task.status)
        .where(Task.process_id == process.id, Task.status.not_in(list(FINISHED)))
        .order_by(Task.id.desc())).all()
    groups: dict[tuple[str, STATUS], list[int]] = {}
    for row in rows:
        groups.setdefault((row.node_name, row.status), []).append(row.id)
    blocked: list[Task] = []
    asked = tasks_by_id(session, [ids[0] for ids in groups.values()])  # each group's newest
    for (_, status), ids in groups.items():
        task = asked[ids[0]]
        # The steps that could begin a plan from this status; another status rules the
        # rest out whatever their conditions say.
        steps = [t for t in task.activate().transitions().values()
                 if t.name in _FIRST_STEPS and status in t.sources]
        if not any(step.conditions for step in steps):
            if cancel_plan(task.activate()) is None:
                blocked.append(task)
            continue
        for task in tasks_by_id(session, ids).values():  # conditions: each task answers
            if cancel_plan(task.activate()) is None:
                blocked.append(task)
    if not blocked:
        return None
    task = max(blocked, key=lambda t: t.id)
    return f"task {task.activate().describe()} in status {task.status} cannot be canceled"


#: The transitions that can begin a cancel plan.
_FIRST_STEPS = frozenset(plan[0] for plan in CANCEL_PLANS)


def cancel_plan(activation: Activation) -> tuple[str, ...] | None:
    """The steps that bring the activation's task to CANCELED now, or None when no plan
    can begin."""
    available = {t.name for t in activation.get_available_transitions()}
    return next((plan for plan in CANCEL_PLANS if plan[0] in available), None)


def cancel_open_children(process: Process) -> None:
    """Cancel the children still open although the task that started them has finished (a
    manager reopened one by undoing its End): a process canceled (or undone at its start)
    cancels them too, as it cancels the children of its unfinished subprocess tasks."""
    session = get_session()
    for child in session.scalars(
            sa.select(Process).join(Task, Task.id == Process.parent_task_id)
            .where(Task.process_id == process.id, Process.status == STATUS.NEW).order_by(Process.id)):
        if child.status == STATUS.NEW:  # as this transaction holds it
            cancel_process(child)


def cancel_process(process: Process) -> None:
    """Cancel every unfinished task (undoing first where needed), then the process."""
    session = get_session()
    with unit_of_work(session, process.id):
        session.refresh(process)
        reason = cancel_blocker(process)
        if reason is not None:
            raise TransitionNotAllowed(f"cannot cancel process {process.id}: {reason}")
        # CANCELED first: canceling the tasks one by one must not fire a join on the way.
        process.status = STATUS.CANCELED
        process.finished = utcnow()
        process.stalled = None
        cancel_tasks(process, unfinished_tasks(process))
        cancel_open_children(process)
        record_event(session, process, None, "cancel_process", STATUS.NEW, STATUS.CANCELED)
        notify_parent(process)
