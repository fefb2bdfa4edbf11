"""Pages that update themselves: the event stream, its polling fallback, the nav counts.

With Redis (``REDIS_URL``) every page keeps one server-sent event stream open
(``/events/``, htmx's sse extension on ``<body>``); the elements that can go stale name the
events they listen to (``hx-trigger="sse:queue"``) and fetch a fresh fragment from their
normal endpoint, which checks permissions as always. Without Redis, or while no stream is
open, webflow.js asks ``/events/poll`` every few seconds with the ETag of what the page
has seen, answered 304 when nothing changed, and fires the same events itself.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Flask, Response, current_app, g, redirect, request, url_for
from flask_login import current_user, login_required

from .. import livefeed
from ..core.exceptions import FlowRuntimeError
from ..core.flow import Flow
from ..core.models import Comment
from ..extensions import db
from ..livestream import Hub, stream
from ..models import Task, User
from .inbox import LISTS, LIVE_COMMENTS, LIVE_VERSION, nav_counts, reader_of, served, version_text
from .lookups import all_flows, parse_id
from .tasks import may_see
from .web import wants_fragment

bp = Blueprint("live", __name__)

#: At most this many task pages' events per stream or poll (one page shows one task).
MAX_TASKS = 5


def live_version() -> str:
    """The newest audit event's and comment's ids: what a page has seen when it is drawn (two
    index lookups in one statement; none on a page that drew its navigation counts first:
    they read it, see inbox.nav_counts)."""
    if "live_version" in g:
        return str(g.live_version)
    return version_text(*db.session.execute(sa.select(LIVE_VERSION, LIVE_COMMENTS)).one())


def watched_tasks(user: User) -> list[Task]:
    """The tasks named in ``?task=`` that the user may see (others are ignored)."""
    ids = [i for i in map(parse_id, request.args.getlist("task")[:MAX_TASKS]) if i is not None]
    if not ids:
        return []
    flows = {f.path(): f for f in all_flows().values()}
    tasks = db.session.scalars(sa.select(Task).where(Task.id.in_(ids)).order_by(Task.id)).all()
    return [t for t in tasks if t.flow_class_path in flows and may_see(flows[t.flow_class_path], t, user)]


# -- the stream --------------------------------------------------------------------------------


def hub(app: Flask) -> Hub:
    found = app.extensions.get("webflow_live_hub")
    if found is None:
        found = Hub(app.config["REDIS_URL"], livefeed.channel_prefix(app),
                    int(app.config["WEBFLOW_LIVE_MAX_STREAMS"]))
        app.extensions["webflow_live_hub"] = found
    return found


def queue_filter(user: User) -> Any:
    """May the user take tasks of the node? The node's own rule (``user_has_permission``),
    answered from the user's permissions loaded before the stream began."""
    flows: dict[str, type[Flow]] = {f.path(): f for f in all_flows().values()}
    answers: dict[tuple[str, str], bool] = {}

    def may_take(flow_path: str, node_name: str) -> bool:
        key = (flow_path, node_name)
        if key not in answers:
            flow_class = flows.get(flow_path)
            try:
                answers[key] = bool(flow_class is not None
                                    and flow_class.node(node_name).user_has_permission(user))
            except FlowRuntimeError:  # a node this version of the flow no longer has
                answers[key] = False
        return answers[key]

    return may_take


