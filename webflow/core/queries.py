"""Reads the engine and the pages share."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased, with_expression
from sqlalchemy.orm.interfaces import ORMOption

from .context import get_session
from .exceptions import FlowRuntimeError
from .models import Process, Task, task_link
from .status import FINISHED, STATUS
from .transaction import current_unit_of_work

if TYPE_CHECKING:
    from .flow import Node


def get_task(process: Process, flow_task: Node, status: STATUS | list[STATUS] | None = None) -> Task:
    """The one task of the process at the node; an error if there are none or several."""
    from .flow import Node

    flow_class = process.flow_class
    if not isinstance(flow_task, Node):
        names = [node.name for node in flow_class.nodes()]
        example = flow_task if flow_task in names else names[0]
        raise FlowRuntimeError(f"get_task() takes a node of the flow ({flow_class.__name__}.{example}), "
                               f"not {flow_task!r:.80}")
    if not issubclass(flow_class, flow_task.flow_class):  # a node of the same name was taken
        raise FlowRuntimeError(f"{flow_task!r} is not a node of {flow_class.__name__}, the flow of "
                               f"process {process.id}")
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


@dataclass(slots=True)
class TaskRow:
    """A task of a process as the engine's read under the lock found it: the columns the
    engine asks about a process's other tasks (which are unfinished, which join waits, what
    the search document names), as a plain row rather than an ORM object. A fan-out of a
    thousand branches then costs each transition a thousand small rows, not a thousand
    objects to build, track and expire at the commit. ``as_tasks`` turns the rows the
    engine acts on into the session's tasks."""

    id: int
    node_name: str
    flow_task_type: str
    token: str
    status: STATUS
    owner_id: int | None


# Built once: the engine asks for it in most transactions.
_TASK_ROWS = sa.select(Task.id, Task.node_name, Task.flow_task_type, Task.token, Task.status,
                       Task.owner_id).where(Task.process_id == sa.bindparam("process_id"))


@dataclass(slots=True)
class HeldTasks:
    """Every task of a process, as a unit of work holds them: the rows read under the lock
    and the tasks it created since."""

    rows: list[TaskRow]
    created: list[Task]
    # The session's objects of rows, once seen loaded: it holds them weakly, and an object
    # changed after the read and then let go (flushed, or taken by row_updates) would leave
    # its stale row to answer.
    objects: dict[int, Task] = field(default_factory=dict)
    ids: set[int] = field(init=False)  # the rows' ids, for the look through the session

    def __post_init__(self) -> None:
        self.ids = {row.id for row in self.rows}

    def current(self, session: Session) -> list[Task | TaskRow]:
        """The tasks as they stand now: a task the session holds (loaded) is that object,
        which carries the transaction's changes; the rest are their rows. An object the
        session holds expired has no change of its own: its row is what it would load.
        Whichever is smaller is looked through, the session's objects or the rows: a
        request holds a few tasks of a process that may have thousands, and a script may
        hold thousands of objects while it works on a small process."""
        if not self.rows:
            return list(self.created)  # a process this unit of work created: all objects
        objects, ids, identity = self.objects, self.ids, session.identity_map
        if len(identity) < len(ids):
            for obj in identity.values():
                if isinstance(obj, Task) and "status" in obj.__dict__ and obj.__dict__.get("id") in ids:
                    objects[obj.id] = obj
        else:
            for task_id in ids:
                held = identity.get((Task, (task_id,), None))
                if held is not None and "status" in held.__dict__:
                    objects[task_id] = held
        if not objects:
            return [*self.rows, *self.created]
        return [objects.get(row.id, row) for row in self.rows] + self.created


def process_tasks(session: Session, process: Process) -> list[Task | TaskRow]:
    """Every task of the process: the session's object where it holds one, else a row.

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
    held = uow.cache.get(key)
    if held is None:
        rows: list[TaskRow] = []
        if sa.inspect(process).has_identity:  # in the table (a new one may have its id already)
            with session.no_autoflush:  # pending tasks (not in the table yet) are added below
                rows = [TaskRow(*row) for row in session.execute(_TASK_ROWS, {"process_id": process.id})]
        created = [task for task in session.new if isinstance(task, Task) and task.process is process]
        held = uow.cache[key] = HeldTasks(rows, created)
    return held.current(session)


def as_tasks(session: Session, some: Iterable[Task | TaskRow]) -> list[Task]:
    """The session's objects of these tasks, in their order (one SELECT for the rows among
    them: what the engine is about to change)."""
    tasks: list[Any] = list(some)
    ids = [task.id for task in tasks if not isinstance(task, Task)]
    if not ids:
        return tasks  # objects only
    # No flush first: a row stands for a task the transaction has not changed (a changed one
    # is an object), so what is pending cannot alter what these read.
    with session.no_autoflush:
        loaded = tasks_by_id(session, ids)
    return [task if isinstance(task, Task) else loaded[task.id] for task in tasks]


def tasks_by_id(session: Session, ids: Iterable[int]) -> dict[int, Task]:
    """The session's objects of these tasks by id, a SELECT per ``_LOAD_BATCH`` of them."""
    ids = list(ids)
    loaded: dict[int, Task] = {}
    for start in range(0, len(ids), _LOAD_BATCH):
        chunk = ids[start:start + _LOAD_BATCH]
        loaded.update((task.id, task) for task in session.scalars(sa.select(Task).where(Task.id.in_(chunk))))
    return loaded


#: Ids per SELECT of ``as_tasks`` (well under either database's limit on parameters).
_LOAD_BATCH = 500


def hold_tasks(process: Process, tasks: list[Task]) -> None:
    """Hold the process's tasks for the unit of work (a process it creates)."""
    uow = current_unit_of_work()
    if uow is not None:
        uow.cache.setdefault(("tasks", process), HeldTasks([], list(tasks)))


def remember_task(task: Task) -> None:
    """Add a task the engine just created to its process's list, if one is held."""
    uow = current_unit_of_work()
    if uow is not None:
        held = uow.cache.get(("tasks", task.process))
        if held is not None:
            held.created.append(task)


def count_unfinished(session: Session, process: Process, *, token_prefix: str | None = None) -> int:
    """How many tasks of the process (optionally under a token prefix) are unfinished."""
    return sum(1 for task in process_tasks(session, process)
               if task.status not in FINISHED and (token_prefix is None or task.token.startswith(token_prefix)))


def alive_leading_count(previous_id: Any) -> sa.Select[Any]:
    """How many tasks the task ``previous_id`` (a value, or a column to correlate with) led
    to are not CANCELED: what undo's rule asks of a done task."""
    led = aliased(Task)  # the outer query may be on Task itself
    return (sa.select(sa.func.count()).select_from(task_link.join(led, led.id == task_link.c.task_id))
            .where(task_link.c.previous_id == previous_id, led.status != STATUS.CANCELED))


def with_alive_leading() -> ORMOption:
    """A loader option: each task loaded comes with ``alive_leading``, its
    ``alive_leading_count`` made in the same query."""
    return with_expression(Task.alive_leading, alive_leading_count(Task.id).scalar_subquery())


def unfinished_tasks(process: Process) -> list[Task]:
    """The process's tasks not DONE or CANCELED, newest first."""
    return list(get_session().scalars(
        sa.select(Task)
        .where(Task.process_id == process.id, Task.status.not_in(list(FINISHED)))
        .order_by(Task.id.desc())
    ))
