"""process.data cannot be overwritten unseen: in-place changes are saved, a write based
on a stale read is refused, a job's changes are merged under the lock."""

from __future__ import annotations

from datetime import UTC
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from webflow.core import STATUS, Flow, flow, this
from webflow.core.exceptions import StaleData
from webflow.core.jobs import apply_patch, data_patch
from webflow.core.models import Process, Task


def tally(activation: Any) -> dict[str, Any]:
    """A job that changes the data in place and returns more."""
    activation.process.data["seen"] = activation.process.data.get("seen", 0) + 1
    activation.process.data.pop("drop_me", None)
    activation.task.data["by"] = "tally"
    return {"result": "ok"}


class DataFlow(Flow):
    start = flow.StartFunction().Next(this.tally)
    tally = flow.Job(tally).Next(this.end)
    end = flow.End()


def test_an_in_place_change_of_process_data_is_saved(session: Session, engine: sa.Engine) -> None:
    process = DataFlow.start.run(keep=1)
    process.data["added"] = [1, 2]
    process.data["keep"] = 2
    session.commit()
    with Session(engine) as other:
        assert other.get(Process, process.id).data == {"keep": 2, "added": [1, 2], "seen": 1, "result": "ok"}


def test_a_write_based_on_a_stale_read_is_refused_and_changes_nothing(session: Session,
                                                                      engine: sa.Engine) -> None:
    process = DataFlow.start.run(amount=1)
    version = process.version
    # Keep what was read past the end of the transaction, as a form shown earlier does.
    session.expire_on_commit = False
    session.commit()
    with Session(engine) as other:  # someone else changes the process meanwhile
        row = other.get(Process, process.id)
        row.data = {**row.data, "amount": 2, "approved": True}
        other.commit()
    process.data = {**process.data, "amount": 3}  # based on what this session read
    with pytest.raises(StaleDataError):
        session.commit()
    session.rollback()
    session.expire_on_commit = True
    assert process.data["amount"] == 2 and process.data["approved"] is True
    assert process.version == version + 1


def test_a_jobs_changes_and_returned_dict_are_merged_when_it_finishes(session: Session) -> None:
    process = DataFlow.start.run(drop_me=True, seen=4)
    session.expire_all()
    job = process.get_task(DataFlow.tally)
    assert job.status == STATUS.DONE
    assert process.data == {"seen": 5, "result": "ok"}
    assert job.data == {"by": "tally"}
    assert process.status == STATUS.DONE


def test_a_patch_over_a_key_someone_else_changed_is_refused_loudly() -> None:
    read = {"counter": 1, "note": "a"}
    patch = data_patch(read, {"counter": 2, "note": "a", "new": True}, {"extra": 1})
    assert patch.keys() == {"counter", "new", "extra"}
    # Others changed another key, or the same key to the same value: merged.
    assert apply_patch("d", {"counter": 1, "note": "b"}, patch) == {
        "counter": 2, "note": "b", "new": True, "extra": 1}
    assert apply_patch("d", {"counter": 2, "note": "a"}, patch)["counter"] == 2
    with pytest.raises(StaleData, match=r"d\['counter'\] changed while the job ran"):
        apply_patch("d", {"counter": 7, "note": "a"}, patch)
    assert apply_patch("d", {"gone": 1}, data_patch({"gone": 1}, {})) == {}


def test_timestamps_read_back_as_aware_utc_on_every_database(session: Session, engine: sa.Engine) -> None:
    process = DataFlow.start.run()
    with Session(engine) as other:
        task = other.scalars(sa.select(Task).where(Task.process_id == process.id)).first()
        assert task.created.tzinfo is not None and task.created.utcoffset() == UTC.utcoffset(None)
        assert other.get(Process, process.id).finished.tzinfo is not None