@bp.route("/events/")
@login_required
def events() -> Any:
    """The logged-in user's event stream: 204 without Redis (the page polls), 503 while
    Redis cannot be reached or this process serves as many streams as it may."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if not livefeed.enabled(app):
        return Response(status=204)
    user = current_user._get_current_object()
    channels = {f"user:{user.id}", "queue", *(f"task:{t.id}" for t in watched_tasks(user))}
    user.get_all_permissions()  # loads the groups: the filter below reads no database
    may_take = queue_filter(user)
    # Give the connection back before waiting: an open page must not hold one.
    db.session.remove()
    subscription = hub(app).subscribe(channels, may_take)
    if subscription is None:
        return Response("live updates are unavailable; the page polls\n", status=503,
                        headers={"Retry-After": "5"}, mimetype="text/plain")
    body = stream(hub(app), subscription, float(app.config["WEBFLOW_LIVE_HEARTBEAT"]),
                  float(app.config["WEBFLOW_LIVE_LIFETIME"]))
    return Response(body, mimetype="text/event-stream",
                    headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


# -- the polling fallback ----------------------------------------------------------------------


def _digest(*values: Any) -> str:
    return hashlib.blake2s(repr(values).encode(), digest_size=4).hexdigest()


def list_digest(name: str, user: User) -> str:
    """What the user's inbox or queue holds, cheaply: how many tasks (as counted for the
    navigation), the newest, and the latest assignment (a task taken from elsewhere)."""
    condition = served(LISTS[name].condition(reader_of(user)))
    newest, assigned = db.session.execute(
        sa.select(sa.func.max(Task.id), sa.func.max(Task.assigned)).where(condition)).one()
    return _digest(nav_counts()[name], newest, assigned)


#: A task's newest comment: its id and its author's.
NewestComment = tuple[int, int | None]


def task_digest(task: Task, comment: NewestComment | None) -> str:
    """What a task page shows that can change, in two parts: the task (status, owner, due
    date, priority, end) and its newest comment, so that a poll tells a comment from a change."""
    state = _digest(task.status, task.owner_id, task.due, task.priority, task.finished)
    return f"{state}-{comment[0] if comment else 0}"


def newest_comments(tasks: list[Task]) -> dict[int, NewestComment]:
    """Each task's newest comment: its id and author's, by task id (one statement)."""
    if not tasks:
        return {}
    newest = (sa.select(sa.func.max(Comment.id)).where(Comment.task_id.in_([t.id for t in tasks]))
              .group_by(Comment.task_id))
    rows = db.session.execute(sa.select(Comment.task_id, Comment.id, Comment.author_id)
                              .where(Comment.id.in_(newest))).all()
    return {task_id: (comment_id, author_id) for task_id, comment_id, author_id in rows if task_id is not None}


def comment_news(before: str | None, now: str, seen_comments: int | None,
                 comment: NewestComment | None) -> str | None:
    """The event data of a task's poll event when its news is a comment (as a stream sends
    it: the banner names the author), else None: the banner reads the audit trail. With the
    page's parts known, a comment is news when its part alone changed; on the first poll,
    when the comment is newer than the page's version."""
    if comment is None:
        return None
    if before is not None:  # as the page sent it: any text
        task_before, _, comment_before = before.partition("-")
        task_now, _, comment_now = now.partition("-")
        new = task_before == task_now and comment_before != comment_now
    else:
        new = seen_comments is not None and comment[0] > seen_comments
    return json.dumps({"kind": "comment", "by": comment[1]}) if new else None


def parse_etag(raw: str | None) -> list[str]:
    value = (raw or "").strip()
    value = value[2:] if value.startswith("W/") else value
    return value.strip('"')[:200].split(".")


@bp.route("/events/poll")
@login_required
def poll() -> Any:
    """Which of the page's events happened since the ETag it sends: 304 when none did."""
    seen = parse_etag(request.headers.get("If-None-Match"))
    version = live_version()
    if seen[0] == version:
        return _not_modified(".".join(seen))
    user = current_user._get_current_object()
    parts = {"inbox": list_digest("inbox", user), "queue": list_digest("queue", user)}
    tasks = watched_tasks(user)
    newest = newest_comments(tasks)
    parts.update((f"task-{t.id}", task_digest(t, newest.get(t.id))) for t in tasks)
    before = dict(zip(parts, seen[1:], strict=False)) if len(seen) == len(parts) + 1 else {}
    changed = [name for name, digest in parts.items() if before.get(name) != digest]
    etag = ".".join([version, *parts.values()])
    if not changed:
        return _not_modified(etag)
    raw = seen[0].partition("-")[2]  # the newest comment the page had seen (0: none yet)
    seen_comments = 0 if raw == "0" else parse_id(raw)
    comments = {f"task-{task_id}": comment for task_id, comment in newest.items()}
    events = []
    for name in changed:
        data = comment_news(before.get(name), parts[name], seen_comments, comments.get(name))
        events.append({"event": name, "data": data} if data else {"event": name})
    response = current_app.json.response({"events": events})
    response.set_etag(etag)
    response.headers["Cache-Control"] = "no-store"
    return response


def _not_modified(etag: str) -> Response:
    response = Response(status=304)
    response.set_etag(etag)
    response.headers["Cache-Control"] = "no-store"
    return response


# -- the navigation counts ---------------------------------------------------------------------


@bp.route("/events/counts")
@login_required
def counts() -> Any:
    """The navigation's inbox and queue counts, out of band (an HTMX fragment)."""
    if not wants_fragment():
        return redirect(url_for("inbox.inbox"), code=303)
    from flask import render_template

    return render_template("live/counts.html")


def register_template_globals(app: Flask) -> None:
    @app.context_processor
    def live_settings() -> dict[str, Any]:
        return {"live_streams": livefeed.enabled(app), "live_version": live_version,
                "live_poll_seconds": app.config["WEBFLOW_LIVE_POLL_SECONDS"]}
