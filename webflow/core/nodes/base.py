"""Builders and checks shared by several node types."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

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


def call_with_activation(func: Callable[..., Any] | None, activation: Any) -> Any:
    return None if func is None else func(activation)
