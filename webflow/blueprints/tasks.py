"""The task page, its transitions, and its live status (endpoints of the flows blueprint)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from jinja2_fragments.flask import render_blocks
from werkzeug.datastructures import MultiDict

from ..core.comments import comments_of, count_comments
from ..core.drafts import draft_of
from ..core.exceptions import PermissionDenied, TransitionNotAllowed
from ..core.flow import Flow
from ..core.guard import kept_on_refusal
from ..core.models import TIMER_TYPES, Comment, as_utc
from ..core.nodes.view import MAX_NOTE
from ..core.status import STATUS
from ..core.timers import UNCHANGED, Unchanged, change_due, fire_or_fail
from ..core.visibility import may_see_task
from ..extensions import db
from ..models import Task, TaskEvent, User
from ..timefmt import local_input, parse_local_input
from ..wording import task_state
from .actions import (
    button_label,
    find_action,
    hand_over_words,
    hands_over,
    not_now_words,
    not_saved_words,
    people_transition,
    rule_book_names,
    task_actions,
)
from .confirmations import confirmation
from .flows import bp, node_form, storable_data
from .lookups import (
    ResultPage,
    child_processes,
    flow_or_404,
    flow_task_or_404,
    parse_id,
    shown_key,
    task_url,
)
from .web import coming_from, engine_context, oob_extras, render_page, safe_next, wants_fragment

TASK_URL = "/flows/<flow_label>/<int:process_id>/<node>/<int:task_id>/"
#: While a task is in these statuses its status component polls for news.
RUNNING = (STATUS.SCHEDULED, STATUS.STARTED)
#: What an action on the task page may change: the first block is the swap target, the
#: others are swapped out of band, so every card shows the truth after the action.
STATUS_BLOCKS = ["status", "work", "history", "process", "data"]
WORK_BLOCKS = ["work", "status", "history", "process", "data"]
#: The cards that show what became of a task, redrawn when its form was refused (the form
#: itself stays as typed).
REFUSED_FORM_BLOCKS = [block for block in STATUS_BLOCKS if block != "work"]


# Statements of every task page and completion, built once (building one and its cache key
# cost as much as running it).
#: A task's audit trail, in the order it happened.
TASK_EVENTS = (sa.select(TaskEvent).where(TaskEvent.task_id == sa.bindparam("task_id"))
               .order_by(TaskEvent.created, TaskEvent.id))
#: The human tasks of a process that wait for someone, but one (next_task).
WAITING_TASKS = (sa.select(Task).where(Task.process_id == sa.bindparam("process_id"),
                                       Task.id != sa.bindparam("done_id"), Task.flow_task_type == "HUMAN",
                                       Task.status.in_([STATUS.ASSIGNED, STATUS.NEW]))
                 .order_by(Task.id))


# -- who may see and complete ------------------------------------------------------------------


def load_task(flow_label: str, process_id: int, node: str, task_id: int) -> tuple[type[Flow], Task]:
    """The flow and task the URL names; 404 unless the task belongs to that process and node."""
    flow_class = flow_or_404(flow_label)
    return flow_class, flow_task_or_404(flow_class, process_id, node, task_id)


def may_see(flow_class: type[Flow], task: Task, user: User) -> bool:
    """Viewers, managers, the owner, people who may work on the task's node, and the one who
    started its process see its page (the rule of ``core.visibility``, which search uses too)."""
    return may_see_task(flow_class, task, user)


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
    events = db.session.scalars(TASK_EVENTS, {"task_id": task.id}).all()
    comments = comments_page(task)
    draft = draft_of(db.session(), task, user) if workable else None
    if workable and form is None and draft is not None:
        form = node_form(task.flow_task, formdata=MultiDict(
            [(name, value) for name, values in draft.data.items() for value in values]))
    return {
        "flow_class": flow_class, "process": task.process, "task": task, "node": task.flow_task,
        # A waiting timer may wait for days: its page does not poll.
        "actions": actions, "events": events, "draft": draft,
        # The audit trail and the comments, in the order they happened.
        "timeline": timeline(events, comments.items), "comments_page": comments,
        "polling": task.status in RUNNING and task.flow_task_type not in TIMER_TYPES,
        "form": (form or node_form(task.flow_task)) if workable else None,
        "is_manager": flow_class.can_manage(user),
        "children": child_processes([task]) if task.flow_task_type == "SUBPROCESS" else [],
        "title": f"{task.flow_task.title} · {flow_class.process_title} #{task.process_id}",
        "live_task": task,  # the page listens to this task's live events (base.html)
        "shown_key": shown_key,
        **extra,
    }


#: Comments per page of the task's history (``?comments=``, the newest page first), as on the
#: process page: anyone who sees the task may post, so their number has no bound.
TASK_COMMENTS_PER_PAGE = 100


def comments_page(task: Task) -> ResultPage:
    """A page of the task's comments, oldest first; without a page asked for (or a bad one),
    the last: the newest. Every comment was drawn on every view and after every post: a
    few hundred long ones made the task page megabytes, for everyone who opens it."""
    session, process, per_page = db.session(), task.process, TASK_COMMENTS_PER_PAGE
    asked = parse_id(request.args.get("comments"))
    if asked is None:
        # The usual view: the newest, in one statement while they fit on a page.
        newest = comments_of(session, process, task, newest=per_page + 1)
        if len(newest) <= per_page:
            return ResultPage(newest, 1, per_page, len(newest), False)
    page = ResultPage([], 1, per_page, count_comments(session, process, task), False)
    page.page = min(asked or page.pages, page.pages)
    page.items = comments_of(session, process, task, offset=(page.page - 1) * per_page, limit=per_page)
    return page


def timeline(events: Sequence[TaskEvent], comments: Sequence[Comment]) -> list[TaskEvent | Comment]:
    """Events and comments merged by time (an event before a comment made the same moment)."""
    entries: list[TaskEvent | Comment] = [*events, *comments]
    return sorted(entries, key=lambda e: (as_utc(e.created), isinstance(e, Comment), e.id))


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
    flow_class, task, user = load_visible_task(flow_label, process_id, node, task_id)
    if getattr(task.flow_task, "view_func", None) is not None and can_complete(task, user):
        return custom_view(flow_class, task)
    if request.method == "GET":
        return render_task(flow_class, task, WORK_BLOCKS)
    if task.flow_task_type != "HUMAN":
        abort(403)
    if not can_complete(task, user):
        # Yours but not open to its form (done, say), or sent from a page drawn before
        # someone else changed the task: what became of it (409). Anyone else: the rule's 403.
        if task.owner_id == user.id or changed_since_drawn(task) or sent_from_own_view(task):
            return refused_form(flow_class, task, user)
        abort(403)
    form = node_form(task.flow_task)
    data = storable_data(form) if form.validate_on_submit() else None
    if data is None:
        flash("Please correct the marked fields.", "error")
        return render_task(flow_class, task, ["work"], status=422, form=form, show_form=True)
    # What the answer names, read now: the engine's commit expires every row, and reading
    # them afterwards would cost a statement each.
    done_id, process_id, title = task.id, task.process_id, task.flow_task.title

    def complete() -> None:
        with engine_context():
            activation = task.activate()
            activation.prepare(data=data, user=user)
            activation.done()

    try:
        kept_on_refusal(db.session(), complete)
    except (TransitionNotAllowed, PermissionDenied):
        # Changed between the checks above and the process lock (done asks both again
        # under it): canceled, done, or handed to someone else meanwhile.
        return refused_form(flow_class, task, user)
    following = next_task(process_id, done_id, user)
    if following is not None:
        target = task_url(following)
        waiting = "" if following.owner_id == user.id else " (waiting in the queue: take it to work on it)"
        flash(f"{title} #{done_id} is done. Next: {following.flow_task.title}{waiting}.", "success")
    else:
        target = url_for("inbox.inbox")
        flash(f"{title} #{done_id} is done. Nothing else for you in this process.", "success")
    return go_to(target)


def next_task(process_id: int, done_id: int, user: User) -> Task | None:
    """What ``user`` does next in the process after task ``done_id``: a task assigned to
    them, else one they may take (the node's own rule), oldest first; None when nothing
    waits for them."""
    waiting = db.session.scalars(WAITING_TASKS, {"process_id": process_id, "done_id": done_id}).all()
    mine = [t for t in waiting if t.status == STATUS.ASSIGNED and t.owner_id == user.id]
    if mine:
        return mine[0]
    return next((t for t in waiting if t.status == STATUS.NEW and t.owner_id is None
                 and t.flow_task.can_assign(user, t)), None)


def go_to(target: str) -> Any:
    """303 to ``target``; HTMX loads it as a whole page (HX-Redirect), messages and all."""
    if wants_fragment():
        response = current_app.make_response(("", 200))
        response.headers["HX-Redirect"] = target
        return response
    return redirect(target, code=303)


def custom_view(flow_class: type[Flow], task: Task) -> Any:
    """The node's own ``view=`` function serves the owner's work on the task, GET and POST.

    It gets the activation and returns a response; it calls ``prepare(data, user)`` and
    ``done()`` itself, in the same engine context as the built-in page. Everyone else, and
    the owner once the task is done, gets the built-in page."""
    try:
        with engine_context():
            return task.flow_task.view_func(task.activate())
    except TransitionNotAllowed:
        db.session.rollback()
        refresh(task)
        return refused(flow_class, task, not_saved_words(task, current_user), WORK_BLOCKS)


@bp.route(TASK_URL + "status/")
@login_required
def task_status(flow_label: str, process_id: int, node: str, task_id: int) -> Any:
    """The status badge and my buttons: a fragment, polled while a job runs."""
    flow_class, task = load_task(flow_label, process_id, node, task_id)
    if not may_see(flow_class, task, current_user):
        abort(403)
    context = task_context(flow_class, task)
    # Still running: the badge alone. Finished: every card it changed too (out of band); but
    # the work card (the owner's form) only when its status or owner changed since the page
    # showed it (``shown``): a change of due date or priority leaves a half-filled form alone.
    if context["polling"]:
        blocks = ["status"]
    elif request.args.get("shown") == shown_key(task):
        blocks = [block for block in STATUS_BLOCKS if block != "work"]
    else:
        blocks = STATUS_BLOCKS
    return render_blocks("flows/task.html", blocks, oob=set(blocks[1:]), **context)


def changed_since_drawn(task: Task) -> bool:
    """True when the POST comes from a page drawn for another status or owner of the task
    (the ``shown`` its forms carry): someone changed the task while the page was open."""
    shown = request.form.get("shown")
    return shown is not None and shown != shown_key(task)


def sent_from_own_view(task: Task) -> bool:
    """True when a POST without ``shown`` was sent from the task's own address by a node's
    ``view=`` page (its form cannot carry ``shown``): that page is drawn only for someone who
    could work on the task then, and no other page of the task has a form that posts to it,
    so the task changed since (given to someone else). ``coming_from`` reads that page from
    this site's own referrer (Referrer-Policy: same-origin)."""
    if getattr(task.flow_task, "view_func", None) is None or "shown" in request.form:
        return False
    return urlsplit(coming_from()).path == request.path


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
    who = event.user.username if event.user else "The system"  # as the history names it
    if event.transition in ("assign", "reassign"):
        if task.owner_id == event.user_id:
            return f"{who} took this task"
        return f"{who} assigned this task to {task.owner.username if task.owner else 'nobody'}"
    if event.transition in ("change_due", "reschedule"):  # a timer's new time is its reschedule
        return f"{who} {due_change_text(event.comments or '')}"
    return f"{who} {BANNER_VERBS.get(event.transition, 'changed this task')}"


def due_change_text(comments: str) -> str:
    """What a ``change_due`` event changed, from its note ("due … -> …; priority 0 -> 7")."""
    changed = [part.split(" ", 1)[0] for part in comments.split("; ")]
    names = [name for key, name in (("due", "the due date"), ("priority", "the priority")) if key in changed]
    if not names:
        return BANNER_VERBS["change_due"]
    return f"changed {' and '.join(names)} of this task"


@bp.route(TASK_URL + "banner/")
@login_required
def task_banner(flow_label: str, process_id: int, node: str, task_id: int) -> Any:
    """The note that someone else changed the task since the page was drawn, with a reload
    link (an HTMX fragment; the page itself for any other request)."""
    flow_class, task, user = load_visible_task(flow_label, process_id, node, task_id)
    if not wants_fragment():
        return redirect(task_url(task), code=303)
    return render_template("flows/live_banner.html", text=banner_text(task, user), task=task)


def load_transition(flow_label: str, process_id: int, node: str, task_id: int,
                    transition: str) -> tuple[type[Flow], Task, Any, Any, User]:
    """The task, its activation and the transition a URL names (None: one that other kinds
    of task have), for a user who may see the task: 404 for a name people never run, 403
    for a task the user may not see."""
    flow_class, task = load_task(flow_label, process_id, node, task_id)
    activation = task.activate()
    declared = people_transition(activation, transition)
    if declared is None and transition not in rule_book_names():
        abort(404)
    user = current_user._get_current_object()
    if not may_see(flow_class, task, user):
        abort(403)
    return flow_class, task, activation, declared, user


def load_visible_task(flow_label: str, process_id: int, node: str,
                      task_id: int) -> tuple[type[Flow], Task, User]:
    """The task of the URL and the user asking, who may see it (404 / 403 otherwise)."""
    flow_class, task = load_task(flow_label, process_id, node, task_id)
    user = current_user._get_current_object()
    if not may_see(flow_class, task, user):
        abort(403)
    return flow_class, task, user


@bp.route(TASK_URL + "<transition>/", methods=["POST"])
@login_required
def task_transition(flow_label: str, process_id: int, node: str, task_id: int, transition: str) -> Any:
    """Run one of the transitions people run (assign, unassign, reassign, undo, cancel, retry, ...).

    Who may is the transition's declared rule: the same one that draws the buttons. The
    answer: 404 for a transition people do not run, 403 for a task the user may not see,
    400 for a bad pick, 403 when the rule refuses the user, 409 when the task's status does
    not allow it now, or when the page that sent it was drawn before someone else changed
    the task (``changed_since_drawn``); the engine checks status and rule again under the
    process lock (a refusal there is a 409 too: the task changed meanwhile)."""
    flow_class, task, activation, declared, user = load_transition(
        flow_label, process_id, node, task_id, transition)
    if declared is None:  # a transition of other kinds of task, not of this one
        return refused(flow_class, task, f"Not allowed now: {type(activation).__name__} tasks have no "
                       f"{transition} transition.", STATUS_BLOCKS)
    blocked = declared.blocked_reason(activation)
    if changed_since_drawn(task):
        # The page's button, after someone else changed the task's status or owner: what it
        # would do now is not what the page showed (a manager's hand-over of ann's task
        # would take it from ben), so it is refused and the buttons of now are drawn.
        reason = blocked or f"the task changed since the page was drawn; it is {shown_key(task)} now"
        return refused(flow_class, task, not_now(flow_class, task, user, declared.name, reason), STATUS_BLOCKS)
    arguments: dict[str, Any] = {}
    if hands_over(declared):
        # A pick without the node's permission is a bad pick (400) for a manager's
        # reassign; for the owner's delegation it is the rule that refuses (403, below).
        delegation = declared.name == "reassign" and activation.is_delegation(user)
        arguments["user"] = assignee(task, user, blocked is None, check_permission=not delegation)
    if declared.takes("note"):
        arguments["note"] = request.form.get("note", "").strip()
        if len(arguments["note"]) > MAX_NOTE:
            return refused(flow_class, task, f"The note holds at most {MAX_NOTE:,} characters; "
                           "nothing was changed.", STATUS_BLOCKS, status=422)
    if not declared.allows(activation, user, arguments):
        words = hand_over_words(activation, user, arguments.get("user"))
        if words is not None:
            abort(403, words)
        abort(403)
    if blocked is not None:
        return refused(flow_class, task, not_now(flow_class, task, user, declared.name, blocked), STATUS_BLOCKS)
    label = button_label(declared, activation, user)
    try:
        with engine_context():
            if declared.name == "fire" and task.flow_task_type in TIMER_TYPES:
                # As every firing: one that cannot be committed leaves the timer in ERROR
                # with the reason (core.timers.fire_or_fail), not a 500 with nothing kept.
                if not fire_or_fail(db.session(), task.id, process_id=task.process_id):
                    raise TransitionNotAllowed("the timer is not waiting any more")
            else:
                # Run again on a fresh activation if the database refuses the rows at the
                # end (a handler's bad value): see kept_on_refusal.
                kept_on_refusal(db.session(), lambda: getattr(task.activate(), declared.name)(**arguments))
    except (TransitionNotAllowed, PermissionDenied) as exc:
        # Allowed above, refused under the process lock: the task changed meanwhile (its
        # status, or its owner, whom the rule asks about).
        db.session.rollback()
        refresh(task)  # what happened meanwhile, for the words
        message = not_now(flow_class, task, user, declared.name, str(exc))
        return refused(flow_class, task, message, STATUS_BLOCKS)
    refresh(task)
    flash(f"{label}: done for {task.flow_task.title} #{task.id} (now: {task_state(task)}).",
          "success")
    if wants_fragment():
        return render_task(flow_class, task, STATUS_BLOCKS)
    return redirect(safe_next(request.form.get("next"), task_url(task)), code=303)


@bp.route(TASK_URL + "<transition>/confirm/")
@login_required
def task_confirm(flow_label: str, process_id: int, node: str, task_id: int, transition: str) -> Any:
    """Ask before a transition that cannot simply be taken back (cancel, undo): the page's
    form posts to the transition. Without JavaScript the button leads here; with it htmx asks.
    The answers are the transition's own: 404, 403, or 409 with the reason when not now
    (``confirmations.confirmation``: for HTMX, the reason in place)."""
    flow_class, task, activation, declared, user = load_transition(
        flow_label, process_id, node, task_id, transition)
    action = find_action(task, user, declared.name) if declared is not None else None
    reason = None
    if action is None:
        reason = (declared.blocked_reason(activation) if declared is not None
                  else f"{type(activation).__name__} tasks have no {transition} transition")
        if reason is None:
            abort(403)
    label = declared.label if declared is not None else transition
    return confirmation(
        "flows/confirm.html", reason, f"Not allowed now: {reason}.", flow_class=flow_class,
        process=task.process, task=task, action=action, label=label,
        title=f"{label}: {task.flow_task.title} #{task.id}",
    )


@bp.route(TASK_URL + "due/", methods=["POST"])
@login_required
def task_due(flow_label: str, process_id: int, node: str, task_id: int) -> Any:
    """A manager sets the task's due date (in their time zone; empty for none) and priority."""
    flow_class, task = load_task(flow_label, process_id, node, task_id)
    if not flow_class.can_manage(current_user):
        abort(403)
    try:
        # A field sent back as the form showed it (``due_drawn``, ``priority_drawn``; a form
        # without them: as the task has it now) is no change: neither the seconds the form
        # drops nor what another manager changed since the page was drawn (before, a second
        # manager's priority change put the first one's new due date back).
        sent_due = request.form.get("due", "")
        drawn_due = request.form.get("due_drawn", local_input(task.due))
        due: datetime | None | Unchanged = (
            UNCHANGED if sent_due.strip() == drawn_due.strip() else parse_local_input(sent_due))
        sent_priority = int(request.form.get("priority", "").strip() or "x")
        drawn_priority = request.form.get("priority_drawn", "").strip()
        unchanged = sent_priority == (int(drawn_priority) if drawn_priority.lstrip("-").isdecimal()
                                      and len(drawn_priority) < 12 else task.priority)
        # The form's range is for a manager's choice; the task's own priority (a flow's
        # .Priority may answer 5000) sent back unchanged is no change, not out of range.
        if not unchanged and not -1000 <= sent_priority <= 1000:
            raise ValueError("priority out of range")
        priority = None if unchanged else sent_priority
    except ValueError:
        flash("Give the due date as a date and time (or leave it empty) and the priority as a "
              "whole number from -1000 to 1000. Nothing was changed.", "error")
        return render_task(flow_class, task, STATUS_BLOCKS, status=422)
    try:
        with engine_context():
            change_due(task, due, priority)
    except TransitionNotAllowed as exc:
        return refused(flow_class, task, f"Not changed: {exc}.", STATUS_BLOCKS)
    flash(f"{task.flow_task.title} #{task.id}: due date and priority saved.", "success")
    return redirect(task_url(task), code=303)


def assignee(task: Task, user: User, runnable: bool, check_permission: bool = True) -> User:
    """Who a hand-over gives the task to: the user picked in ``user_id`` (400 for a bad pick);
    with no pick, the asking user (taking a task nobody has)."""
    raw = request.form.get("user_id", "").strip()
    if not raw:
        # The picker's empty "Choose a person" is no choice (never "me").
        if request.form.get("picker") or (task.owner_id is not None and runnable):
            abort(400, "Choose the person to give the task to. Nothing was changed.")
        return user
    user_id = parse_id(raw)
    target = db.session.get(User, user_id) if user_id is not None else None
    if target is None or not target.is_active:
        abort(400, "Choose an active user.")
    if check_permission and not task.flow_task.user_has_permission(target):
        abort(400, f"{target.username} may not work on this task.")
    return target


def not_now(flow_class: type[Flow], task: Task, user: User, name: str, reason: str) -> str:
    """Why a transition is not allowed now, in a person's words (``actions.not_now_words``);
    the flow's managers read the engine's reason beside them."""
    words = not_now_words(task, user, name)
    return f"{words} ({reason})" if flow_class.can_manage(user) else words


def refused_form(flow_class: type[Flow], task: Task, user: User) -> Any:
    """409: the task's form (Complete, Save draft) was not taken, in words of what became of
    the task (``actions.not_saved_words``); nothing changed. With HTMX the form stays as it
    was typed (``HX-Reswap: none``) and the cards that show what happened are swapped out
    of band, with the message; a whole page shows the task as it is now."""
    db.session.rollback()
    refresh(task)
    flash(not_saved_words(task, user), "error")
    if not wants_fragment():
        return render_task(flow_class, task, WORK_BLOCKS, status=409)
    body = render_blocks("flows/task.html", REFUSED_FORM_BLOCKS, oob=set(REFUSED_FORM_BLOCKS),
                         **task_context(flow_class, task)) + oob_extras()
    response = current_app.make_response((body, 409))
    response.headers["HX-Reswap"] = "none"
    return response


def refused(flow_class: type[Flow], task: Task, message: str, blocks: list[str], status: int = 409) -> Any:
    """409 (or ``status``): the transition is not allowed now; nothing changed."""
    db.session.rollback()
    refresh(task)
    flash(message, "error")
    return render_task(flow_class, task, blocks, status=status)
