"""Background jobs: ``flow.Job(func)`` runs ``func(activation)`` on a worker."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from .. import signals
from ..activation import Activation, next_tasks_missing, region_join_not_fired
from ..exceptions import FlowRuntimeError, storable_text
from ..flow import Node
from ..fsm import transition
from ..models import utcnow
from ..permissions import managing
from ..status import STATUS
from ..transaction import on_commit, unit_of_work
from .timer import TimeFields

JOB_RETRY_SOURCES = [STATUS.SCHEDULED, STATUS.STARTED, STATUS.ERROR]


class AbstractJobActivation(Activation):
    """NEW -> ASSIGNED (job id) -> SCHEDULED (enqueued after commit) -> STARTED -> DONE."""

    automatic = True

    def run_automatic(self) -> None:
        self.assign()
        self.schedule()

    def job_id(self) -> str:
        """The task's first job id; every later delivery gets one of its own."""
        return f"webflow-task-{self.task.id}"

    def next_job_id(self) -> str:
        """A fresh job id for the next delivery: the fencing token of that delivery (a
        delivery whose id is no longer the task's ``external_task_id`` does nothing)."""
        return f"{self.job_id()}-a{self.task.attempts + 1}-{secrets.token_hex(3)}"

    def run_async(self, delay: float = 0) -> None:
        """Hand the task to the job queue once the transaction commits."""
        from ..jobs import dispatch

        task_id, job_id, node = self.task.id, self.task.external_task_id or self.job_id(), self.flow_task
        on_commit(lambda: dispatch(task_id, job_id, node.queue, delay, node.timeout))

    def attempts_left(self) -> bool:
        """True while the started attempts have not used up ``1 + retries``."""
        return bool(self.task.attempts <= self.flow_task.retries)

    def backoff(self) -> float:
        """Seconds before the next attempt: ``backoff * 2**(attempts - 1)``."""
        return float(self.flow_task.backoff * 2 ** max(self.task.attempts - 1, 0))

    def end_attempt(self, reason: str) -> str:
        """The started attempt ended without success (raised, timed out, its work horse or
        worker died): queue the next one after its backoff, or ERROR once none is left."""
        if self.attempts_left():
            self.retry(delay=self.backoff(), reason=f"attempt {self.task.attempts} failed: {reason}")
            return "retrying"
        self.error(f"attempt {self.task.attempts} failed, no retries left: {reason}")
        return "error"

    @transition(source=STATUS.NEW, target=STATUS.ASSIGNED)
    def assign(self) -> None:
        """Give the task its job id."""
        self.session.flush()
        self.task.external_task_id = self.job_id()
        self.task.assigned = utcnow()

    @transition(source=STATUS.ASSIGNED, target=[STATUS.SCHEDULED, STATUS.ERROR])
    def schedule(self) -> None:
        """Put the task on the queue (for real once the transaction commits)."""
        self.set_status(STATUS.SCHEDULED)
        self.run_async()

    @transition(source=STATUS.SCHEDULED, target=STATUS.STARTED)
    def start(self) -> None:
        """A worker took the task."""
        self.task.started = utcnow()
        self.task.attempts += 1
        self.send(signals.task_started)

    @transition(source=STATUS.STARTED, target=STATUS.DONE)
    def done(self) -> None:
        """The job succeeded: finish and continue the flow."""
        self.task.finished = utcnow()
        self.set_status(STATUS.DONE)
        self.send(signals.task_finished)
        self._activate_next()

    @transition(source=STATUS.STARTED, target=STATUS.ERROR)
    def error(self, comments: str = "") -> None:
        """The job failed: keep the traceback."""
        # The job's own exception text may hold NUL or lone surrogates, which the commit
        # would refuse (the task then stayed STARTED): kept as escapes.
        self.task.comments = storable_text(comments)
        self.set_status(STATUS.ERROR)
        self.send(signals.task_failed)

    @transition(source=JOB_RETRY_SOURCES, target=[STATUS.SCHEDULED, STATUS.ERROR], permission=managing,
                label="Retry")
    def retry(self, delay: float = 0, enqueue: bool = True, reason: str | None = None) -> None:
        """Schedule the job again, under a job id of its own, ``delay`` seconds from now.

        From ERROR (an administrator) this gives the job one more attempt. ``enqueue=False``
        keeps the job id: the delivery that carries it runs the job (``restart(delivery)``)."""
        if reason is not None:
            self.task.comments = storable_text(reason)  # see error()
        self.set_status(STATUS.SCHEDULED)
        if enqueue:
            self.task.external_task_id = self.next_job_id()
            self.task.assigned = utcnow()  # when the current job id was given (see reconcile)
            self.run_async(delay)

    def restart(self, delivery: str | None = None) -> None:
        """Restart the task execution (after an error, or of a job that looks stuck).

        Without ``delivery`` (an administrator, or code): ``retry``, the task is queued
        again under a job id of its own (after the commit), for one more attempt; a copy
        still running has its result discarded. With ``delivery`` = the task's current job
        id, found STARTED (the queue ran that very job again after its run died): retry
        then start here, both drawn edges, and that delivery runs the job as a new attempt."""
        with unit_of_work(self.session, self.task.process_id):
            if (delivery is not None and delivery == self.task.external_task_id
                    and self.get_status() == STATUS.STARTED):
                self.retry(enqueue=False)
                self.start()
            else:
                self.retry()

    @transition(source=STATUS.DONE, conditions=[next_tasks_missing, region_join_not_fired],
                permission=managing, label="Activate next")
    def activate_next(self) -> None:
        """Activate the outgoing nodes again."""
        self._activate_next()

    undo = Activation.undo.redeclare(
        source=[STATUS.SCHEDULED, STATUS.STARTED, STATUS.ERROR, STATUS.DONE], target=STATUS.NEW
    )
    cancel = Activation.cancel.redeclare(source=[STATUS.NEW, STATUS.ASSIGNED], target=STATUS.CANCELED)


