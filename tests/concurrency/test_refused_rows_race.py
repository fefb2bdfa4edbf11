"""Handlers in several OS processes add the same unique row at once (web policy).

The row is written inside the handler's savepoint before the handler ends
(``Guard.settle``), so the database's refusal is that handler's failure: one process per
name keeps the row and finishes, the others have their handler in ERROR with the reason,
and no start raises or loses its process. Before, the row went with the commit and the
losing process's whole call failed."""

from __future__ import annotations

import sqlalchemy as sa
from parallel_flows import start_recording

from webflow import STATUS
from webflow.models import Group, Process, Task

WORKERS = 3
NAMES = [f"team {n}" for n in range(6)]


def test_the_same_unique_row_from_several_processes_fails_all_handlers_but_one(db_url, session, children):  # type: ignore[no-untyped-def]
    reports = children.run(start_recording, lambda n, barrier, results: (db_url, NAMES, n, barrier, results),
                           WORKERS)
    assert [r["raised"] for r in reports] == [[]] * WORKERS
    session.rollback()
    assert sorted(session.scalars(sa.select(Group.name))) == sorted(NAMES)  # each once
    assert session.scalar(sa.select(sa.func.count()).select_from(Process)) == len(NAMES) * WORKERS
    records = session.execute(sa.select(Task.status, Task.comments, Process.data, Process.status)
                              .join(Process, Task.process_id == Process.id)
                              .where(Task.node_name == "record")).all()
    assert len(records) == len(NAMES) * WORKERS
    for name in NAMES:
        mine = [r for r in records if r.data["group"] == name]
        assert sorted(r.status.value for r in mine) == ["DONE"] + ["ERROR"] * (WORKERS - 1), name
        assert all("team" in (r.comments or "") for r in mine if r.status == STATUS.ERROR)
        # the processes whose handler failed wait, open, for a retry
        assert sorted(r[3].value for r in mine) == ["DONE"] + ["NEW"] * (WORKERS - 1)
