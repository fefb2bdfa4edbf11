"""Administrators' pages: the overview, the process page's repair tools, process cancel."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
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
    request,
    url_for,
)
from flask_login import current_user, login_required
from sqlalchemy.orm import selectinload

from ..core.context import Context
from ..core.engine import cancel_blocker, stalled_processes, stalled_query
from ..core.exceptions import TransitionNotAllowed
from ..core.flow import Flow
from ..core.models import TIMER_TYPES, Process, Task
from ..core.status import FINISHED, STATUS
from ..core.timers import change_due, due_timers_query, fire_or_fail
from ..extensions import db
from ..graph_svg import flow_svg
from ..jobs import job_mode
from ..timefmt import parse_local_input
from .actions import find_action, people_transition, rule_book_names
from .confirmations import confirmation
from .inbox import count_rows
from .lookups import (
    all_flows,
    flow_or_404,
    managed_flows,
    paginate_within,
    parse_day,
    process_or_404,
    process_url,
    task_or_404,
)
from .tasks import go_to
from .web import render_page

bp = Blueprint("admin", __name__)

PROCESS_STATUSES = (STATUS.NEW, STATUS.DONE, STATUS.CANCELED)
WAITING_JOB = (STATUS.SCHEDULED, STATUS.STARTED)
#: Since when a job has been waiting: a STARTED one since its attempt began; a SCHEDULED
#: one since it was queued (``assigned``, set again by each retry). Reading ``started``
#: first for both listed a job queued again a minute ago as stuck when its failed attempt
#: had begun longer ago than WEBFLOW_STUCK_JOB_SECONDS. The stuck list reads and shows it.
JOB_WAITING_SINCE = sa.case(
    (Task.status == STATUS.SCHEDULED, sa.func.coalesce(Task.assigned, Task.created)),
    else_=sa.func.coalesce(Task.started, Task.assigned, Task.created))
#: A timer still waiting this long after its due time is listed as stuck.
LATE_TIMER = timedelta(minutes=1)
#: The overview lists at most this many tasks in ERROR, waiting timers, late timers and
#: stuck jobs (its counters count them all).
LISTED = 50


def listed_total(rows: Any, listed: Sequence[Any]) -> int:
    """How many rows the query has: the list's length when it was not cut, else counted."""
    if len(listed) < LISTED:
        return len(listed)
    return count_rows(rows)


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


# -- the overview ------------------------------------------------------------------------


def _process_filters(flows: dict[str, type[Flow]]) -> tuple[dict[str, Any], list[Any]]:
    """The filter form's values from the query string, and the matching SQL conditions."""
    args = request.args
    values: dict[str, Any] = {
        "flow": args.get("flow", ""), "status": args.get("status", ""),
        "started_from": parse_day(args.get("started_from")), "started_to": parse_day(args.get("started_to")),
        "has_error": args.get("has_error") in ("1", "on", "true", "y"),
    }
    # A day the filter cannot read (typed into the address, a bookmark of another format)
    # is left out, and the list says so: it listed every process as if unfiltered.
    values["left_out"] = [
        f"“{args[key][:40]}” is not a day from 1900 to 9998 (YYYY-MM-DD): the “{label}” date is left out."
        for key, label in (("started_from", "Started from"), ("started_to", "to"))
        if args.get(key) and values[key] is None]
    if values["flow"] and values["flow"] not in flows:
        abort(404)
    if values["started_from"] and values["started_to"] and values["started_from"] > values["started_to"]:
        abort(422, "The “from” date is after the “to” date: no process could match. "
                   "Swap the dates or clear one of them.")
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
    page = paginate_within(
        sa.select(Process).where(*where).order_by(Process.created.desc(), Process.id.desc())
        .options(selectinload(Process.created_by)), current_app.config["WEBFLOW_PAGE_SIZE"])
    counts = dict(db.session.execute(
        sa.select(Process.status, sa.func.count()).where(*where[:1]).group_by(Process.status)
    ).all())
    error_rows = sa.select(Task).where(Task.status == STATUS.ERROR, Task.flow_class_path.in_(paths))
    errors = db.session.scalars(error_rows.order_by(Task.id.desc()).limit(LISTED)).all()
    stuck_since = datetime.now(UTC) - timedelta(seconds=current_app.config["WEBFLOW_STUCK_JOB_SECONDS"])
    stuck_jobs = sa.select(Task).where(
        Task.flow_task_type == "JOB", Task.status.in_(WAITING_JOB), Task.flow_class_path.in_(paths),
        JOB_WAITING_SINCE < stuck_since)
    # by status first: ix_task_status_id; each with since when it waits (the "Since" column)
    stuck_rows = db.session.execute(stuck_jobs.add_columns(JOB_WAITING_SINCE)
                                    .order_by(Task.status, Task.id).limit(LISTED)).all()
    now = datetime.now(UTC)
    # Late timers first: waiting timers due a minute ago or more are stuck too (nothing fires
    # them: no worker, no web process thread).
    late_timers = (due_timers_query(now - LATE_TIMER).where(Task.flow_class_path.in_(paths))
                   .with_only_columns(Task))
    late = list(db.session.scalars(late_timers.limit(LISTED)))
    waiting_timers = sa.select(Task).where(
        Task.status == STATUS.SCHEDULED, Task.flow_task_type.in_(TIMER_TYPES), Task.flow_class_path.in_(paths))
    # in the timer index's order
    upcoming = db.session.scalars(waiting_timers.order_by(Task.due, Task.id).limit(LISTED)).all()
    # The lists show the first LISTED rows; the counters count every row (a list that is
    # cut says so), not the length of the list.
    totals = {"errors": listed_total(error_rows, errors), "timers": listed_total(waiting_timers, upcoming),
              "stuck": listed_total(late_timers, late) + listed_total(stuck_jobs, stuck_rows)}
    stalled = stalled_processes(db.session(), flows.values(), limit=LISTED)
    totals["stalled"] = listed_total(stalled_query(flows.values()), stalled)
    stuck = [(timer, timer.due) for timer in late] + [(job, since) for job, since in stuck_rows]
    overdue = dict(db.session.execute(
        sa.select(Task.flow_class_path, sa.func.count())
        .where(Task.due <= now, Task.status.not_in(list(FINISHED)), Task.flow_task_type.not_in(TIMER_TYPES),
               Task.flow_class_path.in_(paths))
        .group_by(Task.flow_class_path)).all())
    context = {
        "stalled": stalled,
        "upcoming": upcoming, "overdue": overdue, "now": now,
        "flows": flows, "labels": {f.path(): label for label, f in flows.items()}, "filters": values,
        "page": page, "status_counts": counts, "statuses": PROCESS_STATUSES, "errors": errors,
        "stuck": stuck, "stuck_seconds": current_app.config["WEBFLOW_STUCK_JOB_SECONDS"],
        "job_mode": job_mode_text(current_app), "title": "Administration",
        "totals": totals, "listed": LISTED,
    }
    # The counters are redrawn with the table: their status counts follow the flow filter.
    return render_page("admin/index.html", ["processes", "counts"], **context)


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
    activation = task.activate()
    declared = people_transition(activation, transition)
    if declared is None and transition not in rule_book_names():
        abort(404)
    action = find_action(task, current_user, declared.name) if declared else None
    if declared is None:
        reason: str | None = f"{type(activation).__name__} tasks have no {transition} transition"
    else:
        reason = None if action else declared.blocked_reason(activation)
        if action is None and reason is None:
            abort(403)  # allowed now, but not to this manager (a hand-over to nobody they may pick)
    label = declared.label if declared else transition
    return confirmation(
        "admin/confirm.html", reason, f"Not allowed now: {reason}.", flow_class=flow_class,
        process=process, task=task, label=label, action=action,
        title=f"{label}: {task.node_name} #{task.id}",
    )


