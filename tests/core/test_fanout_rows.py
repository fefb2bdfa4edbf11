"""A fan-out's branches do not load their siblings. A transition asks about the process's
other tasks (which are unfinished, which join waits, what the search document names)
through plain rows (``queries.TaskRow``), so one branch's assign and done load as many task
objects over 200 items as over 5. What the engine then changes (a terminating End's
cancels, a join's ``cancel_rest``, the branches ``until`` reads) are the session's own
objects, and a document built from the rows is the one the index command reads back, cut
where ``MAX_BODY`` cuts it. Both databases."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from webflow import STATUS, Context, Flow, flow, this
from webflow.core import search
from webflow.core import token as tokens_
from webflow.models import Process, SearchDocument, Task, User


class WideFlow(Flow):
    """Wide review"""

    start = flow.StartFunction().Next(this.fan)
    fan = flow.Split().Each(this.review, items=lambda act: act.process.data["items"])
    review = flow.View().Permission(auto_create=True).Next(this.collect)
    collect = flow.Join().Next(this.end)
    end = flow.End()


class HalfFlow(Flow):
    """Half the reviews"""

    start = flow.StartFunction().Next(this.fan)
    fan = flow.Split().Each(this.review, items=lambda act: act.process.data["items"])
    review = flow.View().Permission(auto_create=True).Next(this.collect)
    # ``branches`` and ``arrived`` are the session's tasks: their data is there to read.
    collect = flow.Join(until=lambda act: 2 * sum(t.data.get("ok", False) for t in act.arrived)
                        >= len([b for b in act.branches if b.data is not None]),
                        cancel_rest=True).Next(this.end)
    end = flow.End()


class StopFlow(Flow):
    """Stop them all"""

    start = flow.StartFunction().Next(this.split)
    split = flow.Split().Next(this.fan).Next(this.stop_all)
    fan = flow.Split().Each(this.review, items=lambda act: act.process.data["items"])
    review = flow.View().Permission(auto_create=True).Next(this.collect)
    collect = flow.Join().Next(this.end)
    end = flow.End()
    stop_all = flow.View().Permission(auto_create=True).Next(this.stopped)
    stopped = flow.End(terminate=True)


PERMISSIONS = ["wide_flow.can_review", "half_flow.can_review", "stop_flow.can_review",
               "stop_flow.can_stop_all"]


@pytest.fixture
def people(session: Session) -> list[User]:
    found = [User(username=name, permissions=PERMISSIONS) for name in ("ann", "bob", "cyrille")]
    session.add_all(found)
    session.commit()
    return found


@pytest.fixture
def loads() -> Iterator[list[int]]:
    """The ids of the task objects the session builds from rows (the ORM's load event)."""
    loaded: list[int] = []

    def note(task: Task, _context: Any) -> None:
        loaded.append(task.id)

    sa.event.listen(Task, "load", note)
    yield loaded
    sa.event.remove(Task, "load", note)


def reviews(session: Session, process: Process) -> list[Task]:
    session.expire_all()
    return list(session.scalars(sa.select(Task).where(Task.process_id == process.id,
                                                      Task.node_name == "review").order_by(Task.id)))


def complete(session: Session, task_id: int, user: User, data: dict[str, Any]) -> None:
    """What a request does: read the user and the task, assign, then prepare and done."""
    task = session.get(Task, task_id)
    assert task is not None
    task.activate().assign(session.get(User, user.id))
    session.expire_all()
    task = session.get(Task, task_id)
    activation = task.activate()  # type: ignore[union-attr]
    activation.prepare(data=data, user=session.get(User, user.id))
    activation.done()


def documents(session: Session) -> dict[int, str]:
    session.expire_all()
    return {d.process_id: d.body for d in session.scalars(sa.select(SearchDocument))}


def test_a_branch_loads_as_many_task_objects_over_200_items_as_over_5(session, people, loads):
    loaded = {}
    for items in (5, 200):
        process = WideFlow.start.run(items=list(range(items)))  # type: ignore[attr-defined]
        first, second = (task.id for task in reviews(session, process)[:2])
        session.expire_all()
        loads.clear()
        with Context(propagate_exception=False):
            complete(session, first, people[0], {"ok": True})
            complete(session, second, people[1], {"ok": True})
        loaded[items] = len(loads)
        assert loads, "the loads were counted"
        assert set(loads) <= {first, second} | {t.id for t in session.scalars(
            sa.select(Task).where(Task.process_id == process.id, Task.node_name == "collect"))}
    assert loaded[200] == loaded[5]


def test_a_late_arrival_at_the_join_loads_no_more_task_objects_than_an_early_one(session, people, loads):
    """Each arrival asks the join what reached it before: as rows, not objects (loading
    every arrived task at each arrival made finishing a fan-out quadratic)."""
    process = WideFlow.start.run(items=list(range(40)))  # type: ignore[attr-defined]
    ids = [task.id for task in reviews(session, process)]
    loaded = {}
    with Context(propagate_exception=False):
        for n, task_id in enumerate(ids[:-1]):  # the last one would fire the join
            session.expire_all()
            loads.clear()
            complete(session, task_id, people[n % 3], {"ok": True})
            loaded[n] = len(loads)
    session.expire_all()
    assert process.status == STATUS.NEW
    assert loaded[len(ids) - 2] == loaded[1], (loaded[1], loaded[len(ids) - 2])  # 37 arrived before it, or 1


def test_the_last_branch_still_ends_a_wide_fan_out(session, people):
    process = WideFlow.start.run(items=list(range(30)))  # type: ignore[attr-defined]
    ids = [task.id for task in reviews(session, process)]
    for n, task_id in enumerate(ids):
        complete(session, task_id, people[n % 3], {"ok": True})
        session.expire_all()
        assert process.status == (STATUS.DONE if n == len(ids) - 1 else STATUS.NEW)
    assert [t.status for t in reviews(session, process)] == [STATUS.DONE] * 30


def test_documents_from_rows_equal_the_ones_read_back_also_where_cut(session, people, monkeypatch):
    monkeypatch.setattr(search, "MAX_BODY", 400)  # 60 tasks' words are longer than that
    process = WideFlow.start.run(items=list(range(60)))  # type: ignore[attr-defined]
    ids = [task.id for task in reviews(session, process)]
    for n, task_id in enumerate([ids[0], ids[1], ids[-1]]):  # the last one is past the cut
        complete(session, task_id, people[n], {"ok": True})
        stored = documents(session)
        built = {d["process_id"]: d["body"] for d in search.build_documents(session, [process.id])}
        assert stored == built
        assert len(stored[process.id]) == 400
    assert "ann" in stored[process.id] and "bob" in stored[process.id]
    assert "cyrille" not in stored[process.id]  # owner of a task past the cut


def test_a_partial_join_cancels_the_rest_and_reads_its_branches_as_tasks(session, people):
    process = HalfFlow.start.run(items=list(range(12)))  # type: ignore[attr-defined]
    ids = [task.id for task in reviews(session, process)]
    session.get(Task, ids[7]).activate().assign(people[2])  # type: ignore[union-attr]
    for task_id in ids[:5]:
        complete(session, task_id, people[0], {"ok": True})
        session.expire_all()
        assert process.status == STATUS.NEW
    complete(session, ids[5], people[1], {"ok": True})  # 6 of 12: the join fires
    statuses = [t.status for t in reviews(session, process)]
    assert statuses == [STATUS.DONE] * 6 + [STATUS.CANCELED] * 6
    assert process.status == STATUS.DONE
    assert reviews(session, process)[7].owner_id is None  # unassigned on the way to CANCELED
    assert documents(session)[process.id] == search.build_documents(session, [process.id])[0]["body"]


@pytest.mark.parametrize("done_before", [0, 3])
def test_a_terminating_end_cancels_every_branch_it_did_not_load(session, people, done_before):
    process = StopFlow.start.run(items=list(range(25)))  # type: ignore[attr-defined]
    ids = [task.id for task in reviews(session, process)]
    for task_id in ids[:done_before]:
        complete(session, task_id, people[0], {"ok": True})
    for task_id in ids[10:14]:
        session.get(Task, task_id).activate().assign(people[1])  # type: ignore[union-attr]
    session.expire_all()
    stop = session.scalar(sa.select(Task).where(Task.process_id == process.id, Task.node_name == "stop_all"))
    complete(session, stop.id, people[2], {})  # type: ignore[union-attr]
    statuses = [t.status for t in reviews(session, process)]
    assert statuses == [STATUS.DONE] * done_before + [STATUS.CANCELED] * (25 - done_before)
    assert process.status == STATUS.DONE
    collect = session.scalars(sa.select(Task).where(Task.process_id == process.id,
                                                    Task.node_name == "collect")).all()
    assert [t.status for t in collect] == ([STATUS.CANCELED] if done_before else [])
    assert documents(session)[process.id] == search.build_documents(session, [process.id])[0]["body"]


@pytest.fixture
def eager_collector() -> Iterator[None]:
    """The cyclic garbage collector runs at nearly every allocation: an object the session
    holds weakly and nothing else references is gone at once, not whenever the collector
    happens to run (ORM objects are cycles: a task and its process refer to each other)."""
    before = gc.get_threshold()
    gc.set_threshold(1, 1, 1)
    yield
    gc.set_threshold(*before)


@pytest.mark.parametrize("crowded", [False, True], ids=["few-objects", "many-objects"])
def test_rows_never_answer_for_a_task_changed_and_let_go(session, people, eager_collector, crowded):
    """A process cancel unassigns and cancels tasks the transition read as rows; their
    objects are marked clean (row_updates) before the document is built, and nothing else
    holds them. The document must still see the change, not the row read before it. The
    session holds fewer objects than the process has tasks, or (a script keeping another
    process's tasks) many more: HeldTasks looks through whichever is smaller."""
    crowd = []
    if crowded:
        other = WideFlow.start.run(items=list(range(40)))  # type: ignore[attr-defined]
        crowd = list(session.scalars(sa.select(Task).where(Task.process_id == other.id)))
    process = StopFlow.start.run(items=list(range(6)))  # type: ignore[attr-defined]
    ids = [task.id for task in reviews(session, process)]
    for task_id, person in zip(ids[:3], people, strict=True):
        session.get(Task, task_id).activate().assign(person)  # type: ignore[union-attr]
    complete(session, ids[3], people[0], {"ok": True})
    session.expire_all()
    session.get(Process, process.id).cancel()  # type: ignore[union-attr]
    body = documents(session)[process.id]
    assert body == search.build_documents(session, [process.id])[0]["body"]
    assert "bob" not in body and "cyrille" not in body  # their tasks were unassigned
    assert [t.status for t in reviews(session, process)] == [STATUS.CANCELED] * 3 + [STATUS.DONE] + \
        [STATUS.CANCELED] * 2
    assert len(crowd) == (42 if crowded else 0)


TOKENS = st.lists(st.tuples(st.integers(1, 120), st.integers(1, 12)), max_size=3).map(
    lambda parts: "/".join(["start", *(f"{split}_{n}" for split, n in parts)]))


@given(on=TOKENS, data=st.data())
def test_split_prefixes_is_split_prefix_of_each_branch_on_the_token(on: str, data: Any) -> None:
    """The join's fast reading of its arrivals' tokens says what ``split_prefix`` says of
    each branch of a split on the join's token, and ignores every other token."""
    near = st.tuples(st.integers(1, 120), st.integers(1, 12)).map(lambda p: f"{on}/{p[0]}_{p[1]}")
    deeper = near.map(lambda token: f"{token}/7_1")
    tokens = data.draw(st.lists(st.one_of(TOKENS, near, deeper), max_size=8))
    expected = {tokens_.split_prefix(t) for t in tokens if tokens_.is_branch(t) and tokens_.base(t) == on}
    assert tokens_.split_prefixes(tokens, on) == expected
