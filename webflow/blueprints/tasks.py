"""The task page, its transitions, and its live status (endpoints of the flows blueprint)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from jinja2_fragments.flask import render_blocks

from ..core.exceptions import TransitionNotAllowed
from ..core.flow import Flow
from ..core.models import TIMER_TYPES
from ..core.status import STATUS
from ..core.timers import change_due
from ..extensions import db
from ..models import Task, TaskEvent, User
from ..timefmt import parse_local_input
from .actions import hands_over, people_transition, rule_book_names, task_actions
from .flows import bp, node_form
from .lookups import child_processes, flow_or_404, parse_id, process_or_404, task_or_404, task_url
from .web import engine_context, form_data, render_page, safe_next, wants_fragment

TASK_URL = "/flows/<flow_label>/<int:process_id>/<node>/<int:task_id>/"
#: While a task is in these statuses its status component polls for news.
RUNNING = (STATUS.SCHEDULED, STATUS.STARTED)
NOT_COMPLETED = "This task is already done or no longer yours: nothing was saved."


# -- who may see and complete ------------------------------------------------------------------


def load_task(flow_label: str, process_id: int, node: str, task_id: int) -> tuple[type[Flow], Task]:
    """The flow and task the URL names; 404 unless the task belongs to that process and node."""
    flow_class = flow_or_404(flow_label)
    return flow_class, task_or_404(process_or_404(flow_class, process_id), node, task_id)


def may_see(flow_class: type[Flow], task: Task, user: User) -> bool:
    """Viewers, managers, the owner, people who may work on the task's node, and the one who
    started its process see its page."""
    return (flow_class.can_view(user) or flow_class.can_manage(user) or task.owner_id == user.id
            or task.flow_task.user_has_permission(user) or task.process.created_by_id == user.id)


def can_complete(task: Task, user: User) -> bool:
    """The owner completes an assigned human task with its form (the rule of ``prepare``)."""
    if task.flow_task_type != "HUMAN" or task.status != STATUS.ASSIGNED:
        return False
    activation = task.activate()
    prepare = activation.transitions().get("prepare")
    return prepare is not None and prepare.allows(activation, user)


# -- rendering ---------------------------------------------------------------------------------


def task_context(flow_class: type[Flow], task: Task, form: Any = None, **extra: Any) -> dict[str, Any]:
    """Everything the task page and its fragments show."""
    user = current_user._get_current_object()
    actions = task_actions(task, user)
    workable = can_complete(task, user)
    events = db.session.scalars(sa.select(TaskEvent).where(TaskEvent.task_id == task.id)
                                .order_by(TaskEvent.created, TaskEvent.id)).all()
    return {
        "flow_class": flow_class, "process": task.process, "task": task, "node": task.flow_task,
        # A waiting timer may wait for days: its page does not poll.
        "actions": actions, "events": events,
        "polling": task.status in RUNNING and task.flow_task_type not in TIMER_TYPES,
        "form": (form or node_form(task.flow_task)) if workable else None,
        "is_manager": flow_class.can_manage(user),
        "children": child_processes([task]) if task.flow_task_type == "SUBPROCESS" else [],
        "title": f"{task.flow_task.title} · {flow_class.process_title} #{task.process_id}",
        "live_task": task,  # the page listens to this task's live events (base.html)
        **extra,
    }


def render_task(flow_class: type[Flow], task: Task, blocks: list[str], status: int = 200,
                **context: Any) -> Any:
    return render_page("flows/task.html", blocks, status=status,
                       **task_context(flow_class, task, **context))


def refresh(task: Task) -> None:
    """See what the engine committed (it may have changed the task and its process)."""
    db.session.expire_all()
    db.session.refresh(task)


# -- views -------------------------------------------------------------------------------------


@bp.route(TASK_URL, methods=["GET", "POST"])
@login_required
def task_detail(flow_label: str, process_id: int, node: str, task_id: int) -> Any:
    """The task page; POST completes an assigned human task with its form (owner only)."""
    flow_class, task = load_task(flow_label, process_id, node, task_id)
    user = current_user._get_current_object()
    if not may_see(flow_class, task, user):
        abort(403)
    if can_complete(task, user) and getattr(task.flow_task, "view_func", None) is not None:
        return custom_view(flow_class, task)
    if request.method == "GET":
        return render_task(flow_class, task, ["work", "status", "history"])
    if task.flow_task_type != "HUMAN" or task.owner_id != user.id:
        abort(403)
    if not can_complete(task, user):
        return refused(flow_class, task, NOT_COMPLETED, ["work", "status", "history"])
    form = node_form(task.flow_task)
    if not form.validate_on_submit():
        flash("Please correct the marked fields.", "error")
        return render_task(flow_class, task, ["work"], status=422, form=form, show_form=True)
    activation = task.activate()
    try:
        with engine_context():
            activation.prepare(data=form_data(form), user=user)
            activation.done()
    except TransitionNotAllowed:
        return refused(flow_class, task, NOT_COMPLETED, ["work", "status", "history"])
    refresh(task)
    flash(f"{task.flow_task.title} #{task.id} is done.", "success")
    if wants_fragment():
        return render_task(flow_class, task, ["work", "status", "history"])
    return redirect(url_for("inbox.inbox"), code=303)


def custom_view(flow_class: type[Flow], task: Task) -> Any:
    """The node's own ``view=`` function serves the owner's work on the task, GET and POST.

    It gets the activation and returns a response; it calls ``prepare(data, user)`` and
    ``done()`` itself, in the same engine context as the built-in page. Everyone else, and
    the owner once the task is done, gets the built-in page."""
    try:
        with engine_context():
            return task.flow_task.view_func(task.activate())
    except TransitionNotAllowed:
        return refused(flow_class, task, NOT_COMPLETED, ["work", "status", "history"])


@bp.route(TASK_URL + "status/")
@login_required
def task_status(flow_label: str, process_id: int, node: str, task_id: int) -> Any:
    """The status badge and my buttons: a fragment, polled while a job runs."""
    flow_class, task = load_task(flow_label, process_id, node, task_id)
    if not may_see(flow_class, task, current_user):
        abort(403)
    return render_blocks("flows/task.html", ["status"], oob=set(), **task_context(flow_class, task))


#: What the banner says someone did, by the audit trail's transition name.
BANNER_VERBS = {"done": "completed this task", "cancel": "canceled this task",
                "undo": "undid this task", "unassign": "put this task back in the queue",
                "perform": "ran this task", "retry": "retried this task", "restart": "restarted this task",
                "change_due": "changed the due date of this task"}


def banner_text(task: Task, user: User) -> str | None:
    """"bob completed this task": the latest change by someone else since the page's
    ``since`` event, or a comment the live event names; None when there is none."""
    if request.args.get("kind") == "comment":
        author_id = parse_id(request.args.get("by"))
        author = db.session.get(User, author_id) if author_id is not None else None
        if author is not None and author.id == user.id:
            return None
        return f"{author.username if author else 'Someone'} commented"
    since = parse_id(request.args.get("since")) or 0
    event = db.session.scalars(
        sa.select(TaskEvent).where(TaskEvent.task_id == task.id, TaskEvent.id > since,
                                   sa.or_(TaskEvent.user_id.is_(None), TaskEvent.user_id != user.id))
        .order_by(TaskEvent.id.desc()).limit(1)).first()
    if event is None:
        return None
    who = event.user.username if event.user else "webflow"
    if event.transition in ("assign", "reassign"):
        if task.owner_id == event.user_id:
            return f"{who} took this task"
        return f"{who} assigned this task to {task.owner.username if task.owner else 'nobody'}"
    return f"{who} {BANNER_VERBS.get(event.transition, 'changed this task')}"


@bp.route(TASK_URL + "banner/")
@login_required
def task_banner(flow_label: str, process_id: int, node: str, task_id: int) -> Any:
    """The note that someone else changed the task since the page was drawn, with a reload
    link (an HTMX fragment; the page itself for any other request)."""
    flow_class, task = load_task(flow_label, process_id, node, task_id)
    user = current_user._get_current_object()
    if not may_see(flow_class, task, user):
        abort(403)
    if not wants_fragment():
        return redirect(task_url(task), code=303)
    return render_template("flows/live_banner.html", text=banner_text(task, user), task=task)


@bp.route(TASK_URL + "<transition>/", methods=["POST"])
@login_required
def task_transition(flow_label: str, process_id: int, node: str, task_id: int, transition: str) -> Any:
    """Run one of the transitions people run (assign, unassign, reassign, undo, cancel, retry, ...).

    Who may is the transition's declared rule: the same one that draws the buttons. The
    answer: 404 for a transition people do not run, 403 for a task the user may not see,
    400 for a bad pick, 403 when the rule refuses the user, 409 when the task's status does
    not allow it now; the engine checks both again under the process lock."""
    flow_class, task = load_task(flow_label, process_id, node, task_id)
    activation = task.activate()
    declared = people_transition(activation, transition)
    if declared is None and transition not in rule_book_names():
        abort(404)
    user = current_user._get_current_object()
    if not may_see(flow_class, task, user):
        abort(403)
    if declared is None:  # a transition of other kinds of task, not of this one
        return refused(flow_class, task, f"Not allowed now: {type(activation).__name__} tasks have no "
                       f"{transition} transition.", ["status", "work", "history"])
    blocked = declared.blocked_reason(activation)
    arguments = {"user": assignee(task, user, blocked is None)} if hands_over(declared) else {}
    if not declared.allows(activation, user, arguments):
        abort(403)
    if blocked is not None:
        return refused(flow_class, task, f"Not allowed now: {blocked}.", ["status", "work", "history"])
    try:
        with engine_context():
            getattr(activation, declared.name)(**arguments)
    except TransitionNotAllowed as exc:
        return refused(flow_class, task, f"Not allowed now: {exc}.", ["status", "work", "history"])
    refresh(task)
    flash(f"{declared.label}: done for {task.flow_task.title} #{task.id} (now {task.status.value}"
          f"{', ' + task.owner.username if task.owner and task.status == STATUS.ASSIGNED else ''}).",
          "success")
    if wants_fragment():
        return render_task(flow_class, task, ["status", "work", "history"])
    return redirect(safe_next(request.form.get("next"), task_url(task)), code=303)


@bp.route(TASK_URL + "due/", methods=["POST"])
@login_required
def task_due(flow_label: str, process_id: int, node: str, task_id: int) -> Any:
    """A manager sets the task's due date (in their time zone; empty for none) and priority."""
    flow_class, task = load_task(flow_label, process_id, node, task_id)
    if not flow_class.can_manage(current_user):
        abort(403)
    try:
        due = parse_local_input(request.form.get("due", ""))
        priority = int(request.form.get("priority", "").strip() or "x")
        if not -1000 <= priority <= 1000:
            raise ValueError("priority out of range")
    except ValueError:
        flash("Give the due date as a date and time (or leave it empty) and the priority as a "
              "whole number from -1000 to 1000. Nothing was changed.", "error")
        return render_task(flow_class, task, ["status", "work", "history"], status=422)
    try:
        with engine_context():
            change_due(task, due, priority)
    except TransitionNotAllowed as exc:
        return refused(flow_class, task, f"Not changed: {exc}.", ["status", "work", "history"])
    flash(f"{task.flow_task.title} #{task.id}: due date and priority saved.", "success")
    return redirect(task_url(task), code=303)


def assignee(task: Task, user: User, runnable: bool) -> User:
    """Who a hand-over gives the task to: the user picked in ``user_id`` (400 for a bad pick);
    with no pick, the asking user (taking a task nobody has)."""
    raw = request.form.get("user_id", "").strip()
    if not raw:
        if task.owner_id is not None and runnable:
            abort(400, "Choose the user to give the task to.")
        return user
    user_id = parse_id(raw)
    target = db.session.get(User, user_id) if user_id is not None else None
    if target is None or not target.is_active:
        abort(400, "Choose an active user.")
    if not task.flow_task.user_has_permission(target):
        abort(400, f"{target.username} may not work on this task.")
    return target


def refused(flow_class: type[Flow], task: Task, message: str, blocks: list[str]) -> Any:
    """409: the transition is not allowed now; nothing changed."""
    db.session.rollback()
    refresh(task)
    flash(message, "error")
    return render_task(flow_class, task, blocks, status=409)
