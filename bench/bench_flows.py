"""Flows for the benchmarks (importable by worker processes: bench/ is on their path)."""

from __future__ import annotations

from webflow import Flow, flow, this


def noop(activation):  # type: ignore[no-untyped-def]
    """A job that does nothing: what is measured is the machinery around it."""


def empty_rq_job() -> None:
    """A plain RQ job with no webflow in it: the RQ overhead baseline."""


class JobBenchFlow(Flow):
    """Job benchmark"""

    start = flow.StartFunction().Next(this.work)
    work = flow.Job(noop).Next(this.wait)
    wait = flow.Function(lambda activation: None).Next(this.end)
    end = flow.End()
