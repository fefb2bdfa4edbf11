"""The task lists: inbox (assigned to me), queue (mine to take, bulk assign), archive."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, abort, current_app, flash, g, redirect, request, url_for
from flask_login import current_user, login_required
from sqlalchemy.orm import contains_eager, defer

from ..core.exceptions import FlowLockFailed, PermissionDenied, TransitionNotAllowed
from ..core.flow import Flow
from ..core.models import Comment
from ..core.nodes.view import ViewActivation
from ..core.search import SearchTerms, task_matches
from ..core.status import STATUS
from ..extensions import db
from ..models import Process, Task, TaskEvent, User
from .actions import what_happened
from .lookups import all_flows, list_args, page_number, parse_id, within_pages
from .web import engine_context, render_page, wants_fragment

bp = Blueprint("inbox", __name__)

SORTS = {"created": Task.created, "flow": Task.flow_class_path, "task": Task.node_name,
         "due": Task.due, "priority": Task.priority}
DEFAULT_SORT = "-created"
#: The most queue tasks one request takes.
MAX_TAKE = 500
#: The "when" filter: tasks past their due date, or due from now to a week ahead.
WHEN_FILTERS = {"overdue": "Overdue", "week": "Due this week"}


def when_condition(name: str, now: datetime) -> sa.ColumnElement[bool]:
    if name == "overdue":
        return sa.and_(Task.due.is_not(None), Task.due <= now)
    return sa.and_(Task.due > now, Task.due <= now + timedelta(days=7))


def sort_order(sort: str) -> list[Any]:
    """ORDER BY for a sort key (``-`` for descending). Tasks without a due date come last
    either way; ties go by id, in the direction of the (due, id) and (priority, id) indexes
    when they serve the order."""
    name, descending = sort.lstrip("-"), sort.startswith("-")
    column = SORTS[name]
    first = column.desc() if descending else column.asc()
    if name == "due":
        first = first.nulls_last()
    if descending or name not in ("due", "priority"):
        return [first, Task.id.desc()]  # newest first among equals, as the lists always did
    return [first, Task.id.asc()]


@dataclass(frozen=True)
class Reader:
    """Who asks for a task list, as the lists' conditions read them. Hashable and all a
    condition may read, so a statement built from it stays right for as long as it is
    equal: the navigation's statement is built once per reader (see nav_statement)."""

    user_id: int
    superuser: bool
    #: Every permission they have, their groups' included, sorted.
    permissions: tuple[str, ...]
    #: The paths of the flows the rule book lets them view (``Flow.can_view``).
    viewable: tuple[str, ...]


def reader_of(user: User) -> Reader:
    """The reader ``user`` is now (once per request for the logged-in user)."""
    if g.get("_reader_user") is user:
        return g._reader  # type: ignore[no-any-return]
    reader = Reader(user.id, bool(user.is_superuser), tuple(sorted(user.get_all_permissions())),
                    tuple(f.path() for f in all_flows().values() if f.can_view(user)))
    g._reader_user, g._reader = user, reader
    return reader


def inbox_condition(reader: Reader) -> sa.ColumnElement[bool]:
    """Tasks assigned to the user and waiting for them."""
    return sa.and_(Task.owner_id == reader.user_id, Task.status == STATUS.ASSIGNED)


def queue_condition(reader: Reader) -> sa.ColumnElement[bool]:
    """Unassigned human tasks the user may take: the node's permission, or view for open nodes."""
    base = sa.and_(Task.status == STATUS.NEW, Task.owner_id.is_(None), Task.flow_task_type == "HUMAN")
    if reader.superuser:
        return base
    return sa.and_(base, sa.or_(
        Task.owner_permission.in_(reader.permissions),
        sa.and_(Task.owner_permission.is_(None), Task.flow_class_path.in_(reader.viewable)),
    ))


def archive_condition(reader: Reader) -> sa.ColumnElement[bool]:
    """Tasks the user finished."""
    return sa.and_(Task.owner_id == reader.user_id, Task.status == STATUS.DONE)


@dataclass(frozen=True)
class TaskList:
    title: str
    #: The list's rows for a reader: a function of the Reader alone.
    condition: Callable[[Reader], sa.ColumnElement[bool]]
    empty: str
    #: The order when the query string asks for none (or for one the list does not know).
    default_sort: str = DEFAULT_SORT
    #: The due filters it offers: none on the archive, whose finished tasks are never overdue
    #: (their due dates are history; the lists flag no finished task).
    when_filters: dict[str, str] = field(default_factory=lambda: WHEN_FILTERS)


