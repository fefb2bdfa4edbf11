"""SQLite: reads outside a unit of work run in autocommit; the first write begins.

Each read sees the latest commit (as PostgreSQL's read committed does) and holds no read
transaction open between statements, so a session that has only read blocks no WAL
checkpoint and has no snapshot to end before it writes. The first write of a session
transaction takes the write lock (``BEGIN IMMEDIATE``) and everything up to the commit is
one transaction: a failed write takes back the ones before it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from webflow.core import create_engine
from webflow.core.sqlcount import SQLCounter
from webflow.models import Base, SavedFilter, User


@pytest.fixture
def engine(tmp_path) -> Iterator[sa.Engine]:  # type: ignore[no-untyped-def]
    engine = create_engine(f"sqlite:///{tmp_path / 'reads.sqlite'}")
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        session.add(User(username="ann"))
        session.commit()
    yield engine
    engine.dispose()


def test_reads_see_each_commit_and_hold_no_transaction(engine: sa.Engine) -> None:
    with Session(engine) as reader, Session(engine) as writer:
        ann = reader.scalar(sa.select(User).where(User.username == "ann"))
        assert ann is not None
        writer.add(User(username="bob"))
        writer.commit()
        # the same session transaction, a later statement: it sees bob
        assert reader.scalars(sa.select(User.username).order_by(User.username)).all() == ["ann", "bob"]
        # nothing held open: a checkpoint can reset the whole log (busy = 0)
        with engine.connect() as other:
            busy, _, _ = other.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()
        assert busy == 0
        assert reader.connection().connection.dbapi_connection.in_transaction is False


def test_the_first_write_takes_the_write_lock_and_the_rest_is_one_transaction(engine: sa.Engine) -> None:
    counter = SQLCounter(engine)
    try:
        with Session(engine) as session:
            ann = session.scalar(sa.select(User).where(User.username == "ann"))
            assert ann is not None
            counter.start()
            session.add(SavedFilter(user_id=ann.id, list_name="inbox", name="mine", query="q=x"))
            session.flush()
            ann.timezone = "Europe/Paris"
            session.flush()
            session.execute(sa.insert(SavedFilter).values(user_id=ann.id, list_name="inbox", name="mine",
                                                          query="again"))  # the same name: refused
            pytest.fail("the duplicate name was stored")
    except sa.exc.IntegrityError:
        pass
    finally:
        statements = list(counter.statements)
        counter.close()
    assert statements[0] == "BEGIN IMMEDIATE"
    assert sum(s.startswith("BEGIN") for s in statements) == 1
    with Session(engine) as session:  # the failed statement took the earlier writes back
        assert session.scalars(sa.select(SavedFilter)).all() == []
        assert session.scalar(sa.select(User.timezone).where(User.username == "ann")) is None


def test_a_select_with_ctes_reads_in_autocommit_too(engine: sa.Engine) -> None:
    users = sa.select(User.id).cte("users")
    with Session(engine) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(users)) == 1
        assert session.connection().connection.dbapi_connection.in_transaction is False
