"""An audit of the INSERTs the engine sends itself (core.row_inserts) and of the start that
is one statement in autocommit on PostgreSQL (transaction.ALONE): the shapes around a start
that its tests did not reach (other processes started in the same transaction, subprocesses,
fan-out, jobs, receivers and start functions that write, failures under both policies, undo
and cancel right after, an engine with an isolation level of its own), each compared with
the rows the ORM's flush stores (``row_inserts.ENABLED`` off) or with what a caller sees.
Both databases."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session
from test_row_updates import snapshot

from webflow import STATUS, Context, Flow, flow, this
from webflow.core import Base, row_inserts
from webflow.core.models import UTCDateTime
from webflow.core.search import build_documents
from webflow.models import Process, SearchDocument, Task


def fail(activation: Any) -> None:
    raise RuntimeError("this handler fails")


class OtherFlow(Flow):
    """Other"""

    start = flow.StartFunction().Next(this.review)
    review = flow.View().Permission(auto_create=True).Next(this.end)
    end = flow.End()


def start_other(activation: Any) -> None:
    OtherFlow.start.run(word="okapi", by=activation.process.id)  # type: ignore[attr-defined]


class StartsAnotherFlow(Flow):
    """Starts another"""

    start = flow.StartFunction().Next(this.split)
    split = flow.Split().Next(this.starter).Next(this.failing)
    starter = flow.Handler(start_other).Next(this.end)
    failing = flow.Handler(fail).Next(this.end)
    end = flow.End()


def every_row(session: Session) -> dict[str, Any]:
    """Every row of every table, each column as stored but the clock's (whether set; the
    shape the table keeps it in is in test_row_updates' snapshot, with documents, links)."""
    session.rollback()
    rows: dict[str, Any] = {}
    for table in Base.metadata.sorted_tables:
        clock = [c.name for c in table.columns  # and a user's random session token
                 if isinstance(c.type, UTCDateTime) or c.name == "session_token"]
        rows[f"table {table.name}"] = sorted(
            (tuple((value is None) if name in clock else value for name, value in row._mapping.items())
             for row in session.execute(sa.select(table))), key=repr)
    return {**rows, **snapshot(session)}


def two_ways(session: Session, monkeypatch: pytest.MonkeyPatch,
             work: Callable[[Session], Any]) -> tuple[Any, Any]:
    """The rows ``work`` stores with row_inserts, then on tables made again with the ORM's
    flush instead (the same rows are expected, ids included)."""
    work(session)
    with_inserts = every_row(session)
    engine = session.get_bind()
    session.close()
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    monkeypatch.setattr(row_inserts, "ENABLED", False)
    work(session)
    return with_inserts, every_row(session)


