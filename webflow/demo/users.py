"""Demo users and groups."""

from __future__ import annotations

import sqlalchemy as sa
from flask import current_app

from ..extensions import db
from ..models import Group, User

PASSWORD = "demo"
#: Permissions of the approvers' group only (the staff group lacks them).
APPROVERS_ONLY = {"hello_world.can_approve"}


def load_demo() -> list[str]:
    """Create the demo groups and users once; say who can log in."""
    flows = current_app.extensions["webflow_flows"].values()
    everything = sorted({perm for flow_class in flows for perm in flow_class.permissions()})
    # Somebody else approves hello-world messages: bob, not alice who writes them.
    workers = sorted(p for p in everything if not p.endswith(".manage") and p not in APPROVERS_ONLY)
    staff = _group("staff", workers)
    staff.permissions = [p for p in staff.permissions if p not in APPROVERS_ONLY]  # from older demos
    approvers = _group("approvers", sorted(APPROVERS_ONLY & set(everything)))
    managers = _group("managers", everything)
    users = [("admin", True, [managers]), ("alice", False, [staff]), ("bob", False, [staff, approvers])]
    lines = []
    for username, superuser, groups in users:
        user = db.session.scalar(sa.select(User).where(User.username == username))
        if user is None:
            user = User(username=username, is_superuser=superuser, permissions=[])
            user.set_password(PASSWORD)
            user.groups = groups
            db.session.add(user)
        else:
            user.groups = [*user.groups, *(g for g in groups if g not in user.groups)]
        lines.append(f"  {username} / {PASSWORD}" + (" (administrator)" if superuser else ""))
    db.session.commit()
    return ["Demo users:", *lines]


def _group(name: str, permissions: list[str]) -> Group:
    group = db.session.scalar(sa.select(Group).where(Group.name == name))
    if group is None:
        group = Group(name=name, permissions=permissions)
        db.session.add(group)
    else:
        group.permissions = sorted(set(group.permissions or []) | set(permissions))
    return group
