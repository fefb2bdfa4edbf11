"""Fixtures for the engine tests: users, job dispatch, and a look at what is stored."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from webflow.core import Base, User
from webflow.core import jobs as core_jobs

Snapshot = dict[str, list[tuple[Any, ...]]]


@pytest.fixture(autouse=True)
def inline_jobs() -> Iterator[None]:
    """Jobs run inline after commit (no app configured), whatever a test changed."""
    core_jobs.set_dispatcher(None)
    yield
    core_jobs.set_dispatcher(None)


@pytest.fixture
def held_jobs() -> Iterator[list[int]]:
    """Jobs are recorded instead of run: the task ids, in dispatch order."""
    held: list[int] = []
    core_jobs.set_dispatcher(lambda task_id, *rest: held.append(task_id))
    yield held


@pytest.fixture
def users(session: Session) -> dict[str, User]:
    """ann and bob, plain users; root, a superuser."""
    found = {name: User(username=name) for name in ("ann", "bob")}
    found["root"] = User(username="root", is_superuser=True)
    session.add_all(found.values())
    session.commit()
    return found


@pytest.fixture
def root(users: dict[str, User]) -> User:
    """The superuser of ``users``: may run every transition."""
    return users["root"]


@pytest.fixture
def rebuilt(db_url: str) -> Iterator[Session]:
    """A session on tables dropped and created again (late_writes.rebuilt_session)."""
    from late_writes import rebuilt_session

    with rebuilt_session(db_url) as session:
        yield session


@pytest.fixture
def stored(engine: sa.Engine) -> Callable[[], Snapshot]:
    """Every committed row of every table, read on a connection of its own."""

    def snapshot() -> Snapshot:
        with engine.connect() as conn:
            return {
                table.name: sorted((tuple(row) for row in conn.execute(sa.select(table))), key=repr)
                for table in Base.metadata.sorted_tables
            }

    return snapshot

