"""Errors the engine raises."""

from __future__ import annotations

import traceback


class FlowRuntimeError(Exception):
    """The flow cannot go on: a bad definition, or a state the engine cannot handle."""


class TransitionNotAllowed(FlowRuntimeError):
    """The transition is not allowed from the task's current status."""


class FlowLockFailed(FlowRuntimeError):
    """The process lock could not be taken within the bounded retries."""


class PermissionDenied(FlowRuntimeError):
    """The user may not do this."""


class StaleData(FlowRuntimeError):
    """A write was based on data that someone else changed meanwhile; nothing was applied."""


class InputRejected(FlowRuntimeError, ValueError):
    """What a person typed cannot be stored (empty, too long, a NUL byte); nothing was."""


def failure_text() -> str:
    """The exception being handled, with its traceback, as text a row can store: a NUL
    character in its message (PostgreSQL refuses NUL in text columns, and storing why a
    node failed must not fail the transaction) is written as ``\\x00``."""
    return traceback.format_exc().replace("\x00", "\\x00")
