"""What a human transition costs in SQL, so that a regression fails here.

Counted by ``webflow.core.sqlcount.SQLCounter``: every statement the driver sends, with
psycopg's implicit ``BEGIN`` and each ``COMMIT`` counted as statements; on PostgreSQL also
the round trips, from libpq's protocol trace. The caller has loaded its user and task
before each transition, as a web request does (that lookup is the page's cost, not the
transition's). Both error policies: code's and the one web requests use."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from late_writes import AutomaticFlow  # tests/core, on the path under pytest
from sqlalchemy.orm import Session

from webflow import STATUS, Context, Flow, TransitionNotAllowed, flow, this
from webflow.core import Base, create_engine, use_session
from webflow.core.checks import FlowCheckWarning
from webflow.core.sqlcount import SQLCounter
from webflow.models import Process, Task, TaskEvent, User


class HumanPathFlow(Flow):
    """Human path"""

    start = flow.StartFunction().Next(this.work)
    work = flow.View().Permission(auto_create=True).Next(this.end)
    end = flow.End()


with warnings.catch_warnings():
    warnings.simplefilter("ignore", FlowCheckWarning)  # it stalls on purpose: nothing follows

    class LastStepFlow(Flow):
        """A person's task that leads nowhere"""

        start = flow.StartFunction().Next(this.work)
        work = flow.View().Permission(auto_create=True)


class Refused(Exception):
    pass


def refuse(activation: object) -> None:
    raise Refused("refused")


#: The processes StartsThenFailsFlow's handler started, for the test to look at.
STARTED_INSIDE: list[Process] = []


def start_then_refuse(activation: object) -> None:
    STARTED_INSIDE.append(HumanPathFlow.start.run())  # type: ignore[attr-defined]
    refuse(activation)


with warnings.catch_warnings():
    warnings.simplefilter("ignore", FlowCheckWarning)

    class FailingStartFlow(Flow):
        """Fails at once"""

        start = flow.StartFunction().Next(this.boom)
        boom = flow.Handler(refuse).Next(this.end)
        end = flow.End()

    class StartsThenFailsFlow(Flow):
        """Starts another process, then fails"""

        start = flow.StartFunction().Next(this.boom)
        boom = flow.Handler(start_then_refuse).Next(this.end)
        end = flow.End()


# Upper bounds per transition: {database: (start, assign, done)}. On PostgreSQL a
# transition is its lock-and-read, the read of the process's tasks when it changes them
# (under the lock: what decides joins and the End, and the search document, built from
# memory), the ids of the tasks it creates, and one last statement that carries their
# INSERTs, the UPDATEs of the rows it changed, the audit rows, links, dropped drafts and
# search documents as CTEs (row_inserts, row_updates, transaction._last_statement); then
# COMMIT. A start locks nothing and writes nothing before that last statement: its ids,
# then the statement alone, in autocommit (no BEGIN, no COMMIT). SQLite has no
# data-modifying CTE: each is its own statement, and it takes BEGIN IMMEDIATE first (the
# caller's reads ran in autocommit: there is no read transaction to end). Being away costs
# nothing here: it is read with the user.
#: Statements that reach psycopg's prepare threshold in a measured transaction.
PREPARED_ONCE = 2
HUMAN_PATH = {"postgresql": (2, 5, 6), "sqlite": (8, 7, 11)}
#: The three transitions on PostgreSQL. Issue 17 asks for 15 at most. Assign and done
#: each send their BEGIN since the caller's reads run in autocommit; the start sends none.
HUMAN_INSTANCE = 13
#: Start, assign, prepare + done and the caller's lookups before each (the side-by-side
#: benchmark's "SQL/process").
HUMAN_WHOLE_PATH = {"postgresql": 19, "sqlite": 32}
DONE_WITHOUT_SUCCESSORS = {"postgresql": 5, "sqlite": 9}


@pytest.fixture
def counted(db_url: str) -> Iterator[tuple[Session, SQLCounter]]:
    engine = create_engine(db_url)
    counter = SQLCounter(engine)  # before the first connection, so every one is traced
    Base.metadata.create_all(engine)
    with Session(engine) as session, use_session(session):
        yield session, counter
    counter.close()
    engine.dispose()


@pytest.fixture
def worker_id(counted: tuple[Session, SQLCounter]) -> int:
    session, _ = counted
    user = User(username="worker", permissions=["human_path.can_work", "last_step.can_work"])
    session.add(user)
    session.commit()
    return user.id


