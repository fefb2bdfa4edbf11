"""The two flows the engine benchmarks compare with viewflow (importable by path).

``HumanFlow``: StartFunction -> View -> End, driven as three transactions (start; assign;
prepare + done). ``AutoFlow``: StartFunction -> Split -> 2 Handlers -> Join -> If ->
Handler -> End, run through in the call that starts it."""

from __future__ import annotations

from typing import Any

from webflow import Flow, flow, this


def touch(activation: Any) -> None:
    """What a small real handler does: write to process.data."""
    activation.process.data = {**activation.process.data, activation.task.node_name: True}


class HumanFlow(Flow):
    """Human path"""

    flow_label = "bench_human"
    start = flow.StartFunction().Next(this.work)
    work = flow.View().Permission(auto_create=True).Next(this.end)
    end = flow.End()


class AutoFlow(Flow):
    """Automatic path"""

    flow_label = "bench_auto"
    start = flow.StartFunction().Next(this.split)
    split = flow.Split().Next(this.left).Next(this.right)
    left = flow.Handler(touch).Next(this.join)
    right = flow.Handler(touch).Next(this.join)
    join = flow.Join().Next(this.check)
    check = flow.If(lambda act: act.process.data.get("left", False)).Then(this.last).Else(this.end)
    last = flow.Handler(touch).Next(this.end)
    end = flow.End()
