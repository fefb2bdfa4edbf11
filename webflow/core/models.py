"""Rows: processes, tasks, the links between tasks, users, groups and the audit trail.

Plain SQLAlchemy 2 declarations on our own ``Base``; Flask-SQLAlchemy reuses its metadata,
so the engine core, the web app and the worker share one schema and none needs Flask.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, query_expression, relationship, validates
from sqlalchemy.schema import DDL

from .exceptions import FlowRuntimeError, storable_text
from .json_data import DataDict, check_storable, dumps, same_json
from .status import STATUS

if TYPE_CHECKING:
    from .flow import Flow, Node


def utcnow() -> datetime:
    return datetime.now(UTC)


#: The largest id a row has on every database (PostgreSQL's integer; SQLite's is larger).
MAX_ID = 2**31 - 1


def is_row_id(value: Any) -> bool:
    """True for a value that can be the id of a row. Anything else (None, a bool, a text, an
    int above MAX_ID) names no row: engine calls that take an id answer "no such row" for it
    on both databases, where PostgreSQL failed the statement with a DataError (integer out
    of range) and SQLite answered that nothing had that id."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID


def as_utc(value: datetime | None) -> datetime:
    """An aware UTC datetime (SQLite hands back naive ones; None sorts as now)."""
    if value is None:
        return utcnow()
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

class JSONValue(sa.JSON):
    """JSON whose values are equal only when JSON holds them equal (``json_data.same_json``).
    SQLAlchemy compares an assigned value with the loaded one by ``==``, which takes
    ``True`` for ``1`` and ``1.0`` for ``1``: ``process.data = {**data, "n": True}`` over
    ``{"n": 1}`` (a form's checkbox, a job's result) was no change, and nothing was stored."""

    def compare_values(self, x: Any, y: Any) -> bool:
        return bool(x == y) and same_json(x, y)  # == first: a differing value costs no walk


class PostgresJSON(sa.TypeDecorator[Any]):
    """JSONB written with ``json_data.dumps``: a float keeps being a float (JSONB's
    ``numeric`` printed ``1e+16`` as an int; SQLite kept it), so a value reads back the
    same on both databases, and a search document built from the table is the one written
    from memory."""

    impl = JSONB
    cache_ok = True

    def bind_processor(self, dialect: sa.Dialect) -> Any:
        if dialect.driver != "psycopg":
            return super().bind_processor(dialect)
        from psycopg.types.json import Jsonb

        def process(value: Any) -> Any:
            return Jsonb(value, dumps=dumps)  # None: JSON null, as JSONB writes it

        return process


JSONType = JSONValue().with_variant(PostgresJSON(), "postgresql")
# process.data and task.data track in-place changes, nested ones too (``data["x"] = y``,
# ``data["order"]["total"] = 5`` and ``data["items"].append(z)`` are saved like an
# assignment: see json_data). (A type object of their own: as_mutable applies to every
# column of the type it wraps.)
MutableJSONType = DataDict.as_mutable(JSONValue().with_variant(PostgresJSON(), "postgresql"))
# Statuses are stored by value (the same as the name) in a plain string column, so a new
# status never needs a database enum migration.
StatusType = sa.Enum(
    STATUS, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e]
)



class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timestamp that is always an aware UTC datetime in Python.

    PostgreSQL keeps the zone; SQLite stores text without one and hands back naive values,
    which would make comparisons with ``utcnow()`` raise. Values are stored in UTC and
    read back as UTC on both."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # naive values are taken as UTC, as they read back
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


#: The longest process summary the column holds (longer ones are cut).
SUMMARY_LENGTH = 400
intpk = Annotated[int, mapped_column(primary_key=True)]
timestamp = Annotated[datetime, mapped_column(UTCDateTime(), default=utcnow)]
optional_timestamp = Annotated[datetime | None, mapped_column(UTCDateTime())]


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class _QueryProperty:
    """``Model.query``: a query of the model on the session the engine works on
    (``db.session`` inside an app context, or the session of ``use_session``), as the
    models of Flask-SQLAlchemy have (SPEC's examples write ``User.query.filter_by(...)``)."""

    def __get__(self, obj: Any, owner: type[Any]) -> sa.orm.Query[Any]:
        from .context import get_session

        return get_session().query(owner)


