"""Flows and the child-process driver for the join and cancel races
(``test_join_cancel_races``).

A module of its own on ``sys.path`` (like ``parallel_flows``), so processes started with
the ``spawn`` context import the very same flow classes as the test.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from parallel_flows import with_lock_retries
from sqlalchemy.orm import Session

from webflow import Context, Flow, TransitionNotAllowed, flow, this
from webflow.core import create_engine, use_session
from webflow.core.exceptions import PermissionDenied
from webflow.core.jobs import run_job
from webflow.models import Process, Task, User

WORKER = "race_worker"    # owns every branch task that is assigned
MANAGER = "race_manager"  # holds <label>.manage of every flow here: cancels, undoes, retries
BARRIER_TIMEOUT = 20      # seconds: a child waiting longer fails instead of hanging
#: What the engine answers when a transition is not allowed now: a refusal, not a failure.
REFUSALS = (TransitionNotAllowed, PermissionDenied)


def two_arrived(activation: Any) -> bool:
    return len(activation.arrived) >= 2


class RaceQuorumFlow(Flow):
    """Three reviewers; the join goes on after two answers and cancels the third"""

    start = flow.StartFunction().Next(this.split)
    split = flow.Split().Next(this.a).Next(this.b).Next(this.c)
    a = flow.View().Assign(username=WORKER).Next(this.join)
    b = flow.View().Assign(username=WORKER).Next(this.join)
    c = flow.View().Assign(username=WORKER).Next(this.join)
    join = flow.Join(until=two_arrived, cancel_rest=True).Next(this.end)
    end = flow.End()


class RacePairFlow(Flow):
    """Two branches into a plain join that ends the process"""

    start = flow.StartFunction().Next(this.split)
    split = flow.Split().Next(this.a).Next(this.b)
    a = flow.View().Assign(username=WORKER).Next(this.join)
    b = flow.View().Assign(username=WORKER).Next(this.join)
    join = flow.Join().Next(this.end)
    end = flow.End()


class RaceTrioFlow(Flow):
    """Three branches into a plain join and a task after it; b waits in the queue"""

    start = flow.StartFunction().Next(this.split)
    split = flow.Split().Next(this.a).Next(this.b).Next(this.c)
    a = flow.View().Assign(username=WORKER).Next(this.join)
    b = flow.View().Next(this.join)
    c = flow.View().Assign(username=WORKER).Next(this.join)
    join = flow.Join().Next(this.after)
    after = flow.View().Assign(username=WORKER).Next(this.end)
    end = flow.End()


class RaceFanFlow(Flow):
    """One reviewer per item into one join"""

    start = flow.StartFunction().Next(this.fan)
    fan = flow.Split().Each(this.review, items=lambda act: act.process.data["items"])
    review = flow.View().Assign(username=WORKER).Next(this.join)
    join = flow.Join().Next(this.end)
    end = flow.End()


class RaceNestedFanFlow(Flow):
    """A fan-out nested in one branch of a split, beside a task of its own"""

    start = flow.StartFunction().Next(this.outer)
    outer = flow.Split().Next(this.inner).Next(this.b)
    inner = flow.Split().Each(this.x, items=lambda act: act.process.data["items"])
    x = flow.View().Assign(username=WORKER).Next(this.inner_join)
    inner_join = flow.Join().Next(this.outer_join)
    b = flow.View().Assign(username=WORKER).Next(this.outer_join)
    outer_join = flow.Join().Next(this.end)
    end = flow.End()


def shaky(activation: Any) -> bool:
    """An ``until`` that fails while the process says so (the join goes to ERROR)."""
    if activation.process.data.get("shaky"):
        raise RuntimeError("until failed")
    return False


class RaceRedoFlow(Flow):
    """Two branches into a join and a task after it (undo and retry races); the join's
    ``until`` fails while process.data has ``shaky``"""

    start = flow.StartFunction().Next(this.split)
    split = flow.Split().Next(this.a).Next(this.b)
    a = flow.View().Assign(username=WORKER).Next(this.join)
    b = flow.View().Assign(username=WORKER).Next(this.join)
    join = flow.Join(until=shaky).Next(this.after)
    after = flow.View().Assign(username=WORKER).Next(this.end)
    end = flow.End()


class RaceTerminateFlow(Flow):
    """Two branches that each end the process: a's End terminates it, b's does not"""

    start = flow.StartFunction().Next(this.split)
    split = flow.Split().Next(this.a).Next(this.b)
    a = flow.View().Assign(username=WORKER).Next(this.stop)
    stop = flow.End(terminate=True)
    b = flow.View().Assign(username=WORKER).Next(this.end)
    end = flow.End()


def slow_job(activation: Any) -> None:
    """A job's work, outside the lock: it takes ``job_seconds`` (a cancel may come while
    it runs), then says it ran."""
    time.sleep(activation.process.data.get("job_seconds", 0))
    activation.process.data["job ran"] = True


class RaceJobFlow(Flow):
    """A person and a job; the first to finish fires the join, which cancels the other"""

    start = flow.StartFunction().Next(this.split)
    split = flow.Split().Next(this.approve).Next(this.auto)
    approve = flow.View().Assign(username=WORKER).Next(this.join)
    auto = flow.Job(slow_job).Next(this.join)
    join = flow.Join(wait_all=False, cancel_rest=True).Next(this.end)
    end = flow.End()


class RaceLineFlow(Flow):
    """One task in the queue between the start and the end"""

    start = flow.StartFunction().Next(this.v)
    v = flow.View().Next(this.end)
    end = flow.End()


RACE_FLOWS: tuple[type[Flow], ...] = (RaceQuorumFlow, RacePairFlow, RaceTrioFlow, RaceFanFlow,
                                      RaceNestedFanFlow, RaceRedoFlow, RaceTerminateFlow, RaceJobFlow,
                                      RaceLineFlow)

#: A step of a round: (action, id) or (action, id, seconds to wait after the barrier),
#: with action one of "complete" (a View task, by its owner), "cancel", "undo", "retry",
#: "perform" (a task, by the manager), "cancel_process" (by the manager) or "run_job" (a
#: job task, as an RQ worker runs it).
Step = tuple[Any, ...]


def get_ready(session: Session, step: Step, manager: User, worker: int) -> Callable[[], Any]:
    """Read what the step acts on and prepare it (a form filled in), before the barrier:
    after it, only the transition itself runs."""
    action, target = step[:2]
    if action == "cancel_process":
        process = session.get(Process, target)
        assert process is not None

        def cancel_process() -> None:
            with Context(user=manager):
                process.cancel()
        return cancel_process
    if action == "run_job":
        return lambda: run_job(target, session)  # what the worker did: "done", "skipped: ..."
    task = session.get(Task, target)
    assert task is not None, step
    activation = task.activate()
    if action == "complete":
        owner = task.owner
        assert owner is not None, f"task {target} is not assigned"
        activation.prepare(data={task.node_name: f"w{worker}"}, user=owner)

        def complete() -> None:
            with Context(user=owner):
                activation.done()
        return complete

    def manage() -> None:
        with Context(user=manager):
            getattr(activation, action)()
    return manage


def race(url: str, rounds: list[list[Step]], worker: int, barrier: Any, results: Any) -> None:
    """Child process: for each round, get my steps ready, wait for the others, then run
    them. Reports per round each step's outcome ("ok" or the refusal's class name) and
    its time span (``time.monotonic``, one clock for every process of the machine).
    Any other exception fails the child, and with it the test."""
    report: dict[str, Any] = {"worker": worker, "rounds": [], "lock_failed": 0}
    engine = create_engine(url)
    try:
        # Propagation off, as in web requests and workers: a failing automatic node is
        # stored in ERROR, which the test then finds.
        with Session(engine) as session, use_session(session), Context(propagate_exception=False):
            manager = session.scalar(sa.select(User).where(User.username == MANAGER))
            assert manager is not None
            for steps in rounds:
                ready = [get_ready(session, step, manager, worker) for step in steps]
                session.commit()
                outcomes = []
                barrier.wait(BARRIER_TIMEOUT)
                for step, run in zip(steps, ready, strict=True):
                    action, target, *wait = step
                    if wait:
                        time.sleep(wait[0])  # lets another child go first, still racing
                    began = time.monotonic()
                    said: list[Any] = []
                    try:
                        with_lock_retries(lambda run=run, said=said: said.append(run()), report)
                        outcome = "ok"
                    except REFUSALS as refusal:
                        session.rollback()
                        outcome = type(refusal).__name__
                    outcomes.append({"action": action, "target": target, "outcome": outcome,
                                     "said": said[0] if said else None,
                                     "span": (began, time.monotonic())})
                report["rounds"].append(outcomes)
        results.put(("ok", report))
    except BaseException:
        barrier.abort()  # the others fail fast instead of waiting for me
        results.put(("error", traceback.format_exc()))
    finally:
        engine.dispose()
