"""Storing why a node failed never fails the transaction: a NUL character in the error's
message (PostgreSQL refuses NUL in text; the whole request failed with a DataError there)
is stored written out as ``\\x00``. Both databases (``db_url``)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from webflow import STATUS, Context, Flow, flow, this
from webflow.core.models import Process, TaskEvent


def broken(activation: Any) -> None:
    raise RuntimeError("the reader sent b\x00ytes")


def broken_assign(activation: Any) -> Any:
    raise RuntimeError("no owner for \x00")


class NulFlow(Flow):
    """A handler and an .Assign callable that fail with a NUL in the message"""

    start = flow.StartFunction().Next(this.split)
    split = flow.Split().Next(this.handler).Next(this.work)
    handler = flow.Handler(broken).Next(this.join)
    work = flow.View().Permission(auto_create=True).Assign(broken_assign).Next(this.join)
    join = flow.Join().Next(this.end)
    end = flow.End()


def test_an_error_with_a_nul_in_its_message_is_stored(session: Session, engine: sa.Engine) -> None:
    with Context(propagate_exception=False):
        process_id = NulFlow.start.run(kept=True).id
    session.commit()
    with Session(engine) as other:
        process = other.get(Process, process_id)
        assert process is not None and process.data == {"kept": True}
        handler = process.get_task(NulFlow.handler)
        assert handler.status == STATUS.ERROR
        assert "the reader sent b\\x00ytes" in (handler.comments or "")
        work = process.get_task(NulFlow.work)
        assert work.status == STATUS.NEW and work.owner_id is None  # the queue, as documented
        logged = other.scalars(sa.select(TaskEvent.comments).where(
            TaskEvent.task_id == work.id, TaskEvent.transition == "error")).all()
        assert any("no owner for \\x00" in (text or "") for text in logged)


class LoudSummaryFlow(Flow):
    """A summary of the flow's own that returns what the column cannot hold"""

    start = flow.StartFunction().Next(this.work)
    work = flow.View().Permission(auto_create=True).Next(this.end)
    end = flow.End()

    def summary(self, process: Any) -> str:
        return f"note: {process.data.get('note', '')}\x00" + "x" * 600


def test_a_summary_with_a_nul_or_too_long_is_stored_written_out_and_cut(session: Session,
                                                                         engine: sa.Engine) -> None:
    """Before, the start failed at its commit on PostgreSQL (NUL, and longer than the
    column); SQLite stored it as it was."""
    with Context(propagate_exception=False):
        process_id = LoudSummaryFlow.start.run(note="hi").id
    with Session(engine) as other:
        summary = other.get(Process, process_id).summary  # type: ignore[union-attr]
    assert summary.startswith("note: hi\\x00xxx") and len(summary) == 400
