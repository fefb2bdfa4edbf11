"""Demo users and groups."""

from __future__ import annotations

import sqlalchemy as sa
from flask import current_app

from ..extensions import db
from ..models import Group, User

PASSWORD = "demo"


def load_demo() -> list[str]:
    """Create the demo groups and users once; say who can log in."""
    flows = current_app.extensions["webflow_flows"].values()
    everything = sorted({perm for flow_class in flows for perm in flow_class.permissions()})
    workers = sorted(p for p in everything if not p.endswith(".manage"))
    staff = _group("staff", workers)
    managers = _group("managers", everything)
    users = [("admin", True, [managers]), ("alice", False, [staff]), ("bob", False, [staff])]
    lines = []
    for username, superuser, groups in users:
        user = db.session.scalar(sa.select(User).where(User.username == username))
        if user is None:
            user = User(username=username, is_superuser=superuser, permissions=[])
            user.set_password(PASSWORD)
            user.groups = groups
            db.session.add(user)
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
