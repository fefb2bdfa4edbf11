"""Flows of the job audit (tests/jobs/test_job_audit.py); imported by worker processes."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from webflow import Flow, flow, this


class SlowFireFlow(Flow):
    """A timer whose firing takes ``process.data['sleep']`` seconds (a slow step after it)."""

    start = flow.StartFunction().Next(this.wait)
    wait = flow.Timer(timedelta(minutes=1)).Next(this.slow)
    slow = flow.Handler(this.take_time).Next(this.end)
    end = flow.End()

    def take_time(self, activation: Any) -> None:
        time.sleep(float(activation.process.data.get("sleep", 0)))
        activation.process.data = {**activation.process.data, "fired": True}
