"""The join and cancel orders the engine repairs, raced from several OS processes.

Each test starts a few processes of one flow, then children (OS processes of their own,
each with its own engine and session) act on each process at the same moment, released
together by a Barrier: branches completed, a sibling canceled, the process canceled, a
branch or a join undone, a failed join retried. Every round is one process, so an order
that only some interleavings take shows within the test's rounds. The test then checks
what a person would see: statuses, how many tasks each node has, exactly one firing of
each join in the audit trail, the process's end, and that no process is stranded. A
child fails the test on any exception but the engine's refusals (TransitionNotAllowed,
PermissionDenied), which it reports as its outcome.

On SQLite (the database write lock) and PostgreSQL (the process row's lock).
"""

from __future__ import annotations

import multiprocessing
import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from children import Children
from race_flows import (
    MANAGER,
    RACE_FLOWS,
    WORKER,
    RaceFanFlow,
    RaceJobFlow,
    RaceLineFlow,
    RaceNestedFanFlow,
    RacePairFlow,
    RaceQuorumFlow,
    RaceRedoFlow,
    RaceTerminateFlow,
    RaceTrioFlow,
    Step,
    race,
)
from sqlalchemy.orm import Session

from webflow import STATUS, Context, Flow
from webflow.core import jobs as core_jobs
from webflow.core import token as tokens
from webflow.core.engine import stall_reason, stalled_processes
from webflow.core.models import as_utc
from webflow.core.status import FINISHED
from webflow.models import Process, Task, TaskEvent, User

# WEBFLOW_RACE_ROUNDS=50 for a longer hunt than CI's.
ROUNDS = int(os.environ.get("WEBFLOW_RACE_ROUNDS", "8"))
OK, REFUSED = "ok", "TransitionNotAllowed"
CASE_TIMEOUT = 30 + 2 * max(ROUNDS - 8, 0)  # seconds for every child of one race to report

# Children are forked from a server that imported the flows once (a spawned child spends
# most of a second importing webflow: with a dozen races on two databases, half the file's
# time). The server holds no database connection; each child makes its own engine.
forkserver = multiprocessing.get_context("forkserver")
forkserver.set_forkserver_preload(["race_flows"])


class Racers(Children):
    """One child per plan on the race driver, forked from the server, behind a shared
    Barrier; what each reports within CASE_TIMEOUT."""

    def __init__(self) -> None:
        super().__init__(forkserver, CASE_TIMEOUT)

    def race(self, db_url: str, plans: list[list[list[Step]]]) -> list[dict[str, Any]]:
        return self.run(race, lambda n, barrier, results: (db_url, plans[n], n, barrier, results), len(plans))


@pytest.fixture
def racers() -> Iterator[Racers]:
    """The racing children: forked from the server, not spawned."""
    racers = Racers()
    yield racers
    racers.kill_leftovers()


@pytest.fixture
def people(session: Session) -> dict[str, User]:
    """The worker every branch is assigned to, and a manager of every flow here."""
    found = {WORKER: User(username=WORKER, permissions=[f.view_permission() for f in RACE_FLOWS]),
             MANAGER: User(username=MANAGER, permissions=[f.manage_permission() for f in RACE_FLOWS])}
    session.add_all(found.values())
    session.commit()
    return found


# -- helpers ------------------------------------------------------------------------------------


def start(session: Session, flow_class: type[Flow], count: int = ROUNDS, **data: Any) -> list[int]:
    ids = [flow_class.start.run(**data).id for _ in range(count)]  # type: ignore[attr-defined]
    session.commit()
    return ids


def tasks_of(session: Session, process_id: int) -> list[Task]:
    session.expire_all()
    return list(session.scalars(sa.select(Task).where(Task.process_id == process_id).order_by(Task.id)))


def task_at(session: Session, process_id: int, node: str) -> Task:
    """The newest task of the node."""
    return [t for t in tasks_of(session, process_id) if t.node_name == node][-1]


def trail(session: Session, process_id: int) -> list[TaskEvent]:
    return list(session.scalars(sa.select(TaskEvent).where(TaskEvent.process_id == process_id)
                                .order_by(TaskEvent.id)))


def census(tasks: list[Task]) -> Counter[tuple[str, str]]:
    """How many tasks each node has in each status."""
    return Counter((t.node_name, t.status.value) for t in tasks)


def firings(events: list[TaskEvent], task: Task) -> int:
    """How often the audit trail says the task reached DONE."""
    return sum(1 for e in events if e.task_id == task.id and e.to_status == STATUS.DONE)


