"""Property: the engine's late writes (ids before the INSERT, UPDATEs riding on the last
statement, rows left unsaved across the web policy's savepoints, search documents built
from memory) store exactly the rows the flush-per-node way stored (and the documents the
index command would write), whatever the shape of the flow (splits, joins, ifs, branches
that end early or stop) and whatever people do to its tasks (complete, cancel, undo, in any
order), under both error policies, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from late_writes import rebuilt_session, stored_time_formats
from test_liveness_properties import EXAMPLES, act_on, blocks, make_flow, moves

from webflow import Context, Flow
from webflow.core import guard, row_inserts, row_updates, search, transaction
from webflow.core.models import task_link
from webflow.models import Process, SearchDocument, Task, TaskEvent, User


def play(url: str, flow_class: type[Flow], decisions: dict[str, bool], picks: list[int],
         propagate: bool) -> list[Any]:
    """Start the process in a fresh database, make the picked moves, and read every row."""
    with rebuilt_session(url) as session, Context(propagate_exception=propagate):
        root = User(username="root", is_superuser=True)
        session.add(root)
        session.commit()
        process = flow_class.start.run(**decisions)  # type: ignore[attr-defined]
        for pick in picks:
            possible = moves(session, process)
            if not possible:
                break
            act_on(*possible[pick % len(possible)], root)
        session.expire_all()
        # Each transition built its document from what it held (objects and rows, see
        # queries.TaskRow); the index command reads the tables: the same words.
        documents = {d.process_id: d.body for d in session.scalars(sa.select(SearchDocument))}
        rebuilt = search.build_documents(session, session.scalars(sa.select(Process.id)))
        assert documents == {d["process_id"]: d["body"] for d in rebuilt}
        return [
            [(p.id, p.status, p.data, p.stalled is None, p.finished is None)
             for p in session.scalars(sa.select(Process).order_by(Process.id))],
            [(t.id, t.node_name, t.status, t.token, t.owner_id, t.data, t.finished is None)
             for t in session.scalars(sa.select(Task).order_by(Task.id))],
            [(e.task_id, e.transition, e.from_status, e.to_status, e.user_id)
             for e in session.scalars(sa.select(TaskEvent).order_by(TaskEvent.id))],
            sorted(session.execute(sa.select(task_link.c.previous_id, task_link.c.task_id)).all()),
            [(d.process_id, d.body) for d in session.scalars(sa.select(SearchDocument))],
            stored_time_formats(session),  # last: the one item that differs by database
        ]


@pytest.mark.parametrize("propagate", [True, False], ids=["code", "web"])
@settings(max_examples=max(10, EXAMPLES // 2), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(shape=blocks(3), picks=st.lists(st.integers(min_value=0, max_value=50), max_size=12))
def test_late_writes_store_what_a_flush_per_node_stored(db_url: str, monkeypatch: pytest.MonkeyPatch,
                                                       propagate: bool, shape: Any, picks: list[int]) -> None:
    flow_class, decisions = make_flow(shape)
    late = play(db_url, flow_class, decisions, picks, propagate)
    with monkeypatch.context() as patch:
        patch.setattr(row_updates, "ENABLED", False)
        patch.setattr(row_inserts, "ENABLED", False)
        patch.setattr(transaction, "RESERVE_IDS", False)
        patch.setattr(guard, "LEAVE_UNSAVED", False)
        flushed = play(db_url, flow_class, decisions, picks, propagate)
    assert late == flushed


#: How SQLAlchemy stores a timestamp on SQLite: the one shape every write must store there.
SQLITE_TIME = "9999-99-99 99:99:99.999999"


@settings(max_examples=max(10, EXAMPLES // 2), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(shape=blocks(3), picks=st.lists(st.integers(min_value=0, max_value=50), max_size=12))
def test_sqlite_and_postgresql_store_the_same_rows(pg_url: str, tmp_path_factory: pytest.TempPathFactory,
                                                   shape: Any, picks: list[int]) -> None:
    """The same moves on either database store the same rows, ids included: the engine
    writes differently on each (CTEs against statements of their own, sequences against
    the largest id), and what one stores the other must too. SQLite keeps timestamps as
    text, all in one shape (a second one would compare wrongly in SQL)."""
    flow_class, decisions = make_flow(shape)
    sqlite_url = f"sqlite:///{tmp_path_factory.mktemp('cross') / 'rows.sqlite'}"
    on_sqlite = play(sqlite_url, flow_class, decisions, picks, propagate=False)
    on_postgresql = play(pg_url, flow_class, decisions, picks, propagate=False)
    assert on_sqlite[:-1] == on_postgresql[:-1]
    assert on_sqlite[-1] <= {SQLITE_TIME}, on_sqlite[-1]
