"""The INSERTs the engine sends itself (core.row_inserts: CTEs of the transaction's last
statement on PostgreSQL, one statement per table on SQLite) store exactly what the ORM's
flush stores, leave nothing and no half-saved objects when that statement fails, and step
aside when the transaction has other rows to write. On PostgreSQL a start is one statement
after its ids, with no transaction around it. Both databases."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session
from test_row_updates import FoldFlow, scenario_two_ways

from webflow import STATUS, Context, signals
from webflow.core import Base, create_engine, row_inserts, use_session
from webflow.core.models import Comment
from webflow.core.sqlcount import SQLCounter
from webflow.models import Process, SearchDocument, Task, TaskEvent


def inserted_by_the_engine(statement: str) -> bool:
    """A statement of row_inserts: a CTE of the last one, or SQLite's quoted INSERT."""
    return "inserted_0 AS (INSERT" in statement or statement.startswith(('INSERT INTO "process"',
                                                                        'INSERT INTO "task"'))


def test_rows_inserted_with_the_last_statement_equal_the_flushed_ones(
        rebuilt: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    statements, with_inserts, statements_off, without = scenario_two_ways(
        rebuilt, lambda: monkeypatch.setattr(row_inserts, "ENABLED", False))
    taken = sum(map(inserted_by_the_engine, statements))
    not_taken = sum(map(inserted_by_the_engine, statements_off))
    assert without == with_inserts
    # the comparison is between the two ways: the starts' rows (and on PostgreSQL the
    # completions' new tasks too) went in with the engine's own statements
    assert not_taken == 0 and taken >= 3, taken
    assert [row[1] for row in with_inserts["process"]] == [STATUS.DONE, STATUS.NEW, STATUS.CANCELED]


def test_a_start_on_postgresql_is_its_ids_and_one_statement_without_a_transaction(pg_url: str) -> None:
    engine = create_engine(pg_url)
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    counter = SQLCounter(engine)
    try:
        with Session(engine) as session, use_session(session), Context(propagate_exception=False):
            FoldFlow.start.run()  # type: ignore[attr-defined]  # warm
            counter.start()
            process = FoldFlow.start.run()  # type: ignore[attr-defined]
            counter.stop()
            # ids for the rows (the split asks for its tasks' own), then one statement
            *ids, last = counter.statements
            assert ids and all(s.startswith("SELECT ARRAY(SELECT nextval") for s in ids), counter.statements
            assert last.startswith("WITH inserted_0 AS (INSERT INTO process"), counter.statements
            process_id = process.id
        # committed by that statement alone: another connection sees every row
        with engine.connect() as other:
            tasks = other.execute(sa.select(Task.node_name, Task.status).where(Task.process_id == process_id)
                                  .order_by(Task.id)).all()
            assert [tuple(t) for t in tasks] == [("start", STATUS.DONE), ("split", STATUS.DONE),
                                                 ("review", STATUS.NEW), ("audit", STATUS.NEW)]
            assert other.scalar(sa.select(sa.func.count()).select_from(TaskEvent)
                                .where(TaskEvent.process_id == process_id)) == 2
            assert other.scalar(sa.select(SearchDocument.body).where(SearchDocument.process_id == process_id))
    finally:
        counter.close()
        engine.dispose()


def test_a_last_statement_that_fails_stores_nothing_and_leaves_no_saved_looking_object(
        rebuilt: Session) -> None:
    first = FoldFlow.start.activation_class.new(FoldFlow.start)  # type: ignore[attr-defined]
    with Context(propagate_exception=False):
        first.process.start_token = "t" * 32
        first.prepare()
        first.done()
    rows_before = {name: rebuilt.scalar(sa.select(sa.func.count()).select_from(model))
                   for name, model in (("process", Process), ("task", Task), ("event", TaskEvent),
                                       ("document", SearchDocument))}

    second = FoldFlow.start.activation_class.new(FoldFlow.start)  # type: ignore[attr-defined]
    second.process.start_token = "t" * 32  # the same form sent twice: the unique token refuses
    with Context(propagate_exception=False), pytest.raises(sa.exc.IntegrityError):
        second.prepare()
        second.done()
    rebuilt.rollback()
    assert {name: rebuilt.scalar(sa.select(sa.func.count()).select_from(model))
            for name, model in (("process", Process), ("task", Task), ("event", TaskEvent),
                                ("document", SearchDocument))} == rows_before
    # what the failed start made is not in the session as if it were saved
    assert sa.inspect(second.process).transient and sa.inspect(second.task).transient
    assert second.process not in rebuilt

    # and the session goes on: the next start stores its rows
    with Context(propagate_exception=False):
        third = FoldFlow.start.run()  # type: ignore[attr-defined]
    rebuilt.expire_all()
    assert rebuilt.get(Process, third.id) is not None
    assert [t.node_name for t in rebuilt.get(Process, third.id).tasks] == ["start", "split", "review", "audit"]


def test_another_new_row_that_points_at_the_new_process_leaves_the_inserts_to_the_flush(
        rebuilt: Session) -> None:
    def note(sender: Any, process: Any, task: Any, **kwargs: Any) -> None:
        rebuilt.add(Comment(process=process, task=task, text="started by a receiver"))

    counter = SQLCounter(rebuilt.get_bind())  # type: ignore[arg-type]
    signals.flow_started.connect(note)
    try:
        counter.start()
        with Context(propagate_exception=False):
            process = FoldFlow.start.run()  # type: ignore[attr-defined]
        counter.stop()
    finally:
        signals.flow_started.disconnect(note)
        counter.close()
    # the process went in with the flush, before the comment that points at it (the tasks
    # created after that flush may still go with the last statement)
    process_insert = next(i for i, s in enumerate(counter.statements)
                          if s.startswith(("INSERT INTO process", 'INSERT INTO "process"')))
    comment_insert = next(i for i, s in enumerate(counter.statements) if s.startswith("INSERT INTO comment"))
    assert process_insert < comment_insert, counter.statements
    assert not counter.statements[process_insert].startswith('INSERT INTO "process"')  # not row_inserts'
    rebuilt.expire_all()
    comment = rebuilt.scalars(sa.select(Comment)).one()
    assert comment.process_id == process.id and comment.text == "started by a receiver"
    assert comment.task_id == rebuilt.scalars(sa.select(Task.id).where(Task.process_id == process.id,
                                                                        Task.node_name == "start")).one()


def test_a_started_process_keeps_its_defaults_and_tracks_its_data(rebuilt: Session) -> None:
    with Context(propagate_exception=False):
        process = FoldFlow.start.run(amount=3)  # type: ignore[attr-defined]
    # the values the flush would have filled in are the stored ones
    assert process.version == 1 and process.status == STATUS.NEW and process.stalled is None
    review = rebuilt.scalars(sa.select(Task).where(Task.process_id == process.id,
                                                   Task.node_name == "review")).one()
    assert review.data == {} and review.attempts == 0 and review.priority == 0 and review.created is not None
    # data written in place after the start is saved (the column tracks its changes)
    process.data["amount"] = 4
    rebuilt.commit()
    rebuilt.expire_all()
    assert rebuilt.get(Process, process.id).data == {"amount": 4}  # type: ignore[union-attr]
