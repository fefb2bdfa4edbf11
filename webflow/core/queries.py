"""Reads the engine and the pages share."""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

from .context import get_session
from .exceptions import FlowRuntimeError
from .models import Process, Task
from .status import FINISHED, STATUS

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


def unfinished_tasks(process: Process) -> list[Task]:
    """The process's tasks not DONE or CANCELED, newest first."""
    return list(get_session().scalars(
        sa.select(Task)
        .where(Task.process_id == process.id, Task.status.not_in(list(FINISHED)))
        .order_by(Task.id.desc())
    ))
