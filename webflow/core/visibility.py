"""Who may see a task: the rule, once, as a test of one task and as a condition on many.

A person sees a task when they view or manage its flow, own it, may work on its node, or
started its process. The grounds that depend on the flow and the node (``can_view``,
``can_manage``, ``user_has_permission``) are asked of the definitions the same way in both
forms; only the row grounds (owner, starter) are spelled twice, as attribute and column.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from .models import Process, Task

if TYPE_CHECKING:
    from .flow import Flow


def sees_flow(flow_class: type[Flow], user: Any) -> bool:
    """Viewers and managers of a flow see all of its processes and tasks."""
    return bool(flow_class.can_view(user) or flow_class.can_manage(user))


def works_on(node: Any, user: Any) -> bool:
    """People who may work on a node's tasks see them."""
    return bool(node.user_has_permission(user))


def may_see_task(flow_class: type[Flow], task: Task, user: Any) -> bool:
    """The rule for one task (its page)."""
    return (sees_flow(flow_class, user) or task.owner_id == user.id
            or works_on(task.flow_task, user) or task.process.created_by_id == user.id)


def can_see_process(process: Process, user: Any) -> bool:
    """A process (its comments, its mentions): the flow's viewers and managers, the starter."""
    if user is None or not getattr(user, "is_active", True):
        return False
    return sees_flow(process.flow_class, user) or process.created_by_id == user.id


def can_see_task(task: Task, user: Any) -> bool:
    """``may_see_task`` for a user who may be missing or inactive (mentions, comments)."""
    if user is None or not getattr(user, "is_active", True):
        return False
    return may_see_task(task.process.flow_class, task, user)


def visible_tasks(flows: Iterable[type[Flow]], user: Any) -> sa.ColumnElement[bool]:
    """The same rule as a condition on ``Task`` joined with its ``Process``, over ``flows``
    (the flows the app serves: tasks of other flows are never visible)."""
    whole, by_node, served = [], [], []
    for flow_class in flows:
        path = flow_class.path()
        served.append(path)
        if sees_flow(flow_class, user):
            whole.append(path)
            continue
        nodes = [node.name for node in flow_class.nodes() if works_on(node, user)]
        if nodes:
            by_node.append(sa.and_(Task.flow_class_path == path, Task.node_name.in_(nodes)))
    grounds = [Task.owner_id == user.id, Process.created_by_id == user.id, *by_node]
    if whole:
        grounds.append(Task.flow_class_path.in_(whole))
    return sa.and_(Task.flow_class_path.in_(served), sa.or_(*grounds))
