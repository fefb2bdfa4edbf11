"""A caller that reads and then writes, while the engine writes from other OS processes.

What the web app does when it saves a form outside the engine (a saved filter, settings):
read the user and what they have, then INSERT or UPDATE and commit, in one session
transaction. On SQLite such a transaction used to begin with a deferred BEGIN at its first
read; when another process committed before its first write, the write could not take the
lock ("database is locked": a 500 for the person saving). Reads now run in autocommit and
the first write begins with ``BEGIN IMMEDIATE``, so it waits its turn instead. PostgreSQL
(read committed) never had the problem; the test runs on both."""

from __future__ import annotations

import sqlalchemy as sa
from parallel_flows import WORKER, read_then_write

from webflow import STATUS
from webflow.models import Process, SavedFilter, User

WORKERS = 4  # two start processes, two save filters
ROUNDS = 40


def test_a_read_then_write_waits_for_the_engine_instead_of_failing(db_url, session, children):  # type: ignore[no-untyped-def]
    session.add(User(username=WORKER))
    session.commit()
    reports = children.run(read_then_write, lambda n, barrier, results: (db_url, ROUNDS, n, barrier, results),
                           WORKERS)
    errors = [error for report in reports for error in report["errors"]]
    assert errors == [], f"{len(errors)} of {ROUNDS * WORKERS // 2} saves failed: {errors[:3]}"
    assert sum(report["saved"] for report in reports) == ROUNDS * WORKERS // 2
    assert sum(report["started"] for report in reports) == ROUNDS * WORKERS // 2

    session.rollback()
    names = session.scalars(sa.select(SavedFilter.name)).all()
    assert sorted(names) == sorted(f"w{w} n{n}" for w in range(1, WORKERS, 2) for n in range(ROUNDS))
    statuses = session.scalars(sa.select(Process.status)).all()
    assert len(statuses) == ROUNDS * WORKERS // 2 and set(statuses) == {STATUS.DONE}