def run_race(racers: Racers, db_url: str, plans: list[list[list[Step]]]) -> list[list[dict[str, Any]]]:
    """``plans[worker][round]`` are the steps of one child in one round; returns, per
    round, every child's outcomes (in worker order). At least a quarter of the rounds with
    two steps or more really raced: two of their steps were in flight together. (That
    proves the harness races; how many rounds overlap is the scheduler's business. Half
    was asked before, and a run beside four browser suites had only 3 of 8.)"""
    reports = racers.race(db_url, plans)
    by_worker = {report["worker"]: report["rounds"] for report in reports}
    rounds = [[step for worker in range(len(plans)) for step in by_worker[worker][n]]
              for n in range(len(plans[0]))]
    contested = [outcomes for outcomes in rounds if len(outcomes) > 1]
    raced = sum(overlapping(outcomes) for outcomes in contested)
    assert raced >= max(1, len(contested) // 4), f"only {raced} of {len(contested)} rounds raced"
    return rounds


def overlapping(outcomes: list[dict[str, Any]]) -> bool:
    """True when some two steps of the round were in flight together."""
    spans = sorted(step["span"] for step in outcomes)
    ends = [end for _, end in spans]
    return any(spans[n][0] < max(ends[:n]) for n in range(1, len(spans)))


def assert_sound(session: Session, flow_class: type[Flow], process_id: int) -> Process:
    """What holds after every round: no task in ERROR, no live task twice, no join fired
    twice, and the process not stranded: DONE or CANCELED with nothing open; or NEW with
    work someone can do (a task that is not a join) and no join waiting for a region that
    is finished; or NEW with nothing open, marked stalled and listed for repair."""
    tasks = tasks_of(session, process_id)
    process = session.get(Process, process_id)
    assert process is not None
    where = f"process {process_id}: {[(t.id, t.node_name, t.status.value, t.token) for t in tasks]}"
    assert not [t for t in tasks if t.status == STATUS.ERROR], where
    alive = [(t.node_name, t.token) for t in tasks if t.status != STATUS.CANCELED]
    assert len(alive) == len(set(alive)), f"a task twice in {where}"
    events = trail(session, process_id)
    for join in (t for t in tasks if t.flow_task_type == "JOIN"):
        fired = 0  # since the join was last undone
        for event in (e for e in events if e.task_id == join.id):
            fired = 0 if event.transition == "undo" else fired + (event.to_status == STATUS.DONE)
            assert fired <= 1, f"join {join.id} fired twice in {where}"
    unfinished = [t for t in tasks if t.status not in FINISHED]
    stalled = [p.id for p, _ in stalled_processes(session, [flow_class], limit=1000)]
    if process.status != STATUS.NEW:
        if process.status == STATUS.CANCELED:
            # Undo of the start cancels the process and leaves the start NEW, which may
            # only be canceled then (tests/core/test_canceled_is_final.py).
            undone_start = [t for t in unfinished if t.flow_task_type == "START" and t.status == STATUS.NEW
                            and [e.transition for e in events if e.task_id == t.id][-1] == "undo"]
            unfinished = [t for t in unfinished if t not in undone_start]
            # Nothing was created after the cancel.
            assert process.finished is not None
            assert all(as_utc(t.created) <= as_utc(process.finished) for t in tasks), where
        assert not unfinished, where
        assert process.id not in stalled and process.stalled is None
        return process
    # An undone join (NEW) with nothing unfinished in its region will not be reached again.
    dead_joins = [t for t in unfinished if t.flow_task_type == "JOIN" and t.status == STATUS.NEW
                  and not any(o.status not in FINISHED and tokens.inside(o.token, t.token) for o in tasks)]
    if len(dead_joins) == len(unfinished):
        assert process.stalled is not None and process.id in stalled, f"stranded, not stalled: {where}"
        return process
    assert process.id not in stalled, where
    assert any(t.flow_task_type != "JOIN" for t in unfinished), f"only joins left open: {where}"
    for join in (t for t in unfinished if t.status == STATUS.STARTED):
        prefixes = {tokens.split_prefix(p.token) for p in join.previous}
        region_open = [t for t in unfinished if any(t.token.startswith(prefix) for prefix in prefixes)]
        assert region_open, f"join {join.id} waits for a finished region: {where}"
    return process


def finish_off(session: Session, process_id: int, node: str, user: User) -> None:
    """Complete the open task of the node, as its owner (taking it first if need be)."""
    task = next(t for t in tasks_of(session, process_id)
                if t.node_name == node and t.status in (STATUS.NEW, STATUS.ASSIGNED))
    with Context(user=user):
        activation = task.activate()
        if task.status == STATUS.NEW:
            activation.assign(user)
        activation.prepare(data={}, user=user)
        activation.done()
    session.commit()


def branch_ids(session: Session, process_ids: list[int], *nodes: str) -> list[dict[str, int]]:
    """Per process, the id of the open task of each named node."""
    found = []
    for process_id in process_ids:
        tasks = tasks_of(session, process_id)
        found.append({node: next(t.id for t in tasks if t.node_name == node and t.status not in FINISHED)
                      for node in nodes})
    return found


# -- 1. a partial join's branches completed at once ----------------------------------------------


def test_completions_at_a_two_of_three_join_fire_it_once(db_url, session, people, racers):
    """Three reviewers answer at once: two answers make the join fire, once; the third
    review is canceled by ``cancel_rest``, once, and its answer refused; the process ends
    DONE once."""
    process_ids = start(session, RaceQuorumFlow)
    ids = branch_ids(session, process_ids, "a", "b", "c")
    plans = [[[("complete", round_ids[node])] for round_ids in ids] for node in ("a", "b", "c")]
    rounds = run_race(racers, db_url, plans)

    for process_id, outcomes in zip(process_ids, rounds, strict=True):
        assert Counter(o["outcome"] for o in outcomes) == {OK: 2, REFUSED: 1}, outcomes
        process = assert_sound(session, RaceQuorumFlow, process_id)
        assert process.status == STATUS.DONE and process.finished is not None
        tasks = tasks_of(session, process_id)
        assert census(tasks) == {
            ("start", "DONE"): 1, ("split", "DONE"): 1, ("join", "DONE"): 1, ("end", "DONE"): 1,
            **Counter((node, "DONE" if o["outcome"] == OK else "CANCELED")
                      for node, o in zip("abc", outcomes, strict=True))}
        events = trail(session, process_id)
        (join,) = [t for t in tasks if t.node_name == "join"]
        assert [e.transition for e in events if e.task_id == join.id] == ["start", "done"]
        assert sorted(p.node_name for p in join.previous) == sorted(
            node for node, o in zip("abc", outcomes, strict=True) if o["outcome"] == OK)
        (late,) = [t for t in tasks if t.status == STATUS.CANCELED]
        assert [e.transition for e in events if e.task_id == late.id].count("cancel") == 1
        (end,) = [t for t in tasks if t.node_name == "end"]
        assert firings(events, end) == 1
        assert not [e for e in events if e.transition == "cancel_process"]


# -- 2. a branch completed while the process is canceled ----------------------------------------


def test_branches_completed_while_the_process_is_canceled(db_url, session, people, racers):
    """Both branches are completed while two managers cancel the process: either a cancel
    won (the process CANCELED once, nothing open, nothing done or created after it, the
    late completions and the other cancel refused), or both completions came first and
    the process ended DONE (both cancels refused). Never both, never a task left open in a
    canceled process."""
    process_ids = start(session, RacePairFlow)
    ids = branch_ids(session, process_ids, "a", "b")
    plans = [[[("complete", round_ids["a"])] for round_ids in ids],
             [[("complete", round_ids["b"])] for round_ids in ids],
             [[("cancel_process", process_id)] for process_id in process_ids],
             [[("cancel_process", process_id)] for process_id in process_ids]]
    rounds = run_race(racers, db_url, plans)

    seen = Counter()
    for process_id, outcomes in zip(process_ids, rounds, strict=True):
        done_a, done_b, *cancels = (o["outcome"] for o in outcomes)
        process = assert_sound(session, RacePairFlow, process_id)
        tasks = tasks_of(session, process_id)
        events = trail(session, process_id)
        completed = [done_a, done_b].count(OK)
        if OK in cancels:
            seen[f"canceled after {completed} completions"] += 1
            assert sorted(cancels) == [REFUSED, OK], outcomes
            assert process.status == STATUS.CANCELED and completed < 2, outcomes
            assert {done_a, done_b} <= {OK, REFUSED}
            assert {t.status for t in tasks} <= {STATUS.DONE, STATUS.CANCELED}
            assert not [t for t in tasks if t.node_name == "end"]
            # The cancel is the last word: no transition and no new task after it.
            assert events[-1].transition == "cancel_process", [(e.transition, e.task_id) for e in events]
            assert [e.transition for e in events].count("cancel_process") == 1
            expected = {("start", "DONE"): 1, ("split", "DONE"): 1,
                        ("a", "DONE" if done_a == OK else "CANCELED"): 1,
                        ("b", "DONE" if done_b == OK else "CANCELED"): 1}
            if completed:
                expected[("join", "CANCELED")] = 1  # the first arrival started it, the cancel ended it
            assert census(tasks) == expected
        else:
            seen["done, cancels refused"] += 1
            assert cancels == [REFUSED, REFUSED] and (done_a, done_b) == (OK, OK), outcomes
            assert process.status == STATUS.DONE
            assert census(tasks) == {(node, "DONE"): 1 for node in ("start", "split", "a", "b", "join", "end")}
            (join,) = [t for t in tasks if t.node_name == "join"]
            assert firings(events, join) == 1
            assert not [e for e in events if e.transition == "cancel_process"]
    assert sum(seen.values()) == ROUNDS, seen


# -- 3. a branch completed while its sibling is canceled ------------------------------------------


def test_branches_completed_while_a_sibling_is_canceled_fire_the_join_once(db_url, session, people,
                                                                           racers):
    """Two branches are completed while a manager cancels the third (waiting in the
    queue): whichever of the three ends last, the plain join fires once and the task after
    it is created once; the process never waits for a join that nothing will reach."""
    process_ids = start(session, RaceTrioFlow)
    ids = branch_ids(session, process_ids, "a", "b", "c")
    plans = [[[("complete", round_ids["a"])] for round_ids in ids],
             [[("cancel", round_ids["b"])] for round_ids in ids],
             [[("complete", round_ids["c"])] for round_ids in ids]]
    rounds = run_race(racers, db_url, plans)

    for process_id, outcomes in zip(process_ids, rounds, strict=True):
        assert [o["outcome"] for o in outcomes] == [OK, OK, OK], outcomes
        process = assert_sound(session, RaceTrioFlow, process_id)
        assert process.status == STATUS.NEW and process.stalled is None
        tasks = tasks_of(session, process_id)
        assert census(tasks) == {("start", "DONE"): 1, ("split", "DONE"): 1, ("a", "DONE"): 1,
                                 ("b", "CANCELED"): 1, ("c", "DONE"): 1, ("join", "DONE"): 1,
                                 ("after", "ASSIGNED"): 1}
        events = trail(session, process_id)
        (join,) = [t for t in tasks if t.node_name == "join"]
        assert firings(events, join) == 1
        assert sorted(p.node_name for p in join.previous) == ["a", "c"]
        finish_off(session, process_id, "after", people[WORKER])
        assert assert_sound(session, RaceTrioFlow, process_id).status == STATUS.DONE


# -- 4. the items of a fan-out completed at once --------------------------------------------------

FAN_ITEMS = 20
FAN_WORKERS = 4
FAN_ROUNDS = 5


def test_a_fan_out_of_twenty_completed_by_four_processes_joins_once(db_url, session, people, racers):
    """Twenty reviews answered by four OS processes at once: the join fires once, after
    the last, and the process ends once."""
    process_ids = start(session, RaceFanFlow, FAN_ROUNDS, items=[f"i{n}" for n in range(FAN_ITEMS)])
    reviews = [[t for t in tasks_of(session, pid) if t.node_name == "review"] for pid in process_ids]
    plans = [[[("complete", t.id) for t in round_reviews if t.data["index"] % FAN_WORKERS == worker]
              for round_reviews in reviews] for worker in range(FAN_WORKERS)]
    rounds = run_race(racers, db_url, plans)

    for process_id, outcomes in zip(process_ids, rounds, strict=True):
        assert [o["outcome"] for o in outcomes] == [OK] * FAN_ITEMS
        process = assert_sound(session, RaceFanFlow, process_id)
        assert process.status == STATUS.DONE
        tasks = tasks_of(session, process_id)
        assert census(tasks) == {("start", "DONE"): 1, ("fan", "DONE"): 1, ("review", "DONE"): FAN_ITEMS,
                                 ("join", "DONE"): 1, ("end", "DONE"): 1}
        events = trail(session, process_id)
        (join,) = [t for t in tasks if t.node_name == "join"]
        assert [e.transition for e in events if e.task_id == join.id] == ["start", "done"]
        assert len(join.previous) == FAN_ITEMS
        last_review = max(e.id for e in events if e.transition == "done" and e.task_id != join.id
                          and e.task_id in {t.id for t in tasks if t.node_name == "review"})
        assert max(e.id for e in events if e.task_id == join.id) > last_review  # fired after the last
        assert Counter(e.task_id for e in events if e.transition == "done"
                       and e.task_id in {t.id for t in tasks if t.node_name == "review"}) == {
            t.id: 1 for t in tasks if t.node_name == "review"}
        (end,) = [t for t in tasks if t.node_name == "end"]
        assert firings(events, end) == 1


NESTED_ITEMS = [0, 1, 2, 6, 12]  # one process per length: the empty fan-out joins at the start


def test_a_nested_fan_out_and_its_sibling_completed_at_once_join_once(db_url, session, people, racers):
    """A fan-out nested in one branch (empty, short, long) and the other branch's task are
    completed by four processes at once: the inner join fires once on the branch's token,
    the outer join once, the process ends once."""
    process_ids = [RaceNestedFanFlow.start.run(items=list(range(n))).id  # type: ignore[attr-defined]
                   for n in NESTED_ITEMS]
    session.commit()
    plans: list[list[list[Step]]] = [[] for _ in range(FAN_WORKERS)]
    for process_id in process_ids:
        open_tasks = [t for t in tasks_of(session, process_id) if t.status == STATUS.ASSIGNED]
        for worker in range(FAN_WORKERS):
            plans[worker].append([("complete", t.id) for n, t in enumerate(open_tasks)
                                  if n % FAN_WORKERS == worker])
    rounds = run_race(racers, db_url, plans)

    for process_id, items, outcomes in zip(process_ids, NESTED_ITEMS, rounds, strict=True):
        assert [o["outcome"] for o in outcomes] == [OK] * (items + 1)
        process = assert_sound(session, RaceNestedFanFlow, process_id)
        assert process.status == STATUS.DONE
        tasks = tasks_of(session, process_id)
        expected = {("start", "DONE"): 1, ("outer", "DONE"): 1, ("inner", "DONE"): 1, ("b", "DONE"): 1,
                    ("inner_join", "DONE"): 1, ("outer_join", "DONE"): 1, ("end", "DONE"): 1}
        if items:
            expected[("x", "DONE")] = items
        assert census(tasks) == expected
        events = trail(session, process_id)
        for join in (t for t in tasks if t.flow_task_type == "JOIN"):
            assert firings(events, join) == 1
        (inner_join,) = [t for t in tasks if t.node_name == "inner_join"]
        assert inner_join.token.count("/") == 1  # on the outer branch's token


# -- 5. undo of a done branch while its sibling arrives -------------------------------------------


def test_undo_of_a_done_branch_while_its_sibling_arrives(db_url, session, people, racers):
    """a is done and the manager canceled the join it started ("undo from the join
    backwards"); now the manager undoes a while b is completed. Undo first: a goes back to
    work and b's arrival starts a join that waits for it. b first: b's arrival fires a new
    join at once (a is done) and the undo is refused (the join after it fired). Either
    way the join fires once and the process goes on to its end."""
    process_ids = start(session, RaceRedoFlow)
    manager = people[MANAGER]
    with Context(user=manager):
        for process_id in process_ids:
            finish_off(session, process_id, "a", people[WORKER])
            task_at(session, process_id, "join").activate().cancel()
            session.commit()
    ids = branch_ids(session, process_ids, "b")
    a_ids = [task_at(session, pid, "a").id for pid in process_ids]
    plans = [[[("undo", a_id)] for a_id in a_ids],
             [[("complete", round_ids["b"])] for round_ids in ids]]
    rounds = run_race(racers, db_url, plans)

    seen = Counter()
    for process_id, outcomes in zip(process_ids, rounds, strict=True):
        undo, done_b = (o["outcome"] for o in outcomes)
        assert done_b == OK, outcomes
        process = assert_sound(session, RaceRedoFlow, process_id)
        tasks = tasks_of(session, process_id)
        if undo == OK:
            seen["undo first"] += 1
            assert census(tasks) == {("start", "DONE"): 1, ("split", "DONE"): 1, ("a", "NEW"): 1,
                                     ("b", "DONE"): 1, ("join", "CANCELED"): 1, ("join", "STARTED"): 1}
            finish_off(session, process_id, "a", people[WORKER])  # a done again: the join fires
        else:
            seen["b first"] += 1
            assert undo == REFUSED
            assert census(tasks) == {("start", "DONE"): 1, ("split", "DONE"): 1, ("a", "DONE"): 1,
                                     ("b", "DONE"): 1, ("join", "CANCELED"): 1, ("join", "DONE"): 1,
                                     ("after", "ASSIGNED"): 1}
        assert_sound(session, RaceRedoFlow, process_id)
        finish_off(session, process_id, "after", people[WORKER])
        process = assert_sound(session, RaceRedoFlow, process_id)
        assert process.status == STATUS.DONE
        tasks = tasks_of(session, process_id)
        assert census(tasks)[("after", "DONE")] == 1 and census(tasks)[("join", "DONE")] == 1
    assert sum(seen.values()) == ROUNDS, seen


# -- 6. a join in ERROR retried while the late branch arrives -------------------------------------


def test_a_failed_join_retried_while_the_late_branch_arrives(db_url, session, people, racers):
    """a's arrival failed the join (its ``until`` raised: ERROR under the web policy); the
    manager mends the data and retries it while b is completed. b first: b waits at the
    join in ERROR and the retry fires it (the region is finished). Retry first: the
    ``until`` is asked again and does not hold, the join waits, and b's arrival fires it.
    Either way one join task, fired once; the task after it is created once."""
    process_ids = start(session, RaceRedoFlow, shaky=True)
    with Context(propagate_exception=False):
        for process_id in process_ids:
            finish_off(session, process_id, "a", people[WORKER])
    ids = branch_ids(session, process_ids, "b")
    join_ids = []
    for process_id in process_ids:
        join = task_at(session, process_id, "join")
        assert join.status == STATUS.ERROR and "until failed" in (join.comments or "")
        join_ids.append(join.id)
    for process_id in process_ids:  # the manager mends the data
        process = session.get(Process, process_id)
        process.data = {**process.data, "shaky": False}
    session.commit()
    plans = [[[("retry", join_id)] for join_id in join_ids],
             [[("complete", round_ids["b"])] for round_ids in ids]]
    rounds = run_race(racers, db_url, plans)

    for process_id, outcomes in zip(process_ids, rounds, strict=True):
        assert [o["outcome"] for o in outcomes] == [OK, OK], outcomes
        process = assert_sound(session, RaceRedoFlow, process_id)
        tasks = tasks_of(session, process_id)
        assert census(tasks) == {("start", "DONE"): 1, ("split", "DONE"): 1, ("a", "DONE"): 1,
                                 ("b", "DONE"): 1, ("join", "DONE"): 1, ("after", "ASSIGNED"): 1}
        (join,) = [t for t in tasks if t.node_name == "join"]
        assert firings(trail(session, process_id), join) == 1
        assert sorted(p.node_name for p in join.previous) == ["a", "b"]
        assert process.status == STATUS.NEW


# -- 6b. a manager runs the waiting join now while the last branches end ------------------------


def test_run_now_of_a_waiting_join_while_its_last_branches_end(db_url, session, people, racers):
    """a is done and the join waits; a manager presses *Run now* on the join while c is
    completed and another manager cancels b. Run now first: the join fires early and c's
    arrival is absorbed. The branches first: the last of them fires the join and Run now
    is refused. Either way the join fires once and the task after it exists once."""
    process_ids = start(session, RaceTrioFlow)
    for process_id in process_ids:
        finish_off(session, process_id, "a", people[WORKER])
    ids = branch_ids(session, process_ids, "b", "c", "join")
    plans = [[[("perform", round_ids["join"])] for round_ids in ids],
             [[("complete", round_ids["c"])] for round_ids in ids],
             [[("cancel", round_ids["b"])] for round_ids in ids]]
    rounds = run_race(racers, db_url, plans)

    seen = Counter()
    for process_id, outcomes in zip(process_ids, rounds, strict=True):
        perform, done_c, cancel_b = (o["outcome"] for o in outcomes)
        seen[perform] += 1
        assert (done_c, cancel_b) == (OK, OK) and perform in (OK, REFUSED), outcomes
        assert_sound(session, RaceTrioFlow, process_id)
        tasks = tasks_of(session, process_id)
        assert census(tasks) == {("start", "DONE"): 1, ("split", "DONE"): 1, ("a", "DONE"): 1,
                                 ("b", "CANCELED"): 1, ("c", "DONE"): 1, ("join", "DONE"): 1,
                                 ("after", "ASSIGNED"): 1}
        events = trail(session, process_id)
        (join,) = [t for t in tasks if t.node_name == "join"]
        assert firings(events, join) == 1
        fired_by = [e.transition for e in events if e.task_id == join.id and e.to_status == STATUS.DONE]
        assert fired_by == (["perform"] if perform == OK else ["done"])
        assert sorted(p.node_name for p in join.previous) == ["a", "c"]  # c arrived, or was absorbed
        finish_off(session, process_id, "after", people[WORKER])
        assert assert_sound(session, RaceTrioFlow, process_id).status == STATUS.DONE
    assert sum(seen.values()) == ROUNDS, seen


# -- 5b. undo of a join a manager ran early, while its late branch arrives --------------------------


def test_undo_of_a_join_run_early_while_its_late_branch_arrives(db_url, session, people, racers):
    """The manager ran the join before b was done (*Run now*) and canceled the task after
    it; now the manager undoes the join while b is completed. Undo first: b's arrival
    starts the undone join again and it fires (the task after it anew). b first: b is
    absorbed into the fired join, and the undo then leaves the join NEW with every
    branch done: nothing will reach it (as when a join is undone after all its branches
    arrived), so the process is stalled and listed for repair. The manager's repair works
    from there: cancel the join, undo b, complete it again."""
    process_ids = start(session, RaceRedoFlow)
    manager = people[MANAGER]
    for process_id in process_ids:
        finish_off(session, process_id, "a", people[WORKER])
        with Context(user=manager):
            task_at(session, process_id, "join").activate().perform()
            task_at(session, process_id, "after").activate().unassign()
            task_at(session, process_id, "after").activate().cancel()
        session.commit()
    ids = branch_ids(session, process_ids, "b")
    joins = [task_at(session, pid, "join").id for pid in process_ids]
    plans = [[[("undo", join_id)] for join_id in joins],
             [[("complete", round_ids["b"])] for round_ids in ids]]
    rounds = run_race(racers, db_url, plans)

    seen = Counter()
    for process_id, outcomes in zip(process_ids, rounds, strict=True):
        assert [o["outcome"] for o in outcomes] == [OK, OK], outcomes
        tasks = tasks_of(session, process_id)
        (join,) = [t for t in tasks if t.node_name == "join"]
        events = trail(session, process_id)
        if join.status == STATUS.DONE:
            seen["undo first"] += 1
            assert census(tasks) == {("start", "DONE"): 1, ("split", "DONE"): 1, ("a", "DONE"): 1,
                                     ("b", "DONE"): 1, ("join", "DONE"): 1, ("after", "CANCELED"): 1,
                                     ("after", "ASSIGNED"): 1}
            assert [e.transition for e in events if e.task_id == join.id] == [
                "start", "perform", "undo", "start", "done"]
            assert_sound(session, RaceRedoFlow, process_id)
        else:
            seen["b first"] += 1
            assert census(tasks) == {("start", "DONE"): 1, ("split", "DONE"): 1, ("a", "DONE"): 1,
                                     ("b", "DONE"): 1, ("join", "NEW"): 1, ("after", "CANCELED"): 1}
            process = session.get(Process, process_id)
            assert process is not None and process.status == STATUS.NEW
            # Nothing will reach the undone join: the process is stalled and listed (it
            # used to look alive forever), with the undo as the reason.
            assert process_id in [p.id for p, _ in stalled_processes(session, [RaceRedoFlow])]
            assert stall_reason(session, process).transition == "undo"  # type: ignore[union-attr]
            with Context(user=manager):  # the repair
                join.activate().cancel()
                session.commit()
                assert process_id in [p.id for p, _ in stalled_processes(session, [RaceRedoFlow])]
                task_at(session, process_id, "b").activate().undo()
                session.commit()
            finish_off(session, process_id, "b", people[WORKER])
            assert census(tasks_of(session, process_id))[("after", "ASSIGNED")] == 1
        finish_off(session, process_id, "after", people[WORKER])
        assert assert_sound(session, RaceRedoFlow, process_id).status == STATUS.DONE
    assert sum(seen.values()) == ROUNDS, seen


# -- 7. a terminating End, a plain End and a process cancel at once -------------------------------


def test_a_terminating_end_a_plain_end_and_a_process_cancel_at_once(db_url, session, people, racers):
    """a leads to a terminating End, b to a plain one, and a manager cancels the process,
    all at once. The cancel first: CANCELED, whatever came later refused. a first: the
    End cancels b (its completion refused), the process is DONE, the cancel refused. b
    first: its End waits for a. Never DONE and CANCELED, never an open task left."""
    process_ids = start(session, RaceTerminateFlow)
    ids = branch_ids(session, process_ids, "a", "b")
    plans = [[[("complete", round_ids["a"])] for round_ids in ids],
             [[("complete", round_ids["b"])] for round_ids in ids],
             [[("cancel_process", process_id)] for process_id in process_ids]]
    rounds = run_race(racers, db_url, plans)

    seen = Counter()
    for process_id, outcomes in zip(process_ids, rounds, strict=True):
        done_a, done_b, cancel = (o["outcome"] for o in outcomes)
        seen[(done_a, done_b, cancel)] += 1
        process = assert_sound(session, RaceTerminateFlow, process_id)
        tasks = tasks_of(session, process_id)
        events = trail(session, process_id)
        b_status = "DONE" if done_b == OK else "CANCELED"
        if cancel == OK:
            assert process.status == STATUS.CANCELED and done_a == REFUSED, outcomes
            assert events[-1].transition == "cancel_process"
            assert census(tasks) == {("start", "DONE"): 1, ("split", "DONE"): 1, ("a", "CANCELED"): 1,
                                     ("b", b_status): 1, **({("end", "DONE"): 1} if done_b == OK else {})}
        else:
            assert cancel == REFUSED and done_a == OK, outcomes
            assert process.status == STATUS.DONE
            assert census(tasks) == {("start", "DONE"): 1, ("split", "DONE"): 1, ("a", "DONE"): 1,
                                     ("stop", "DONE"): 1, ("b", b_status): 1,
                                     **({("end", "DONE"): 1} if done_b == OK else {})}
            (stop,) = [t for t in tasks if t.node_name == "stop"]
            assert firings(events, stop) == 1
            if done_b != OK:  # the terminating End canceled it, once
                (b,) = [t for t in tasks if t.node_name == "b"]
                assert [e.transition for e in events if e.task_id == b.id].count("cancel") == 1
    assert sum(seen.values()) == ROUNDS, seen


# -- 8. a queued job in the region of a first-wins join, the person and a process cancel -----------


@pytest.fixture
def held_jobs() -> Iterator[list[int]]:
    """Jobs are queued, not run, in the test's own process: the children run them."""
    held: list[int] = []
    core_jobs.set_dispatcher(lambda task_id, *rest: held.append(task_id))
    yield held
    core_jobs.set_dispatcher(None)


#: Per round: the job's seconds, the person's and the manager's wait after the barrier.
JOB_SHAPES = [(0.05, 0, 0), (0, 0, 0), (0, 0.03, 0.03), (0, 0, 0.03)]


def test_a_job_a_person_and_a_process_cancel_at_a_first_wins_join(db_url, session, people, racers,
                                                                  held_jobs):
    """A person approves while a worker runs the queued job and a manager cancels the
    process, all at once. Whoever of the person and the job finishes first fires the join,
    which cancels the other (a job canceled while it runs has its result dropped) and the
    process is DONE; or the cancel comes first and the process is CANCELED with nothing
    open and nothing after the cancel. The job's result is kept only where the job was
    done."""
    # Each order in some rounds: how long the job takes, and how long the person and the
    # manager wait after the barrier (a few hundredths of a second: still racing).
    shapes = [JOB_SHAPES[n % len(JOB_SHAPES)] for n in range(ROUNDS)]
    process_ids = [RaceJobFlow.start.run(job_seconds=job).id for job, _, _ in shapes]  # type: ignore[attr-defined]
    session.commit()
    job_ids = [task_at(session, pid, "auto").id for pid in process_ids]
    assert held_jobs == job_ids
    ids = branch_ids(session, process_ids, "approve")
    plans = [[[("complete", round_ids["approve"], person)]
              for round_ids, (_, person, _) in zip(ids, shapes, strict=True)],
             [[("run_job", job_id)] for job_id in job_ids],
             [[("cancel_process", process_id, manager)]
              for process_id, (_, _, manager) in zip(process_ids, shapes, strict=True)]]
    rounds = run_race(racers, db_url, plans)

    seen = Counter()
    for process_id, outcomes in zip(process_ids, rounds, strict=True):
        (approve, job, cancel) = outcomes
        assert job["outcome"] == OK, outcomes  # a worker never gets a refusal: it skips or discards
        job_done = job["said"] == "done"
        seen[(approve["outcome"], job["said"].split(":")[0], cancel["outcome"])] += 1
        process = assert_sound(session, RaceJobFlow, process_id)
        tasks = tasks_of(session, process_id)
        events = trail(session, process_id)
        assert ("job ran" in process.data) == job_done, (outcomes, process.data)
        if cancel["outcome"] == OK:
            assert process.status == STATUS.CANCELED
            assert approve["outcome"] == REFUSED and not job_done, outcomes
            assert events[-1].transition == "cancel_process"
            assert census(tasks) == {("start", "DONE"): 1, ("split", "DONE"): 1, ("approve", "CANCELED"): 1,
                                     ("auto", "CANCELED"): 1}
        else:
            assert cancel["outcome"] == REFUSED and process.status == STATUS.DONE, outcomes
            assert (approve["outcome"] == OK) != job_done, outcomes  # exactly one got through
            first, other = ("approve", "auto") if approve["outcome"] == OK else ("auto", "approve")
            assert census(tasks) == {("start", "DONE"): 1, ("split", "DONE"): 1, (first, "DONE"): 1,
                                     (other, "CANCELED"): 1, ("join", "DONE"): 1, ("end", "DONE"): 1}
            (join,) = [t for t in tasks if t.node_name == "join"]
            assert firings(events, join) == 1
            assert [p.node_name for p in join.previous] == [first]
    assert sum(seen.values()) == ROUNDS, seen


# -- 9. undo of the start while its only task is canceled ------------------------------------------


def test_undo_of_the_start_while_its_only_task_is_canceled(db_url, session, people, racers):
    """One manager cancels the process's only open task while another undoes its start.
    The cancel first: the undo is allowed and cancels the process. The undo first: it is
    refused (the task it created is alive), then the cancel leaves the process stalled,
    listed for repair."""
    process_ids = start(session, RaceLineFlow)
    ids = branch_ids(session, process_ids, "v")
    starts = [task_at(session, pid, "start").id for pid in process_ids]
    plans = [[[("cancel", round_ids["v"])] for round_ids in ids],
             [[("undo", start_id)] for start_id in starts]]
    rounds = run_race(racers, db_url, plans)

    seen = Counter()
    for process_id, outcomes in zip(process_ids, rounds, strict=True):
        cancel, undo = (o["outcome"] for o in outcomes)
        seen[undo] += 1
        assert cancel == OK, outcomes
        process = assert_sound(session, RaceLineFlow, process_id)
        tasks = tasks_of(session, process_id)
        if undo == OK:
            assert process.status == STATUS.CANCELED
            assert census(tasks) == {("start", "NEW"): 1, ("v", "CANCELED"): 1}  # the start: only cancel left
            assert process.stalled is None  # no longer stalled: canceled
        else:
            assert undo == REFUSED and process.status == STATUS.NEW and process.stalled is not None
            assert census(tasks) == {("start", "DONE"): 1, ("v", "CANCELED"): 1}
    assert sum(seen.values()) == ROUNDS, seen
