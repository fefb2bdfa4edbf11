"""Drafts of a task's form: what the owner typed, kept aside until they complete the task.

A draft is the raw text of the form's own fields, checked only for size: it is what the
person typed, not data of the process. It never reaches ``process.data``; only the task's
owner reads it; handing the task on (unassign, reassign, delegate, cancel) or completing
it drops it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import sqlalchemy as sa
from sqlalchemy.orm import Session

from .exceptions import InputRejected, PermissionDenied
from .json_data import text_problem
from .models import Task, TaskDraft, User, utcnow
from .transaction import current_unit_of_work, unit_of_work

#: The most one field of a draft may hold, in characters.
MAX_FIELD = 10_000
#: The most a whole draft may hold (its fields' characters together).
MAX_DRAFT = 64_000


def check_draft(values: Mapping[str, Iterable[str]], fields: Iterable[str]) -> dict[str, list[str]]:
    """Only the form's own fields, as lists of text; InputRejected when too big or holding NUL."""
    wanted = set(fields)
    draft = {name: [str(v) for v in values_] for name, values_ in values.items() if name in wanted}
    for name, texts in draft.items():
        # A NUL, or a lone surrogate (which PostgreSQL's JSONB refused with a DataError
        # where SQLite stored it): json_data's rule for text.
        problem = next(filter(None, map(text_problem, texts)), None)
        if problem is not None:
            raise InputRejected(f"The field {name} holds {problem}; the draft was not saved.")
        if sum(len(text) for text in texts) > MAX_FIELD:
            raise InputRejected(f"The field {name} holds more than {MAX_FIELD:,} characters; "
                                "the draft was not saved.")
    # Characters as typed (an emoji is one), as the README counts them: not the length of
    # the ASCII-escaped JSON, where an emoji took 12.
    if sum(len(text) for texts in draft.values() for text in texts) > MAX_DRAFT:
        raise InputRejected(f"The draft holds more than {MAX_DRAFT:,} characters in all; "
                            "it was not saved.")
    return draft


def save_draft(session: Session, task: Task, user: User, values: Mapping[str, Iterable[str]],
               fields: Iterable[str]) -> TaskDraft:
    """Keep what ``user`` typed into the task's form (the owner only, while the task is theirs)."""
    draft_values = check_draft(values, fields)
    user_id = user.id  # read before a new row is pending (a refresh would flush it half-made)
    with unit_of_work(session, task.process_id):
        session.refresh(task)
        activation = task.activate()
        prepare = activation.transitions()["prepare"]  # the rule of who fills the form in
        if not prepare.allows(activation, user):
            raise PermissionDenied(f"{user} does not own task {task.id}: no draft was saved")
        prepare.check(activation)
        draft = session.get(TaskDraft, task.id)
        if draft is None:
            draft = TaskDraft(task_id=task.id, user_id=user_id, data=draft_values)
            session.add(draft)
        draft.user_id, draft.data, draft.saved = user_id, draft_values, utcnow()
    return draft


def draft_of(session: Session, task: Task, user: User) -> TaskDraft | None:
    """The user's draft of the task, if the task is theirs and they saved one."""
    if task.id is None or task.owner_id is None or task.owner_id != user.id:
        return None
    draft = session.get(TaskDraft, task.id)
    return draft if draft is not None and draft.user_id == user.id else None


def clear_draft(session: Session, task: Task) -> None:
    """Drop the task's draft (the task is done or changes hands)."""
    if task.id is None:
        return
    uow = current_unit_of_work()
    if uow is not None and uow.session is session:
        uow.forget_draft(task.id)  # with the transaction's last statement
    else:
        session.execute(sa.delete(TaskDraft).where(TaskDraft.task_id == task.id))