class Queryable:
    """Gives a model ``.query`` (the public ones: Process, Task, User, Group, TaskEvent)."""

    query: ClassVar[_QueryProperty] = _QueryProperty()


user_group = sa.Table(
    "user_group",
    Base.metadata,
    sa.Column("user_id", sa.ForeignKey("user.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("group_id", sa.ForeignKey("group.id", ondelete="CASCADE"), primary_key=True),
)

# previous -> task: the task that activated another. A join has several previous tasks.
task_link = sa.Table(
    "task_link",
    Base.metadata,
    sa.Column("previous_id", sa.ForeignKey("task.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("task_id", sa.ForeignKey("task.id", ondelete="CASCADE"), primary_key=True),
    sa.Index("ix_task_link_task_id", "task_id"),
)


def permission_names(value: Any) -> list[str]:
    """``permissions`` of a user or group: a list of names. A string was taken as the set of
    its letters (``permissions="expense.can_approve"`` granted 'e', 'x', ... and not the
    permission), a number failed later in ``has_perm``."""
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, list | tuple | set | frozenset) or not all(
            isinstance(name, str) for name in value):
        raise FlowRuntimeError(f"permissions is a list of permission names (['expense.can_approve']), "
                               f"not {value!r:.80}")
    return list(value)


class Group(Queryable, Base):
    __tablename__ = "group"

    id: Mapped[intpk]
    name: Mapped[str] = mapped_column(sa.String(150), unique=True)
    permissions: Mapped[list[str]] = mapped_column(JSONType, default=list)

    @validates("permissions")
    def _permission_names(self, key: str, value: Any) -> list[str]:
        return permission_names(value)

    def __repr__(self) -> str:
        return f"<Group {self.name}>"


class User(Queryable, Base):
    __tablename__ = "user"

    id: Mapped[intpk]
    username: Mapped[str] = mapped_column(sa.String(150), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.String(256), default="")
    is_superuser: Mapped[bool] = mapped_column(default=False)
    is_active: Mapped[bool] = mapped_column(default=True)
    permissions: Mapped[list[str]] = mapped_column(JSONType, default=list)
    groups: Mapped[list[Group]] = relationship(secondary=user_group)

    @validates("permissions")
    def _permission_names(self, key: str, value: Any) -> list[str]:
        return permission_names(value)
    # Loaded with the user (one outer join), so that giving a task to someone reads whether
    # they are away without a statement of its own in the transition.
    away: Mapped[OutOfOffice | None] = relationship(
        primaryjoin="User.id == OutOfOffice.user_id", foreign_keys="OutOfOffice.user_id",
        uselist=False, lazy="joined", viewonly=True)
    # Named by every session of the user; a new token (logout, password change) ends them all.
    session_token: Mapped[str | None] = mapped_column(sa.String(64), default=lambda: secrets.token_hex(16))
    # Where notifications go (None: the user gets none); set on the settings page.
    email: Mapped[str | None] = mapped_column(sa.String(254))
    # The IANA zone the user reads times in ("Europe/Paris"); None: the browser's own zone.
    timezone: Mapped[str | None] = mapped_column(sa.String(64), default=None)

    def __init__(self, **kwargs: Any) -> None:
        # The column defaults apply at the INSERT only: a User as built (not stored yet) had
        # is_active None, and every rule of the engine took it for an inactive user.
        kwargs.setdefault("is_superuser", False)
        kwargs.setdefault("is_active", True)
        kwargs.setdefault("permissions", [])
        super().__init__(**kwargs)

    # Flask-Login's protocol, spelled out so the core does not import Flask-Login.
    is_authenticated = True
    is_anonymous = False

    def get_id(self) -> str:
        """What the session stores: the id and the current session token."""
        return f"{self.id}:{self.session_token or ''}"

    def new_session_token(self) -> None:
        """End every session of the user made so far."""
        self.session_token = secrets.token_hex(16)

    def set_password(self, password: str) -> None:
        """Store a salted PBKDF2 hash of the password (and end the sessions made before)."""
        salt = secrets.token_hex(16)
        digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), 200_000)
        self.password_hash = f"pbkdf2_sha256$200000${salt}${digest.hex()}"
        self.new_session_token()

    def check_password(self, password: str) -> bool:
        """True when the password matches the stored hash."""
        try:
            _, rounds, salt, expected = self.password_hash.split("$")
        except ValueError:
            return False
        digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), int(rounds))
        return hmac.compare_digest(digest.hex(), expected)

    def get_all_permissions(self) -> set[str]:
        perms = set(self.permissions or ())
        for group in self.groups:
            perms.update(group.permissions or ())
        return perms

    def has_perm(self, name: str) -> bool:
        """True for a superuser, or when the user or one of its groups has the permission."""
        if self.is_superuser:
            return True
        return name in self.get_all_permissions()

    def __str__(self) -> str:
        return self.username

    def __repr__(self) -> str:
        return f"<User {self.username}>"


