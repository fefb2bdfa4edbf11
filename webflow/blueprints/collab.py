"""Working together on a task: comments (on a task and on its process) and drafts of a
task's form. Endpoints of the flows blueprint, like the task page's own (``tasks.py``)."""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from flask import Flask, abort, flash, redirect, request
from flask_login import current_user, login_required
from markupsafe import Markup, escape

from ..core.comments import MENTION, AlreadyPosted, post_comment
from ..core.drafts import save_draft
from ..core.exceptions import InputRejected, PermissionDenied, TransitionNotAllowed
from ..core.form_tokens import new_form_token
from ..core.models import Comment
from ..extensions import db
from .flows import bp, may_see_process, node_form, process_detail_context
from .lookups import flow_or_404, process_or_404, process_url, task_url
from .tasks import TASK_URL, can_complete, changed_since_drawn, load_visible_task, refused_form, render_task
from .web import render_page, wants_fragment

PROCESS_URL = "/flows/<flow_label>/<int:process_id>/"
#: The task page's parts a comment changes: the history, where comments are listed.
COMMENT_BLOCKS = ["history"]
#: The comment forms' hidden one-time token (``core.comments.post_comment``'s ``token``).
POST_TOKEN = "comment_token"


def post_once(process: Any, user: Any, text: str, task: Any = None) -> bool:
    """Post the comment with its form's token (None from a client that sends none: nothing
    to match); False, said on the page, when that form had posted it already. A refused
    comment raises as ``post_comment`` does."""
    try:
        post_comment(db.session(), process, user, text, task=task, token=request.form.get(POST_TOKEN) or None)
    except AlreadyPosted:
        flash("This comment was already posted (the form was sent twice); it is shown once.", "info")
        return False
    except sa.exc.IntegrityError as exc:
        # One token sent to two processes at once: each checked under its own process's
        # lock, both inserted, the comment's unique token refused the second (a 500).
        db.session.rollback()
        if "post_token" not in str(exc.orig):
            raise
        raise InputRejected("This form was already used: reload the page and write the comment "
                            "again.") from exc
    return True


@bp.route(TASK_URL + "comments/", methods=["POST"])
@login_required
def task_comment(flow_label: str, process_id: int, node: str, task_id: int) -> Any:
    """Post a comment on the task (whoever sees the task); HTMX swaps the history in place."""
    flow_class, task, user = load_visible_task(flow_label, process_id, node, task_id)
    text = request.form.get("text", "")
    try:
        posted = post_once(task.process, user, text, task)
    except InputRejected as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return render_task(flow_class, task, COMMENT_BLOCKS, status=422, comment_text=text[:10_000])
    except PermissionDenied:
        abort(403)
    if wants_fragment():
        return render_task(flow_class, task, COMMENT_BLOCKS)
    if posted:
        flash("Your comment was posted.", "success")
    return redirect(task_url(task) + "#task-history", code=303)


@bp.route(PROCESS_URL + "comments/", methods=["POST"])
@login_required
def process_comment(flow_label: str, process_id: int) -> Any:
    """Post a comment on the process (whoever sees the process); HTMX swaps the list in place."""
    flow_class = flow_or_404(flow_label)
    process = process_or_404(flow_class, process_id)
    user = current_user._get_current_object()
    if not may_see_process(flow_class, process, user):
        abort(403)
    text = request.form.get("text", "")
    status = 200
    try:
        posted = post_once(process, user, text)
    except InputRejected as exc:
        db.session.rollback()
        flash(str(exc), "error")
        status = 422
    except PermissionDenied:
        abort(403)
    if status == 200 and not wants_fragment():
        if posted:
            flash("Your comment was posted.", "success")
        return redirect(process_url(process) + "#comments", code=303)
    db.session.expire_all()
    return render_page("flows/process_detail.html", ["comments"], status=status,
                       comment_text=text[:10_000] if status != 200 else "",
                       **process_detail_context(flow_class, process, user))


@bp.route(TASK_URL + "draft/", methods=["POST"])
@login_required
def task_draft(flow_label: str, process_id: int, node: str, task_id: int) -> Any:
    """Keep what the owner typed into the task's form without completing it."""
    flow_class, task, user = load_visible_task(flow_label, process_id, node, task_id)
    if task.flow_task_type != "HUMAN":
        abort(403, "Only the task's owner keeps a draft of its form.")
    if not can_complete(task, user):
        # Yours but not open to its form, or sent from a page drawn before someone else
        # changed the task: what became of it (409), the typed form kept. Anyone else: 403.
        if task.owner_id == user.id or changed_since_drawn(task):
            return refused_form(flow_class, task, user)
        abort(403, "Only the task's owner keeps a draft of its form.")
    fields = [f.name for f in node_form(task.flow_task) if f.name != "csrf_token"]
    # The fields' own inputs, also those inside a FieldList or FormField (check_draft picks them).
    values = {name: request.form.getlist(name) for name in request.form}
    try:
        save_draft(db.session(), task, user, values, fields)
    except InputRejected as exc:
        db.session.rollback()
        flash(str(exc), "error")
        # The form as it was sent (Flask-WTF binds the posted fields): nothing typed is lost.
        return render_task(flow_class, task, ["work"], status=422, form=node_form(task.flow_task))
    except (PermissionDenied, TransitionNotAllowed):
        # Allowed above, refused under the process lock: the task changed meanwhile.
        return refused_form(flow_class, task, user)
    db.session.expire_all()
    flash("Draft saved: only you see it, and nothing was completed.", "success")
    if wants_fragment():
        return render_task(flow_class, task, ["work"])
    return redirect(task_url(task), code=303)


# -- showing comments ------------------------------------------------------------------


def comment_html(comment: Comment) -> Markup:
    """The comment's text, escaped, its mentions marked and its line breaks kept."""
    mentioned = set(comment.mentions or ())

    def mark(match: re.Match[str]) -> str:
        name = match.group(1).rstrip(".-")
        if name not in mentioned:
            return str(escape(match.group(0)))
        rest = match.group(1)[len(name):]
        return f'<strong class="wf-mention">@{escape(name)}</strong>{escape(rest)}'

    parts, last = [], 0
    for match in MENTION.finditer(comment.text):
        parts.append(str(escape(comment.text[last:match.start()])))
        parts.append(mark(match))
        last = match.end()
    parts.append(str(escape(comment.text[last:])))
    return Markup("".join(parts).replace("\n", "<br>\n"))


def register(app: Flask) -> None:
    app.add_template_filter(comment_html, "comment_html")
    # Each comment form drawn gets a token of its own (a fresh one after every post, as the
    # form is drawn again with the list it posts to).
    app.add_template_global(new_form_token, "new_form_token")