def run_path(session: Session, counter: SQLCounter, flow_class: type[Flow],
             user_id: int) -> tuple[Process, dict[str, tuple[list[str], int | None]]]:
    """Start, assign, prepare + done; the SQL of each transition, and as ``path`` the SQL
    of the whole path, the caller's lookups included."""
    spent: dict[str, tuple[list[str], int | None]] = {}
    marks: list[tuple[int, int | None]] = []

    def mark() -> None:
        marks.append((len(counter.statements), counter.round_trips))

    def measure(name: str) -> None:
        mark()
        (first, trips_before), (last, trips_after) = marks[-2:]
        trips = None if trips_after is None or trips_before is None else trips_after - trips_before
        spent[name] = (counter.statements[first:last], trips)

    counter.start()
    session.get(User, user_id)  # the caller's lookups, as in a request
    mark()
    process = flow_class.start.run()  # type: ignore[attr-defined]
    measure("start")
    process_id = process.id
    task_id = session.scalar(sa.select(Task.id).where(Task.process_id == process_id, Task.node_name == "work"))
    user, task = session.get(User, user_id), session.get(Task, task_id)
    mark()
    task.activate().assign(user)
    measure("assign")
    user, task = session.get(User, user_id), session.get(Task, task_id)
    mark()
    activation = task.activate()
    activation.prepare(data={"note": "ok"}, user=user)
    activation.done()
    measure("done")
    counter.stop()
    spent["path"] = (counter.statements, counter.round_trips)
    return session.get(Process, process_id), spent


@pytest.mark.parametrize("propagate", [True, False], ids=["code", "web"])
def test_the_human_path_costs_at_most_its_budget(counted: tuple[Session, SQLCounter], worker_id: int,
                                                  propagate: bool) -> None:
    session, counter = counted
    kind = counter.engine.dialect.name
    with Context(propagate_exception=propagate):
        run_path(session, counter, HumanPathFlow, worker_id)  # warm
        process, spent = run_path(session, counter, HumanPathFlow, worker_id)

    path = spent.pop("path")[0]
    counts = tuple(len(spent[name][0]) for name in ("start", "assign", "done"))
    listing = {name: statements for name, (statements, _) in spent.items()}
    assert all(c <= b for c, b in zip(counts, HUMAN_PATH[kind], strict=True)), (counts, listing)
    assert len(path) <= HUMAN_WHOLE_PATH[kind], path
    if kind == "postgresql":
        assert sum(counts) <= HUMAN_INSTANCE, listing
        for name, (statements, round_trips) in spent.items():
            # psycopg prepares a statement on its fifth use, which costs one more round trip
            # that once (PREPARED_ONCE); otherwise one statement is one round trip.
            assert round_trips is not None and round_trips <= len(statements) + PREPARED_ONCE, (
                name, round_trips, statements)
        # the caller's reads ran in autocommit: the transition begins, locks and reads in
        # one statement, and ends with its COMMIT
        begin, lock = spent["assign"][0][:2]
        assert begin == "BEGIN" and lock.startswith("SELECT") and "FOR UPDATE" in lock
        assert spent["assign"][0][-1] == "COMMIT"
        # the start: its ids, then one statement that is a whole transaction by itself
        ids, last = spent["start"][0]
        assert ids.startswith("SELECT ARRAY(SELECT nextval") and last.startswith("WITH inserted_0 AS (INSERT")
    else:
        # the write lock first, nothing of the caller's reads to end; then the COMMIT
        assert [statements[0] for statements, _ in spent.values()] == ["BEGIN IMMEDIATE"] * 3, listing
        assert all(statements[-1] == "COMMIT" for statements, _ in spent.values()), listing

    # and the cheap path did all it must: every row, link and audit entry is there
    session.expire_all()
    assert process.status == STATUS.DONE
    tasks = {t.node_name: t for t in process.tasks}
    assert [t.status for t in tasks.values()] == [STATUS.DONE] * 3
    assert tasks["work"].owner_id == worker_id and process.data == {"note": "ok"}
    assert tasks["work"].previous == [tasks["start"]] and tasks["end"].previous == [tasks["work"]]
    trail = session.scalars(sa.select(TaskEvent.transition).where(TaskEvent.process_id == process.id)
                            .order_by(TaskEvent.id)).all()
    assert trail == ["done", "assign", "done", "perform"]


# The whole automatic process, one transaction: {(database, policy): statements}. Under
# the code policy new rows take their ids without an INSERT (PostgreSQL: from the
# sequences, a statement each time a node needs ids it has not got; SQLite: after the
# largest, read once under the write lock) and go in together; on PostgreSQL the rows and
# their later changes ride on the last statement, sent alone (no BEGIN, no COMMIT: a
# process that starts locks nothing). The web policy's savepoints leave the rows before
# each node unsaved (webflow.core.guard) and cost nothing when no node fails: both policies
# write alike. viewflow 2.4 sends 57 for this process.
AUTOMATIC = {("postgresql", True): 6, ("postgresql", False): 6, ("sqlite", True): 8, ("sqlite", False): 8}


