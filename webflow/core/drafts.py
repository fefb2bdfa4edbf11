"""Drafts of a task's form: what the owner typed, kept aside until they complete the task.

A draft is the raw text of the form's own fields, checked only for size: it is what the
person typed, not data of the process. A field that holds others (a ``FieldList``, a
``FormField``) is posted as inputs named after it (``lines-0-qty``): those are its own
too. A draft never reaches ``process.data``; only the task's owner reads it; handing the
task on (unassign, reassign, delegate, cancel) or completing it drops it."""

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


def own_field(key: str, fields: set[str]) -> bool:
    """True when the posted ``key`` is one of the form's fields or an input inside one
    (WTForms names the inputs of a ``FieldList`` or ``FormField`` ``<field>-<index or
    name>...``; a field's own name, a Python name, holds no ``-``), and well formed."""
    return key in fields or (key.partition("-")[0] in fields and well_formed(key))


#: The most digits of a FieldList's index in a posted input's name.
MAX_INDEX_DIGITS = 6


def well_formed(key: str) -> bool:
    """False for a posted name a FieldList cannot read: WTForms takes every part between
    ``-`` that ``str.isdigit`` calls a number for an index and ``int()`` of it raised
    ValueError (a 500) for ``lines-²-item`` or an index of 5,000 digits. An index is
    ASCII digits, at most ``MAX_INDEX_DIGITS``."""
    return all(part.isascii() and len(part) <= MAX_INDEX_DIGITS
               for part in key.split("-")[1:] if part.isdigit())


def check_draft(values: Mapping[str, Iterable[str]], fields: Iterable[str]) -> dict[str, list[str]]:
    """Only the form's own fields (the inputs inside a FieldList or FormField included), as
    lists of text; InputRejected when too big or holding NUL. The name of an input inside
    a FieldList counts towards the whole draft's size (the poster chooses it, as the text)."""
    wanted = set(fields)
    draft = {name: [str(v) for v in values_] for name, values_ in values.items() if own_field(name, wanted)}
    for name, texts in draft.items():
        # A NUL, or a lone surrogate (which PostgreSQL's JSONB refused with a DataError
        # where SQLite stored it): json_data's rule for text.
        problem = next(filter(None, map(text_problem, [name, *texts])), None)
        if problem is not None:
            raise InputRejected(f"The field {name[:80]} holds {problem}; the draft was not saved.")
        if sum(len(text) for text in texts) > MAX_FIELD:
            raise InputRejected(f"The field {name[:80]} holds more than {MAX_FIELD:,} characters; "
                                "the draft was not saved.")
    # Characters as typed (an emoji is one), as the README counts them: not the length of
    # the ASCII-escaped JSON, where an emoji took 12.
    size = sum((0 if name in wanted else len(name)) + sum(map(len, texts)) for name, texts in draft.items())
    if size > MAX_DRAFT:
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
