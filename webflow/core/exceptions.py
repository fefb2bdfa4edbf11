"""Errors the engine raises."""

from __future__ import annotations


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
