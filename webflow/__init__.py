"""webflow: a workflow engine and human-task web application for Flask."""

from typing import Any

from .core import (
    STATUS,
    Context,
    Flow,
    FlowLockFailed,
    FlowRuntimeError,
    TransitionNotAllowed,
    flow,
    this,
)
from .core.timers import fire_due_timers

__all__ = [
    "STATUS", "Context", "Flow", "FlowLockFailed", "FlowRuntimeError",
    "TransitionNotAllowed", "create_app", "db", "fire_due_timers", "flow", "this",
]


def __getattr__(name: str) -> Any:
    # The web half is imported on first use, so `import webflow.core` stays Flask-free.
    if name == "create_app":
        from .app import create_app

        return create_app
    if name == "db":
        from .extensions import db

        return db
    raise AttributeError(f"module 'webflow' has no attribute {name!r}")
