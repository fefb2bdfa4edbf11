"""Administrators' pages: the overview, the process page's repair tools, process cancel."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user, login_required
from jinja2_fragments.flask import render_block
from sqlalchemy.orm import selectinload
from werkzeug.routing import BuildError

from ..core.context import Context
from ..core.engine import cancel_blocker
from ..core.exceptions import FlowRuntimeError, TransitionNotAllowed
from ..core.flow import Flow
from ..core.models import TIMER_TYPES, Process, Task, TaskEvent, User
from ..core.status import FINISHED, STATUS
from ..core.timers import change_due, due_timers_query, fire_timer
from ..extensions import db
from ..graph_svg import flow_svg, node_states
from ..jobs import job_mode
from ..timefmt import parse_local_input

bp = Blueprint("admin", __name__)

#: The transitions the web transition endpoint runs; the others are the engine's own steps.
WEB_TRANSITIONS = ("assign", "unassign", "reassign", "undo", "cancel", "perform", "retry",
                   "restart", "activate_next")
#: Transitions that hand a human task to a person the administrator picks.
USER_TRANSITIONS = ("assign", "reassign")
TASK_ENDPOINT = "flows.task_detail"
TRANSITION_ENDPOINT = "flows.task_transition"
PROCESS_STATUSES = (STATUS.NEW, STATUS.DONE, STATUS.CANCELED)
WAITING_JOB = (STATUS.SCHEDULED, STATUS.STARTED)
#: A timer still waiting this long after its due time is listed as stuck.
LATE_TIMER = timedelta(minutes=1)
#: The largest id a URL may name (PostgreSQL's integer): larger ones are no row, not an error.
MAX_ID = 2**31 - 1


# -- lookups shared by the views ---------------------------------------------------------


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


def error_summary(comments: str | None) -> str:
    """The line that says what went wrong: a traceback's last line."""
    lines = [line for line in (comments or "").strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def job_mode_text(app: Flask) -> str:
    """How jobs run, for people: RQ with the Redis host, or in this process."""
    mode = job_mode(app)
    if mode == "rq":
        parts = urlsplit(app.config.get("REDIS_URL") or "")
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
        return f"RQ workers on Redis at {host}{port}{parts.path or ''}"
    how = "on a background thread" if mode == "thread" else "in the request, right"
    return f"in the web process, {how} after each commit (no REDIS_URL set)"


def admin_transitions(task: Task) -> list[str]:
    """The names of the transitions an administrator can run on the task now."""
    try:
        available = task.activate().get_available_transitions()
    except FlowRuntimeError:
        return []  # a node that left the flow's definition
    return [t.name for t in available if t.name in WEB_TRANSITIONS]


def assignable_users(task: Task) -> list[User]:
    """Active users who may work on the task's node (for the assign/reassign picker)."""
    node = task.flow_task
    users = db.session.scalars(
        sa.select(User).where(User.is_active.is_(True)).order_by(User.username).limit(500)
    ).all()
    check = getattr(node, "user_has_permission", None)
    return [u for u in users if check is None or check(u)]


def process_detail_context(flow_class: type[Flow], process: Process, user: Any) -> dict[str, Any]:
    """Everything the process page shows: data, tasks, graph, audit trail, repair buttons."""
    # Owners and links in three queries, not three per task.
    tasks = list(db.session.scalars(
        sa.select(Task).where(Task.process_id == process.id).order_by(Task.id)
        .options(selectinload(Task.owner), selectinload(Task.previous), selectinload(Task.leading))))
    manager = flow_class.can_manage(user)
    latest = {t.node_name: t for t in tasks}
    links = {name: task_url(t) for name, t in latest.items()}
    events = db.session.scalars(
        sa.select(TaskEvent).where(TaskEvent.process_id == process.id)
        .order_by(TaskEvent.created, TaskEvent.id)
    ).all()
    return {
        "flow_class": flow_class,
        "process": process,
        "tasks": tasks,
        "events": events,
        "is_manager": manager,
        "transitions": {t.id: admin_transitions(t) for t in tasks} if manager else {},
        "cancel_blocker": cancel_blocker(process) if manager else None,
        "graph": flow_svg(flow_class, node_states(tasks), links),
        "title": f"{flow_class.process_title} #{process.id}",
    }


def task_url(task: Task) -> str:
    """The task page's URL."""
    try:
        return url_for(TASK_ENDPOINT, flow_label=task.flow_class.flow_label,
                       process_id=task.process_id, node=task.node_name, task_id=task.id)
    except BuildError:
        return f"#task-{task.id}"  # the task page is not there: its row on this page


def transition_url(task: Task, transition: str) -> str:
    """The URL that runs a transition on the task (the web app's transition endpoint)."""
    values: dict[str, Any] = {"flow_label": task.flow_class.flow_label, "process_id": task.process_id,
              "node": task.node_name, "task_id": task.id, "transition": transition}
    try:
        return url_for(TRANSITION_ENDPOINT, **values)
    except BuildError:
        return "/flows/{flow_label}/{process_id}/{node}/{task_id}/{transition}/".format(**values)


def process_url(process: Process) -> str:
    """The process page's URL."""
    return url_for("flows.process_detail", flow_label=process.flow_class.flow_label,
                   process_id=process.id)


@bp.app_template_global()
def flow_graph(flow_class: type[Flow]) -> Any:
    """The flow's graph as inline SVG, for templates (``{{ flow_graph(flow_class) }}``)."""
    return flow_svg(flow_class)


bp.add_app_template_global(process_url, "process_url")
bp.add_app_template_global(task_url, "task_url")
bp.add_app_template_global(transition_url, "transition_url")
bp.add_app_template_filter(error_summary, "error_summary")


# -- the overview ------------------------------------------------------------------------


def _day(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def _process_filters(flows: dict[str, type[Flow]]) -> tuple[dict[str, Any], list[Any]]:
    """The filter form's values from the query string, and the matching SQL conditions."""
    args = request.args
    values: dict[str, Any] = {
        "flow": args.get("flow", ""), "status": args.get("status", ""),
        "started_from": _day(args.get("started_from")), "started_to": _day(args.get("started_to")),
        "has_error": args.get("has_error") in ("1", "on", "true", "y"),
    }
    if values["flow"] and values["flow"] not in flows:
        abort(404)
    chosen = [flows[values["flow"]]] if values["flow"] else list(flows.values())
    where: list[Any] = [Process.flow_class_path.in_([f.path() for f in chosen])]
    if values["status"] in {s.value for s in PROCESS_STATUSES}:
        where.append(Process.status == STATUS(values["status"]))
    else:
        values["status"] = ""
    if values["started_from"]:
        where.append(Process.created >= datetime.combine(values["started_from"], time.min, UTC))
    if values["started_to"]:
        where.append(Process.created < datetime.combine(values["started_to"] + timedelta(days=1),
                                                        time.min, UTC))
    if values["has_error"]:
        where.append(sa.exists().where(Task.process_id == Process.id, Task.status == STATUS.ERROR))
    return values, where


@bp.route("/admin/")
@login_required
def index() -> Any:
    """Processes of the flows I manage, tasks in ERROR, stuck jobs, the job mode."""
    flows = managed_flows(current_user)
    if not flows:
        abort(403)
    paths = [f.path() for f in flows.values()]
    values, where = _process_filters(flows)
    page = db.paginate(
        sa.select(Process).where(*where).order_by(Process.created.desc(), Process.id.desc())
        .options(selectinload(Process.created_by)),
        page=request.args.get("page", 1, type=int), per_page=current_app.config["WEBFLOW_PAGE_SIZE"],
        error_out=False,
    )
    counts = dict(db.session.execute(
        sa.select(Process.status, sa.func.count()).where(*where[:1]).group_by(Process.status)
    ).all())
    errors = db.session.scalars(
        sa.select(Task).where(Task.status == STATUS.ERROR, Task.flow_class_path.in_(paths))
        .order_by(Task.id.desc()).limit(50)).all()
    stuck_since = datetime.now(UTC) - timedelta(seconds=current_app.config["WEBFLOW_STUCK_JOB_SECONDS"])
    stuck = db.session.scalars(
        sa.select(Task).where(
            Task.flow_task_type == "JOB", Task.status.in_(WAITING_JOB), Task.flow_class_path.in_(paths),
            sa.func.coalesce(Task.started, Task.assigned, Task.created) < stuck_since,
        ).order_by(Task.status, Task.id).limit(50)).all()  # by status first: ix_task_status_id
    now = datetime.now(UTC)
    # Late timers first: waiting timers due a minute ago or more are stuck too (nothing fires
    # them: no worker, no web process thread).
    stuck = list(db.session.scalars(
        due_timers_query(now - LATE_TIMER).where(Task.flow_class_path.in_(paths))
        .with_only_columns(Task).limit(50))) + list(stuck)
    upcoming = db.session.scalars(
        sa.select(Task).where(Task.status == STATUS.SCHEDULED, Task.flow_task_type.in_(TIMER_TYPES),
                              Task.flow_class_path.in_(paths))
        .order_by(Task.due, Task.id).limit(50)).all()  # the timer index, in order
    overdue = dict(db.session.execute(
        sa.select(Task.flow_class_path, sa.func.count())
        .where(Task.due <= now, Task.status.not_in(list(FINISHED)), Task.flow_task_type.not_in(TIMER_TYPES),
               Task.flow_class_path.in_(paths))
        .group_by(Task.flow_class_path)).all())
    context = {
        "upcoming": upcoming, "overdue": overdue, "now": now,
        "flows": flows, "labels": {f.path(): label for label, f in flows.items()}, "filters": values,
        "page": page, "counts": counts, "statuses": PROCESS_STATUSES, "errors": errors,
        "stuck": stuck, "stuck_seconds": current_app.config["WEBFLOW_STUCK_JOB_SECONDS"],
        "job_mode": job_mode_text(current_app), "title": "Administration",
    }
    if request.headers.get("HX-Request") and not request.headers.get("HX-Boosted"):
        response = current_app.make_response(render_block("admin/index.html", "processes", **context))
    else:
        response = current_app.make_response(render_template("admin/index.html", **context))
    response.vary.add("HX-Request")
    return response


# -- confirmations and the process cancel -------------------------------------------------


def _manager_only(flow_class: type[Flow]) -> None:
    if not flow_class.can_manage(current_user):
        abort(403)


@bp.route("/admin/confirm/<flow_label>/<int:process_id>/<node>/<int:task_id>/<transition>/")
@login_required
def confirm_transition(flow_label: str, process_id: int, node: str, task_id: int,
                       transition: str) -> Any:
    """Ask before a repair action; the form posts to the task's transition endpoint."""
    flow_class = flow_or_404(flow_label)
    process = process_or_404(flow_class, process_id)
    task = task_or_404(process, node, task_id)
    _manager_only(flow_class)
    if transition not in WEB_TRANSITIONS:
        abort(404)
    allowed = transition in admin_transitions(task)
    users = assignable_users(task) if transition in USER_TRANSITIONS and allowed else []
    return render_template(
        "admin/confirm.html", flow_class=flow_class, process=process, task=task,
        transition=transition, allowed=allowed, users=users,
        reason=None if allowed else _blocked_reason(task, transition),
        title=f"{transition.replace('_', ' ').capitalize()} {task.node_name} #{task.id}",
    ), (200 if allowed else 409)


def _blocked_reason(task: Task, transition: str) -> str:
    activation = task.activate()
    declared = activation.transitions().get(transition)
    if declared is None:
        return f"{task.flow_task.__class__.__name__} tasks have no {transition} transition"
    return declared.blocked_reason(activation) or ""


@bp.route("/flows/<flow_label>/<int:process_id>/cancel/", methods=["GET", "POST"])
@login_required
def process_cancel(flow_label: str, process_id: int) -> Any:
    """GET asks for confirmation; POST cancels the process and every unfinished task."""
    flow_class = flow_or_404(flow_label)
    process = process_or_404(flow_class, process_id)
    _manager_only(flow_class)
    reason = cancel_blocker(process)
    if request.method == "GET" or reason is not None:
        if reason is not None and request.method == "POST":
            flash(f"The process was not canceled: {reason}.", "error")
        return render_template("admin/process_cancel.html", flow_class=flow_class, process=process,
                               reason=reason, title=f"Cancel {flow_class.process_title} #{process.id}"
                               ), (409 if reason else 200)
    try:
        with Context(propagate_exception=False, user=current_user._get_current_object()):
            process.cancel()
    except TransitionNotAllowed as exc:
        db.session.rollback()
        return render_template("admin/process_cancel.html", flow_class=flow_class, process=process,
                               reason=str(exc), title=f"Cancel {flow_class.process_title} #{process.id}"
                               ), 409
    flash(f"Process #{process.id} is canceled.", "success")
    return redirect(process_url(process), code=303)


@bp.route("/admin/timers/<int:task_id>/<action>/", methods=["POST"])
@login_required
def timer_action(task_id: int, action: str) -> Any:
    """Fire a waiting timer now, or reschedule it (a time in the manager's zone)."""
    if action not in ("fire", "reschedule") or task_id > MAX_ID:
        abort(404)
    task = db.session.get(Task, task_id)
    served = {f.path() for f in all_flows().values()}
    if task is None or task.flow_class_path not in served or task.flow_task_type not in TIMER_TYPES:
        abort(404)
    _manager_only(task.flow_class)
    label = f"{task.flow_task.title} #{task.id}"
    with Context(propagate_exception=False, user=current_user._get_current_object()):
        if action == "fire":
            if not fire_timer(db.session(), task.id):
                return _timer_refused(f"{label} is not waiting any more: nothing was fired.", 409)
            flash(f"{label} fired.", "success")
        else:
            try:
                when = parse_local_input(request.form.get("due", ""))
                if when is None:
                    raise ValueError("no time")
            except ValueError:
                return _timer_refused("Give the new time as a date and time. Nothing was changed.", 422)
            try:
                change_due(task, when)
            except TransitionNotAllowed as exc:
                return _timer_refused(f"{label} was not rescheduled: {exc}.", 409)
            flash(f"{label} is rescheduled.", "success")
    return redirect(url_for("admin.index") + "#timers", code=303)


def _timer_refused(message: str, status: int) -> Any:
    """The overview again with the reason; nothing changed."""
    db.session.rollback()
    flash(message, "error")
    response = index()
    response.status_code = status
    return response


@bp.route("/flows/<flow_label>/graph.svg")
@login_required
def graph_svg(flow_label: str) -> Response:
    """The flow's graph as an SVG file."""
    flow_class = flow_or_404(flow_label)
    if not flow_class.can_view(current_user):
        abort(403)
    body = '<?xml version="1.0" encoding="UTF-8"?>\n' + str(flow_svg(flow_class))
    return Response(body, mimetype="image/svg+xml")
