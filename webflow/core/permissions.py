"""Who may run a transition: rules declared with ``@transition(permission=...)``.

A rule answers ``rule(activation, user, arguments)`` with True or False, where
``arguments`` are the transition's call arguments by name (``{"user": bob}`` for
``assign(bob)``; empty when the UI asks what a user may do in general). Rules combine
with ``|`` (either) and ``&`` (both). The engine checks the rule of a transition called
from outside (not the steps a transition sets off itself) against the acting user of the
engine context (``Context(user=...)``); code that names no user is trusted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .activation import Activation

Test = Callable[["Activation", Any, Mapping[str, Any]], bool]


class Rule:
    """A named test of (activation, user, call arguments)."""

    def __init__(self, name: str, test: Test) -> None:
        self.name = name
        self.test = test

    def allows(self, activation: Activation, user: Any, arguments: Mapping[str, Any] | None = None) -> bool:
        """True when ``user`` may run the transition with these arguments."""
        if user is None or not getattr(user, "is_active", True):
            return False
        return bool(self.test(activation, user, arguments or {}))

    def __or__(self, other: Rule) -> Rule:
        return Rule(f"({self.name} or {other.name})",
                    lambda a, u, args: self.allows(a, u, args) or other.allows(a, u, args))

    def __and__(self, other: Rule) -> Rule:
        return Rule(f"({self.name} and {other.name})",
                    lambda a, u, args: self.allows(a, u, args) and other.allows(a, u, args))

    def __repr__(self) -> str:
        return f"<Rule {self.name}>"


def _node_allows(node: Any, user: Any) -> bool:
    return bool(node.user_has_permission(user))


def _assignee(user: Any, arguments: Mapping[str, Any]) -> Any:
    """Who the task goes to: the ``user`` argument, or the acting user when none is named."""
    return arguments.get("user") or user


def _owns(activation: Activation, user: Any, arguments: Mapping[str, Any]) -> bool:
    owner_id = activation.task.owner_id
    return owner_id is not None and owner_id == user.id


#: The task's owner.
owner = Rule("owner", _owns)
#: Whoever holds the node's permission (``.Permission(...)``; open nodes: the flow's viewers).
node_permission = Rule("node permission", lambda a, u, args: _node_allows(a.flow_task, u))
#: Whoever may start a process at this start node (its permission and ``.Available``).
starter = Rule("starter", lambda a, u, args: bool(a.flow_task.can_execute(u, None)))
#: The flow's managers (``<flow_label>.manage``).
flow_manage = Rule("flow manage", lambda a, u, args: bool(a.flow_class.can_manage(u)))
#: Superusers.
superuser = Rule("superuser", lambda a, u, args: bool(u.is_superuser))
#: The task goes to the acting user themself.
to_self = Rule("to self", lambda a, u, args: getattr(_assignee(u, args), "id", None) == u.id)
#: The task goes to someone other than the acting user.
to_other = Rule("to someone else", lambda a, u, args: getattr(_assignee(u, args), "id", None) != u.id)
#: The task goes to someone who holds the node's permission.
to_permitted = Rule("to a permitted user",
                    lambda a, u, args: _node_allows(a.flow_task, _assignee(u, args)))
#: Anyone but the task's owner.
not_owner = Rule("not the owner", lambda a, u, args: not _owns(a, u, args))

#: Taking a task: your own with the node's permission; a manager gives it to anyone who has it.
assigning = (to_self & node_permission) | (flow_manage & to_permitted)
#: Handing your own task to a colleague who may do it.
delegating = owner & to_other & to_permitted
#: Giving an assigned task to someone else: the owner to a colleague who may do it (a
#: delegation, whoever the owner is), or a manager who is not the owner to anyone who may.
reassigning = delegating | (not_owner & flow_manage & to_permitted)
#: Repairs and re-runs: the flow's managers.
managing = flow_manage | superuser
