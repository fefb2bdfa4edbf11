"""A change made inside process.data or task.data, at any depth, is saved the way an
assignment is (``data["order"]["total"] = 5``, ``data["items"].append(x)``, a change to an
item met while iterating), and a node that fails after such a change leaves nothing of
it. Both databases (``db_url``): another session reads what was stored."""

from __future__ import annotations

import copy
import json
import pickle
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from webflow import STATUS, Context, Flow, flow, this
from webflow.core.exceptions import InputRejected
from webflow.core.json_data import DataDict, TrackedDict, TrackedList
from webflow.core.models import Process, Task, User

#: What the handler after the person's task does; each test sets it.
CHANGE: list[Any] = []


def change_in_place(activation: Any) -> None:
    CHANGE[0](activation)


def nested_job(activation: Any) -> None:
    activation.process.data["order"]["lines"].append({"sku": "job", "qty": 1})
    activation.process.data["order"]["total"] += 1


class NestedFlow(Flow):
    """A person's task, then a handler that changes the data in place"""

    start = flow.StartFunction().Next(this.work)
    work = flow.View().Permission(auto_create=True).Next(this.change)
    change = flow.Handler(change_in_place).Next(this.end)
    end = flow.End()


class NestedJobFlow(Flow):
    """A job that changes nested data in place"""

    start = flow.StartFunction().Next(this.job)
    job = flow.Job(nested_job).Next(this.end)
    end = flow.End()


ORDER = {"order": {"total": 1, "lines": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 2}]},
         "tags": ["x"]}


def run_to_the_handler(session: Session, user: User, change: Any, *, propagate: bool = True,
                       form: dict[str, Any] | None = None) -> int:
    """Start (and commit), then the person's task done: the handler runs on a saved process."""
    CHANGE[:] = [change]
    process_id = NestedFlow.start.run(**copy.deepcopy(ORDER)).id
    session.commit()
    task = session.scalar(sa.select(Task).where(Task.process_id == process_id, Task.node_name == "work"))
    assert task is not None
    task.activate().assign(user)
    session.commit()
    with Context(propagate_exception=propagate):
        activation = task.activate()
        activation.prepare(data=form or {}, user=user)
        activation.done()
    session.commit()
    return process_id


def stored_data(engine: sa.Engine, process_id: int) -> dict[str, Any]:
    with Session(engine) as other:
        process = other.get(Process, process_id)
        assert process is not None
        return dict(process.data)


@pytest.fixture
def worker(session: Session) -> User:
    user = User(username="worker", is_superuser=True)
    session.add(user)
    session.commit()
    return user


def change_everything(activation: Any) -> None:
    data = activation.process.data
    data["order"]["total"] = 5                          # a key of a nested dict
    data["order"]["lines"].append({"sku": "c", "qty": 3})  # a nested list
    for line in data["order"]["lines"]:                 # items met while iterating
        line["qty"] *= 10
    data["tags"].extend(["y"])  # (``data["tags"] += ...`` would assign the key: not nested)
    data["order"].setdefault("notes", {}).setdefault("by", []).append("handler")  # made, then changed
    del data["order"]["lines"][0]["sku"]


def test_changes_inside_nested_values_are_saved(session: Session, engine: sa.Engine, worker: User) -> None:
    process_id = run_to_the_handler(session, worker, change_everything)
    assert stored_data(engine, process_id) == {
        "order": {"total": 5, "lines": [{"qty": 10}, {"sku": "b", "qty": 20}, {"sku": "c", "qty": 30}],
                  "notes": {"by": ["handler"]}},
        "tags": ["x", "y"],
    }
    assert session.get(Process, process_id).status == STATUS.DONE  # type: ignore[union-attr]


def test_a_nested_value_shared_with_an_earlier_copy_of_the_data_is_saved(
        session: Session, engine: sa.Engine, worker: User) -> None:
    """A new dict made of the old one's values (``{**data, ...}``, as a View's done makes
    it) holds the same nested values as the old one; once it is saved, a change inside them
    through the new one is saved too."""
    def change(activation: Any) -> None:
        activation.process.data = {**activation.process.data, "approved": True}
        activation.session.flush()  # the assignment is saved: the row is clean again
        activation.process.data["order"]["lines"][1]["qty"] = 7

    process_id = run_to_the_handler(session, worker, change)
    data = stored_data(engine, process_id)
    assert data["approved"] is True and data["order"]["lines"][1] == {"sku": "b", "qty": 7}


def test_a_change_inside_task_data_is_saved(session: Session, engine: sa.Engine, worker: User) -> None:
    def change(activation: Any) -> None:
        work = activation.process.get_task(NestedFlow.work)
        work.data["answers"]["second"].append(2)

    process_id = run_to_the_handler(session, worker, change, form={"answers": {"second": [1]}})
    with Session(engine) as other:
        work = other.scalar(sa.select(Task).where(Task.process_id == process_id, Task.node_name == "work"))
        assert work is not None and work.data == {"answers": {"second": [1, 2]}}


def test_a_failing_node_leaves_nothing_of_its_nested_change(session: Session, engine: sa.Engine,
                                                          worker: User) -> None:
    """Web policy: the handler changes the data inside, then fails. Neither the table nor
    the session keeps the change; the task is in ERROR, and a retry that succeeds is saved."""
    def change_then_fail(activation: Any) -> None:
        activation.process.data["order"]["total"] = 99
        activation.process.data["order"]["lines"].append({"sku": "lost"})
        raise RuntimeError("the handler broke")

    process_id = run_to_the_handler(session, worker, change_then_fail, propagate=False)
    assert stored_data(engine, process_id) == ORDER
    process = session.get(Process, process_id)
    assert process is not None and process.data == ORDER  # nothing of it in memory either
    failed = process.get_task(NestedFlow.change)
    assert failed.status == STATUS.ERROR and "the handler broke" in (failed.comments or "")

    CHANGE[:] = [lambda activation: activation.process.data["order"].update(total=2)]
    with Context(propagate_exception=False):
        failed.activate().retry()
    session.commit()
    assert stored_data(engine, process_id)["order"]["total"] == 2
    assert session.get(Process, process_id).status == STATUS.DONE  # type: ignore[union-attr]


