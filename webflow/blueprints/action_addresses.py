"""What the addresses that only take a form answer when they are opened (GET).

A refused action answers with a page at its own address (``…/<task>/cancel/`` and 409, when a
confirmation page was sent twice); reloading it, bookmarking it or following a shared link
opens that address. Opening it does nothing and leads to the task (or the process) as it is
now, with a message that says so, instead of a bare 405. Endpoints of the flows blueprint,
with the task page's own rules: 404 for no such task or action, 403 for a task not yours to see.
"""

from __future__ import annotations

from typing import Any

from flask import abort, flash
from flask_login import current_user, login_required

from .actions import people_transition, rule_book_names
from .flows import bp, may_see_process
from .lookups import flow_or_404, process_or_404, process_url, task_url
from .tasks import TASK_URL, go_to, load_task, may_see

#: The task page's other addresses that take only its forms (due date, draft, comment).
FORM_ADDRESSES = ("due", "draft", "comments")
NOTHING_DONE = "Nothing was done: {what}. This is the {thing} as it is now."


@bp.route(TASK_URL + "<transition>/", methods=["GET"])
@login_required
def task_action_opened(flow_label: str, process_id: int, node: str, task_id: int, transition: str) -> Any:
    """A task action's address opened: to the task page, saying that nothing was done (the
    action's answers first: 404 for a name people never run, 403 for a task not yours to see)."""
    flow_class, task = load_task(flow_label, process_id, node, task_id)
    declared = people_transition(task.activate(), transition)
    if declared is None and transition not in (*rule_book_names(), *FORM_ADDRESSES):
        abort(404)
    if not may_see(flow_class, task, current_user._get_current_object()):
        abort(403)
    if declared is not None:
        what = f"“{declared.label}” is done only when its button is pressed"
    elif transition in FORM_ADDRESSES:
        what = "that address only takes what the page's forms send"
    else:
        what = f"this kind of task has no “{transition}” action"
    flash(NOTHING_DONE.format(what=what, thing="task"), "info")
    return go_to(task_url(task))


@bp.route("/flows/<flow_label>/<int:process_id>/comments/", methods=["GET"])
@login_required
def process_comments_opened(flow_label: str, process_id: int) -> Any:
    """The process's comment address opened: to its comments, saying that nothing was done."""
    flow_class = flow_or_404(flow_label)
    process = process_or_404(flow_class, process_id)
    if not may_see_process(flow_class, process, current_user._get_current_object()):
        abort(403)
    flash(NOTHING_DONE.format(what="that address only takes what the page's forms send",
                              thing="process"), "info")
    return go_to(process_url(process) + "#comments")
