"""Flows for the job tests; importable by worker processes (on their PYTHONPATH)."""

from __future__ import annotations

import os
import signal
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


# -- flows of the fault tests: each job run notes itself in a ledger file ----------------


def note_run(activation) -> None:  # type: ignore[no-untyped-def]
    """One ledger line per run: task, attempt, job id (the delivery's token), pid, time."""
    task = activation.task
    with open(activation.process.data["ledger"], "a") as ledger:
        ledger.write(f"{task.id} {task.attempts} {task.external_task_id} {os.getpid()} {time.time():.3f}\n")


def faulty(activation):  # type: ignore[no-untyped-def]
    """Note the run, then misbehave as the process data asks."""
    note_run(activation)
    data = activation.process.data
    if data.get("kill_horse"):
        os.kill(os.getpid(), signal.SIGKILL)
    if data.get("sleep"):
        time.sleep(float(data["sleep"]))
    if data.get("always_fail"):
        raise RuntimeError("this job always fails")
    # The job's own write to process.data, merged under the lock when it finishes.
    data["job_value"] = f"job-{activation.process.id}"
    data["counter"] = int(data.get("counter", 0)) + 1


class FaultFlow(Flow):
    """A job and a person's task side by side, both writing process.data."""

    start = flow.StartFunction().Next(this.split)
    split = flow.Split().Next(this.work).Next(this.review)
    work = flow.Job(faulty, retries=2, backoff=0.2, timeout=30).Next(this.join)
    review = flow.View().Next(this.join)
    join = flow.Join().Next(this.end)
    end = flow.End()


class JobOnlyFlow(Flow):
    """Just the job (the reconciler and outage tests)."""

    start = flow.StartFunction().Next(this.work)
    work = flow.Job(faulty, retries=2, backoff=0.2, timeout=30).Next(this.end)
    end = flow.End()


class BackoffFlow(Flow):
    """A job that fails every time, three retries 1, 2 and 4 seconds apart."""

    start = flow.StartFunction().Next(this.work)
    work = flow.Job(faulty, retries=3, backoff=1.0, timeout=30).Next(this.end)
    end = flow.End()


class TimeoutFlow(Flow):
    """A job that outlives its RQ timeout."""

    start = flow.StartFunction().Next(this.work)
    work = flow.Job(faulty, retries=1, backoff=0.2, timeout=1).Next(this.end)
    end = flow.End()
