"""What the tests of the engine's late writes share (ids before the INSERT, UPDATEs with
the last statement): the automatic path of the side-by-side benchmark
(bench/path_flows.AutoFlow's shape), and sessions on tables built anew."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.orm import Session

from webflow import Flow, flow, this
from webflow.core import Base, create_engine, use_session


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