def test_a_process_a_handler_started_keeps_its_search_document_when_a_later_node_fails(
        rebuilt: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failing node (web policy) made the unit of work forget the tasks it held, those of
    the process a handler had started before too; that process's rows then went with the
    last statement while its search document was read from the tables, before they held
    it: the process was stored without a document (not found by a search)."""
    def work(session: Session) -> None:
        with Context(propagate_exception=False):
            StartsAnotherFlow.start.run(word="zebra")  # type: ignore[attr-defined]

    with_inserts, flushed = two_ways(rebuilt, monkeypatch, work)
    assert with_inserts == flushed
    rebuilt.expire_all()
    other = rebuilt.scalars(sa.select(Process).where(Process.flow_class_path == OtherFlow.path())).one()
    stored = rebuilt.get(SearchDocument, other.id)
    assert stored is not None and "okapi" in stored.body.split()
    assert [(stored.process_id, stored.body)] == [(d["process_id"], d["body"])
                                                   for d in build_documents(rebuilt, [other.id])]
    # the failure is the failing branch's, and the first process has its document too
    first = rebuilt.scalars(sa.select(Process).where(Process.flow_class_path == StartsAnotherFlow.path())).one()
    assert [t.status for t in first.tasks if t.node_name == "failing"] == [STATUS.ERROR]
    assert rebuilt.get(SearchDocument, first.id) is not None


def count_rows(engine: Any) -> dict[str, int]:
    """How many rows each table of the engine holds, read on a connection of its own."""
    with engine.connect() as other:
        return {table.name: other.scalar(sa.select(sa.func.count()).select_from(table))
                for table in Base.metadata.sorted_tables}


def test_a_commit_refused_by_a_listener_of_the_caller_stores_nothing_of_the_start(session: Session) -> None:
    """A start's last statement ran alone, in autocommit (PostgreSQL), before the session's
    commit; a ``before_commit`` listener of the application that refuses the commit (it
    raises) made the session roll back, yet the process was stored and the caller, who got
    the exception, held transient objects of rows that exist. The commit decides."""
    empty = count_rows(session.get_bind())

    def refuse(refused: Session) -> None:
        raise RuntimeError("the application refuses this commit")

    sa.event.listen(session, "before_commit", refuse)
    try:
        with Context(propagate_exception=False), pytest.raises(RuntimeError, match="refuses"):
            OtherFlow.start.run(word="refused")  # type: ignore[attr-defined]
    finally:
        sa.event.remove(session, "before_commit", refuse)
    assert count_rows(session.get_bind()) == empty

    # without the listener the next start is stored, and is still one statement after its
    # ids on PostgreSQL (no BEGIN, no COMMIT)
    from webflow.core.sqlcount import SQLCounter

    counter = SQLCounter(session.get_bind())  # type: ignore[arg-type]
    try:
        counter.start()
        with Context(propagate_exception=False):
            process = OtherFlow.start.run(word="stored")  # type: ignore[attr-defined]
        counter.stop()
    finally:
        counter.close()
    assert session.get(Process, process.id).data == {"word": "stored"}  # type: ignore[union-attr]
    if session.get_bind().dialect.name == "postgresql":
        assert not any(s in ("BEGIN", "COMMIT") for s in counter.statements), counter.statements


def test_a_text_statement_beginning_with_with_that_writes_is_rolled_back_with_its_session(
        session: Session) -> None:
    """A WITH written as text (``sa.text``) was taken for a read because SQLAlchemy compiles
    text too: it ran in autocommit, outside any transaction, so the session's rollback did
    not take its write back. The last statement of a unit of work is such a text, so a
    transaction that had not begun never began for it either, whatever ``ALONE`` said."""
    with Context(propagate_exception=False):
        process = OtherFlow.start.run(word="kept")  # type: ignore[attr-defined]
    session.commit()
    if session.get_bind().dialect.name == "postgresql":
        write = ("WITH changed AS (UPDATE process SET summary = 'changed' RETURNING 1) "
                 "SELECT count(*) FROM changed")
    else:  # SQLite: a WITH before the UPDATE (no data-modifying CTE)
        write = ("WITH what AS (SELECT 'changed' AS summary) "
                 "UPDATE process SET summary = (SELECT summary FROM what)")
    session.execute(sa.text(write))
    session.rollback()
    with session.get_bind().connect() as other:  # type: ignore[union-attr]
        assert other.scalar(sa.select(Process.summary).where(Process.id == process.id)) == "word: kept"


@pytest.mark.parametrize("mode", ["conditional_savepoint", "rollback_only"])
def test_a_start_in_a_session_joined_to_the_callers_transaction_is_rolled_back_with_it(
        engine: sa.Engine, mode: str) -> None:
    """A session bound to a connection whose transaction the caller began (a test's
    rollback around everything, a script's own transaction) does not commit it. A start
    sent its last statement alone, in autocommit, when nothing had been written before it
    (PostgreSQL: the caller's BEGIN waits for the first write): the caller's rollback left
    the process stored. With the ORM's flush the INSERT began the transaction first."""
    from webflow.core import use_session

    empty = count_rows(engine)
    connection = engine.connect()
    outer = connection.begin()
    try:
        with Session(bind=connection, join_transaction_mode=mode) as session, use_session(session):  # type: ignore[arg-type]
            with Context(propagate_exception=False):
                process = OtherFlow.start.run(word="joined")  # type: ignore[attr-defined]
            # the caller's transaction sees the process, and it is not committed yet
            assert session.get(Process, process.id) is not None
            assert count_rows(engine) == empty
    finally:
        outer.rollback()
        connection.close()
    assert count_rows(engine) == empty


def start_with_long_values(session: Session) -> tuple[str | None, list[Any]]:
    """A start whose own values are longer than their columns: the error it raised (its
    class's name), and the values stored."""
    activation = OtherFlow.start.activation_class.new(OtherFlow.start)  # type: ignore[attr-defined]
    activation.process.start_token = "t" * 64 + "-first"  # start_token: VARCHAR(64)
    activation.task.external_task_id = "e" * 300  # VARCHAR(255)
    error = None
    try:
        with Context(propagate_exception=False):
            activation.prepare()
            activation.done()
    except sa.exc.DBAPIError as exc:
        error = type(exc).__name__
        session.rollback()
    stored = [*session.scalars(sa.select(Process.start_token)),
              *session.scalars(sa.select(Task.external_task_id).where(Task.external_task_id.is_not(None)))]
    session.rollback()
    with session.get_bind().begin() as connection:  # type: ignore[union-attr]
        for table in reversed(Base.metadata.sorted_tables):  # for the next way of writing
            connection.execute(table.delete())
    return error, stored


def test_a_value_longer_than_its_column_is_refused_as_by_the_flush_never_cut(
        session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL cuts a text to the length of a CAST to VARCHAR(n) without a word; the
    arrays of the CTEs were cast to the columns' own types, so a start token or a job id
    longer than its column was stored cut (and two tokens alike in their first 64
    characters collided), where the ORM's INSERT refuses it (DataError). SQLite keeps
    every text whole, either way."""
    with_inserts = start_with_long_values(session)
    monkeypatch.setattr(row_inserts, "ENABLED", False)
    flushed = start_with_long_values(session)
    assert with_inserts == flushed
    if session.get_bind().dialect.name == "postgresql":
        assert with_inserts == ("DataError", [])
    else:
        assert with_inserts == (None, ["t" * 64 + "-first", "e" * 300])


# -- what held: the shapes around a start, stored as the flush stores them -----------------------


class ChildFlow(Flow):
    """Child"""

    start = flow.StartFunction().Next(this.buy)
    buy = flow.View().Permission(auto_create=True).Next(this.end)
    end = flow.End()


class SubprocessFlow(Flow):
    """Parent"""

    start = flow.StartFunction().Next(this.sub)
    sub = (flow.Subprocess(ChildFlow.start, data=lambda act: {"n": act.process.data.get("n", 0)})
           .Next(this.after))
    after = flow.View().Permission(auto_create=True).Next(this.end)
    end = flow.End()


class FanOutFlow(Flow):
    """Fan out"""

    start = flow.StartFunction().Next(this.fan)
    fan = flow.Split().Each(this.review, items=lambda act: act.process.data["items"])
    review = flow.View().Permission(auto_create=True).Next(this.join)
    join = flow.Join().Next(this.end)
    end = flow.End()


def ran(activation: Any) -> dict[str, Any]:
    return {"ran": True}


class JobAtStartFlow(Flow):
    """Job at start"""

    start = flow.StartFunction().Next(this.job)
    job = flow.Job(ran).Next(this.end)
    end = flow.End()


def flushes_itself(activation: Any, **data: Any) -> Any:
    from webflow.core.context import get_session

    activation.prepare(data=data)
    activation.done()
    get_session().flush()
    return activation.process


class FlushingStartFlow(Flow):
    """Flushing start"""

    start = flow.StartFunction(flushes_itself).Next(this.review)
    review = flow.View().Permission(auto_create=True).Next(this.end)
    end = flow.End()


class NestedStartFlow(Flow):
    """Nested start"""

    start = flow.StartFunction().Next(this.starter)
    starter = flow.Handler(start_other).Next(this.end)
    end = flow.End()


class FailingAtStartFlow(Flow):
    """Failing at start"""

    start = flow.StartFunction().Next(this.split)
    split = flow.Split().Next(this.review).Next(this.failing)
    review = flow.View().Permission(auto_create=True).Next(this.end)
    failing = flow.Handler(fail).Next(this.end)
    end = flow.End()


DATA = {"n": 2, "items": [{"word": "zébra 😀"}, {"none": None}, {"n": 3}], "text": "ünïcode ☃"}


def started(flow_class: type[Flow], propagate: bool) -> Callable[[Session], Any]:
    def work(session: Session) -> Any:
        with Context(propagate_exception=propagate):
            try:
                process = flow_class.start.run(**DATA)  # type: ignore[attr-defined]
            except RuntimeError as exc:
                session.rollback()
                return str(exc)
        # what a caller sees right after: the id, the tasks and what led to each
        return process.id, [(t.id, t.node_name, t.status, [p.id for p in t.previous]) for t in process.tasks]
    return work


def then_canceled(session: Session) -> Any:
    with Context(propagate_exception=False):
        process = SubprocessFlow.start.run(**DATA)  # type: ignore[attr-defined]
        process.cancel()
    return process.id, process.status


def then_undone(session: Session) -> Any:
    with Context(propagate_exception=False):
        process = FanOutFlow.start.run(**DATA)  # type: ignore[attr-defined]
        *branches, start = sorted(process.tasks, key=lambda t: (t.node_name == "start", -t.id))
        for task in branches:  # the reviews (newest first), then the split: undone backwards
            if task.status == STATUS.DONE:
                task.activate().undo()
            task.activate().cancel()
        start.activate().undo()
    return process.id, process.status


def with_callers_row(flushed: bool) -> Callable[[Session], Any]:
    """A start while the caller's session holds a row of its own, pending or flushed (the
    unit of work commits it first), then the caller's rollback."""
    def work(session: Session) -> Any:
        from webflow.models import User

        session.add(User(username="caller"))
        if flushed:
            session.flush()
        outcome = started(SubprocessFlow, False)(session)
        session.rollback()
        return outcome, session.scalars(sa.select(User.username)).all()
    return work


SHAPES: dict[str, Callable[[Session], Any]] = {
    "caller's pending row": with_callers_row(False),
    "caller's flushed row": with_callers_row(True),
    "subprocess": started(SubprocessFlow, False),
    "fan-out": started(FanOutFlow, True),
    "job": started(JobAtStartFlow, False),
    "start function that flushes": started(FlushingStartFlow, True),
    "handler starting another process": started(NestedStartFlow, True),
    "failing node, web policy": started(FailingAtStartFlow, False),
    "failing node, code policy": started(FailingAtStartFlow, True),
    "canceled right after": then_canceled,
    "undone right after": then_undone,
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_a_start_shape_stores_what_the_flush_stores(rebuilt: Session, monkeypatch: pytest.MonkeyPatch,
                                                   shape: str) -> None:
    seen: list[Any] = []

    def work(session: Session) -> None:
        seen.append(SHAPES[shape](session))

    with_inserts, flushed = two_ways(rebuilt, monkeypatch, work)
    assert with_inserts == flushed
    assert seen[0] == seen[1]  # what the caller saw, the same either way
    assert with_inserts["process"] or shape == "failing node, code policy"


def dated_start(activation: Any, **data: Any) -> Any:
    """A start function that sets times of its own: in another zone, and naive."""
    from datetime import datetime, timedelta, timezone
    from zoneinfo import ZoneInfo

    activation.prepare(data=data)
    activation.task.due = datetime(2030, 5, 1, 12, 0, tzinfo=ZoneInfo("Europe/Paris"))
    activation.process.created = datetime(2030, 1, 1, 8, 30, 0, 123)  # naive: taken as UTC
    activation.process.finished = datetime(2030, 1, 2, 8, 30, tzinfo=timezone(timedelta(hours=-5)))
    activation.done()
    return activation.process


class DatedFlow(Flow):
    """Dated"""

    start = flow.StartFunction(dated_start).Next(this.review)
    review = flow.View().Permission(auto_create=True).Next(this.end)
    end = flow.End()


def test_times_of_a_start_are_stored_as_the_flush_stores_them(rebuilt: Session,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    stored: list[Any] = []

    def work(session: Session) -> None:
        with Context(propagate_exception=False):
            DatedFlow.start.run(word="dated")  # type: ignore[attr-defined]
        session.rollback()
        connection = session.connection()  # the text each database keeps, as it keeps it
        times = connection.exec_driver_sql("SELECT created, finished FROM process").one()
        due = connection.exec_driver_sql("SELECT due FROM task WHERE due IS NOT NULL").one()
        stored.append([*map(str, times), *map(str, due)])

    with_inserts, flushed = two_ways(rebuilt, monkeypatch, work)
    assert with_inserts == flushed and stored[0] == stored[1]
    process = rebuilt.scalars(sa.select(Process)).one()
    due = rebuilt.scalars(sa.select(Task.due).where(Task.due.is_not(None))).one()
    assert [process.created.isoformat(), process.finished.isoformat(), due.isoformat()] == [  # type: ignore[union-attr]
        "2030-01-01T08:30:00.000123+00:00", "2030-01-02T13:30:00+00:00", "2030-05-01T10:00:00+00:00"]


def test_a_stale_update_on_the_last_statement_stores_nothing_of_a_start_beside_it(
        session: Session) -> None:
    """The UPDATEs of the last statement are checked after it ran (row_updates.check): when
    it ran alone, in autocommit, a process whose version had moved on failed the unit of
    work with StaleDataError while the start beside it was stored already. The engine's
    own paths lock a process before they hold it (so the statement is not alone); here a
    process is held without its lock (queries.process_tasks), as only internals do."""
    from sqlalchemy.orm.exc import StaleDataError

    from webflow.core.queries import process_tasks
    from webflow.core.transaction import unit_of_work

    with Context(propagate_exception=True):
        first = OtherFlow.start.run(word="first")  # type: ignore[attr-defined]
    session.commit()
    first_id = first.id
    before = count_rows(session.get_bind())
    with pytest.raises(StaleDataError), Context(propagate_exception=True), unit_of_work(session):
        held = session.get(Process, first_id)
        assert held is not None
        process_tasks(session, held)  # held, not locked
        held.data = {"word": "changed"}
        bump = sa.update(Process).where(Process.id == first_id).values(version=Process.version + 1)
        if session.get_bind().dialect.name == "postgresql":
            with session.get_bind().begin() as other:  # type: ignore[union-attr]
                other.execute(bump)  # another transaction: nothing locks the row
        else:
            session.connection().execute(bump)  # this one holds SQLite's write lock
        OtherFlow.start.run(word="second")  # type: ignore[attr-defined]
    session.rollback()
    after = count_rows(session.get_bind())
    assert after == before


@pytest.mark.parametrize("level", ["REPEATABLE READ", "SERIALIZABLE", "AUTOCOMMIT"])
def test_starts_on_an_engine_with_an_isolation_level_of_its_own(pg_url: str, level: str) -> None:
    """PostgreSQL with the driver's own transactions (or SQLAlchemy's AUTOCOMMIT): a start
    is stored whole, one whose start token is taken stores nothing and leaves its objects
    transient, and the session goes on."""
    from webflow.core import create_engine, use_session

    engine = create_engine(pg_url, isolation_level=level)
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    try:
        with Session(engine) as session, use_session(session):
            outcomes = []
            for token in ("a" * 32, "a" * 32, "b" * 32):
                activation = OtherFlow.start.activation_class.new(OtherFlow.start)  # type: ignore[attr-defined]
                activation.process.start_token = token
                try:
                    with Context(propagate_exception=False):
                        activation.prepare(data={"word": token[0]})
                        activation.done()
                    outcomes.append("stored")
                except sa.exc.IntegrityError:
                    session.rollback()
                    assert sa.inspect(activation.process).transient and sa.inspect(activation.task).transient
                    outcomes.append("refused")
            assert outcomes == ["stored", "refused", "stored"]
        with engine.connect() as other:
            rows = other.execute(sa.select(Process.start_token, Process.data).order_by(Process.id)).all()
            assert [tuple(row) for row in rows] == [("a" * 32, {"word": "a"}), ("b" * 32, {"word": "b"})]
            assert other.scalar(sa.select(sa.func.count()).select_from(Task)) == 4
            assert other.scalar(sa.select(sa.func.count()).select_from(SearchDocument)) == 2
    finally:
        engine.dispose()


@pytest.mark.parametrize("signal_name", ["flow_started", "task_started", "task_finished"])
def test_receivers_that_write_store_what_the_flush_stores(rebuilt: Session, monkeypatch: pytest.MonkeyPatch,
                                                          signal_name: str) -> None:
    """A receiver's own row (pointing at the new process and task) and its own statement
    through the session go in after the rows they name, either way of writing."""
    from webflow import signals
    from webflow.core.context import get_session
    from webflow.core.models import Comment

    def receiver(sender: Any, process: Any, task: Any, **kwargs: Any) -> None:
        session = get_session()
        session.add(Comment(process_id=process.id, task_id=task.id, text=f"{signal_name} {task.node_name}"))
        session.execute(sa.update(Task).where(Task.id == task.id).values(comments=f"seen by {signal_name}"))

    signal = getattr(signals, signal_name)
    signal.connect(receiver)
    try:
        with_inserts, flushed = two_ways(rebuilt, monkeypatch, started(SubprocessFlow, False))
    finally:
        signal.disconnect(receiver)
    assert with_inserts == flushed
    assert with_inserts["table comment"]  # the receiver ran (Subprocess sends task_started)