@pytest.mark.parametrize("propagate", [True, False], ids=["code", "web"])
def test_the_automatic_path_costs_at_most_its_budget(counted: tuple[Session, SQLCounter],
                                                     propagate: bool) -> None:
    session, counter = counted
    with Context(propagate_exception=propagate):
        AutomaticFlow.start.run()  # type: ignore[attr-defined]  # warm
        counter.start()
        process = AutomaticFlow.start.run()  # type: ignore[attr-defined]
        counter.stop()
    assert len(counter.statements) <= AUTOMATIC[counter.engine.dialect.name, propagate], counter.statements
    session.expire_all()
    assert process.status == STATUS.DONE and process.data == {"left": True, "right": True, "last": True}
    nodes = session.scalars(sa.select(Task.node_name).where(Task.process_id == process.id)
                            .order_by(Task.id)).all()
    assert nodes == ["start", "split", "left", "right", "join", "check", "last", "end"]


def test_a_done_that_creates_nothing_stays_within_its_budget(counted: tuple[Session, SQLCounter],
                                                              worker_id: int) -> None:
    session, counter = counted
    run_path(session, counter, LastStepFlow, worker_id)
    process, spent = run_path(session, counter, LastStepFlow, worker_id)
    statements, round_trips = spent["done"]
    assert len(statements) <= DONE_WITHOUT_SUCCESSORS[counter.engine.dialect.name], statements
    if round_trips is not None:
        assert round_trips <= len(statements) + PREPARED_ONCE
    session.expire_all()
    assert process.get_task(LastStepFlow.work).status == STATUS.DONE
    assert process.stalled is not None  # nothing left to do and no End: for a manager


def test_the_callers_own_changes_survive_a_refused_transition(counted: tuple[Session, SQLCounter],
                                                              worker_id: int) -> None:
    """The transition goes on in the caller's transaction only when that one only read."""
    session, _ = counted
    process = HumanPathFlow.start.run()
    task = process.get_task(HumanPathFlow.work)
    session.commit()
    user = session.get(User, worker_id)
    user.permissions = [*user.permissions, "pending.change"]  # pending in the session
    session.execute(sa.update(User).where(User.id == worker_id).values(is_superuser=True))  # sent
    with pytest.raises(TransitionNotAllowed):
        task.activate().done()  # not prepared: refused, rolled back
    session.expire_all()
    user = session.get(User, worker_id)
    assert "pending.change" in user.permissions and user.is_superuser


def test_a_transition_decides_on_rows_read_under_the_lock(counted: tuple[Session, SQLCounter],
                                                          worker_id: int) -> None:
    """A task read before another session assigned it is not assigned a second time."""
    session, counter = counted
    process = HumanPathFlow.start.run()
    session.commit()
    task = session.scalar(sa.select(Task).where(Task.process_id == process.id, Task.node_name == "work"))
    assert task.status == STATUS.NEW  # read, transaction still open
    with Session(counter.engine) as other, use_session(other):
        other_task = other.get(Task, task.id)
        other_task.activate().assign(other.get(User, worker_id))
    with pytest.raises(TransitionNotAllowed):
        task.activate().assign(session.get(User, worker_id))
    session.expire_all()
    assert session.scalar(sa.select(sa.func.count()).select_from(TaskEvent).where(
        TaskEvent.task_id == task.id)) == 1


class BranchesFlow(Flow):
    """Branches and a join"""

    start = flow.StartFunction().Next(this.split)
    split = flow.Split().Next(this.left).Next(this.right)
    left = flow.Handler(lambda activation: None).Next(this.join)
    right = flow.View().Permission(auto_create=True).Next(this.join)
    join = flow.Join().Next(this.end)
    end = flow.End()


@pytest.mark.parametrize("propagate", [True, False], ids=["code", "web"])
def test_search_documents_written_from_memory_are_the_ones_read_back(
        counted: tuple[Session, SQLCounter], worker_id: int, propagate: bool) -> None:
    """A transaction that holds every task of a process writes its search document from
    memory; after each step the stored document is the one rebuilt from the tables."""
    from webflow.core.search import build_documents
    from webflow.models import SearchDocument

    session, _ = counted
    other = User(username="Zoë_Other", permissions=["branches.can_right"])
    session.add(other)
    session.commit()

    def stored_is_rebuilt(process_id: int) -> None:
        session.expire_all()
        stored = session.scalar(sa.select(SearchDocument.body).where(SearchDocument.process_id == process_id))
        assert stored == build_documents(session, [process_id])[0]["body"]
        session.commit()

    with Context(propagate_exception=propagate):
        process = BranchesFlow.start.run(data={"customer": "ACME Ltd", "lines": [{"sku": "X-1"}]})
        process_id = process.id
        stored_is_rebuilt(process_id)
        right = session.scalar(sa.select(Task).where(Task.process_id == process_id, Task.node_name == "right"))
        right.activate().assign(session.get(User, worker_id))
        stored_is_rebuilt(process_id)
        right = session.get(Task, right.id)
        right.activate().reassign(session.get(User, other.id))
        stored_is_rebuilt(process_id)
        right = session.get(Task, right.id)
        activation = right.activate()
        activation.prepare(data={"note": "shipped to Zoë"}, user=session.get(User, other.id))
        activation.done()
        stored_is_rebuilt(process_id)
    body = session.scalar(sa.select(SearchDocument.body).where(SearchDocument.process_id == process_id))
    assert "acme" in body.split() and "zoë" in body.split() and "shipped" in body.split()
    assert session.get(Process, process_id).status == STATUS.DONE


