"""Run-time settings of the engine: the session it works on and how errors propagate."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from .exceptions import FlowRuntimeError

if TYPE_CHECKING:
    from .models import User

SessionProvider = Callable[[], Session]

_session_provider: SessionProvider | None = None
_session_override: ContextVar[Session | None] = ContextVar("webflow_session", default=None)
_propagate: ContextVar[bool] = ContextVar("webflow_propagate", default=True)
_actor: ContextVar[User | None] = ContextVar("webflow_actor", default=None)


def set_session_provider(provider: SessionProvider | None) -> None:
    """Tell the engine where its session comes from (the app sets ``db.session``)."""
    global _session_provider
    _session_provider = provider


def get_session() -> Session:
    """The session the engine works on now."""
    session = _session_override.get()
    if session is not None:
        return session
    if _session_provider is None:
        raise FlowRuntimeError(
            "webflow has no database session: use it inside an app context, "
            "or wrap the call in `with use_session(session):`"
        )
    return _session_provider()


@contextmanager
def use_session(session: Session) -> Iterator[Session]:
    """Make the engine work on this session inside the block."""
    token = _session_override.set(session)
    try:
        yield session
    finally:
        _session_override.reset(token)


def propagate_exception() -> bool:
    return _propagate.get()


def current_actor() -> User | None:
    """The user on whose behalf the engine acts now, for the audit trail."""
    return _actor.get()


class Context:
    """``with Context(propagate_exception=False): ...`` sets how automatic nodes fail.

    With propagation (the default for code) a failing node rolls the whole call back.
    Without it, as in web requests and workers, the failing node is stored as ERROR
    with its traceback and the rest of the call is kept. ``user`` names who acts, for
    the audit trail.
    """

    _unset: Any = object()

    def __init__(self, propagate_exception: bool | None = None, user: Any = _unset) -> None:
        if isinstance(user, str | bytes | int | float | dict | list | tuple):
            # A username or an id failed inside the first permission check (AttributeError).
            raise FlowRuntimeError(f"Context(user=...) takes a User (or None), not {user!r:.80}")
        self.propagate_exception = propagate_exception
        self.user = user
        self._tokens: list[tuple[ContextVar[Any], Token[Any]]] = []

    def __enter__(self) -> Context:
        if self.propagate_exception is not None:
            self._tokens.append((_propagate, _propagate.set(self.propagate_exception)))
        if self.user is not Context._unset:
            self._tokens.append((_actor, _actor.set(self.user)))
        return self

    def __exit__(self, *exc: object) -> None:
        while self._tokens:
            var, token = self._tokens.pop()
            var.reset(token)