def stored_user(user: Any, what: str) -> User:
    """The ``user`` a call names (``what``: the call), refused unless it is a ``User`` row
    that is stored or that the caller added to the session: a ``User(...)`` built and
    never added was stored by the call as a side effect (``assign(User(username="x",
    is_superuser=True))`` made that superuser), and a username failed as an AttributeError
    deep inside."""
    if not isinstance(user, User):
        raise FlowRuntimeError(f"{what} needs a user (a webflow.models.User), not {user!r:.80}")
    state = sa.inspect(user)
    if state.transient or state.deleted or state.was_deleted:
        raise FlowRuntimeError(f"{what}: user {user.username!r} is not stored: add it to the session "
                               "and commit it first (the engine never creates users)")
    return user


class Process(Queryable, Base):
    __tablename__ = "process"
    __table_args__ = (
        sa.Index("ix_process_flow_status", "flow_class", "status", "created"),
        sa.Index("ix_process_flow_created", "flow_class", "created"),  # a flow's newest first
    )

    id: Mapped[intpk]
    flow_class_path: Mapped[str] = mapped_column("flow_class", sa.String(255))
    status: Mapped[STATUS] = mapped_column(StatusType, default=STATUS.NEW, index=True)
    data: Mapped[dict[str, Any]] = mapped_column(MutableJSONType, default=dict)
    # Bumped by every UPDATE of the row and checked in its WHERE clause: a write based on
    # a stale read (made outside the process lock) fails with StaleDataError instead of
    # overwriting what others committed meanwhile.
    version: Mapped[int] = mapped_column(default=1, server_default="1")
    summary: Mapped[str] = mapped_column(sa.String(SUMMARY_LENGTH), default="")
    created: Mapped[timestamp]
    finished: Mapped[optional_timestamp]
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user.id"))
    created_by: Mapped[User | None] = relationship()
    # Set by the engine while the process is NEW with no unfinished task and no End
    # reached (its last open task was canceled): it waits for a manager's repair.
    stalled: Mapped[optional_timestamp] = mapped_column(index=True)
    # The one-time token of the start form that created it: the same form submitted
    # again (Back button, double click) finds this process instead of starting another.
    start_token: Mapped[str | None] = mapped_column(sa.String(64), unique=True)
    # A subprocess: the parent's task that started it, and the top process of its tree.
    # Every lock on a process of a tree takes the top one first (see transaction.lock),
    # so a child finishing and its parent being canceled never deadlock.
    parent_task_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("task.id", ondelete="SET NULL", use_alter=True), index=True)
    parent_task: Mapped[Task | None] = relationship(foreign_keys=[parent_task_id], viewonly=True)
    root_process_id: Mapped[int | None] = mapped_column()

    @validates("summary")
    def _one_storable_line(self, key: str, value: Any) -> str:
        """A flow's own ``summary()`` may return anything: it is stored as text both
        databases take (NUL and lone surrogates written out), cut to the column's length.
        Before, a summary with NUL or longer than the column failed the transition's commit
        on PostgreSQL (a 500 from a request) and was stored as it was on SQLite."""
        return storable_text("" if value is None else str(value))[:SUMMARY_LENGTH]

    tasks: Mapped[list[Task]] = relationship(
        back_populates="process", order_by="Task.id", passive_deletes=True,
        foreign_keys="Task.process_id",
    )

    @property
    def flow_class(self) -> type[Flow]:
        from .flow import resolve_flow_class

        return resolve_flow_class(self.flow_class_path)

    def get_task(self, flow_task: Node, status: STATUS | list[STATUS] | None = None) -> Task:
        """The one task of this process at the node (optionally in the status)."""
        from .queries import get_task

        return get_task(self, flow_task, status)

    def cancel(self) -> None:
        """Cancel the process and every unfinished task in it."""
        from .engine import cancel_process

        cancel_process(self)

    __mapper_args__ = {"version_id_col": version}

    def __repr__(self) -> str:
        return f"<Process {self.id} {self.flow_class_path} {self.status}>"


