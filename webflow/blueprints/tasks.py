"""The task page, its transitions, and its live status (endpoints of the flows blueprint)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import abort, flash, redirect, request, url_for
from flask_login import current_user, login_required
from jinja2_fragments.flask import render_blocks

from ..core.activation import Activation
from ..core.exceptions import TransitionNotAllowed
from ..core.flow import Flow
from ..core.models import TIMER_TYPES
from ..core.nodes.view import ViewActivation
from ..core.status import STATUS
from ..core.timers import change_due
from ..extensions import db
from ..models import Task, TaskEvent, User
from ..timefmt import parse_local_input
from .admin import WEB_TRANSITIONS, assignable_users, flow_or_404, process_or_404, task_or_404, task_url
from .flows import bp, node_form
from .web import engine_context, form_data, render_page, safe_next, wants_fragment

TASK_URL = "/flows/<flow_label>/<int:process_id>/<node>/<int:task_id>/"
#: While a task is in these statuses its status component polls for news.
RUNNING = (STATUS.SCHEDULED, STATUS.STARTED)
#: Transitions only a manager of the flow runs (assign/unassign have rules of their own).
MANAGER_TRANSITIONS = ("undo", "cancel", "perform", "retry", "restart", "activate_next")
LABELS = {"assign": "Assign to me", "unassign": "Put back in the queue", "activate_next": "Activate next"}
NOT_COMPLETED = "This task is already done or no longer yours: nothing was saved."
DONE_MESSAGES = {
    "assign": "{task} is assigned to {owner}.", "reassign": "{task} is now assigned to {owner}.",
    "unassign": "{task} is back in the queue.", "undo": "{task} is undone.", "cancel": "{task} is canceled.",
    "perform": "{task} ran: {status}.", "retry": "{task} ran again: {status}.",
    "restart": "{task} is queued again: {status}.",
    "activate_next": "The steps after {task} are activated again.",
}


# -- who may do what ---------------------------------------------------------------------------


def load_task(flow_label: str, process_id: int, node: str, task_id: int) -> tuple[type[Flow], Task]:
    """The flow and task the URL names; 404 unless the task belongs to that process and node."""
    flow_class = flow_or_404(flow_label)
    return flow_class, task_or_404(process_or_404(flow_class, process_id), node, task_id)


def may_see(flow_class: type[Flow], task: Task, user: User) -> bool:
    """Viewers, managers, the owner, and people who may work on the task's node see its page."""
    node = task.flow_task
    return (flow_class.can_view(user) or flow_class.can_manage(user) or task.owner_id == user.id
            or bool(getattr(node, "user_has_permission", lambda u: False)(user)))


def is_human(activation: Activation) -> bool:
    return isinstance(activation, ViewActivation)


def may_run(flow_class: type[Flow], task: Task, transition: str, user: User, target: User | None) -> bool:
    """The permission rule for a transition (whether the status allows it is the engine's call)."""
    if flow_class.can_manage(user):
        return True
    if transition == "assign" and (target is None or target.id == user.id):
        return bool(getattr(task.flow_task, "user_has_permission", lambda u: False)(user))
    return transition == "unassign" and task.owner_id == user.id


def available_actions(flow_class: type[Flow], task: Task, user: User) -> list[str]:
    """The buttons to show: the transitions allowed now that this user may run."""
    activation = task.activate()
    available = {t.name for t in activation.get_available_transitions()} & set(WEB_TRANSITIONS)
    manager = flow_class.can_manage(user)
    actions = []
    if is_human(activation):
        if "assign" in available and task.flow_task.can_assign(user, task):
            actions.append("assign")
        if "assign" in available and manager:
            actions.append("assign_to")
        if "unassign" in available and (manager or task.owner_id == user.id):
            actions.append("unassign")
        if "reassign" in available and manager:
            actions.append("reassign")
    if manager:
        actions += [name for name in MANAGER_TRANSITIONS if name in available]
    return actions