@pytest.mark.parametrize("propagate", [True, False], ids=["code", "web"])
def test_one_transactions_audit_rows_keep_their_order(counted: tuple[Session, SQLCounter],
                                                      propagate: bool) -> None:
    """Several audit rows, links and a document in one last statement: the trail lists the
    transitions in the order they ran (PostgreSQL sends them as arrays)."""
    session, _ = counted
    with Context(propagate_exception=propagate):
        process_id = BranchesFlow.start.run(order=1).id
    rows = session.execute(
        sa.select(TaskEvent.transition, Task.node_name, TaskEvent.to_status)
        .join(Task, Task.id == TaskEvent.task_id)
        .where(TaskEvent.process_id == process_id).order_by(TaskEvent.id)).all()
    assert [tuple(row) for row in rows] == [
        ("done", "start", STATUS.DONE), ("perform", "split", STATUS.DONE),
        ("perform", "left", STATUS.DONE), ("start", "join", STATUS.STARTED)]
    links = session.execute(sa.text(
        "SELECT p.flow_task, t.flow_task FROM task_link l JOIN task p ON p.id = l.previous_id "
        "JOIN task t ON t.id = l.task_id WHERE t.process_id = :pid ORDER BY t.id, p.id"),
        {"pid": process_id}).all()
    assert [tuple(link) for link in links] == [
        ("start", "split"), ("split", "left"), ("split", "right"), ("left", "join")]


def test_a_started_process_keeps_its_id_through_the_commit(counted: tuple[Session, SQLCounter],
                                                           worker_id: int) -> None:
    """The id of a process just started costs no statement; every other column is still
    read afresh after the commit (another transaction may have changed it since)."""
    session, counter = counted
    with Context():
        process = HumanPathFlow.start.run()  # type: ignore[attr-defined]
    # Someone else moves the process on right after the commit.
    other = Session(counter.engine)
    stored_id = other.scalar(sa.select(sa.func.max(Process.id)))
    other.execute(sa.update(Process).where(Process.id == stored_id).values(summary="changed elsewhere"))
    other.commit()
    other.close()

    counter.start()
    assert process.id == stored_id
    counter.stop()
    assert counter.statements == []
    counter.start()
    assert process.summary == "changed elsewhere"
    counter.stop()
    assert any(s.startswith("SELECT process.") for s in counter.statements), counter.statements
    assert session.get(Process, stored_id) is process


def test_a_start_that_fails_keeps_no_process(counted: tuple[Session, SQLCounter]) -> None:
    """A start whose transaction rolls back leaves no row and no persistent process to hand
    an id to; the session goes on as before."""
    session, _ = counted
    with Context(propagate_exception=True), pytest.raises(Refused):
        FailingStartFlow.start.run()  # type: ignore[attr-defined]
    assert session.scalar(sa.select(sa.func.count()).select_from(Process)) == 0
    assert [obj for obj in session.identity_map.values() if isinstance(obj, Process)] == []
    with Context():
        process = HumanPathFlow.start.run()  # type: ignore[attr-defined]
    assert process.id == session.scalar(sa.select(Process.id))


def test_a_process_started_by_a_node_that_failed_keeps_no_id(counted: tuple[Session, SQLCounter]) -> None:
    """Under the web policy a node that started a process and then failed is stored as
    ERROR and its savepoint takes the process back: that process is not in the table, not
    in the session, and is given nothing after the commit; the outer process keeps its id."""
    session, counter = counted
    STARTED_INSIDE.clear()
    with Context(propagate_exception=False):
        outer = StartsThenFailsFlow.start.run()  # type: ignore[attr-defined]
    [inner] = STARTED_INSIDE
    counter.start()
    outer_id = outer.id
    counter.stop()
    assert counter.statements == []
    assert not sa.inspect(inner).persistent and inner not in session
    stored = session.scalars(sa.select(Process.id).order_by(Process.id)).all()
    assert stored == [outer_id]
    failed = session.scalars(sa.select(Task).where(Task.process_id == outer_id,
                                                   Task.node_name == "boom")).one()
    assert failed.status == STATUS.ERROR and "refused" in (failed.comments or "")