@bp.route("/flows/<flow_label>/<int:process_id>/cancel/", methods=["GET", "POST"])
@login_required
def process_cancel(flow_label: str, process_id: int) -> Any:
    """GET asks for confirmation; POST cancels the process and every unfinished task.

    The form posts with HTMX into its card: done, the process page loads (HX-Redirect);
    refused (409), the card comes back without the form and the message says why. Without
    JavaScript: a 303 to the process page, or this page again with the reason (409)."""
    flow_class = flow_or_404(flow_label)
    process = process_or_404(flow_class, process_id)
    _manager_only(flow_class)
    context = {"flow_class": flow_class, "process": process,
               "title": f"Cancel {flow_class.process_title} #{process.id}"}
    reason = cancel_blocker(process)
    if request.method == "GET":
        return confirmation("admin/process_cancel.html", reason,
                            f"The process cannot be canceled: {reason}.", **context)
    if reason is None:
        try:
            with Context(propagate_exception=False, user=current_user._get_current_object()):
                process.cancel()
        except TransitionNotAllowed as exc:
            db.session.rollback()
            reason = str(exc)
    if reason is not None:
        flash(f"The process was not canceled: {reason}.", "error")
        return render_page("admin/process_cancel.html", ["confirm"], status=409, reason=reason,
                           refused=True, **context)
    flash(f"Process #{process.id} is canceled.", "success")
    return go_to(process_url(process))


@bp.route("/admin/timers/<int:task_id>/<action>/", methods=["POST"])
@login_required
def timer_action(task_id: int, action: str) -> Any:
    """Fire a waiting timer now, or reschedule it (a time in the manager's zone)."""
    task = _timer_or_404(task_id, action)
    _manager_only(task.flow_class)
    label = f"{task.flow_task.title} #{task.id}"
    with Context(propagate_exception=False, user=current_user._get_current_object()):
        if action == "fire":
            if not fire_or_fail(db.session(), task.id):
                return _timer_refused(f"{label} is not waiting any more: nothing was fired.", 409)
            failed = db.session.scalar(sa.select(Task.status).where(Task.id == task.id)) == STATUS.ERROR
            if failed:
                flash(f"{label} fired, but what comes after it could not be stored: it is in ERROR "
                      "with the reason (Tasks in ERROR), for a retry once that is mended.", "error")
            else:
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


def _timer_or_404(task_id: int, action: str) -> Task:
    """The timer task a timer action's address names, or 404 (also for an action it has not)."""
    if action not in ("fire", "reschedule"):  # the id: <int:> takes 1 to MAX_ID only
        abort(404)
    task = db.session.get(Task, task_id)
    served = {f.path() for f in all_flows().values()}
    if task is None or task.flow_class_path not in served or task.flow_task_type not in TIMER_TYPES:
        abort(404)
    return task


@bp.route("/admin/timers/<int:task_id>/<action>/", methods=["GET"])
@login_required
def timer_action_opened(task_id: int, action: str) -> Any:
    """A timer action's address opened (a refused Reschedule draws the overview there, and a
    reload from the address bar or a bookmark opens it): nothing is done; to the waiting
    timers, saying so, instead of a bare 405 (the action's answers first: 404, 403)."""
    task = _timer_or_404(task_id, action)
    _manager_only(task.flow_class)
    flash("Nothing was done: a timer is fired or rescheduled only when its button is pressed. "
          "These are the waiting timers as they are now.", "info")
    return go_to(url_for("admin.index") + "#timers")


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
    css = url_for("static", filename="css/graph.css")
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<?xml-stylesheet href="{css}" type="text/css"?>\n'
            + str(flow_svg(flow_class)))
    return Response(body, mimetype="image/svg+xml")
