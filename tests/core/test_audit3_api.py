"""Audit of the developer's API: flows defined wrong fail when the class is created, with
the flow and node named; calls from code given wrong arguments raise a clear exception and
store nothing."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from webflow import Flow, FlowRuntimeError, flow, this
from webflow.models import Process, User

Snapshot = dict[str, list[tuple[Any, ...]]]


def define(name: str, **nodes: Any) -> type[Flow]:
    """A flow class made as a ``class`` statement makes it (checker warnings muted)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return type(name, (Flow,), {"__module__": __name__, **nodes})


def count(session: Session, model: type) -> int:
    return int(session.scalar(sa.select(sa.func.count()).select_from(model)) or 0)


class UserArgFlow(Flow):
    start = flow.Start().Permission(auto_create=True).Next(this.work)
    begin = flow.StartFunction().Next(this.work)
    work = flow.View().Permission(auto_create=True).Next(this.end)
    end = flow.End()


# -- a user that is not stored -----------------------------------------------------------


@pytest.mark.parametrize("call", ["start", "assign", "reassign"])
def test_a_user_that_is_not_stored_is_refused_and_not_created(
        session: Session, users: dict[str, User], stored: Callable[[], Snapshot], call: str) -> None:
    """A ``User(...)`` built but never added was stored by the call as a side effect (a
    superuser made by ``assign``); it is refused, and nothing is written."""
    ghost = User(username="ghost", is_superuser=True)
    if call == "start":
        before = stored()
        with pytest.raises(FlowRuntimeError, match="'ghost' is not stored"):
            UserArgFlow.start.run(data={}, user=ghost)
    else:
        process = UserArgFlow.begin.run()
        task = process.get_task(UserArgFlow.work)
        if call == "reassign":
            task.activate().assign(users["ann"])
        before = stored()
        with pytest.raises(FlowRuntimeError, match="'ghost' is not stored"):
            getattr(task.activate(), call)(ghost)
    session.rollback()
    assert stored() == before
    assert session.scalar(sa.select(User).where(User.username == "ghost")) is None


@pytest.mark.parametrize("user", ["ann", 7])
def test_start_run_with_a_user_that_is_not_a_user_says_so(session: Session, users: dict[str, User],
                                                          user: Any) -> None:
    """``Start.run(user="ann")`` failed with AttributeError: 'str' object has no attribute
    'is_superuser'."""
    with pytest.raises(FlowRuntimeError, match=r"prepare\(\) needs a user .*, not (.ann.|7)"):
        UserArgFlow.start.run(data={}, user=user)
    assert count(session, Process) == 0


def test_a_user_added_to_the_session_by_the_caller_is_taken(session: Session) -> None:
    """A user the caller added (pending) is stored with the call, as before."""
    newcomer = User(username="newcomer", is_superuser=True)
    session.add(newcomer)
    process = UserArgFlow.start.run(data={}, user=newcomer)
    assert process.created_by is newcomer and newcomer.id is not None
