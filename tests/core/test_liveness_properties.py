"""Property: whatever the shape (splits, joins, ifs, branches that end early or stop) and
whatever people do to the open tasks (complete, cancel, undo, in any order), a process
ends DONE, CANCELED, or stalled and listed for repair; never NEW with a waiting join, and
no join fires twice."""

from __future__ import annotations

import itertools
import os
import warnings
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from webflow import STATUS, Flow, flow
from webflow.core.engine import stalled_processes
from webflow.models import Process, Task, User

# A block: ("view",) | ("exit",) a view then an End | ("stop",) a view without .Next |
# ("if", then, else) | ("split", [branches]). Depth counts splits and ifs.
LEAVES = st.sampled_from([("view",), ("view",), ("exit",), ("stop",)])


def blocks(depth: int) -> st.SearchStrategy[Any]:
    if depth == 0:
        return LEAVES
    inner = blocks(depth - 1)
    return st.one_of(
        LEAVES,
        st.tuples(st.just("if"), inner, inner),
        st.tuples(st.just("split"), st.lists(inner, min_size=1, max_size=3)),
    )


_names = itertools.count()


def build(block: Any, then: str, nodes: dict[str, Any], decisions: dict[str, bool]) -> str:
    """Add the block's nodes (continuing at ``then``); return the name of its first node."""
    n = next(_names)
    kind = block[0]
    if kind == "view":
        nodes[f"v{n}"] = flow.View().Next(then)
        return f"v{n}"
    if kind == "exit":
        nodes[f"v{n}"] = flow.View().Next(f"e{n}")
        nodes[f"e{n}"] = flow.End()
        return f"v{n}"
    if kind == "stop":
        nodes[f"v{n}"] = flow.View()
        return f"v{n}"
    if kind == "if":
        key = f"i{n}"
        decisions[key] = len(decisions) % 2 == 0
        first, second = build(block[1], then, nodes, decisions), build(block[2], then, nodes, decisions)
        nodes[key] = (flow.If(lambda act, key=key: act.process.data[key])
                      .Then(first).Else(second))
        return key
    split = flow.Split()
    nodes[f"j{n}"] = flow.Join().Next(then)
    for branch in block[1]:
        split = split.Next(build(branch, f"j{n}", nodes, decisions))
    nodes[f"s{n}"] = split
    return f"s{n}"


def make_flow(shape: Any) -> tuple[type[Flow], dict[str, bool]]:
    nodes: dict[str, Any] = {}
    decisions: dict[str, bool] = {}
    first = build(shape, "end", nodes, decisions)
    nodes["start"] = flow.StartFunction().Next(first)
    nodes["end"] = flow.End()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the checker rightly warns about "stop" blocks
        cls = type(f"Random{next(_names)}Flow", (Flow,), {"__module__": __name__, **nodes})
    return cls, decisions


def moves(session: Session, process: Process, undo: bool = True) -> list[tuple[Task, str]]:
    """What a person (or a manager repairing) may do now to the process's tasks; without
    ``undo`` (finishing the work off) only what moves a task on."""
    session.expire_all()
    found = []
    wanted = {"complete", "cancel", "perform"} | ({"undo", "assign", "unassign"} if undo else set())
    for task in process.tasks:
        if task.status == STATUS.DONE and not undo:
            continue
        if task.status == STATUS.CANCELED:
            continue
        available = {t.name for t in task.activate().get_available_transitions()}
        if task.flow_task_type == "HUMAN" and task.status in (STATUS.NEW, STATUS.ASSIGNED):
            available.add("complete")
        found += [(task, name) for name in sorted(available & wanted)]
    return found


def act_on(task: Task, action: str, user: User) -> None:
    activation = task.activate()
    if action == "complete":
        if task.status == STATUS.NEW:
            activation.assign(user)
        activation.prepare(data={}, user=user)
        activation.done()
    elif action == "assign":
        activation.assign(user)
    else:
        getattr(activation, action)()


# WEBFLOW_HYPOTHESIS_EXAMPLES=500 for a longer hunt than CI's.
EXAMPLES = int(os.environ.get("WEBFLOW_HYPOTHESIS_EXAMPLES", "30"))


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(shape=blocks(3), choices=st.data())
def test_no_process_is_ever_stranded(session, users, shape, choices):
    flow_class, decisions = make_flow(shape)
    process = flow_class.start.run(**decisions)
    root = users["root"]
    for _ in range(15):  # people (and managers) act on the process in a random order
        possible = moves(session, process)
        if not possible:
            break
        task, action = choices.draw(st.sampled_from(possible), label="move")
        act_on(task, action, root)
    for _ in range(40):  # then the open work is finished off, without undoing anything
        possible = moves(session, process, undo=False)
        if not possible:
            break
        act_on(*choices.draw(st.sampled_from(possible), label="finish"), root)
    session.expire_all()
    tasks = process.tasks
    assert not [t for t in tasks if t.status not in (STATUS.DONE, STATUS.CANCELED)], \
        [(t.node_name, t.status, t.token) for t in tasks]
    listed = [p.id for p, _ in stalled_processes(session, [flow_class])]
    if process.status == STATUS.NEW:
        assert process.stalled is not None and listed == [process.id]
        assert not any(t.flow_task_type == "END" and t.status == STATUS.DONE for t in tasks)
    else:
        assert process.status in (STATUS.DONE, STATUS.CANCELED) and listed == []
    fired = [(t.node_name, t.token) for t in tasks if t.flow_task_type == "JOIN" and t.status == STATUS.DONE]
    assert len(fired) == len(set(fired)), fired
    alive = [(t.node_name, t.token) for t in tasks if t.status != STATUS.CANCELED]
    assert len(alive) == len(set(alive)), f"a task was duplicated: {alive}"