class JobActivation(AbstractJobActivation):
    pass


class Job(TimeFields, Node):
    """``flow.Job(func, retries=0, backoff=2.0, timeout=600, queue="default")``.

    ``func(activation)`` runs on a worker outside the process lock. What it changes in
    ``activation.process.data`` (or returns as a dict) is merged into the process under
    the lock when the task finishes. Each run is an attempt, however it ends (raised,
    timed out, its work horse or worker died); a failed attempt is retried ``retries``
    times, ``backoff * 2**n`` seconds apart, then the task goes to ERROR.
    """

    task_type = "JOB"
    activation_class = JobActivation

    def __init__(
        self,
        func: Callable[[Any], Any],
        retries: int = 0,
        backoff: float = 2.0,
        timeout: int = 600,
        queue: str = "default",
    ) -> None:
        super().__init__()
        self.func = func
        self.retries = retries
        self.backoff = backoff
        self.timeout = timeout
        self.queue = queue

    def resolve(self, flow_class: Any) -> None:
        super().resolve(flow_class)
        self._func = flow_class.resolve_callable(self.func, self)
        # The worker compares, multiplies and hands these to RQ: a wrong one failed there.
        where = f"{flow_class.__name__}.{self.name}: Job()"
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise FlowRuntimeError(f"{where} retries= takes a whole number of 0 or more, "
                                   f"not {self.retries!r:.40}")
        if isinstance(self.timeout, bool) or not isinstance(self.timeout, int) or self.timeout <= 0:
            raise FlowRuntimeError(f"{where} timeout= takes a whole number of seconds above 0, "
                                   f"not {self.timeout!r:.40}")
        if (isinstance(self.backoff, bool) or not isinstance(self.backoff, int | float)
                or not 0 <= self.backoff < float("inf")):
            raise FlowRuntimeError(f"{where} backoff= takes seconds, 0 or more, not {self.backoff!r:.40}")
        if not isinstance(self.queue, str) or not self.queue.strip():
            raise FlowRuntimeError(f"{where} queue= takes a queue name, not {self.queue!r:.40}")