#: The work lists show the highest priority first (SPEC: ``.Priority``, "higher comes first
#: in lists"), the newest first among equal ones (served by ix_task_queue_priority for the
#: queue); the archive of finished work, the newest first.
WORK_SORT = "-priority"

LISTS = {
    "inbox": TaskList("Inbox", inbox_condition, "Nothing to do: no task is assigned to you.", WORK_SORT),
    "queue": TaskList("Queue", queue_condition, "The queue is empty: no task is waiting to be taken.",
                      WORK_SORT),
    "archive": TaskList("Archive", archive_condition, "You have not finished any task yet.", when_filters={}),
}


def served_paths() -> tuple[str, ...]:
    """The paths of the flows this app serves."""
    return tuple(f.path() for f in all_flows().values())


def served(condition: sa.ColumnElement[bool], paths: tuple[str, ...] | None = None) -> sa.ColumnElement[bool]:
    """Limit to the flows this app serves (rows of other flows cannot be shown)."""
    return sa.and_(condition, Task.flow_class_path.in_(served_paths() if paths is None else paths))


def count_rows(rows: sa.Select[Any]) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(rows.order_by(None).subquery())) or 0


def count(condition: sa.ColumnElement[bool], cap: int | None = None) -> int:
    """How many tasks match (on the task table alone: its indexes answer it); with a cap,
    counting stops at cap + 1, so a huge queue costs no more than a small one."""
    matching = sa.select(Task.id).where(condition)
    return count_rows(matching if cap is None else matching.limit(cap + 1))


NAV_LISTS = ("inbox", "queue")
#: The newest audit event's id and the newest comment's: the version a page's live updates
#: start from (live.py). A comment writes no audit event, and it is news to a task page.
LIVE_VERSION = sa.select(sa.func.max(TaskEvent.id)).scalar_subquery()
LIVE_COMMENTS = sa.select(sa.func.max(Comment.id)).scalar_subquery()


def version_text(event_id: int | None, comment_id: int | None) -> str:
    """The live version as pages and ETags carry it: ``<event id>-<comment id>``."""
    return f"{event_id or 0}-{comment_id or 0}"


def capped_count(condition: sa.ColumnElement[bool], cap: int) -> sa.ScalarSelect[int]:
    """``count`` as a subquery: how many tasks match, counting stops at cap + 1."""
    matching = sa.select(Task.id).where(condition).limit(cap + 1).subquery()
    return sa.select(sa.func.count()).select_from(matching).scalar_subquery()


@functools.lru_cache(maxsize=512)
def nav_statement(reader: Reader, paths: tuple[str, ...], cap: int) -> sa.Executable:
    """The navigation's one statement for a reader: built once and kept, since building it
    (and its cache key, which SQLAlchemy keeps on the statement) cost as much as running it."""
    return sa.select(*(capped_count(served(LISTS[name].condition(reader), paths), cap)
                       for name in NAV_LISTS), LIVE_VERSION, LIVE_COMMENTS)


@bp.app_template_global()
def nav_counts() -> dict[str, int]:
    """How many tasks wait in my inbox and queue (computed once per request, when drawn).

    One statement reads both counts and the live version every page draws too (see
    live.live_version): three round trips were a third of a small page's statements."""
    if not current_user.is_authenticated:
        return {}
    if "nav_counts" not in g:
        reader = reader_of(current_user._get_current_object())
        statement = nav_statement(reader, served_paths(), current_app.config["WEBFLOW_NAV_COUNT_CAP"])
        *counts, version, comment = db.session.execute(statement).one()
        g.nav_counts = {name: int(value or 0) for name, value in zip(NAV_LISTS, counts, strict=True)}
        # Read with (or before) what the page shows: a change after it still reaches the page.
        g.live_version = version_text(version, comment)
    return g.nav_counts  # type: ignore[no-any-return]