def can_complete(task: Task, user: User) -> bool:
    """The owner completes an assigned human task with its form."""
    return task.flow_task_type == "HUMAN" and task.status == STATUS.ASSIGNED and task.owner_id == user.id


# -- rendering ---------------------------------------------------------------------------------


def task_context(flow_class: type[Flow], task: Task, form: Any = None, **extra: Any) -> dict[str, Any]:
    """Everything the task page and its fragments show."""
    user = current_user._get_current_object()
    actions = available_actions(flow_class, task, user)
    workable = can_complete(task, user)
    events = db.session.scalars(sa.select(TaskEvent).where(TaskEvent.task_id == task.id)
                                .order_by(TaskEvent.created, TaskEvent.id)).all()
    return {
        "flow_class": flow_class, "process": task.process, "task": task, "node": task.flow_task,
        # A waiting timer may wait for days: its page does not poll.
        "actions": actions, "labels": LABELS, "events": events,
        "polling": task.status in RUNNING and task.flow_task_type not in TIMER_TYPES,
        "users": assignable_users(task) if {"assign_to", "reassign"} & set(actions) else [],
        "form": (form or node_form(task.flow_task)) if workable else None,
        "is_manager": flow_class.can_manage(user),
        "title": f"{task.flow_task.title} · {flow_class.process_title} #{task.process_id}",
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


@bp.route(TASK_URL + "<transition>/", methods=["POST"])
@login_required
def task_transition(flow_label: str, process_id: int, node: str, task_id: int, transition: str) -> Any:
    """Run one transition (assign, unassign, reassign, undo, cancel, perform, retry, ...)."""
    flow_class, task = load_task(flow_label, process_id, node, task_id)
    if transition not in WEB_TRANSITIONS:
        abort(404)
    user = current_user._get_current_object()
    target = chosen_user() if transition in ("assign", "reassign") else None
    if not may_run(flow_class, task, transition, user, target):
        abort(403)
    if transition == "reassign" and target is None:
        abort(400, "Choose the user to give the task to.")
    activation = task.activate()
    if target is not None and not getattr(task.flow_task, "user_has_permission", lambda u: False)(target):
        abort(400, f"{target} may not work on this task.")
    try:
        with engine_context():
            run_transition(activation, transition, target or user)
    except TransitionNotAllowed as exc:
        return refused(flow_class, task, f"Not allowed now: {exc}.", ["status", "work", "history"])
    refresh(task)
    flash(DONE_MESSAGES[transition].format(task=f"{task.flow_task.title} #{task.id}", owner=task.owner,
                                           status=task.status.value), "success")
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


def chosen_user() -> User | None:
    """The user picked in the form's ``user_id`` (400 for a bad pick), or None."""
    raw = request.form.get("user_id", "").strip()
    if not raw:
        return None
    target = db.session.get(User, int(raw)) if raw.isdigit() else None
    if target is None or not target.is_active:
        abort(400, "Choose an active user.")
    return target


def run_transition(activation: Activation, transition: str, user: User) -> None:
    """Call the activation's transition; one the task's class lacks is not allowed."""
    task = activation.task
    if transition == "restart" and task.flow_task_type == "JOB" and task.status in (
            STATUS.STARTED, STATUS.ERROR):
        transition = "retry"  # restart is the worker's way in; from the web it queues the job again
    if transition not in activation.transitions():
        raise TransitionNotAllowed(f"{type(activation).__name__} has no {transition} transition")
    if transition in ("assign", "unassign", "reassign") and not is_human(activation):
        raise TransitionNotAllowed(f"{transition} is the engine's own step for this task")
    if transition == "assign" and activation.task.owner_id is not None:
        raise TransitionNotAllowed("the task is already assigned")
    if transition in ("assign", "reassign"):
        getattr(activation, transition)(user)
    else:
        getattr(activation, transition)()


def refused(flow_class: type[Flow], task: Task, message: str, blocks: list[str]) -> Any:
    """409: the transition is not allowed now; nothing changed."""
    db.session.rollback()
    refresh(task)
    flash(message, "error")
    return render_task(flow_class, task, blocks, status=409)
