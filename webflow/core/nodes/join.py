"""The parallel ``Join``: waits for every branch of its split, then fires once."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from .. import signals
from .. import token as tokens
from ..activation import Activation, is_saved, link_tasks, next_tasks_missing, region_join_not_fired
from ..context import get_session, propagate_exception
from ..exceptions import FlowRuntimeError
from ..flow import Node
from ..fsm import transition
from ..models import Task, as_utc, task_link, utcnow
from ..permissions import managing
from ..queries import as_tasks, count_unfinished, process_tasks
from ..status import FINISHED, STATUS
from ..transaction import current_unit_of_work

# The tasks linked before a join, as plain rows (JoinActivation._previous).
_PREVIOUS_ROWS = (sa.select(Task.id, Task.token, Task.status)
                  .join(task_link, task_link.c.previous_id == Task.id)
                  .where(task_link.c.task_id == sa.bindparam("join_id")))


class JoinActivation(Activation):
    """One join task per split: the first branch to arrive creates and starts it, and
    the arrival that finds no branch task unfinished completes it. The process lock
    serializes arrivals, so it fires exactly once."""

    automatic = True

    def __init__(self, task: Task) -> None:
        super().__init__(task)
        self._absorbed = False
        self._arrival: Task | None = None  # the task whose arrival this activation handles
        self._until_failed: Exception | None = None  # see fire_if_done

    @classmethod
    def create(cls, flow_task: Any, prev_activation: Any, token: str) -> Activation:
        session = get_session()
        # A fan-out over an empty list comes here from the split itself, on the split's
        # own token (no branch): the join continues on that token. Anything else arrives
        # on a branch token and the join continues on the token the split was on.
        straight_from_split = (prev_activation.task.flow_task_type == "SPLIT"
                               and token == prev_activation.task.token)
        join_token = tokens.base(token) if tokens.is_branch(token) and not straight_from_split else token
        existing = cls._waiting_joins(session, flow_task, prev_activation.process, join_token)
        if len(existing) > 1:
            raise FlowRuntimeError(f"more than one active {flow_task.name} join in the process")
        if existing:
            task = existing[0]
            link_tasks(prev_activation.task, task)
            activation = cls(task)
            activation._arrival = prev_activation.task
            if task.status == STATUS.NEW:
                # A join a manager undid waits again from this arrival on (the engine's
                # start), rather than a second join task beside it that nothing ends.
                activation.start()
            return activation
        if tokens.is_branch(token) and not straight_from_split:
            fired = cls._fired_join(flow_task, prev_activation, join_token, tokens.split_prefix(token))
            if fired is not None:
                # The join already fired for this split (a discriminator, an until that
                # held, or a manager's perform): later branches end here, absorbed; a
                # join never fires twice.
                link_tasks(prev_activation.task, fired)
                activation = cls(fired)
                activation._absorbed = True
                return activation
        created = super().create(flow_task, prev_activation, join_token)
        if tokens.is_branch(token) and not straight_from_split:
            cls._carry_over(created.task, flow_task, prev_activation, join_token, tokens.split_prefix(token))
        created.start()  # type: ignore[attr-defined]  # a JoinActivation: this class's create
        return created

    @staticmethod
    def _carry_over(join: Task, flow_task: Any, prev_activation: Any, join_token: str, prefix: str) -> None:
        """Link to a new join the branches that reached a canceled one of the same split
        and are still DONE: a manager canceled the waiting join to take a branch back (a
        branch is undone only once what it led to is canceled), and the branch redone
        starts this join. ``arrived`` counts them with it, as it counted them before."""
        session = get_session()
        if not JoinActivation._joins_at(session, flow_task, prev_activation.process, join_token,
                                        STATUS.CANCELED):
            return  # the common case, answered from memory: no join canceled here
        canceled = sa.orm.aliased(Task)
        uow = current_unit_of_work()
        if uow is not None:
            uow.write_links()
        reached = session.scalars(
            sa.select(Task)
            .join(task_link, task_link.c.previous_id == Task.id)
            .join(canceled, canceled.id == task_link.c.task_id)
            .where(
                canceled.process_id == prev_activation.task.process_id,
                canceled.node_name == flow_task.name,
                canceled.token == join_token,
                canceled.status == STATUS.CANCELED,
                Task.status == STATUS.DONE,
                Task.token.startswith(prefix, autoescape=True),
            )
            .order_by(Task.id)
        ).unique().all()
        for task in reached:
            if task is not prev_activation.task:
                link_tasks(task, join)

    @staticmethod
    def _waiting_joins(session: Any, flow_task: Any, process: Any, join_token: str) -> list[Task]:
        """The join tasks of the node for the token that a branch arriving now joins (from
        the process's task list): STARTED; NEW again after an undo; in ERROR (a failed
        ``until`` or next step), where the arrival waits for a manager's retry instead of
        starting a second join."""
        return as_tasks(session, JoinActivation._joins_at(session, flow_task, process, join_token,
                                                          STATUS.STARTED, STATUS.NEW, STATUS.ERROR))

    @staticmethod
    def _joins_at(session: Any, flow_task: Any, process: Any, join_token: str, *statuses: STATUS) -> list[Any]:
        """The node's join tasks on the token in these statuses, from the process's task list
        the transaction holds (no statement)."""
        return [task for task in process_tasks(session, process)
                if task.node_name == flow_task.name and task.token == join_token and task.status in statuses]

    @staticmethod
    def _fired_join(flow_task: Any, prev_activation: Any, join_token: str, prefix: str) -> Task | None:
        session = get_session()
        if not JoinActivation._joins_at(session, flow_task, prev_activation.process, join_token, STATUS.DONE):
            return None  # the common case, answered from memory: no join fired here yet
        previous = sa.orm.aliased(Task)
        uow = current_unit_of_work()
        if uow is not None:
            uow.write_links()
        return get_session().scalars(
            sa.select(Task)
            .join(task_link, task_link.c.task_id == Task.id)
            .join(previous, previous.id == task_link.c.previous_id)
            .where(
                Task.process_id == prev_activation.task.process_id,
                Task.node_name == flow_task.name,
                Task.token == join_token,
                Task.status == STATUS.DONE,
                previous.token.startswith(prefix, autoescape=True),
            )
            .limit(1)
        ).first()

    def run_automatic(self) -> None:
        # An absorbed late branch of a discriminator join ends here; the transition that
        # brought it settles the process (see engine.settle).
        if not self._absorbed:
            self.fire_if_done()

    def fire_if_done(self) -> None:
        """Complete the join if it is STARTED and may fire. A failing ``until`` is the
        join's failure, not the arriving branch's: under the web policy the join is
        stored in ERROR with the traceback (its ``done``, which raises it again inside
        its guard), and the person who finished the branch sees their work done."""
        if self.get_status() != STATUS.STARTED:
            return
        if self._ready():
            self.done()

    def _ready(self) -> bool:
        """``is_done``; a failing ``until`` under the web policy is kept for ``_complete``
        to raise inside its guard (the join goes to ERROR), and counts as ready."""
        try:
            return self.is_done()
        except Exception as failure:
            if propagate_exception():
                raise
            self._until_failed = failure
            return True

    def _previous(self) -> list[Any]:
        """The tasks linked before this join: what the transaction holds (its own list, or
        the session's loaded objects) and plain rows of id, token and status for
        the rest. A join at the end of a fan-out over thousands of items has thousands;
        loading them as objects at every arrival made finishing a fan-out quadratic."""
        loaded = sa.inspect(self.task).dict.get("previous")
        if loaded is not None:
            previous = list(loaded)  # link_tasks keeps a loaded list true in memory
        else:
            previous = []
            uow = current_unit_of_work()
            if is_saved(self.task):
                # Read once per transaction: the arrival and settle both ask. The rows are
                # forgotten when links are written (UnitOfWork.write_links), pending ones
                # are added below.
                key = ("links", "previous", self.task.id)
                rows = uow.cache.get(key) if uow is not None else None
                if rows is None:
                    with self.session.no_autoflush:
                        rows = self.session.execute(_PREVIOUS_ROWS, {"join_id": self.task.id}).all()
                    if uow is not None:
                        uow.cache[key] = rows
                identity = self.session.identity_map
                for row in rows:
                    held = identity.get((Task, (row.id,), None))
                    # A loaded object carries the transaction's changes (a branch canceled).
                    previous.append(held if held is not None and "status" in held.__dict__ else row)
            pending = [p for p, joined in uow.links if joined is self.task] if uow is not None else []
            known = {p.id for p in previous}
            for task in [*pending, self._arrival]:  # link rows not written yet
                if task is not None and (task.id is None or task.id not in known):
                    previous.append(task)
                    known.add(task.id)
        return previous

    def split_prefix(self) -> str | None:
        """The token prefix of the branches this join waits for."""
        canceled = STATUS.CANCELED
        prefixes = tokens.split_prefixes((prev.token for prev in self._previous() if prev.status != canceled),
                                         self.task.token)
        if len(prefixes) > 1:
            raise FlowRuntimeError(
                f"join {self.describe()} has branches of different splits: {sorted(prefixes)}"
            )
        return next(iter(prefixes), None)

    def is_done(self) -> bool:
        """True when the join may fire: its ``until`` holds, or (without ``until``, or with
        one that never held) no task of the split's branches is outside DONE/CANCELED."""
        if not self.flow_task.wait_all:
            return True
        prefix = self.split_prefix()
        if prefix is None:
            return True
        until = self.flow_task._until
        if until is not None and self.arrived:
            self.ensure_ids()  # the flow's callable sees saved rows, as every node callable does
            if until(self):
                return True
        return self._region_finished(prefix)

    def _region_finished(self, prefix: str | None = None) -> bool:
        """True when no task of the split's branches (``prefix``: the split's, when the caller
        has it already) is outside DONE/CANCELED (the join fires then, whatever its
        ``until`` would say)."""
        prefix = prefix or self.split_prefix()
        return prefix is None or not count_unfinished(self.session, self.process, token_prefix=prefix)

    def _region(self) -> list[Task]:
        prefix = self.split_prefix()
        if prefix is None:
            return []
        return as_tasks(self.session, [t for t in process_tasks(self.session, self.process)
                                       if t.token.startswith(prefix)])

    @property
    def arrived(self) -> list[Task]:
        """The branch tasks that arrived at this join, DONE, in the order they finished
        (none when a fan-out had no item and its split came straight here)."""
        prefix = self.split_prefix()
        if prefix is None:
            return []
        done = as_tasks(self.session, [t for t in self._previous()
                                       if t.status == STATUS.DONE and t.token.startswith(prefix)])
        return sorted(done, key=lambda t: (t.finished is None, as_utc(t.finished), t.id or 0))

    @property
    def branches(self) -> list[Task]:
        """The first task of every branch of the join's split (fan-out: one per item): the
        tasks the split task led to, the newest on each branch token (a split undone and
        performed again starts its branches anew on the same tokens; the first run's
        canceled ones are not branches of this run)."""
        prefix = self.split_prefix()
        if prefix is None:
            return []
        split_id = int(prefix.rsplit("/", 1)[1][:-1])
        uow = current_unit_of_work()
        if uow is not None:
            uow.write_links()
        led = set(self.session.scalars(
            sa.select(task_link.c.task_id).where(task_link.c.previous_id == split_id)))
        # The latest run began when the split last started: a token of an earlier, longer
        # run that this run has no task on is not a branch of it (it counted a canceled
        # leftover, so an until over len(branches) waited for one branch too many).
        split = self.session.get(Task, split_id)
        began = as_utc(split.started) if split is not None and split.started is not None else None
        newest: dict[str, Task] = {}
        for task in self._region():
            if began is not None and task.created is not None and as_utc(task.created) < began:
                continue
            if task.id in led and "/" not in task.token[len(prefix):]:
                kept = newest.get(task.token)
                if kept is None or (kept.id or 0) < (task.id or 0):
                    newest[task.token] = task
        return sorted(newest.values(), key=lambda t: t.id or 0)

    def _complete(self) -> None:
        with self.exception_guard():
            failure, self._until_failed = self._until_failed, None
            if failure is not None:
                raise failure
            self.task.finished = utcnow()
            self.set_status(STATUS.DONE)
            if self.flow_task.cancel_rest:
                from ..engine import cancel_tasks

                cancel_tasks(self.process, [t for t in self._region() if t.status not in FINISHED])
            self.send(signals.task_finished)
            self._activate_next()

    @transition(source=STATUS.NEW, target=STATUS.STARTED)
    def start(self) -> None:
        """Start waiting (the first branch arrived)."""
        self.task.started = utcnow()
        self.send(signals.task_started)

    @transition(source=STATUS.STARTED, target=[STATUS.DONE, STATUS.ERROR])
    def done(self) -> None:
        """Complete the join and continue the flow."""
        self._complete()

    @transition(source=STATUS.STARTED, target=[STATUS.DONE, STATUS.ERROR], permission=managing,
                label="Run now")
    def perform(self) -> None:
        """Complete the join now, without waiting for the remaining branches."""
        self._complete()

    @transition(source=STATUS.ERROR, target=[STATUS.DONE, STATUS.ERROR, STATUS.STARTED], permission=managing,
                label="Retry")
    def retry(self) -> None:
        """Ask again after an error: fire when the region is finished or ``until`` holds now
        (the flow continues), else wait again (STARTED) for the next arrival. A retry used
        to fire the join whatever ``until`` said, canceling the open branches under
        ``cancel_rest``; firing now regardless is *Run now* (``perform``) on the waiting join."""
        self.task.comments = None
        self.set_status(STATUS.STARTED)
        if self._region_finished() or self._ready():
            self._complete()

    @transition(source=STATUS.DONE, conditions=[next_tasks_missing, region_join_not_fired],
                permission=managing, label="Activate next")
    def activate_next(self) -> None:
        """Activate the outgoing nodes again."""
        self._activate_next()

    undo = Activation.undo.redeclare(source=[STATUS.DONE, STATUS.ERROR], target=STATUS.NEW)
    cancel = Activation.cancel.redeclare(source=[STATUS.NEW, STATUS.STARTED], target=STATUS.CANCELED)


class Join(Node):
    """``flow.Join(wait_all=True, until=None, cancel_rest=False)``.

    With ``wait_all=False`` the first branch continues. ``until(activation) -> bool`` is
    asked after each arrival (``activation.arrived``, ``activation.branches``): the join
    fires the first time it holds, or when the whole region is finished. ``cancel_rest``
    cancels the region's unfinished tasks when it fires; otherwise their arrivals are
    absorbed."""

    task_type = "JOIN"
    activation_class = JoinActivation

    def __init__(self, wait_all: bool = True, until: Any = None, cancel_rest: bool = False) -> None:
        super().__init__()
        self.wait_all = wait_all
        self.until = until
        self.cancel_rest = cancel_rest

    def resolve(self, flow_class: Any) -> None:
        super().resolve(flow_class)
        self._until = None if self.until is None else flow_class.resolve_callable(self.until, self)
