"""Comments on a process or a task, and the ``@username`` mentions in them."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from .exceptions import FlowRuntimeError, InputRejected, PermissionDenied
from .form_tokens import is_form_token
from .json_data import text_problem
from .models import Comment, Process, Task, User
from .signals import comment_posted
from .transaction import unit_of_work
from .visibility import can_see_process, can_see_task

#: The longest comment, in characters.
MAX_COMMENT = 5000
#: At most this many different names in one comment are looked up as mentions.
MAX_MENTIONS = 20
# "@bob", "(@bob.smith)" but not "mail@bob.org": the @ starts a word.
MENTION = re.compile(r"(?<![\w@])@([\w.\-]{1,150})")


def check_comment(text: str | None) -> str:
    """The comment's text, trimmed; InputRejected for an empty or overlong one, or one that
    no database stores (``json_data.text_problem``: a NUL, or a lone surrogate, which
    failed the flush with a UnicodeEncodeError)."""
    text = (text or "").strip()
    if not text:
        raise InputRejected("Write something first: the comment is empty.")
    problem = text_problem(text)
    if problem is not None:
        raise InputRejected(f"A comment cannot hold {problem}.")
    if len(text) > MAX_COMMENT:
        raise InputRejected(f"A comment holds at most {MAX_COMMENT:,} characters; this one has "
                            f"{len(text):,}. Nothing was saved.")
    if not any(map(visible, text)):  # zero-width spaces, direction marks: nothing to read
        raise InputRejected("Write something first: the comment is empty.")
    return text


def visible(char: str) -> bool:
    """False for what draws nothing: spaces, and format or control characters (a zero-width
    space, a direction mark, a BOM). A comment of only those was posted, an empty entry."""
    category = unicodedata.category(char)
    return category[0] not in "ZC" or category == "Co"  # Co: private use, a glyph of some font


def mentioned_names(text: str) -> list[str]:
    """The ``@names`` in the text, in order, each once (a sentence's final dot is not a name's)."""
    names: dict[str, None] = {}
    for match in MENTION.finditer(text):
        name = match.group(1).rstrip(".-")
        if name:
            names.setdefault(name, None)
    return list(names)[:MAX_MENTIONS]


class AlreadyPosted(FlowRuntimeError):
    """The form's token already posted a comment (``.comment``): nothing new was stored."""

    def __init__(self, comment: Comment) -> None:
        super().__init__(f"comment {comment.id} was already posted with this form")
        self.comment = comment


def post_comment(session: Session, process: Process, author: User, text: str | None,
                 task: Task | None = None, token: str | None = None) -> Comment:
    """Store a comment by ``author`` on the process (or one of its tasks) and return it.

    The author must see what they comment on. Mentions are the named users who are active
    and see it too (anything else after an @ stays plain text); ``comment_posted`` is sent
    with them once the row has its id, inside the transaction.

    ``token`` is the posting form's one-time token: when this author's comment with that
    token exists (the same form sent again), AlreadyPosted names it and nothing is stored
    or sent. The check runs under the process lock, so two copies sent at once store one."""
    text = check_comment(text)
    if task is not None and task.process_id != process.id:
        raise PermissionDenied(f"task {task.id} is not a task of process {process.id}")

    def sees(user: Any) -> bool:
        return can_see_task(task, user) if task is not None else can_see_process(process, user)

    with unit_of_work(session, process.id):
        if not sees(author):
            raise PermissionDenied(f"{author} may not see what they comment on")
        if token is not None:
            if not is_form_token(token):
                raise InputRejected("The comment form was damaged in transit and nothing was "
                                    "posted: post the comment again.")
            earlier = session.scalar(sa.select(Comment).where(Comment.post_token == token))
            if earlier is not None:
                if earlier.author_id != author.id or earlier.process_id != process.id:
                    raise InputRejected("This form was already used: reload the page and write "
                                        "the comment again.")
                raise AlreadyPosted(earlier)
        names = mentioned_names(text)
        found = {u.username: u for u in session.scalars(
            sa.select(User).where(User.username.in_(names), User.is_active.is_(True)))} if names else {}
        mentions = [found[name] for name in names
                    if name in found and found[name].id != author.id and sees(found[name])]
        comment = Comment(process=process, task=task, author=author, text=text,
                          mentions=[u.username for u in mentions], post_token=token)
        session.add(comment)
        session.flush()
        comment_posted.send(process.flow_class, process=process, task=task, comment=comment,
                            mentions=mentions)
    return comment


def _on(process: Process, task: Task | None) -> sa.ColumnElement[bool]:
    if task is not None:
        return sa.and_(Comment.task_id == task.id, Comment.process_id == process.id)
    return Comment.process_id == process.id


def comments_of(session: Session, process: Process, task: Task | None = None, *,
                offset: int = 0, limit: int | None = None, newest: int | None = None) -> list[Comment]:
    """The comments on the task (or on the whole process, tasks included), oldest first;
    ``offset`` and ``limit`` take a page of them, ``newest`` only the newest so many."""
    query = sa.select(Comment).where(_on(process, task))
    if newest is not None:
        found = session.scalars(query.order_by(Comment.created.desc(), Comment.id.desc()).limit(newest))
        return list(found)[::-1]
    query = query.order_by(Comment.created, Comment.id)
    if offset or limit is not None:
        query = query.offset(offset).limit(limit)
    return list(session.scalars(query))


def count_comments(session: Session, process: Process, task: Task | None = None) -> int:
    """How many comments ``comments_of`` would list."""
    return session.scalar(sa.select(sa.func.count()).select_from(Comment).where(_on(process, task))) or 0
