"""Out of office: while a user is away, tasks given to them go to their substitute.

The substitute takes the task only if they may work on its node; otherwise the task stays
with the user it was meant for (it is not lost in the queue, and the user's manager can
reassign it). A substitute who is away too passes it on to their own substitute, a few hops
at most and never round in a circle. Taking a task yourself is never redirected."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from .exceptions import InputRejected
from .models import OutOfOffice, User, as_utc, utcnow
from .transaction import get_or_add, unit_of_work

#: How many substitutes of substitutes are followed.
MAX_HOPS = 5


def away_of(session: Session, user: User) -> OutOfOffice | None:
    """The user's out-of-office setting (also a past one), or None."""
    return session.get(OutOfOffice, user.id)


def set_away(session: Session, user: User, substitute: User | None,
             until: datetime | None = None) -> OutOfOffice:
    """Mark the user away until ``until`` (None: until they come back), with a substitute."""
    # Not a User (None, a username) or not a datetime: refused here, where they raised
    # AttributeError from inside.
    if not isinstance(substitute, User) or not substitute.is_active:
        raise InputRejected("Choose an active colleague as your substitute.")
    if substitute.id == user.id:
        raise InputRejected("You cannot be your own substitute.")
    if until is not None and not isinstance(until, datetime):
        raise InputRejected(f"The end of your absence must be a date and time, not {until!r:.40}.")
    if until is not None and as_utc(until) <= utcnow():
        raise InputRejected("The end of your absence is already past.")
    user_id, substitute_id = user.id, substitute.id  # read before the new row is pending
    with unit_of_work(session):
        # The same form sent twice at once: this copy's choice replaces the other's.
        away = get_or_add(session, OutOfOffice, user_id, user_id=user_id, substitute_id=substitute_id)
        away.substitute_id, away.until, away.created = substitute_id, until, utcnow()
    return away


def substitute_gone(away: OutOfOffice | None) -> bool:
    """True when the named substitute was deactivated since: ``substitute_for`` gives them
    nothing (an inactive user may work on no node), so tasks stay with the user away."""
    return away is not None and not away.substitute.is_active


def clear_away(session: Session, user: User) -> None:
    """The user is back."""
    with unit_of_work(session):
        session.execute(sa.delete(OutOfOffice).where(OutOfOffice.user_id == user.id))


def _substitutes(user: User, now: datetime) -> Iterator[User]:
    """The user's substitute while they are away, that one's while they are away too, and
    so on: at most MAX_HOPS, never one already passed (no circle)."""
    seen, current = {user.id}, user
    for _ in range(MAX_HOPS):
        away = current.away  # loaded with the user (models.User.away)
        if away is None or not away.active(now):
            return
        substitute = away.substitute
        if substitute.id in seen:
            return
        seen.add(substitute.id)
        yield substitute
        current = substitute


def substitute_for(session: Session, user: User, node: Any, now: datetime | None = None) -> User:
    """Who gets a task of ``node`` meant for ``user``: the user, or while they are away the
    substitute (and so on) who may work on the node."""
    current = user
    for substitute in _substitutes(user, now or utcnow()):
        if not node.user_has_permission(substitute):
            break
        current = substitute
    return current


def stand_ins(user: User, now: datetime | None = None) -> list[User]:
    """The substitutes a task given to ``user`` now passes on to, in order, each when they
    may work on its node (``substitute_for``): ``[bob, carol]`` when bob is away too, with
    carol as his substitute. Empty when the user is not away."""
    return list(_substitutes(user, now or utcnow()))
