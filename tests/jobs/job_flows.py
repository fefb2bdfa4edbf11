"""Flows for the job tests; importable by worker processes (on their PYTHONPATH)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from webflow import Flow, flow, this


def work(activation):  # type: ignore[no-untyped-def]
    """The job: optionally note its pid, sleep, fail the first N attempts."""
    data = activation.process.data
    if data.get("pid_file"):
        Path(data["pid_file"]).write_text(str(os.getpid()))
    if data.get("sleep"):
        time.sleep(float(data["sleep"]))
    if activation.task.attempts <= int(data.get("fail_times", 0)):
        raise RuntimeError(f"job failed on attempt {activation.task.attempts}")
    if data.get("always_fail") and not Path(data["always_fail"]).exists():
        raise RuntimeError("the flag file is missing")


def after(activation):  # type: ignore[no-untyped-def]
    if activation.process.data.get("break_after"):
        raise ValueError("the handler after the job broke")


class JobFlow(Flow):
    """Job test flow"""

    start = flow.StartFunction().Next(this.work)
    work = flow.Job(work, retries=2, backoff=0.2, timeout=60).Next(this.after)
    after = flow.Handler(after).Next(this.end)
    end = flow.End()