QUEUE_ROWS = "status = 'NEW' AND owner_id IS NULL"
#: Node types whose SCHEDULED tasks wait for ``due`` (see core.timers).
TIMER_TYPES = ("TIMER", "TIMEOUT")
# Only waiting timers are in the timer index, ordered by when they fire: finding the due
# ones is a range scan that never reads a future timer, however many there are.
TIMER_ROWS = "status = 'SCHEDULED' AND flow_task_type IN ('TIMER', 'TIMEOUT')"
# Tasks a person has and that have a due date: the overdue pass reads them by due date.
OWNED_DUE_ROWS = "status = 'ASSIGNED' AND due IS NOT NULL"


class Task(Queryable, Base):
    __tablename__ = "task"
    __table_args__ = (
        sa.Index("ix_task_owner_status", "owner_id", "status", "created"),
        # The queue: only unassigned NEW tasks (a few percent of the table), in created
        # order, with what the queue filters on, so a page is a short backward index scan
        # and its count an index-only scan.
        sa.Index("ix_task_queue", "created", "id", "owner_permission", "flow_class", "flow_task_type",
                 postgresql_where=sa.text(QUEUE_ROWS), sqlite_where=sa.text(QUEUE_ROWS)),
        sa.Index("ix_task_process_token", "process_id", "token"),
        sa.Index("ix_task_process_node", "process_id", "flow_task", "status"),
        # Tasks by status, newest or oldest first: the admin's ERROR and stuck-job lists.
        sa.Index("ix_task_status_id", "status", "id"),
        # The queue by due date and by priority (same rows as ix_task_queue), a user's
        # inbox by due date, and the waiting timers by the time they fire.
        sa.Index("ix_task_queue_due", "due", "id", postgresql_where=sa.text(QUEUE_ROWS),
                 sqlite_where=sa.text(QUEUE_ROWS)),
        sa.Index("ix_task_queue_priority", "priority", "id", postgresql_where=sa.text(QUEUE_ROWS),
                 sqlite_where=sa.text(QUEUE_ROWS)),
        sa.Index("ix_task_owner_due", "owner_id", "status", "due"),
        sa.Index("ix_task_timer_due", "due", "id", postgresql_where=sa.text(TIMER_ROWS),
                 sqlite_where=sa.text(TIMER_ROWS)),
        sa.Index("ix_task_assigned_due", "due", "id", postgresql_where=sa.text(OWNED_DUE_ROWS),
                 sqlite_where=sa.text(OWNED_DUE_ROWS)),
    )

    id: Mapped[intpk]
    process_id: Mapped[int] = mapped_column(sa.ForeignKey("process.id", ondelete="CASCADE"))
    process: Mapped[Process] = relationship(back_populates="tasks", foreign_keys=[process_id])
    flow_class_path: Mapped[str] = mapped_column("flow_class", sa.String(255))
    node_name: Mapped[str] = mapped_column("flow_task", sa.String(100))
    flow_task_type: Mapped[str] = mapped_column(sa.String(20))
    status: Mapped[STATUS] = mapped_column(StatusType, default=STATUS.NEW)
    token: Mapped[str] = mapped_column(sa.String(255), default="start")
    owner_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user.id"))
    owner: Mapped[User | None] = relationship()
    owner_permission: Mapped[str | None] = mapped_column(sa.String(255))
    created: Mapped[timestamp]
    assigned: Mapped[optional_timestamp]
    started: Mapped[optional_timestamp]
    finished: Mapped[optional_timestamp]
    external_task_id: Mapped[str | None] = mapped_column(sa.String(255), index=True)
    comments: Mapped[str | None] = mapped_column(sa.Text)
    data: Mapped[dict[str, Any]] = mapped_column(MutableJSONType, default=dict)
    attempts: Mapped[int] = mapped_column(default=0)
    # When the task should be done (View, Job: a deadline) or fires (Timer, OnTimeout).
    due: Mapped[optional_timestamp]
    priority: Mapped[int] = mapped_column(default=0, server_default=sa.text("0"))

    previous: Mapped[list[Task]] = relationship(
        secondary=task_link,
        primaryjoin=lambda: Task.id == task_link.c.task_id,
        secondaryjoin=lambda: Task.id == task_link.c.previous_id,
        back_populates="leading",
        order_by=lambda: Task.id,
        viewonly=True,  # the engine writes task_link rows in bulk (transaction.UnitOfWork)
    )
    leading: Mapped[list[Task]] = relationship(
        secondary=task_link,
        primaryjoin=lambda: Task.id == task_link.c.previous_id,
        secondaryjoin=lambda: Task.id == task_link.c.task_id,
        back_populates="previous",
        order_by=lambda: Task.id,
        viewonly=True,
    )
    # How many of the tasks this one led to are not canceled, where the query that loaded
    # it asked (queries.with_alive_leading); None otherwise. Undo's rule asks it of every
    # done row of a page: one count in SQL instead of a split's thousands of leading tasks.
    alive_leading: Mapped[int | None] = query_expression()

    @property
    def flow_class(self) -> type[Flow]:
        from .flow import resolve_flow_class

        return resolve_flow_class(self.flow_class_path)

    @property
    def flow_task(self) -> Any:
        # Any, not Node: each node class has its own builders and settings (a View's
        # assignee, a Job's queue) that its activation class reads.
        return self.flow_class.node(self.node_name)

    def activate(self) -> Any:
        """The activation that runs this task's transitions (the node's own class: its
        transitions differ by node, so callers get it untyped)."""
        return self.flow_task.activation_class(self)

    def __repr__(self) -> str:
        return f"<Task {self.id} {self.node_name} {self.status} {self.token}>"


