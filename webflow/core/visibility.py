"""Who sees a process or a task: the one rule the pages, comments and mentions read."""

from __future__ import annotations

from typing import Any

from .models import Process, Task


def can_see_process(process: Process, user: Any) -> bool:
    """The flow's viewers and managers see every process; the starter sees their own."""
    if user is None or not getattr(user, "is_active", True):
        return False
    flow_class = process.flow_class
    return bool(flow_class.can_view(user) or flow_class.can_manage(user)
                or process.created_by_id == user.id)


def can_see_task(task: Task, user: Any) -> bool:
    """Whoever sees the process, the owner, and people who may work on the task's node."""
    if user is None or not getattr(user, "is_active", True):
        return False
    return bool(can_see_process(task.process, user) or task.owner_id == user.id
                or task.flow_task.user_has_permission(user))