def list_filters(flows: dict[str, type[Flow]], default_sort: str = DEFAULT_SORT,
                 when_filters: dict[str, str] = WHEN_FILTERS) -> dict[str, Any]:
    """The list's flow filter, free text, due filter and sort from the query string (bad
    values ignored: the list's ``default_sort``)."""
    args = request.args
    sort = args.get("sort", default_sort)
    if args.get("flow", "") and args["flow"] not in flows:
        # A bookmark or link of a flow no longer served: said, not silently every flow's
        # tasks under a page that looks filtered.
        flash(f"There is no flow “{args['flow'][:64]}” here (any more): the list shows every flow's tasks.",
              "info")
    return {
        "flow": args.get("flow", "") if args.get("flow", "") in flows else "",
        "q": args.get("q", "").strip()[:200],
        "when": args.get("when", "") if args.get("when", "") in when_filters else "",
        "sort": sort if sort.lstrip("-") in SORTS else default_sort,
    }


@functools.lru_cache(maxsize=512)
def list_rows(name: str, reader: Reader, paths: tuple[str, ...], flow_path: str,
              sort: str) -> tuple[sa.ColumnElement[bool], sa.Select[Any]]:
    """The condition and the ordered rows of a list for a reader (and a flow filter): built
    once and kept, as the navigation's statement (building took as long as running it)."""
    condition = served(LISTS[name].condition(reader), paths)
    if flow_path:
        condition = sa.and_(condition, Task.flow_class_path == flow_path)
    query = (sa.select(Task).join(Process, Task.process_id == Process.id).where(condition)
             # The page shows each task's process; it shows neither's data nor the task's
             # traceback: unread, those JSON columns cost two mutable-dict set-ups a row.
             .options(contains_eager(Task.process).defer(Process.data),
                      defer(Task.data), defer(Task.comments))
             .order_by(*sort_order(sort)))
    return condition, query


def task_page(name: str) -> Any:
    """One page of the named list, filtered and sorted as the query string says."""
    user = current_user._get_current_object()
    flows = all_flows()
    filters = list_filters(flows, LISTS[name].default_sort, LISTS[name].when_filters)
    condition, query = list_rows(name, reader_of(user), served_paths(),
                                 flows[filters["flow"]].path() if filters["flow"] else "", filters["sort"])
    if filters["when"]:  # relative to now: added to the kept statement, not kept
        when = when_condition(filters["when"], datetime.now(UTC))
        condition, query = sa.and_(condition, when), query.where(when)
    # The total: over the process join only for a text search; else on the task table
    # alone, or the navigation's count of the same list when it is exact.
    if filters["q"]:
        # Full-text search (core.search): words of the data, titles, numbers, people.
        query = query.where(task_matches(db.engine.dialect.name, SearchTerms.parse(filters["q"])))
        total = count_rows(query.with_only_columns(Task.id))
    elif (not filters["flow"] and not filters["when"] and name in NAV_LISTS
          and nav_counts()[name] <= current_app.config["WEBFLOW_NAV_COUNT_CAP"]):
        total = nav_counts()[name]
    else:
        total = count(condition)
    per_page = current_app.config["WEBFLOW_PAGE_SIZE"]
    page = db.paginate(query, page=within_pages(page_number(), total, per_page), per_page=per_page,
                       error_out=False, count=False)
    page.total = total  # pages, has_next and the like follow from it
    return page, filters


def render_list(name: str, status: int = 200, filter_name: str = "") -> Any:
    page, filters = task_page(name)
    return render_page("inbox/list.html", ["tasks"], status=status, page=page, filters=filters,
                       flows=all_flows(), when_filters=LISTS[name].when_filters, list_name=name,
                       filter_name=filter_name, endpoint=f"inbox.{name}", listing=LISTS[name],
                       title=LISTS[name].title)


@bp.route("/inbox/")
@login_required
def inbox() -> Any:
    """Tasks assigned to me."""
    return render_list("inbox")


@bp.route("/queue/")
@login_required
def queue() -> Any:
    """Tasks I may assign to myself."""
    return render_list("queue")


@bp.route("/archive/")
@login_required
def archive() -> Any:
    """Tasks I finished."""
    return render_list("archive")


