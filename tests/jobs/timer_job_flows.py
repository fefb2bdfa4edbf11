"""A flow whose timers take a moment to fire, for the worker crash test (imported by workers)."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from webflow import Flow, flow, this

#: Seconds each firing spends in its transaction: long enough to kill a worker mid-fire.
FIRE_COST = 0.1


class SlowTimerFlow(Flow):
    """Waits a minute, then takes a moment to note that it went on"""

    start = flow.StartFunction().Next(this.wait)
    wait = flow.Timer(timedelta(minutes=1)).Next(this.note)
    note = flow.Handler(this.count_run).Next(this.end)
    end = flow.End()

    def count_run(self, activation: Any) -> None:
        time.sleep(FIRE_COST)
        data = activation.process.data
        activation.process.data = {**data, "runs": data.get("runs", 0) + 1}