def _refuse_unstorable(where: str) -> Any:
    def check(target: Any, value: Any, oldvalue: Any, initiator: Any) -> None:
        check_storable(value, where)
    return check


# A value the column cannot store (not JSON, NUL, NaN) is refused on the line that assigns
# it, the same on both databases; changes inside are checked by json_data as they are made.
sa.event.listen(Process.data, "set", _refuse_unstorable("process.data"))
sa.event.listen(Task.data, "set", _refuse_unstorable("task.data"))


class TaskEvent(Queryable, Base):
    """One transition of one task: the audit trail."""

    __tablename__ = "task_event"

    id: Mapped[intpk]
    process_id: Mapped[int] = mapped_column(
        sa.ForeignKey("process.id", ondelete="CASCADE"), index=True
    )
    task_id: Mapped[int | None] = mapped_column(sa.ForeignKey("task.id", ondelete="CASCADE"))
    transition: Mapped[str] = mapped_column(sa.String(50))
    from_status: Mapped[STATUS | None] = mapped_column(StatusType)
    to_status: Mapped[STATUS | None] = mapped_column(StatusType)
    user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user.id"))
    user: Mapped[User | None] = relationship(lazy="joined")
    comments: Mapped[str | None] = mapped_column(sa.Text)
    created: Mapped[timestamp]

    process: Mapped[Process] = relationship()
    task: Mapped[Task | None] = relationship()


# -- working together: comments, drafts, out of office ------------------------------------


