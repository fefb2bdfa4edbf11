"""Audit of the engine on the unhappy path, with bad input from code, on SQLite and
PostgreSQL: what a caller sees, and that both databases store the same.

Defects found:

- a priority above PostgreSQL's integer (from ``.Priority`` or ``change_due``) failed the
  transaction there with a raw ``DataError`` while SQLite stored it; ``change_due`` took a
  priority that is not an int (``"7"``) and a due time that is not a datetime raised
  ``AttributeError``; a due time past the year 9999 (``Timer``/``.Due`` answering a huge
  timedelta) or before the year 1 in UTC raised ``OverflowError``: each now a
  ``FlowRuntimeError``, nothing stored;
- an id that names no row (above 2**31 - 1) given to ``run_job``, ``fire_timer`` or
  ``search.build_documents`` raised a ``DataError`` on PostgreSQL where SQLite answered
  "no such row";
- clearing the due date of a task whose boundary timer fires at it (``OnTimeout(after=None)``)
  left the timer due at the old date: the task was escalated (canceled) at a date it no
  longer had; now refused (``TransitionNotAllowed``), as a timer's own date cannot be cleared;
- a comment, a draft or a delegation note holding a lone surrogate (text decoded with
  ``surrogateescape``) raised ``UnicodeEncodeError`` from the flush (a draft: a
  ``DataError`` on PostgreSQL, stored on SQLite); refused like a NUL (``InputRejected``);
- a process whose only open task was a job or a timer undone back to NEW looked alive
  forever (not stalled, not listed) though nothing but a cancel moves such a task (they are
  queued or scheduled only when created), as an undone join did; now it is stalled;
- ``change_due`` gave a due date to the start task a canceled process keeps NEW (its
  undone start), which then counted as overdue for good; refused, a canceled process is final;
- ``away.set_away`` with a substitute that is no User (a username) or an end that is no
  datetime raised ``AttributeError``; refused with ``InputRejected``;
- a change of a value to one Python's ``==`` takes for it (``1`` -> ``True``, ``1`` ->
  ``1.0``, ``0`` -> ``False``) was lost: a form's answer merged into ``process.data`` and a
  job's result were dropped as "no change", on both databases.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from webflow import STATUS, Context, Flow, FlowRuntimeError, flow, this
from webflow.core import search
from webflow.core.jobs import run_job
from webflow.core.timers import change_due, fire_timer
from webflow.core.transaction import unit_of_work
from webflow.models import Process, Task, User


def task_of(session: Session, process: Process | int, node: str) -> Task:
    session.expire_all()
    pid = process if isinstance(process, int) else process.id
    return session.scalars(sa.select(Task).where(Task.process_id == pid, Task.node_name == node)).one()


def stored_rows(session: Session) -> list[tuple[Any, ...]]:
    session.expire_all()
    return [tuple(r) for r in session.execute(
        sa.select(Task.id, Task.status, Task.due, Task.priority).order_by(Task.id))]


# -- priorities and due times given by code ---------------------------------------------------


class PriorityFlow(Flow):
    start = flow.StartFunction().Next(this.approve)
    approve = (flow.View().Permission(auto_create=True).Due(timedelta(hours=1))
               .Priority(lambda act: act.process.data["priority"]).Next(this.end))
    end = flow.End()


@pytest.mark.parametrize("priority", [2**31, -(2**31) - 1, 2**63])
def test_a_priority_the_column_cannot_hold_is_refused_on_both_databases(session, priority):
    with pytest.raises(FlowRuntimeError, match="out of range"):  # PostgreSQL: DataError
        PriorityFlow.start.run(priority=priority)
    assert session.scalar(sa.select(sa.func.count()).select_from(Process)) == 0  # SQLite kept it
    edge = PriorityFlow.start.run(priority=2**31 - 1)
    assert task_of(session, edge, "approve").priority == 2**31 - 1


def test_a_static_priority_out_of_range_is_refused_with_the_flow_class():
    with pytest.raises(FlowRuntimeError, match="out of range"):
        flow.View().Priority(2**31)


@pytest.mark.parametrize("priority,why", [(2**31, "out of range"), (-(2**40), "out of range"),
                                          ("7", "must be an int"), (True, "must be an int"),
                                          (1.5, "must be an int")])
def test_change_due_refuses_a_priority_that_is_not_one(session, priority, why):
    process = PriorityFlow.start.run(priority=1)
    before = stored_rows(session)
    with pytest.raises(FlowRuntimeError, match=why):
        change_due(task_of(session, process, "approve"), None, priority=priority)
    assert stored_rows(session) == before  # nothing moved, the due date neither


@pytest.mark.parametrize("due,why", [
    ("2026-01-01", "must be a datetime"),
    (1767225600, "must be a datetime"),
    (datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))), "out of the range"),
])
def test_change_due_refuses_a_due_time_that_is_not_one(session, due, why):
    process = PriorityFlow.start.run(priority=1)
    before = stored_rows(session)
    with pytest.raises(FlowRuntimeError, match=why):  # AttributeError, OverflowError
        change_due(task_of(session, process, "approve"), due)
    assert stored_rows(session) == before


class FarTimerFlow(Flow):
    start = flow.StartFunction().Next(this.wait)
    wait = flow.Timer(lambda act: timedelta(days=act.process.data["days"])).Next(this.end)
    end = flow.End()


def test_a_timer_past_the_last_datetime_is_the_timers_failure(session):
    with pytest.raises(FlowRuntimeError, match="past the last datetime"):  # OverflowError
        FarTimerFlow.start.run(days=10**7)
    assert session.scalar(sa.select(sa.func.count()).select_from(Process)) == 0
    with Context(propagate_exception=False):
        process = FarTimerFlow.start.run(days=10**7)
    timer = task_of(session, process, "wait")
    assert timer.status == STATUS.ERROR and "past the last datetime" in timer.comments


class EscalateAtDueFlow(Flow):
    start = flow.StartFunction().Next(this.approve)
    approve = (flow.View().Permission(auto_create=True).Due(timedelta(hours=1))
               .OnTimeout(this.escalate, after=None).Next(this.end))
    escalate = flow.View().Permission(auto_create=True).Next(this.end)
    end = flow.End()


def test_the_due_date_a_timeout_fires_at_cannot_be_taken_away(session):
    from webflow import TransitionNotAllowed, fire_due_timers

    process = EscalateAtDueFlow.start.run()
    before = stored_rows(session)
    with pytest.raises(TransitionNotAllowed, match="times out at its due date"):
        change_due(task_of(session, process, "approve"), None, priority=3)
    assert stored_rows(session) == before
    fire_due_timers(now=datetime.now(UTC) + timedelta(minutes=30))
    assert task_of(session, process, "approve").status == STATUS.NEW  # not escalated early
    later = datetime.now(UTC) + timedelta(days=2)  # a new date: the timer moves with it
    change_due(task_of(session, process, "approve"), later)
    assert task_of(session, process, "approve_timeout").due == later
    fire_due_timers(now=datetime.now(UTC) + timedelta(hours=2))  # the old date: nothing
    assert task_of(session, process, "approve").status == STATUS.NEW
    fire_due_timers(now=later)
    assert task_of(session, process, "approve").status == STATUS.CANCELED
    assert task_of(session, process, "escalate").status == STATUS.NEW


# -- ids that name no row -------------------------------------------------------------------


@pytest.mark.parametrize("task_id", [2**31, 2**63, -1, 0, None, True, "1"])
def test_an_id_that_names_no_row_is_no_such_row_on_both_databases(session, task_id):
    process = FarTimerFlow.start.run(days=1)
    assert run_job(task_id, session) == "missing"  # PostgreSQL: DataError (integer out of range)
    assert fire_timer(session, task_id) is False
    assert search.build_documents(session, [task_id]) == []
    assert [d["process_id"] for d in search.build_documents(session, [task_id, process.id])] == [process.id]
    assert task_of(session, process, "wait").status == STATUS.SCHEDULED


@pytest.mark.parametrize("process_id,task_id", [(2**31, None), (2**40, 2**40), (1, 2**31)])
def test_a_unit_of_work_on_an_id_that_names_no_row_locks_nothing_and_fails_nothing(
        session, process_id, task_id):
    """Before, PostgreSQL failed the lock's statement with a DataError (integer out of
    range) where SQLite found no row to lock."""
    process = FarTimerFlow.start.run(days=1)
    with unit_of_work(session, process_id, task_id):
        assert session.get(Process, process.id).status == STATUS.NEW
    assert task_of(session, process, "wait").status == STATUS.SCHEDULED


# -- a change JSON sees and Python's == does not ---------------------------------------------


class AnswerFlow(Flow):
    start = flow.StartFunction().Next(this.approve)
    approve = flow.View().Permission(auto_create=True).Next(this.end)
    end = flow.End()


def answer(session: Session, user: User, process: Process, data: dict[str, Any]) -> dict[str, Any]:
    activation = task_of(session, process, "approve").activate()
    activation.assign(user)
    activation = task_of(session, process, "approve").activate()
    activation.prepare(data=data, user=user)
    activation.done()
    session.expire_all()
    return session.get(Process, process.id).data


def test_a_forms_answer_equal_to_the_old_value_by_python_is_stored(session, root):
    process = AnswerFlow.start.run(approved=0, count=1, rate=2, nested={"ok": 1})
    data = answer(session, root, process, {"approved": False, "count": True, "rate": 2.0,
                                           "nested": {"ok": True}})
    assert data == {"approved": False, "count": True, "rate": 2.0, "nested": {"ok": True}}
    assert [type(data[k]) for k in ("approved", "count", "rate")] == [bool, bool, float]
    assert type(data["nested"]["ok"]) is bool  # each was dropped as "no change"


def flip_types(activation: Any) -> dict[str, Any]:
    activation.process.data["flag"] = True
    activation.process.data["nested"]["n"] = 1.0
    activation.task.data["seen"] = False
    return {"returned": 0.0}


class FlipJobFlow(Flow):
    start = flow.StartFunction().Next(this.work)
    work = flow.Job(flip_types).Next(this.end)
    end = flow.End()


def test_a_jobs_change_equal_to_the_old_value_by_python_is_applied(session):
    process = FlipJobFlow.start.run(flag=1, nested={"n": 1}, returned=0)
    work = task_of(session, process, "work")
    assert work.status == STATUS.DONE
    stored = session.get(Process, process.id).data
    assert (stored["flag"], stored["nested"]["n"], stored["returned"]) == (True, 1.0, 0.0)
    assert [type(stored["flag"]), type(stored["nested"]["n"]), type(stored["returned"])] == [bool, float, float]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from([0.0, 1.0, 2.5])
    | st.text("ab", max_size=2),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text("ab", max_size=2), inner, max_size=3),
    max_leaves=8)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(json_values, json_values)
def test_same_json_is_equality_of_the_json_text(a, b):
    import json

    from webflow.core.json_data import same_json  # new with the fix

    assert same_json(a, b) == (json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True))


# -- floats that PostgreSQL's numeric printed as ints -----------------------------------------

FLOATS = {"big": 1e16, "huge": 1.5e300, "odd": 1.2345678901234568e29, "tiny": 5e-324, "small": 1e-7,
          "neg": -2.5e20, "int": 10**20, "word": "e+ in text"}


def assert_same_as_written(session: Session, process_id: int, written: dict[str, Any]) -> None:
    from webflow.core.json_data import same_json  # new with the fix
    from webflow.models import SearchDocument

    session.expire_all()
    data = session.get(Process, process_id).data
    assert same_json(data, written), {k: (v, data.get(k)) for k, v in written.items()}
    stored = session.scalar(sa.select(SearchDocument.body).where(SearchDocument.process_id == process_id))
    assert stored == search.build_documents(session, [process_id])[0]["body"]


def test_a_float_reads_back_a_float_on_both_databases_whichever_way_it_was_written(session, root):
    process = AnswerFlow.start.run(**FLOATS, nested=[{"f": 1e17}])  # the start's own INSERT
    assert_same_as_written(session, process.id, {**FLOATS, "nested": [{"f": 1e17}]})
    # the engine's UPDATE (a form's answer), then a write of the caller's own (the ORM's flush)
    data = answer(session, root, process, {"answer": 3e18})
    assert_same_as_written(session, process.id, {**FLOATS, "nested": [{"f": 1e17}], "answer": 3e18})
    assert type(data["answer"]) is float  # PostgreSQL: 3000000000000000000, an int
    with Context():
        stored = session.get(Process, process.id)
        stored.data["nested"][0]["f"] = 4e19
        session.commit()
    assert_same_as_written(session, process.id, {**FLOATS, "nested": [{"f": 4e19}], "answer": 3e18})


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: f != 0))
def test_any_float_reads_back_as_written(session, value):
    process = AnswerFlow.start.run(value=value)
    assert_same_as_written(session, process.id, {"value": value})
    session.expire_all()
    assert session.get(Process, process.id).data["value"] == value


# -- a person or form data that is not one --------------------------------------------------


@pytest.mark.parametrize("who", [None, "ann", 1])
@pytest.mark.parametrize("transition", ["assign", "reassign", "delegate"])
def test_a_hand_over_to_something_that_is_no_user_is_refused(session, users, who, transition):
    process = AnswerFlow.start.run()
    if transition != "assign":
        task_of(session, process, "approve").activate().assign(users["ann"])
    before = stored_rows(session)
    with pytest.raises(FlowRuntimeError, match="needs a user"):  # AttributeError for a username
        getattr(task_of(session, process, "approve").activate(), transition)(who)
    assert stored_rows(session) == before


@pytest.mark.parametrize("data", [[1, 2], "approved", 5])
def test_prepare_refuses_form_data_that_is_no_dict(session, root, data):
    process = AnswerFlow.start.run()
    task_of(session, process, "approve").activate().assign(root)
    with pytest.raises(FlowRuntimeError, match="as a dict"):  # TypeError, ValueError before
        task_of(session, process, "approve").activate().prepare(data=data, user=root)
    assert task_of(session, process, "approve").status == STATUS.ASSIGNED


ODD = b"caf\xe9".decode("utf-8", "surrogateescape")  # a lone surrogate: no UTF-8 for it


@pytest.mark.parametrize("text", ["hi\x00there", ODD])
def test_text_no_database_stores_is_refused_in_comments_drafts_and_notes(session, users, text):
    from webflow.core.comments import post_comment
    from webflow.core.drafts import save_draft
    from webflow.core.exceptions import InputRejected
    from webflow.core.models import Comment, TaskDraft

    ann = users["ann"]
    process = AnswerFlow.start.run()
    task_of(session, process, "approve").activate().assign(users["root"])
    root = users["root"]
    with pytest.raises(InputRejected, match="cannot hold"):  # UnicodeEncodeError at the flush
        post_comment(session, session.get(Process, process.id), root, text)
    with pytest.raises(InputRejected, match="holds"):  # PostgreSQL: DataError; SQLite kept it
        save_draft(session, task_of(session, process, "approve"), root, {"note": [text]}, ["note"])
    before = stored_rows(session)
    with pytest.raises(InputRejected, match="A note holds"):
        task_of(session, process, "approve").activate().reassign(ann, note=text)
    assert stored_rows(session) == before
    assert session.scalar(sa.select(sa.func.count()).select_from(Comment)) == 0
    assert session.scalar(sa.select(sa.func.count()).select_from(TaskDraft)) == 0


def quick_job(activation: Any) -> None:
    activation.process.data["ran"] = activation.process.data.get("ran", 0) + 1


class UndoFlow(Flow):
    start = flow.StartFunction().Next(this.work)
    work = flow.Job(quick_job).Next(this.wait)
    wait = flow.Timer(timedelta(seconds=0)).Next(this.approve)
    approve = flow.View().Permission(auto_create=True).Next(this.end)
    end = flow.End()


@pytest.mark.parametrize("undone", ["wait", "work"])
def test_a_process_whose_only_open_task_is_an_undone_job_or_timer_is_stalled(session, root, undone):
    from webflow import fire_due_timers
    from webflow.core.engine import stalled_processes

    process = UndoFlow.start.run()
    fire_due_timers(now=datetime.now(UTC) + timedelta(minutes=1))
    approve = task_of(session, process, "approve").activate()
    approve.assign(root)
    approve = task_of(session, process, "approve").activate()
    approve.prepare(data={}, user=root)
    approve.done()
    assert session.get(Process, process.id).status == STATUS.DONE
    # a manager unwinds it backwards: undo then cancel, down to the undone task
    for node in ("end", "approve", "wait", "work")[:("end", "approve", "wait", "work").index(undone) + 1]:
        task_of(session, process, node).activate().undo()
        if node != undone:
            task_of(session, process, node).activate().cancel()
    task = task_of(session, process, undone)
    assert task.status == STATUS.NEW
    assert {t.name for t in task.activate().get_available_transitions() if t.label} == {"cancel"}
    session.expire_all()
    assert session.get(Process, process.id).stalled is not None  # None: alive forever
    assert [p.id for p, why in stalled_processes(session, [UndoFlow])] == [process.id]
    assert stalled_processes(session, [UndoFlow])[0][1].transition == "undo"
    # the repairs the page names: cancel it, then Activate next on the task before it (a
    # start has none: the process is canceled instead)
    task_of(session, process, undone).activate().cancel()
    if undone == "work":
        assert [p.id for p, why in stalled_processes(session, [UndoFlow])] == [process.id]
        from webflow.core.engine import cancel_process

        cancel_process(session.get(Process, process.id))
        assert stalled_processes(session, [UndoFlow]) == []
        return
    task_of(session, process, "work").activate().activate_next()  # a new timer, scheduled
    session.expire_all()
    assert session.get(Process, process.id).stalled is None
    assert stalled_processes(session, [UndoFlow]) == []
    again = session.scalars(sa.select(Task).where(Task.process_id == process.id, Task.node_name == undone,
                                                  Task.status != STATUS.CANCELED)).one()
    assert again.status in (STATUS.DONE, STATUS.SCHEDULED)


def test_change_due_refuses_a_task_of_a_canceled_process(session):
    from webflow import TransitionNotAllowed

    process = AnswerFlow.start.run()
    task_of(session, process, "approve").activate().cancel()
    task_of(session, process, "start").activate().undo()  # the process is canceled
    assert session.get(Process, process.id).status == STATUS.CANCELED
    assert task_of(session, process, "start").status == STATUS.NEW
    before = stored_rows(session)
    with pytest.raises(TransitionNotAllowed, match="CANCELED"):
        change_due(task_of(session, process, "start"), datetime.now(UTC), priority=5)
    assert stored_rows(session) == before


@pytest.mark.parametrize("substitute,until,why", [
    ("bob", None, "active colleague"),
    (None, None, "active colleague"),
    ("user", "2030-01-01", "must be a date and time"),
    ("user", 1893456000, "must be a date and time"),
])
def test_out_of_office_refuses_a_substitute_or_end_that_is_not_one(session, users, substitute, until, why):
    from webflow.core.away import set_away
    from webflow.core.exceptions import InputRejected
    from webflow.core.models import OutOfOffice

    if substitute == "user":
        substitute = users["bob"]
    with pytest.raises(InputRejected, match=why):  # AttributeError for "bob" and the texts
        set_away(session, users["ann"], substitute, until)
    assert session.scalar(sa.select(sa.func.count()).select_from(OutOfOffice)) == 0
