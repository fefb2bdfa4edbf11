"""Reads the engine and the pages share."""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.orm import Session

from .context import get_session
from .exceptions import FlowRuntimeError
from .models import Process, Task
from .status import FINISHED, STATUS
from .transaction import current_unit_of_work

if TYPE_CHECKING:
    from .flow import Node


def get_task(process: Process, flow_task: Node, status: STATUS | list[STATUS] | None = None) -> Task:
    """The one task of the process at the node; an error if there are none or several."""
    query = sa.select(Task).where(Task.process_id == process.id, Task.node_name == flow_task.name)
    if status is not None:
        statuses = [status] if isinstance(status, STATUS | str) else list(status)
        query = query.where(Task.status.in_(statuses))
    tasks = get_session().scalars(query.order_by(Task.id)).all()
    if len(tasks) != 1:
        raise FlowRuntimeError(
            f"expected one {flow_task.name} task in process {process.id}"
            f"{'' if status is None else f' with status {status}'}, found {len(tasks)}"
        )
    return tasks[0]


# Built once: the engine asks for it in most transactions.
_PROCESS_TASKS = sa.select(Task).where(Task.process_id == sa.bindparam("process_id"))


def process_tasks(session: Session, process: Process) -> list[Task]:
    """Every task of the process, held by the unit of work once read.

    Under the process lock nobody else adds or changes the process's tasks, so one read
    per transaction is exact: later questions (each join arrival, the End) are answered
    from memory, and every task the engine creates meanwhile is added by
    ``remember_task``. Outside a unit of work it is the process's ``tasks``."""
    uow = current_unit_of_work()
    if uow is None:
        # Read-only use (a page asking what is allowed): the relationship, loaded once
        # per session until the next commit expires it.
        return list(process.tasks) if process.id is not None else []
    key = ("tasks", process)
    if key in uow.cache:
        return uow.cache[key]  # type: ignore[no-any-return]
    tasks: list[Task] = []
    if sa.inspect(process).has_identity:  # in the table (a new one may have its id already)
        with session.no_autoflush:  # pending tasks (not in the table yet) are added below
            tasks = list(session.scalars(_PROCESS_TASKS, {"process_id": process.id}))
    tasks += [task for task in session.new if isinstance(task, Task) and task.process is process]
    uow.cache[key] = tasks
    return tasks


def hold_tasks(process: Process, tasks: list[Task]) -> None:
    """Hold the process's tasks for the unit of work (a process it creates)."""
    uow = current_unit_of_work()
    if uow is not None:
        uow.cache.setdefault(("tasks", process), list(tasks))


def remember_task(task: Task) -> None:
    """Add a task the engine just created to its process's list, if one is held."""
    uow = current_unit_of_work()
    if uow is not None:
        tasks = uow.cache.get(("tasks", task.process))
        if tasks is not None:
            tasks.append(task)


def count_unfinished(session: Session, process: Process, *, token_prefix: str | None = None,
                     exclude: Task | None = None) -> int:
    """How many tasks of the process (optionally under a token prefix) are unfinished."""
    return sum(1 for task in process_tasks(session, process)
               if task is not exclude and task.status not in FINISHED
               and (token_prefix is None or task.token.startswith(token_prefix)))


def unfinished_tasks(process: Process) -> list[Task]:
    """The process's tasks not DONE or CANCELED, newest first."""
    return list(get_session().scalars(
        sa.select(Task)
        .where(Task.process_id == process.id, Task.status.not_in(list(FINISHED)))
        .order_by(Task.id.desc())
    ))