class Comment(Base):
    """What a person wrote about a process or one of its tasks. Data, never markup: pages
    escape it; no transition (undo included) removes it."""

    __tablename__ = "comment"
    __table_args__ = (
        sa.Index("ix_comment_process_created", "process_id", "created"),
        sa.Index("ix_comment_task_created", "task_id", "created"),
        sa.Index("ux_comment_post_token", "post_token", unique=True),
    )

    id: Mapped[intpk]
    process_id: Mapped[int] = mapped_column(sa.ForeignKey("process.id", ondelete="CASCADE"))
    task_id: Mapped[int | None] = mapped_column(sa.ForeignKey("task.id", ondelete="CASCADE"))
    author_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user.id", ondelete="SET NULL"))
    text: Mapped[str] = mapped_column(sa.Text)
    # The usernames the comment mentions (users who could see it when it was posted).
    mentions: Mapped[list[str]] = mapped_column(JSONType, default=list)
    # The one-time token of the form that posted it: the same form sent again (a double
    # click without JavaScript, a retry after a dropped answer, Back and send) finds this
    # comment instead of storing a second. None for comments posted without a form's token.
    post_token: Mapped[str | None] = mapped_column(sa.String(64))
    created: Mapped[timestamp]

    author: Mapped[User | None] = relationship(lazy="joined")
    process: Mapped[Process] = relationship()
    task: Mapped[Task | None] = relationship()

    def __repr__(self) -> str:
        return f"<Comment {self.id} on process {self.process_id} task {self.task_id}>"


class TaskDraft(Base):
    """What the owner typed into a task's form and saved without completing it. Only the
    owner reads it; it never reaches ``process.data``; handing the task on drops it."""

    __tablename__ = "task_draft"

    task_id: Mapped[int] = mapped_column(sa.ForeignKey("task.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"), index=True)
    # The raw submitted values of the form's own fields: {name: [values]}.
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    saved: Mapped[timestamp]


class OutOfOffice(Base):
    """A user is away: tasks given to them go to ``substitute`` (until ``until``, if set)."""

    __tablename__ = "out_of_office"

    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"), primary_key=True)
    substitute_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"), index=True)
    until: Mapped[optional_timestamp]
    created: Mapped[timestamp]

    user: Mapped[User] = relationship(foreign_keys=[user_id])
    substitute: Mapped[User] = relationship(foreign_keys=[substitute_id])

    def active(self, now: datetime | None = None) -> bool:
        """True while the user is away (no end, or the end is still to come)."""
        return self.until is None or as_utc(self.until) > (now or utcnow())
# -- notifications ---------------------------------------------------------------------------


class NotificationSetting(Base):
    """Which kinds of notification a user wants; no row: every kind."""

    __tablename__ = "notification_setting"

    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"), primary_key=True)
    assigned: Mapped[bool] = mapped_column(default=True)
    delegated: Mapped[bool] = mapped_column(default=True)
    mentioned: Mapped[bool] = mapped_column(default=True)
    overdue: Mapped[bool] = mapped_column(default=True)


class OverdueNotice(Base):
    """A task's due date passed while someone had it, and that was noticed (once).

    The key is the task *and* the due date: inserting it is how the overdue pass claims
    the notice, so of several workers noticing at once exactly one succeeds, and a task
    given a new due date that passes again is noticed again."""

    __tablename__ = "overdue_notice"

    task_id: Mapped[int] = mapped_column(sa.ForeignKey("task.id", ondelete="CASCADE"), primary_key=True)
    due: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    noticed: Mapped[timestamp]


