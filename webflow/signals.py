"""Blinker signals; the sender is the flow class, with ``process=`` and ``task=``."""

from .core.signals import flow_finished, flow_started, task_failed, task_finished, task_started

__all__ = ["flow_finished", "flow_started", "task_failed", "task_finished", "task_started"]
