"""What changed in a transaction, published to Redis after it commits.

While a transaction runs, the task rows it flushes (new ones, and changes of status, owner,
due date or priority) and the ``task_assigned`` / ``comment_posted`` signals are noted in
the session; after the commit they go out on Redis pub/sub, after a rollback they are
dropped, so a page never hears of a change that did not happen. Messages carry ids only:
the pages fetch fresh fragments through the normal endpoints, which check permissions.

Channels (under ``<WEBFLOW_QUEUE_PREFIX>:live:``): ``user:<id>`` (that user's inbox changed),
``task:<id>`` (that task changed or was commented on) and ``queue`` (a human task of a node
entered or left the queue: each stream asks the node whether its user may take it).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import sqlalchemy as sa
from flask import Flask, current_app, has_app_context
from flask_sqlalchemy.session import Session
from redis.exceptions import RedisError

from .core import row_updates, signals
from .core.models import Group, Task, User, user_group
from .core.status import STATUS
from .livestream import END_STREAMS

log = logging.getLogger(__name__)

PENDING = "webflow_live_pending"
#: A change of one of these makes a task's row in a list, or its page, out of date.
WATCHED = ("status", "owner_id", "owner", "due", "priority")
#: Like the job queue's back-off (a key of its own, so live updates never delay a job's
#: enqueue): a dead Redis costs one timeout, not one per commit.
REDIS_BACKOFF_SECONDS = 5.0
DOWN_UNTIL = "webflow_live_redis_down_until"

Message = tuple[str, str]  # (channel suffix, JSON payload)


def channel_prefix(app: Flask) -> str:
    return f"{app.config['WEBFLOW_QUEUE_PREFIX']}:live:"


def enabled(app: Flask) -> bool:
    """Live updates go through Redis; without it the pages poll (see blueprints/live.py)."""
    return bool(app.config.get("REDIS_URL"))


def task_messages(task: Task, owners: set[int | None], statuses: set[Any]) -> list[Message]:
    """Who hears of a change of the task: its page, the inboxes of its owners before and
    after, and the queue when the task is or was waiting there."""
    found: list[Message] = [(f"task:{task.id}", json.dumps({"kind": "change"}))]
    found += [(f"user:{owner}", json.dumps({"task": task.id})) for owner in sorted(o for o in owners if o)]
    if task.flow_task_type == "HUMAN" and STATUS.NEW in statuses:
        found.append(("queue", json.dumps({"task": task.id, "flow": task.flow_class_path,
                                           "node": task.node_name})))
    return found


def _history(state: Any, name: str) -> tuple[list[Any], bool]:
    history = state.attrs[name].history
    return list(history.deleted or ()), history.has_changes()


def _note(session: Any, messages: list[Message]) -> None:
    pending: dict[Message, None] = session.info.setdefault(PENDING, {})
    pending.update(dict.fromkeys(messages))


#: A change of one of these ends the user's open streams: their sessions ended (a new
#: session token: logged out everywhere, a new password; deactivated), or what they may see
#: and take changed. The page opens another at once: refused by the login check, or with
#: the channels and queue filter of their permissions now.
STREAM_FIELDS = ("session_token", "is_active", "is_superuser", "permissions", "groups")


def _after_flush(session: Any, flush_context: Any) -> None:
    _note_tasks(session, [*session.new, *session.dirty])
    _note_ended_streams(session, list(session.dirty))


def _note_ended_streams(session: Any, objects: list[Any]) -> None:
    """End the open streams of the users whose sessions or permissions changed (a group's
    permissions: its members'), so that no page hears of an inbox, queue or task its user
    may no longer see until its stream's lifetime ends (``livestream.Subscription``)."""
    if not has_app_context() or not enabled(current_app):
        return
    users: set[int] = set()
    groups: list[int] = []
    for obj in objects:
        if isinstance(obj, User) and obj.id is not None and any(
                _history(sa.inspect(obj), name)[1] for name in STREAM_FIELDS):
            users.add(obj.id)
        elif isinstance(obj, Group) and obj.id is not None and _history(sa.inspect(obj), "permissions")[1]:
            groups.append(obj.id)
    if groups:
        users.update(session.execute(sa.select(user_group.c.user_id)
                                     .where(user_group.c.group_id.in_(groups))).scalars())
    _note(session, [(f"user:{user_id}", END_STREAMS) for user_id in sorted(users)])


def _note_tasks(session: Any, objects: list[Any]) -> None:
    """Note who hears of the changes of the tasks among ``objects`` (published with the
    commit): after each flush, and for the rows the engine writes with its last
    statement instead (core.row_updates)."""
    if not has_app_context() or not enabled(current_app):
        return
    for obj in objects:
        if not isinstance(obj, Task):
            continue
        state = sa.inspect(obj)
        owners: set[int | None] = {obj.owner_id}
        statuses: set[Any] = {obj.status}
        changed = obj in session.new
        for name in WATCHED:
            deleted, has_changes = _history(state, name)
            changed = changed or has_changes
            if name == "owner_id":
                owners.update(deleted)
            elif name == "owner":
                owners.update(getattr(user, "id", None) for user in deleted)
            elif name == "status":
                statuses.update(deleted)
        if changed:
            _note(session, task_messages(obj, owners, statuses))


def _after_commit(session: Any) -> None:
    if session.in_nested_transaction():
        return  # a savepoint released: the transaction goes on
    pending = session.info.pop(PENDING, None)
    if pending and has_app_context():
        publish(current_app._get_current_object(), list(pending))  # type: ignore[attr-defined]


def _after_rollback(session: Any) -> None:
    if session.in_nested_transaction():
        return  # a savepoint: what it noted may be stale, but asking a page to look is harmless
    session.info.pop(PENDING, None)


def publish(app: Flask, messages: list[Message]) -> None:
    """Send the messages now (after the commit). A Redis that cannot be reached loses them:
    the pages notice the stream ended and poll instead."""
    if not messages or not enabled(app):
        return
    if time.monotonic() < app.extensions.get(DOWN_UNTIL, 0.0):
        return
    from .jobqueue import redis_connection

    prefix = channel_prefix(app)
    try:
        with redis_connection(app).pipeline(transaction=False) as pipe:
            for suffix, payload in messages:
                pipe.publish(prefix + suffix, payload)
            pipe.execute()
    except RedisError:
        app.extensions[DOWN_UNTIL] = time.monotonic() + REDIS_BACKOFF_SECONDS
        log.warning("live updates: Redis unreachable, %d messages dropped", len(messages))


def _note_or_publish(obj: Any, messages: list[Message]) -> None:
    """Inside a transaction: publish with it; outside one: now."""
    if not has_app_context():
        return
    session = sa.orm.object_session(obj) if obj is not None else None
    if session is not None and session.in_transaction():
        _note(session, messages)
    else:
        publish(current_app._get_current_object(), messages)  # type: ignore[attr-defined]


def _on_task_assigned(sender: Any, task: Any = None, user: Any = None, **extra: Any) -> None:
    if task is None or task.id is None:
        return
    by = getattr(extra.get("by"), "id", None)
    messages: list[Message] = [(f"task:{task.id}", json.dumps({"kind": "assigned", "by": by}))]
    messages += [(f"user:{uid}", json.dumps({"task": task.id}))
                 for uid in {getattr(user, "id", None), task.owner_id} if uid]
    _note_or_publish(task, messages)


def _on_comment_posted(sender: Any, process: Any = None, task: Any = None, comment: Any = None,
                       **extra: Any) -> None:
    target = task if task is not None else process
    if target is None or target.id is None:
        return
    # The comment's author, whatever the comment model calls it.
    by = next((getattr(comment, name) for name in ("author_id", "user_id")
               if isinstance(getattr(comment, name, None), int)), None)
    payload = json.dumps({"kind": "comment", "by": by})
    suffix = f"task:{task.id}" if task is not None else f"process:{process.id}"
    _note_or_publish(target, [(suffix, payload)])


def init_app(app: Flask) -> None:
    """Listen to every Flask-SQLAlchemy session and the engine's signals (once per process;
    each app decides per commit whether it publishes)."""
    if sa.event.contains(Session, "after_flush", _after_flush):
        return
    sa.event.listen(Session, "after_flush", _after_flush)
    row_updates.listeners.append(_note_tasks)
    sa.event.listen(Session, "after_commit", _after_commit)
    sa.event.listen(Session, "after_rollback", _after_rollback)
    signals.task_assigned.connect(_on_task_assigned)
    signals.comment_posted.connect(_on_comment_posted)
