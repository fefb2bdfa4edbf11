"""What several blueprints share: the flows, rows by URL, URLs of rows, checked input.

Template globals are registered here, once, for every blueprint's templates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa
from flask import Flask, abort, current_app, g, request, url_for
from flask_login import current_user
from sqlalchemy.orm import joinedload
from werkzeug.routing import BuildError, IntegerConverter

from ..core.flow import Flow
from ..core.models import MAX_ID, Process, Task, User, is_row_id
from ..datarows import data_rows
from ..extensions import db
from ..graph_svg import flow_svg

TASK_ENDPOINT = "flows.task_detail"
TRANSITION_ENDPOINT = "flows.task_transition"
#: The query keys the list pages read; only these are carried into pager and sort links.
LIST_KEYS = ("flow", "status", "q", "sort", "page", "started_from", "started_to", "has_error", "when",
             "trail", "comments")  # the process page's audit trail and comments, paged beside its tasks
_ID = re.compile(r"[0-9]{1,10}")


class IdConverter(IntegerConverter):
    """``<int:...>`` in our URLs: 1 to MAX_ID in ASCII digits, written as ``url_for`` writes
    it (no leading zero); anything else (``١``, ``１``, ``01``) is a 404.

    Werkzeug's ``\\d+`` matches any Unicode digit, which ``int()`` reads too."""

    regex = r"[1-9][0-9]{0,9}"

    def __init__(self, map: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("min", 1)
        kwargs.setdefault("max", MAX_ID)
        super().__init__(map, *args, **kwargs)


# -- the flows and their rows ------------------------------------------------------------


def all_flows() -> dict[str, type[Flow]]:
    """The app's flows by label."""
    flows: dict[str, type[Flow]] = current_app.extensions["webflow_flows"]
    return flows


def managed_flows(user: Any) -> dict[str, type[Flow]]:
    """The flows the user may manage, by label."""
    return {label: f for label, f in all_flows().items() if f.can_manage(user)}


def flow_or_404(flow_label: str) -> type[Flow]:
    """The flow with this label, or 404."""
    flow_class = all_flows().get(flow_label)
    if flow_class is None:
        abort(404)
    return flow_class


def process_or_404(flow_class: type[Flow], process_id: int) -> Process:
    """The process of this flow, or 404 (also for a process of another flow)."""
    process = db.session.get(Process, process_id)
    if process is None or process.flow_class_path != flow_class.path():
        abort(404)
    return process


def task_or_404(process: Process, node: str, task_id: int) -> Task:
    """The task of this process at this node, or 404."""
    task = db.session.get(Task, task_id)
    if task is None or task.process_id != process.id or task.node_name != node:
        abort(404)
    return task


#: A task with its process (one statement, built once; see flow_task_or_404).
TASK_WITH_PROCESS = sa.select(Task).where(Task.id == sa.bindparam("task_id")).options(joinedload(Task.process))


def flow_task_or_404(flow_class: type[Flow], process_id: int, node: str, task_id: int) -> Task:
    """The task a task URL names, with its process read in the same statement; 404 unless
    it belongs to that process, the process to this flow, and the task to that node.

    The task holds its process: a process looked up on its own and then dropped leaves the
    session's (weak) identity map, and ``task.process`` would read it again."""
    task = db.session.execute(TASK_WITH_PROCESS, {"task_id": task_id}).unique().scalar_one_or_none()
    if (task is None or task.process_id != process_id or task.node_name != node
            or task.process.flow_class_path != flow_class.path()):
        abort(404)
    return task


#: Active users (at most 500, by name) with their groups, which every permission check
#: reads (else one statement a user). Built once: the statement does not change.
ACTIVE_USERS = (sa.select(User).where(User.is_active.is_(True)).order_by(User.username).limit(500)
                .options(joinedload(User.groups)))


def assignable_users(task: Task) -> list[User]:
    """Active users who may work on the task's node (for the assign/reassign picker)."""
    node = task.flow_task
    # Read once per request: a process page asks for every task of it.
    users = g.get("_active_users")
    if users is None:
        users = g._active_users = db.session.scalars(ACTIVE_USERS).unique().all()
    return [u for u in users if node.user_has_permission(u)]


# -- checked input -------------------------------------------------------------------------


def child_processes(tasks: list[Task]) -> list[Process]:
    """The processes the tasks started (subprocesses), oldest first."""
    ids = [t.id for t in tasks if t.flow_task_type == "SUBPROCESS"]
    if not ids:
        return []
    return list(db.session.scalars(sa.select(Process).where(Process.parent_task_id.in_(ids))
                                   .order_by(Process.id)))


def parse_id(raw: str | None) -> int | None:
    """An id from a form or query string: ASCII digits, 1 to MAX_ID; else None."""
    raw = (raw or "").strip()
    if not _ID.fullmatch(raw):
        return None
    value = int(raw)
    return value if is_row_id(value) else None


def page_number() -> int:
    """The ``page`` query value (1 for a missing or bad one, at most what an offset can hold)."""
    return min(parse_id(request.args.get("page")) or 1, 10**6)


def within_pages(number: int, total: int, per_page: int) -> int:
    """The page asked for, or the last page when it is past the end (a list left open on its
    last page after that page emptied; a hand-typed number): never an empty page that says
    "Page 9 of 3" over "nothing here" while earlier pages have rows."""
    return max(1, min(number, -(-total // per_page)))


def paginate_within(query: Any, per_page: int) -> Any:
    """``db.paginate`` of the asked page (``?page=``), or of the last page when it is past the end."""
    page = db.paginate(query, page=page_number(), per_page=per_page, error_out=False)
    if page.total and page.page > (page.pages or 1):
        page = db.paginate(query, page=page.pages, per_page=per_page, error_out=False)
    return page


def parse_day(raw: str | None) -> date | None:
    """A ``YYYY-MM-DD`` day from 1900 to 9998 (a day later is still a day), else None."""
    try:
        day = date.fromisoformat(raw) if raw else None
    except ValueError:
        return None
    return day if day is not None and 1900 <= day.year <= 9998 else None


def list_args(**values: Any) -> dict[str, Any]:
    """The list page's own query keys, with ``values`` on top (for pager and sort links).

    Never the whole query string: a key such as ``endpoint`` or ``_external`` would be
    taken by ``url_for`` as one of its own arguments."""
    args: dict[str, Any] = {k: v for k, v in request.args.items() if k in LIST_KEYS}
    args.update({k: v for k, v in values.items() if k in LIST_KEYS})
    return args


# -- URLs of rows ----------------------------------------------------------------------------


def task_url(task: Task) -> str:
    """The task page's URL."""
    return row_task_url(task.flow_class, task.process_id, task)


@dataclass
class ResultPage:
    """A page of rows (search results, a process's tasks), shaped like Flask-SQLAlchemy's
    pagination for the pager macro."""

    items: list[Any]
    page: int
    per_page: int
    total: int
    capped: bool

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    @property
    def has_prev(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages

    @property
    def prev_num(self) -> int:
        return self.page - 1

    @property
    def next_num(self) -> int:
        return self.page + 1


def row_task_url(flow_class: Any, process_id: int, row: Any) -> str:
    """The task page's URL from the task's flow, its process and anything with the task's
    ``id`` and ``node_name`` (the task, or a plain row of it)."""
    try:
        return url_for(TASK_ENDPOINT, flow_label=flow_class.flow_label, process_id=process_id,
                       node=row.node_name, task_id=row.id)
    except BuildError:
        return f"#task-{row.id}"  # the task page is not there: its row on this page


#: Kept page URLs (page_url) per app, at most this many (site roots come from the request).
MAX_PAGE_URLS = 1000


def page_url(endpoint: str, **values: Any) -> str:
    """``url_for`` for the links every page draws with fixed values (static files, the
    navigation): the same for every request under one site root, so built once per root and
    kept. A page drew about twenty, each a trip through the URL map."""
    key = (request.script_root, endpoint, tuple(sorted(values.items())))
    urls: dict[Any, str] = current_app.extensions.setdefault("webflow_page_urls", {})
    url = urls.get(key)
    if url is None:
        if len(urls) >= MAX_PAGE_URLS:  # site roots are the request's (a proxy's prefix)
            urls.clear()
        url = urls[key] = url_for(endpoint, **values)
    return url


def transition_url(task: Task, transition: str) -> str:
    """The URL that runs a transition on the task (the web app's transition endpoint)."""
    values: dict[str, Any] = {"flow_label": task.flow_class.flow_label, "process_id": task.process_id,
                              "node": task.node_name, "task_id": task.id, "transition": transition}
    try:
        return url_for(TRANSITION_ENDPOINT, **values)
    except BuildError:
        return "/flows/{flow_label}/{process_id}/{node}/{task_id}/{transition}/".format(**values)


def shown_key(task: Task) -> str:
    """What a task page's work card and buttons depend on besides the user: the task's
    status and owner. The page's live refresh sends it (``…/status/?shown=``), and every
    form of the page carries it (``shown``), so an answer can tell a page drawn before
    someone else changed the task."""
    return f"{task.status.value}:{task.owner_id or ''}"


def process_url(process: Process) -> str:
    """The process page's URL."""
    return url_for("flows.process_detail", flow_label=process.flow_class.flow_label,
                   process_id=process.id)


def error_summary(comments: str | None) -> str:
    """The line that says what went wrong: a traceback's last line."""
    lines = [line for line in (comments or "").strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def flow_managers(flow_class: type[Flow]) -> list[str]:
    """Who manages the flow (usernames), for "ask ..." messages."""
    users = db.session.scalars(ACTIVE_USERS).unique().all()
    return [u.username for u in users if flow_class.can_manage(u) and not u.is_superuser][:5]


def can_administer() -> bool:
    """True when the admin pages exist and the user manages a flow (for the nav link)."""
    return ("admin.index" in current_app.view_functions and current_user.is_authenticated
            and bool(managed_flows(current_user)))


def register_template_globals(app: Flask) -> None:
    """The helpers every template may call."""
    for func in (process_url, task_url, transition_url, can_administer, list_args, flow_managers, page_url,
                 shown_key):
        app.add_template_global(func, func.__name__)
    app.add_template_global(flow_svg, "flow_graph")
    app.add_template_global(data_rows, "data_rows")
    app.add_template_filter(error_summary, "error_summary")
