"""The flow checker: what in a flow's shape can strand a process, found before one runs.

Run when a flow class is created (each finding is a ``FlowCheckWarning``) and by
``flask webflow check``. Errors are shapes no process can get through; warnings are
shapes that strand a process only on some paths (or that are likely mistakes).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .flow import Flow, Node


class Level(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Finding:
    level: Level
    node: str  # the node's name, or "" for the flow as a whole
    message: str

    def __str__(self) -> str:
        where = f"{self.node}: " if self.node else ""
        return f"{self.level}: {where}{self.message}"


class FlowCheckWarning(UserWarning):
    """A finding of the flow checker, issued when the flow class is created."""


def _successors(node: Node) -> list[Node]:
    targets = [target for target, _ in node.outgoing()]
    # Boundary timers (View.OnTimeout) hang on their task: reached when the task is.
    targets += [other for other in node.flow_class.nodes() if getattr(other, "host", None) is node]
    return targets


def _reachable(starts: Iterable[Node]) -> set[str]:
    seen: set[str] = set()
    todo = list(starts)
    while todo:
        node = todo.pop()
        if node.name in seen:
            continue
        seen.add(node.name)
        todo.extend(_successors(node))
    return seen


#: Names the pages give hidden inputs of their own in a node's form: a form field of the
#: same name would be sent twice, and one of the two values lost (the CSRF token, the start
#: form's one-time token, the task page's record of what it was drawn for).
PAGE_FIELDS = ("csrf_token", "start_token", "shown")


#: What a fan-out branch's task holds from its split (``Split().Each``): a View's answers
#: there are stored beside them in ``task.data``, so a form field may not be named so.
BRANCH_FIELDS = ("item", "index")


def _form_fields(node: Node) -> list[str]:
    """The names of the fields the node's form class declares (WTForms' unbound fields),
    read without importing WTForms: the engine core knows no web library."""
    form = getattr(node, "form", None)
    if form is None:
        return []
    return [name for name in dir(form)
            if not name.startswith("_") and hasattr(getattr(form, name, None), "field_class")]


def check_flow(flow_class: type[Flow]) -> list[Finding]:
    """Every finding for the flow, errors first, in node order."""
    nodes = list(flow_class.nodes())
    found: list[Finding] = []
    reached = _reachable(flow_class.start_nodes())

    ends = [n for n in nodes if n.task_type == "END" and n.name in reached]
    if not ends:
        found.append(Finding(Level.ERROR, "", "no End can be reached from a start node, so no process "
                                              "of this flow can ever be DONE"))

    for join in (n for n in nodes if n.task_type == "JOIN"):
        splits = [n for n in nodes if n.task_type == "SPLIT" and n.name in reached]
        fed = any(join.name in _reachable(_successors(split)) for split in splits)
        if join.name in reached and not fed:
            found.append(Finding(Level.ERROR, join.name, "no branch of a Split leads to this Join: it "
                                                         "has nothing to wait for"))

    for node in nodes:
        if node.name not in reached and node.task_type != "START":
            found.append(Finding(Level.WARNING, node.name, "nothing leads to this node from a start node"))
            continue
        if node.task_type == "SWITCH" and getattr(node, "_default_node", None) is None:
            found.append(Finding(Level.WARNING, node.name, "Switch without .Default(): a process in which "
                                                           "no case holds stops here in ERROR"))
        form = getattr(node, "form", None)
        # Duck-typed (the core imports no web library): what the pages call on the form.
        if isinstance(form, type) and not callable(getattr(form, "validate_on_submit", None)):
            found.append(Finding(Level.WARNING, node.name, f"form= {form.__name__} is not a Flask-WTF form "
                                                           "class (a FlaskForm subclass): the built-in page "
                                                           "cannot show or check it"))
        fields = _form_fields(node)
        clashes = [name for name in fields if name in PAGE_FIELDS]
        if clashes:
            found.append(Finding(Level.ERROR, node.name, f"the form's field {', '.join(map(repr, clashes))} "
                                                         "has a name the page uses for a hidden field of its "
                                                         "own: rename it, or one of the two values is lost"))
        taken = [name for name in fields if name in BRANCH_FIELDS] if getattr(node, "fan_out", False) else []
        if taken:
            found.append(Finding(Level.ERROR, node.name, f"the form's field {', '.join(map(repr, taken))} has "
                                                         "the name of what a Split().Each branch keeps in "
                                                         "task.data (item, index): rename it, or its answer is "
                                                         "lost"))
        if node.task_type != "END" and not _successors(node):
            found.append(Finding(Level.WARNING, node.name, "no .Next(): a process that gets here outside a "
                                                           "parallel branch stalls (nothing left to do, no End "
                                                           "reached)"))
    order = {node.name: i for i, node in enumerate(nodes)}
    return sorted(found, key=lambda f: (f.level != Level.ERROR, order.get(f.node, -1)))


def warn_findings(flow_class: type[Flow]) -> list[Finding]:
    """Check the flow and issue each finding as a ``FlowCheckWarning``."""
    findings = check_flow(flow_class)
    for finding in findings:
        warnings.warn(FlowCheckWarning(f"{flow_class.__name__}: {finding}"), stacklevel=4)
    return findings
