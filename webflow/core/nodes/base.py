"""Builders and checks shared by several node types."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from ..exceptions import FlowRuntimeError
from ..flow import Node

N = TypeVar("N", bound="Node")


class PermissionMixin(Node):
    """``.Permission(name)`` or ``.Permission(auto_create=True)``."""

    _permission: str | None = None
    _auto_create: bool = False

    def Permission(self: N, permission: str | None = None, auto_create: bool = False) -> N:
        if permission is None and not auto_create:
            raise ValueError("Permission() needs a permission name or auto_create=True")
        self = self._writable()
        self._permission = permission  # type: ignore[attr-defined]
        self._auto_create = auto_create  # type: ignore[attr-defined]
        return self

    @property
    def permission_name(self) -> str | None:
        if self._auto_create:
            assert self.flow_class is not None
            return f"{self.flow_class.flow_label}.can_{self.name}"
        return self._permission

    def user_has_permission(self, user: Any) -> bool:
        if user is None or not getattr(user, "is_active", True):
            return False
        if user.is_superuser:
            return True
        perm = self.permission_name
        if perm is None:
            return bool(self.flow_class and self.flow_class.can_view(user))
        return bool(user.has_perm(perm))


class PageNode(PermissionMixin):
    """A node people work on in a page: ``form=`` a Flask-WTF form class for the built-in
    page, or ``view=`` (a function, or ``this.<method>``) for a page of the flow's own."""

    def __init__(self, form: Any = None, view: Any = None) -> None:
        super().__init__()
        self.form = form
        self.view = view
        self.view_func: Callable[[Any], Any] | None = None  # the resolved ``view``

    def resolve(self, flow_class: Any) -> None:
        super().resolve(flow_class)
        self.view_func = None if self.view is None else flow_class.resolve_callable(self.view, self)
        where = f"{flow_class.__name__}.{self.name}"
        # A class that is not a form is the checker's warning (a stand-in for tests of code).
        if self.form is not None and not isinstance(self.form, type):
            raise FlowRuntimeError(f"{where}: form= takes a Flask-WTF form class (a FlaskForm subclass), "
                                   f"not {self.form!r:.80}")
        if not self._auto_create and self._permission is not None and not (
                isinstance(self._permission, str) and self._permission.strip()):
            raise FlowRuntimeError(f"{where}: Permission() takes a permission name (text) or "
                                   f"auto_create=True, not {self._permission!r:.80}")


def require_callable(flow_class: Any, node: Node, builder: str, func: Any, takes: str = "activation") -> None:
    """Refuse, when the flow class is created, a builder's callable that cannot be called
    (it failed when the first task was created or the page shown)."""
    if not callable(func):
        hint = f" (for a username write .Assign(username={func!r}))" if builder == "Assign" and isinstance(
            func, str) else ""
        raise FlowRuntimeError(f"{flow_class.__name__}.{node.name}: {builder}() takes a callable({takes}), "
                               f"not {func!r:.80}{hint}")


def call_with_activation(func: Callable[..., Any] | None, activation: Any) -> Any:
    return None if func is None else func(activation)