def test_a_job_that_changes_nested_values_in_place_is_saved(session: Session, engine: sa.Engine) -> None:
    process_id = NestedJobFlow.start.run(**copy.deepcopy(ORDER)).id
    session.commit()  # the job runs after the commit (inline here)
    data = stored_data(engine, process_id)
    assert data["order"]["total"] == 2 and data["order"]["lines"][-1] == {"sku": "job", "qty": 1}


def test_every_way_of_changing_a_value_marks_the_row() -> None:
    """Each mutating method of a dict or list inside the value tells the root (checked
    without a database: the root's ``changed`` is what marks its rows)."""
    told: list[int] = []

    class Root(DataDict):
        def changed(self) -> None:
            told.append(1)

    changes = [
        lambda d: d["d"].__setitem__("k", 1), lambda d: d["d"].__delitem__("a"),
        lambda d: d["d"].update(z=1), lambda d: d["d"].__ior__({"z": 2}), lambda d: d["d"].pop("a"),
        lambda d: d["d"].popitem(), lambda d: d["d"].clear(), lambda d: d["d"].setdefault("n", 1),
        lambda d: d["l"].append(1), lambda d: d["l"].extend([1]), lambda d: d["l"].insert(0, 1),
        lambda d: d["l"].pop(), lambda d: d["l"].remove(1), lambda d: d["l"].clear(),
        lambda d: d["l"].sort(key=str), lambda d: d["l"].reverse(), lambda d: d["l"].__setitem__(0, 5),
        lambda d: d["l"].__setitem__(slice(0, 1), [{"n": 1}]), lambda d: d["l"].__delitem__(0),
        lambda d: d["l"].__iadd__([4]), lambda d: d["l"].__imul__(2),
        lambda d: d["l"][2].__setitem__("deep", True), lambda d: d["d"]["inner"].append(0),
    ]
    for number, change in enumerate(changes):
        root = Root({"d": {"a": 1, "inner": []}, "l": [1, 2, {"x": 1}]})
        told.clear()
        change(root)
        assert told, f"change {number} was not noticed"


def test_values_put_in_later_are_tracked_and_copies_are_plain() -> None:
    told: list[int] = []

    class Root(DataDict):
        def changed(self) -> None:
            told.append(1)

    root = Root()
    root["new"] = {"list": []}
    root["new"]["list"].append({"deep": {}})
    told.clear()
    root["new"]["list"][0]["deep"]["x"] = 1
    assert told
    assert isinstance(root["new"], TrackedDict) and isinstance(root["new"]["list"], TrackedList)
    for copied in (copy.deepcopy(root), pickle.loads(pickle.dumps(dict(root)))):
        assert copied == {"new": {"list": [{"deep": {"x": 1}}]}}
        assert type(copied["new"]) is dict and type(copied["new"]["list"]) is list
    assert json.loads(json.dumps(root)) == root


BAD_VALUES = [
    ("a\x00b", "NUL"),
    (datetime(2026, 1, 1, tzinfo=UTC), "datetime, which is not JSON"),
    (float("nan"), "not a JSON number"),
    (float("inf"), "not a JSON number"),
    ({1: "x"}, "the key 1, which is not a string"),
    ({"k\x00": 1}, "NUL"),
    ([{"deep": {"x", "y"}}], "set, which is not JSON"),
]


@pytest.mark.parametrize(("bad", "words"), BAD_VALUES)
def test_a_value_the_column_cannot_store_is_refused_where_it_is_written(bad: Any, words: str) -> None:
    """Not JSON, NUL (PostgreSQL refuses it in text), NaN: refused on the line that writes
    it, however it is written, and nothing of it is kept."""
    root = DataDict({"order": {"lines": []}})
    writes = [lambda: root.__setitem__("x", bad), lambda: root["order"].__setitem__("x", bad),
              lambda: root["order"]["lines"].append(bad), lambda: root["order"].update(x=bad),
              lambda: root["order"]["lines"].extend([1, bad]), lambda: root.setdefault("y", bad)]
    for write in writes:
        with pytest.raises(InputRejected, match="cannot hold") as refused:
            write()
        assert words in str(refused.value)
    assert root == {"order": {"lines": []}}
    process = Process(data={})
    with pytest.raises(InputRejected, match=r"process\.data cannot hold"):
        process.data = {"fine": 1, "bad": bad}
    root["ok"] = {"tuple": (1, 2), "text": "é", "n": 1.5, "none": None}  # JSON, stored as is


def test_a_handler_that_writes_what_cannot_be_stored_fails_alone(session: Session, engine: sa.Engine,
                                                                 worker: User) -> None:
    """Web policy: the handler's task is in ERROR with the reason; the process's data is
    what it was, on PostgreSQL as on SQLite (PostgreSQL used to fail the whole request at
    the flush with a DataError)."""
    def write_nul(activation: Any) -> None:
        activation.process.data["order"]["note"] = "a\x00b"

    process_id = run_to_the_handler(session, worker, write_nul, propagate=False)
    assert stored_data(engine, process_id) == ORDER
    process = session.get(Process, process_id)
    assert process is not None
    failed = process.get_task(NestedFlow.change)
    assert failed.status == STATUS.ERROR and "data cannot hold the NUL character" in (failed.comments or "")
