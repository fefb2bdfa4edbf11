"""The buttons of a task, read from the engine's rule book (``@transition(permission=, label=)``).

A button is offered exactly when its POST would be allowed: the transition is allowed in
the task's status, it has a label (people run it), and its rule lets the user run it
(for a transition that hands the task to someone, with that someone as its argument).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..core.away import substitute_for
from ..core.exceptions import FlowRuntimeError
from ..core.fsm import Transition, declared_transitions
from ..core.models import Task, User
from ..core.status import STATUS
from ..extensions import db
from .lookups import assignable_users

#: Transitions whose button asks "are you sure?" first.
DESTRUCTIVE = ("cancel", "undo")
#: URL names SPEC.md promises that are not transitions of their own: from the web, a job's
#: ``restart`` queues it again (its ``restart()`` method is the worker's way in after a crash).
ALIASES = {"restart": "retry"}


@dataclass
class Action:
    """One button (or user picker) of a task."""

    name: str
    label: str
    #: The user may run it for themself (for ``assign``: take the task).
    for_me: bool = True
    #: The transition gives the task to a user: the button reads "<label> to me".
    hands_over: bool = False
    #: Others the user may hand the task to (a picker).
    users: list[User] = field(default_factory=list)
    #: The transition takes a note for the next owner (reassign: the owner's delegation).
    takes_note: bool = False
    #: What the button does, in a sentence (the rule book's ``help``).
    help: str = ""

    @property
    def destructive(self) -> bool:
        return self.name in DESTRUCTIVE


def rule_book_names() -> set[str]:
    """Every transition name people run on some kind of task (and the aliases)."""
    from ..core.activation import Activation

    names = set(ALIASES)
    pending: list[type] = [Activation]
    while pending:
        cls = pending.pop()
        pending += cls.__subclasses__()
        names |= {name for name, t in declared_transitions(cls).items() if t.label is not None}
    return names


def people_transition(activation: Any, name: str) -> Transition | None:
    """The transition a URL names, if people run it (it has a ``label``), else None."""
    transitions = activation.transitions()
    declared = transitions.get(name) or transitions.get(ALIASES.get(name, ""))
    return declared if declared is not None and declared.label is not None else None


def hands_over(transition: Transition) -> bool:
    """True for transitions that give the task to their ``user`` argument (assign, reassign)."""
    return transition.takes("user")


def button_label(transition: Transition, activation: Any, user: Any) -> str:
    """The owner's reassign is a delegation, and says so (the engine tells which it is)."""
    if transition.name == "reassign" and activation.is_delegation(user):
        return "Delegate"
    return str(transition.label)


def task_actions(task: Task, user: Any) -> list[Action]:
    """What ``user`` may do to the task now, in declaration order."""
    try:
        activation = task.activate()
        available = activation.get_available_transitions()
    except FlowRuntimeError:
        return []  # a node that left the flow's definition
    actions = []
    for bound in available:
        trans = bound.transition
        if trans.label is None:
            continue
        if not hands_over(trans):
            if bound.has_perm(user):
                actions.append(Action(trans.name, trans.label, help=trans.help or ""))
            continue
        for_me = task.owner_id is None and bound.has_perm(user, user=user)  # taking it
        others = [u for u in assignable_users(task)
                  if u.id not in (user.id, task.owner_id) and bound.has_perm(user, user=u)]
        if for_me or others:
            actions.append(Action(trans.name, button_label(trans, activation, user), for_me, True, others,
                                  trans.takes("note"), trans.help or ""))
    return actions


def find_action(task: Task, user: Any, name: str) -> Action | None:
    """The named action if the user may run it now."""
    return next((a for a in task_actions(task, user) if a.name == name), None)


def hand_over_words(activation: Any, user: Any, target: User | None) -> str | None:
    """Why the rule refused to give the task to ``target``, in the person's words, when it
    is about who would get it: ``target`` may not work on it, or while they are away the
    substitute who would really get it (``core.away``) is the asking user themself or may
    not be given it. None otherwise. The rule decides (``Transition.allows`` asks it about
    the named user and the real recipient); this only says which."""
    if target is None or target.id == user.id:
        return None
    if not activation.flow_task.user_has_permission(target):
        return f"{target.username} may not work on this task; nothing was changed."
    recipient = substitute_for(db.session(), target, activation.flow_task)
    if recipient.id == target.id:
        return None
    if recipient.id == user.id:
        return (f"{target.username} is out of office with you as their substitute: the task "
                "would come back to you. Nothing was changed.")
    return (f"{target.username} is out of office and their tasks go to {recipient.username}, "
            "who may not be given this one. Nothing was changed.")


def what_happened(task: Task) -> str:
    """What became of a task someone wanted to act on: ``canceled`` (it or its process),
    ``done``, ``taken`` (someone has it), ``queued`` (nobody has it), else ``other``."""
    if task.status == STATUS.CANCELED or task.process.status == STATUS.CANCELED:
        return "canceled"
    if task.status == STATUS.DONE:
        return "done"
    if task.status in (STATUS.ASSIGNED, STATUS.PREPARED) and task.owner_id is not None:
        return "taken"
    if task.status == STATUS.NEW and task.owner_id is None:
        return "queued"
    return "other"


#: Why a task's form was not taken, by what became of the task (``what_happened``).
NOT_SAVED = {
    "canceled": "This task was canceled meanwhile: it is no longer open, and nothing was saved.",
    "done": "This task was already done by {owner}: nothing was saved.",
    "done_by_you": "You completed this task already (your first answer stands): nothing was saved.",
    "taken": "This task is with {owner} now: nothing was saved.",
    "queued": "This task is waiting in the queue now (take it to work on it): nothing was saved.",
    "other": "This task is already done or no longer yours: nothing was saved.",
}


def not_saved_words(task: Task, user: Any) -> str:
    """Why the task's form (Complete, Save draft) was refused, in a person's words, from
    what became of the task since the form was drawn."""
    happened = what_happened(task)
    if happened == "done" and task.owner_id == user.id:
        happened = "done_by_you"
    if happened == "taken" and task.owner_id == user.id:
        happened = "other"  # still yours, yet not open to its form (a job, say)
    owner = task.owner.username if task.owner is not None else "someone else"
    return NOT_SAVED[happened].format(owner=owner)


def not_now_words(task: Task, user: Any, name: str) -> str:
    """Why the task cannot be taken (or otherwise changed) now, in a person's words, from
    what happened to it meanwhile; ``name`` is the transition that was asked for."""
    owner = task.owner.username if task.owner is not None else "someone else"
    happened = what_happened(task)
    if happened == "canceled":
        return "This task was canceled meanwhile: it is no longer open. Nothing was changed."
    if happened == "done":
        if task.owner_id == user.id and task.flow_task_type == "HUMAN":
            return "You completed this task already. Nothing was changed."
        done_by = f" by {owner}" if task.owner is not None and task.flow_task_type == "HUMAN" else ""
        return f"This task was already done{done_by}. Nothing was changed."
    if happened == "taken":
        if task.owner_id == user.id:
            return "This task is yours already. Nothing was changed."
        if name in ("assign", "prepare", "done"):
            return f"This task was already taken by {owner}."
        return f"This task is with {owner} now. Nothing was changed."
    if happened == "queued":
        return "This task is waiting in the queue now. Nothing was changed."
    return "This task cannot be changed that way now. Nothing was changed."
