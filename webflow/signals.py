"""Blinker signals; the sender is the flow class, with ``process=`` and ``task=``."""

from .core.signals import (
    comment_posted,
    flow_finished,
    flow_started,
    task_assigned,
    task_delegated,
    task_failed,
    task_finished,
    task_overdue,
    task_started,
)

__all__ = ["comment_posted", "flow_finished", "flow_started", "task_assigned", "task_delegated",
           "task_failed", "task_finished", "task_overdue", "task_started"]
