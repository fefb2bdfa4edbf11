"""Audit of job tasks on the unhappy path, run inline (the same ``run_job`` an RQ worker
runs): results the database cannot store, exception texts it cannot store, what comes
after the job failing at the commit, and in-place writes to nested process data.

Before the fixes each of the failing cases raised out of ``run_job`` after the attempt had
started: the task stayed STARTED (for good without Redis; with RQ until the reconciler took
the failed RQ job for lost), and inline the caller that committed got the exception."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from webflow import STATUS, Flow, flow, this
from webflow.core import signals
from webflow.core.exceptions import storable_text
from webflow.core.jobs import run_job
from webflow.core.json_data import unstorable
from webflow.models import Process, Task


def _return_datetime(activation: Any) -> Any:
    return {"when": datetime.now(UTC)}


def _write_decimal(activation: Any) -> Any:
    activation.process.data["amount"] = Decimal("1.50")


def _nested_set(activation: Any) -> Any:
    activation.process.data["order"]["tags"] = {"a", "b"}


def _return_nan(activation: Any) -> Any:
    return {"ratio": math.nan}


def _return_nul(activation: Any) -> Any:
    return {"note": "a\x00b"}


def _return_surrogate(activation: Any) -> Any:
    return {"name": b"caf\xe9".decode("utf-8", "surrogateescape")}  # PostgreSQL refuses it


def _return_int_key(activation: Any) -> Any:
    return {1: "one"}


def _task_data_object(activation: Any) -> Any:
    activation.task.data["obj"] = object()


#: Either message says what was refused: a value written in place is refused on the line
#: that writes it (InputRejected from process.data itself, json_data.py), a returned one,
#: or one that slipped past that check, by the job's own check of its patch.
IN_PLACE = "cannot hold"
UNSTORABLE = {
    "datetime returned": (_return_datetime, "process.data['when']"),
    "Decimal written in place": (_write_decimal, "process.data['amount']", IN_PLACE),
    "set in a nested dict": (_nested_set, "process.data['order']", IN_PLACE),
    "NaN returned": (_return_nan, "process.data['ratio']"),
    "NUL in a string": (_return_nul, "process.data['note']"),
    "a lone surrogate": (_return_surrogate, "process.data['name']"),
    "a key that is no string": (_return_int_key, "keys must be strings"),
    "object in task.data": (_task_data_object, "task.data['obj']", IN_PLACE),
}


def _raise_nul(activation: Any) -> Any:
    raise RuntimeError("bad\x00byte")


def _raise_surrogate(activation: Any) -> Any:
    raise RuntimeError(b"caf\xe9".decode("utf-8", "surrogateescape"))


def _nested_in_place(activation: Any) -> Any:
    data = activation.process.data
    data["order"]["total"] = 5
    data["items"].append(3)
    activation.task.data.setdefault("seen", []).append("x")


def _exit(activation: Any) -> Any:
    raise SystemExit(3)  # a library calling sys.exit()


BEHAVIOURS = {
    "exit": _exit,
    "raise_nul": _raise_nul,
    "raise_surrogate": _raise_surrogate,
    "nested": _nested_in_place,
    **{name: f for name, (f, *_) in UNSTORABLE.items()},
}


class AuditJobFlow(Flow):
    start = flow.StartFunction().Next(this.work)
    work = flow.Job(this.run, retries=1, backoff=0).Next(this.after)
    after = flow.Handler(this.after_job).Next(this.end)
    end = flow.End()

    def run(self, activation: Any) -> Any:
        return BEHAVIOURS[activation.process.data["how"]](activation)

    def after_job(self, activation: Any) -> None:
        if activation.process.data.get("after_fails_oddly"):
            # Its traceback, stored on this handler's ERROR, is text no database takes.
            raise RuntimeError(b"caf\xe9".decode("utf-8", "surrogateescape"))


def job_of(session: Session, process: Process) -> Task:
    session.expire_all()
    return session.scalars(sa.select(Task).where(Task.process_id == process.id,
                                                 Task.node_name == "work")).one()


def data_of(session: Session, process: Process) -> dict[str, Any]:
    session.expire_all()
    return dict(session.get(Process, process.id).data)


@pytest.mark.parametrize("case", list(UNSTORABLE))
def test_a_result_the_database_cannot_store_fails_the_attempt(session, case):
    _, *expected = UNSTORABLE[case]
    process = AuditJobFlow.start.run(how=case, order={"total": 1}, items=[1])  # the job runs inline
    task = job_of(session, process)
    assert task.status == STATUS.ERROR  # not left STARTED
    assert task.attempts == 2  # the first run and its retry, each refused
    assert any(text in task.comments for text in expected) and "no retries left" in task.comments
    assert data_of(session, process) == {"how": case, "order": {"total": 1}, "items": [1]}  # nothing applied


@pytest.mark.parametrize("how,shown", [("raise_nul", "bad\\x00byte"), ("raise_surrogate", "caf\\udce9")])
def test_an_exception_text_the_database_cannot_store_is_kept_escaped(session, how, shown):
    process = AuditJobFlow.start.run(how=how)
    task = job_of(session, process)
    assert task.status == STATUS.ERROR and task.attempts == 2
    assert f"RuntimeError: {shown}" in task.comments


def test_a_failure_while_finishing_ends_the_attempt_instead_of_leaving_it_started(session):
    """What runs as the job's attempt finishes fails for a reason another try will not cure
    (here a receiver of the job's ``task_finished``): the attempt ends with the traceback,
    the retry's attempt too, and the task is in ERROR, not STARTED."""
    def refuse(sender: Any, task: Task, **kwargs: Any) -> None:
        if task.node_name == "work":
            raise RuntimeError("a receiver refused the job's end")

    signals.task_finished.connect(refuse)
    try:
        process = AuditJobFlow.start.run(how="nested", order={"total": 1}, items=[1])
    finally:
        signals.task_finished.disconnect(refuse)
    task = job_of(session, process)
    assert task.status == STATUS.ERROR and task.attempts == 2
    assert "finishing the job failed" in task.comments and "a receiver refused" in task.comments
    assert session.scalars(sa.select(Task.node_name).where(Task.process_id == process.id)).all() == \
        ["start", "work"]
    # Delivered once more with its (now stale) job id: nothing happens.
    assert run_job(task.id, token=task.external_task_id).startswith("skipped: task is ERROR")


def test_a_handler_after_the_job_failing_with_text_no_database_takes_is_stored(session):
    """The handler after the job raises with a lone surrogate in its message: its ERROR is
    stored with the character written out, and the job is DONE."""
    process = AuditJobFlow.start.run(how="nested", order={"total": 1}, items=[1], after_fails_oddly=True)
    assert job_of(session, process).status == STATUS.DONE
    after = session.scalars(sa.select(Task).where(Task.process_id == process.id,
                                                  Task.node_name == "after")).one()
    assert after.status == STATUS.ERROR and "caf\\udce9" in after.comments


def test_nested_in_place_writes_of_a_job_are_kept(session):
    process = AuditJobFlow.start.run(how="nested", order={"total": 1, "note": "n"}, items=[1])
    assert job_of(session, process).status == STATUS.DONE
    assert data_of(session, process) == {"how": "nested", "order": {"total": 5, "note": "n"}, "items": [1, 3]}
    assert job_of(session, process).data == {"seen": ["x"]}


def test_unstorable_and_storable_text():
    assert unstorable({"a": [1, "x", {"b": None, "c": 1.5}]}) is None
    assert "NUL" in (unstorable({"k\x00": 1}) or "")
    assert "not UTF-8" in (unstorable(["\udce9"]) or "")
    assert "not a JSON number" in (unstorable(math.inf) or "")
    assert storable_text("a\x00b\udce9") == "a\\x00b\\udce9"


def test_a_job_that_calls_sys_exit_fails_its_attempt(session):
    process = AuditJobFlow.start.run(how="exit")  # raised SystemExit out of run() before
    task = job_of(session, process)
    assert task.status == STATUS.ERROR and task.attempts == 2
    assert "SystemExit: 3" in task.comments
