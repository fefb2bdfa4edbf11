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


def storable_text(text: str) -> str:
    """``text`` as both databases store it: the NUL character (which PostgreSQL refuses in
    text) and lone surrogates (which no UTF-8 encoder takes, e.g. bytes decoded with
    ``surrogateescape``) written out as escapes. For text a node's author does not control
    (an exception's message): storing why something failed must not fail the transaction."""
    return text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


def failure_text() -> str:
    """The exception being handled, with its traceback, as text a row can store."""
    return storable_text(traceback.format_exc())