class Notification(Base):
    """One email to send: written in the transaction of the event it tells about, sent
    by a job after that transaction committed (a rollback removes it with the event)."""

    __tablename__ = "notification"
    __table_args__ = (sa.Index("ix_notification_unsent", "sent", "retry_at"),)

    id: Mapped[intpk]
    kind: Mapped[str] = mapped_column(sa.String(20))
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"), index=True)
    task_id: Mapped[int | None] = mapped_column(sa.ForeignKey("task.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(sa.String(254))
    subject: Mapped[str] = mapped_column(sa.String(255))
    body: Mapped[str] = mapped_column(sa.Text)
    html: Mapped[str | None] = mapped_column(sa.Text)
    created: Mapped[timestamp]
    # Set when a job takes it (a conditional update: one job sends it); cleared again when
    # sending failed, so that it is tried again at ``retry_at``, up to a limit. An unsent
    # one past ``retry_at`` (its job was lost with Redis) is queued again by the timer pass.
    sent: Mapped[optional_timestamp]
    retry_at: Mapped[optional_timestamp]
    attempts: Mapped[int] = mapped_column(default=0, server_default=sa.text("0"))
    error: Mapped[str | None] = mapped_column(sa.Text)
class SearchDocument(Base):
    """What search finds a process (and its tasks) by: one row per process, refreshed in the
    transaction that changes the process's data, tasks or owners (see ``core.search``).

    ``body`` is the words, lowercased and separated by single spaces, so that both
    databases split it alike. PostgreSQL indexes ``document`` (``to_tsvector('simple',
    body)``, written with the row) with a GIN index; SQLite indexes ``body`` in the FTS5
    table ``search_fts`` kept in step by triggers, and leaves ``document`` empty."""

    __tablename__ = "search_document"
    __table_args__ = (
        sa.Index("ix_search_document_document", "document", postgresql_using="gin")
        .ddl_if(dialect="postgresql"),
    )

    process_id: Mapped[int] = mapped_column(
        sa.ForeignKey("process.id", ondelete="CASCADE"), primary_key=True, autoincrement=False)
    body: Mapped[str] = mapped_column(sa.Text, default="")
    document: Mapped[Any] = mapped_column(sa.Text().with_variant(TSVECTOR(), "postgresql"), nullable=True)


#: SQLite's full-text index of ``search_document.body`` (external content: the words are
#: stored once, in search_document) and the triggers that keep it in step. Diacritics are
#: kept, as PostgreSQL's ``simple`` configuration keeps them.
SEARCH_FTS_TABLE = "search_fts"
SEARCH_FTS_DDL = (
    "CREATE VIRTUAL TABLE search_fts USING fts5(body, content='search_document', "
    "content_rowid='process_id', tokenize='unicode61 remove_diacritics 0')",
    "CREATE TRIGGER search_document_ai AFTER INSERT ON search_document BEGIN "
    "INSERT INTO search_fts(rowid, body) VALUES (new.process_id, new.body); END",
    "CREATE TRIGGER search_document_ad AFTER DELETE ON search_document BEGIN "
    "INSERT INTO search_fts(search_fts, rowid, body) VALUES ('delete', old.process_id, old.body); END",
    "CREATE TRIGGER search_document_au AFTER UPDATE ON search_document BEGIN "
    "INSERT INTO search_fts(search_fts, rowid, body) VALUES ('delete', old.process_id, old.body); "
    "INSERT INTO search_fts(rowid, body) VALUES (new.process_id, new.body); END",
)
SEARCH_FTS_DROP = "DROP TABLE IF EXISTS search_fts"

for _statement in SEARCH_FTS_DDL:
    sa.event.listen(SearchDocument.__table__, "after_create", DDL(_statement).execute_if(dialect="sqlite"))
sa.event.listen(SearchDocument.__table__, "before_drop", DDL(SEARCH_FTS_DROP).execute_if(dialect="sqlite"))


def is_search_index_table(name: str | None) -> bool:
    """True for SQLite's FTS5 table and its shadow tables: the database's own, not models'
    (schema comparisons leave them out; the migration test checks them separately)."""
    return name is not None and (name == SEARCH_FTS_TABLE or name.startswith(SEARCH_FTS_TABLE + "_"))


def schema_filters(dialect: str) -> dict[str, Any]:
    """Alembic's ``include_name`` and ``include_object`` for comparing a database of the
    dialect with the models: SQLite's full-text tables are the database's own, and an
    index the models create on one database only (``ddl_if``) is not missing elsewhere."""

    def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
        return not (type_ == "table" and is_search_index_table(name))

    def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        only = getattr(obj, "_ddl_if", None) if type_ == "index" else None
        return only is None or only.dialect in (None, dialect)

    return {"include_name": include_name, "include_object": include_object}


class SavedFilter(Base):
    """A person's named filter of a task list (inbox or queue): the list's query string."""

    __tablename__ = "saved_filter"
    __table_args__ = (sa.UniqueConstraint("user_id", "list_name", "name", name="uq_saved_filter_name"),)

    id: Mapped[intpk]
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"))
    list_name: Mapped[str] = mapped_column(sa.String(20))
    name: Mapped[str] = mapped_column(sa.String(80))
    #: The list's own query keys (flow, when, q, sort), urlencoded.
    query: Mapped[str] = mapped_column(sa.String(600), default="")
    created: Mapped[timestamp]
