"""The automatic path of the side-by-side benchmark (bench/path_flows.AutoFlow's shape), for
the tests that count what it costs and compare the ways of writing its rows."""

from __future__ import annotations

from typing import Any

from webflow import Flow, flow, this


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
