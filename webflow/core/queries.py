"""Reads the engine and the pages share."""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

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


def count_unfinished(session: Session, process: Process, *, token_prefix: str | None = None,
                     exclude: Task | None = None) -> int:
    """How many tasks of the process (optionally under a token prefix) are unfinished.

    Reads the stored rows and overlays what the session holds in memory, without a
    flush: with the process lock held that is exact, and it saves a flush per question."""
    query = sa.select(Task.id, Task.status).where(Task.process_id == process.id)
    if token_prefix is not None:
        query = query.where(Task.token.startswith(token_prefix, autoescape=True))
    with session.no_autoflush:
        stored = session.execute(query).all()
    count = 0
    for task_id, stored_status in stored:
        task = session.identity_map.get(identity_key(Task, task_id))
        if task is not None and task is exclude:
            continue
        # An expired attribute means the stored value is current: read it without a load.
        status = sa.inspect(task).dict.get("status", stored_status) if task is not None else stored_status
        if status not in FINISHED:
            count += 1
    for task in session.new:
        if (isinstance(task, Task) and task is not exclude
                and (task.process is process or task.process_id == process.id)
                and (token_prefix is None or task.token.startswith(token_prefix))
                and task.status not in FINISHED):
            count += 1
    return count


def unfinished_tasks(process: Process) -> list[Task]:
    """The process's tasks not DONE or CANCELED, newest first."""
    return list(get_session().scalars(
        sa.select(Task)
        .where(Task.process_id == process.id, Task.status.not_in(list(FINISHED)))
        .order_by(Task.id.desc())
    ))
