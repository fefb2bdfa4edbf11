"""Operations on a whole process."""

from __future__ import annotations

from . import signals
from .activation import record_event
from .context import get_session
from .exceptions import TransitionNotAllowed
from .models import Process, Task, utcnow
from .queries import count_unfinished, process_tasks, unfinished_tasks
from .status import STATUS
from .transaction import unit_of_work

# How each unfinished task is brought to CANCELED, tried in order: every step is one
# of the task's own transitions, so the state machines hold here too.
CANCEL_PLANS: tuple[tuple[str, ...], ...] = (
    ("cancel",),
    ("unassign", "cancel"),
    ("undo", "cancel"),
)


def finish_process(process: Process, flow_class: type, task: Task) -> None:
    """Mark the process DONE: only an End task calls this."""
    process.status = STATUS.DONE
    process.finished = utcnow()
    signals.flow_finished.send(flow_class, process=process, task=task)


def finish_if_ended(process: Process, flow_class: type) -> None:
    """Finish a process whose End is done once its last open task has finished."""
    session = get_session()
    if process.status != STATUS.NEW or count_unfinished(session, process):
        return
    end = next((task for task in process_tasks(session, process)
                if task.flow_task_type == "END" and task.status == STATUS.DONE), None)
    if end is not None:
        finish_process(process, flow_class, end)


def cancel_blocker(process: Process) -> str | None:
    """Why the process cannot be canceled now, or None."""
    if process.status != STATUS.NEW:
        return f"process {process.id} is {process.status}"
    for task in unfinished_tasks(process):
        activation = task.activate()
        available = {t.name for t in activation.get_available_transitions()}
        if not any(plan[0] in available for plan in CANCEL_PLANS):
            return f"task {activation.describe()} in status {task.status} cannot be canceled"
    return None


def cancel_process(process: Process) -> None:
    """Cancel every unfinished task (undoing first where needed), then the process."""
    session = get_session()
    with unit_of_work(session, process.id):
        session.refresh(process)
        reason = cancel_blocker(process)
        if reason is not None:
            raise TransitionNotAllowed(f"cannot cancel process {process.id}: {reason}")
        for task in unfinished_tasks(process):
            activation = task.activate()
            available = {t.name for t in activation.get_available_transitions()}
            plan = next(p for p in CANCEL_PLANS if p[0] in available)
            for step in plan:
                getattr(activation, step)()
        process.status = STATUS.CANCELED
        process.finished = utcnow()
        record_event(session, process, None, "cancel_process", STATUS.NEW, STATUS.CANCELED)
