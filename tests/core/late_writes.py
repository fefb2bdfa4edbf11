"""What the tests of the engine's late writes share (ids before the INSERT, UPDATEs with
the last statement): the automatic path of the side-by-side benchmark
(bench/path_flows.AutoFlow's shape), and sessions on tables built anew."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from webflow import Flow, flow, this
from webflow.core import Base, create_engine, use_session
from webflow.core.models import UTCDateTime


@contextmanager
def rebuilt_session(url: str) -> Iterator[Session]:
    """A session (the engine's current one) on the database's tables dropped and created
    again: ids start at 1, so two runs of the same work compare row by row, ids included."""
    engine = create_engine(url)
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    try:
        with Session(engine) as session, use_session(session):
            yield session
    finally:
        engine.dispose()


def stored_time_formats(session: Session) -> set[str]:
    """How the tables store every timestamp, digits left out: SQLite keeps text, which SQL
    compares as text, so every write must store the same shape ("9999-99-99 99:99:99.999999")."""
    shapes = set()
    for table in Base.metadata.sorted_tables:
        for column in table.columns:
            if isinstance(column.type, UTCDateTime):
                query = f'SELECT "{column.name}" FROM "{table.name}" WHERE "{column.name}" IS NOT NULL'
                values = session.connection().exec_driver_sql(query)
                shapes |= {re.sub(r"\d", "9", as_text(value)) for (value,) in values}
    return shapes


def as_text(value: object) -> str:
    """SQLite hands back the stored text; PostgreSQL a datetime, whose str() drops the
    microseconds when they happen to be 0 (about one value in a million): write them always."""
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="microseconds")
    return str(value)


def touch(activation: Any) -> None:
    """A small handler's work: a change of process.data in place."""
    activation.process.data[activation.task.node_name] = True


class AutomaticFlow(Flow):
    """Automatic path"""

    start = flow.StartFunction().Next(this.split)
    split = flow.Split().Next(this.left).Next(this.right)
    left = flow.Handler(touch).Next(this.join)
    right = flow.Handler(touch).Next(this.join)
    join = flow.Join().Next(this.check)
    check = flow.If(lambda act: act.process.data.get("left", False)).Then(this.last).Else(this.end)
    last = flow.Handler(touch).Next(this.end)
    end = flow.End()