@bp.route("/queue/", methods=["POST"])
@login_required
def queue_assign() -> Any:
    """Assign the chosen queue tasks (or the one ``take`` names) to me."""
    # "All on this page" takes the rows the page listed (without JavaScript too).
    if request.form.get("take"):
        raw = [request.form["take"]]
    elif request.form.get("select_all"):
        raw = request.form.getlist("page_task_id")
    else:
        raw = request.form.getlist("task_id")
    raw = [value for value in raw if value.strip()]  # an empty box is no choice
    ids = [parse_id(value) for value in raw]
    if not ids:
        flash("Choose the tasks to take first.", "info")
        return _after_queue_action(400)
    # One id that is no id (not ASCII digits, out of range) or too many: 400, nothing taken.
    if None in ids or len(ids) > MAX_TAKE:
        flash(f"Take at most {MAX_TAKE} tasks at a time. Nothing was taken." if len(ids) > MAX_TAKE
              else "One of the chosen tasks is not a task number. Nothing was taken.", "error")
        return _after_queue_action(400)
    tasks = _queue_tasks([task_id for task_id in ids if task_id is not None])
    user = current_user._get_current_object()
    # Each take is a transaction of its own: one that fails (taken meanwhile, its process
    # busy past the lock's wait, the permission taken away under the lock) leaves the takes
    # before it stored, so the answer names both, never "nothing was changed".
    taken, gone, busy, refused = 0, [], 0, 0
    for task in tasks:
        try:
            if not task.flow_task.can_assign(user, task):
                raise TransitionNotAllowed("already taken")
            with engine_context():
                task.activate().assign(user)
            taken += 1
        except TransitionNotAllowed:
            db.session.rollback()
            gone.append(task)
        except FlowLockFailed:
            db.session.rollback()
            busy += 1
        except PermissionDenied:
            db.session.rollback()
            refused += 1
    if taken:
        flash(f"{taken} task{'s' if taken != 1 else ''} assigned to you.", "success")
    for message in not_taken_messages(gone, user):
        flash(message, "error")
    if busy:
        flash(f"{_tasks(busy)} not taken: {'its process was' if busy == 1 else 'their processes were'} "
              "busy. Try again in a moment.", "error")
    if refused:
        flash(f"{_tasks(refused)} not taken: you may no longer take {'it' if refused == 1 else 'them'}.",
              "error")
    if taken:
        return _after_queue_action(200)
    return _after_queue_action(409 if gone else 503 if busy else 403)


def _tasks(count: int) -> str:
    return "1 task" if count == 1 else f"{count} tasks"


#: What the queue says of tasks it could not take, by what became of them (actions.what_happened).
NOT_TAKEN = {"canceled": ("was canceled meanwhile and is", "were canceled meanwhile and are",
                          " no longer open"),
             "done": ("was", "were", " already done"),
             "taken": ("was", "were", " already taken by {owner}")}


def not_taken_messages(tasks: list[Task], user: User) -> list[str]:
    """"1 task was already taken by alice.", "2 tasks were canceled meanwhile ...": one
    sentence for each thing that became of the tasks the queue could not take."""
    kinds: dict[str, list[Task]] = {}
    for task in tasks:
        kinds.setdefault(what_happened(task), []).append(task)
    messages = []
    for kind, rows in kinds.items():
        one, many, words = NOT_TAKEN.get(kind, ("is", "are", " not open to be taken now"))
        owners = {"you" if t.owner_id == user.id else t.owner.username if t.owner is not None
                  else "someone else" for t in rows}
        words = words.format(owner=owners.pop() if len(owners) == 1 else "someone else")
        count = f"1 task {one}" if len(rows) == 1 else f"{len(rows)} tasks {many}"
        messages.append(f"{count}{words}.")
    return messages


def _queue_tasks(ids: list[int]) -> list[Task]:
    """The tasks by id; 404 for an unknown one, 403 unless I may take every one of them,
    each naming the task (the bare "There is no such page" or "You do not have permission
    to do that" did not say which of the chosen tasks, nor that none was taken)."""
    flows = {f.path() for f in all_flows().values()}
    tasks = db.session.scalars(sa.select(Task).where(Task.id.in_(ids)).order_by(Task.id)).all()
    found = {t.id for t in tasks if t.flow_class_path in flows}
    missing = sorted(set(ids) - found)
    if missing:
        more = f" (nor {len(missing) - 1} more of those chosen)" if len(missing) > 1 else ""
        abort(404, f"There is no task #{missing[0]} here{more}: nothing was taken. "
                   "Reload the queue and choose again.")
    user = current_user._get_current_object()
    for task in tasks:
        if not isinstance(task.activate(), ViewActivation) or not task.flow_task.user_has_permission(user):
            abort(403, f"You may not take {task.flow_task.title} #{task.id}: nothing was taken.")
    return list(tasks)


def _after_queue_action(status: int) -> Any:
    if wants_fragment():
        return render_list("queue", status=status)
    return redirect(url_for("inbox.queue", **list_args()), code=303)
