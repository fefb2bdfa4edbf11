"""Initial schema: users, groups, processes, tasks, task links and the audit trail.

Revision ID: 0001
Revises:
Create Date: 2026-11-27 00:09:28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# The models' column types, spelled out so this revision never changes with the models.
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
STATUSES = ("NEW", "ASSIGNED", "PREPARED", "SCHEDULED", "STARTED", "DONE", "ERROR", "CANCELED", "UNRIPE")


def status_type() -> sa.Enum:
    """Statuses stored by value in a VARCHAR(16): no database enum, no CHECK."""
    return sa.Enum(*STATUSES, name="status", native_enum=False, length=16)


def timestamp(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    if not context.is_offline_mode() and sa.inspect(op.get_bind()).has_table("process"):
        # Made by `flask webflow init-db` or db.create_all(): there is no revision to start from.
        raise RuntimeError(
            "the database already has webflow's tables but no migration revision (it was made by "
            "`flask webflow init-db` or db.create_all()). If its schema is this version's, mark it "
            "with `flask --app wsgi db stamp head` and upgrade from then on. Nothing was changed.")
    op.create_table(
        "group",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=150), nullable=False),
        sa.Column("permissions", JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_group")),
        sa.UniqueConstraint("name", name=op.f("uq_group_name")),
    )
    op.create_table(
        "user",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=150), nullable=False),
        sa.Column("password_hash", sa.String(length=256), nullable=False),
        sa.Column("is_superuser", sa.Boolean(), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("permissions", JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user")),
        sa.UniqueConstraint("username", name=op.f("uq_user_username")),
    )
    op.create_table(
        "user_group",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["group_id"], ["group.id"], name=op.f("fk_user_group_group_id_group"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["user.id"], name=op.f("fk_user_group_user_id_user"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", "group_id", name=op.f("pk_user_group")),
    )
    op.create_table(
        "process",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("flow_class", sa.String(length=255), nullable=False),
        sa.Column("status", status_type(), nullable=False),
        sa.Column("data", JSON, nullable=False),
        sa.Column("summary", sa.String(length=400), nullable=False),
        timestamp("created"),
        timestamp("finished", nullable=True),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["created_by_id"], ["user.id"], name=op.f("fk_process_created_by_id_user")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_process")),
    )
    op.create_index("ix_process_flow_status", "process", ["flow_class", "status", "created"])
    op.create_index(op.f("ix_process_status"), "process", ["status"])

    op.create_table(
        "task",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("process_id", sa.Integer(), nullable=False),
        sa.Column("flow_class", sa.String(length=255), nullable=False),
        sa.Column("flow_task", sa.String(length=100), nullable=False),
        sa.Column("flow_task_type", sa.String(length=20), nullable=False),
        sa.Column("status", status_type(), nullable=False),
        sa.Column("token", sa.String(length=255), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=True),
        sa.Column("owner_permission", sa.String(length=255), nullable=True),
        timestamp("created"),
        timestamp("assigned", nullable=True),
        timestamp("started", nullable=True),
        timestamp("finished", nullable=True),
        sa.Column("external_task_id", sa.String(length=255), nullable=True),
        sa.Column("comments", sa.Text(), nullable=True),
        sa.Column("data", JSON, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["user.id"], name=op.f("fk_task_owner_id_user")),
        sa.ForeignKeyConstraint(["process_id"], ["process.id"], name=op.f("fk_task_process_id_process"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task")),
    )
    op.create_index(op.f("ix_task_external_task_id"), "task", ["external_task_id"])
    op.create_index("ix_task_owner_status", "task", ["owner_id", "status", "created"])
    op.create_index("ix_task_process_node", "task", ["process_id", "flow_task", "status"])
    op.create_index("ix_task_process_token", "task", ["process_id", "token"])
    op.create_index("ix_task_status_finished", "task", ["status", "finished"])
    op.create_index("ix_task_status_permission", "task", ["status", "owner_permission", "created"])

    op.create_table(
        "task_link",
        sa.Column("previous_id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["previous_id"], ["task.id"], name=op.f("fk_task_link_previous_id_task"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["task_id"], ["task.id"], name=op.f("fk_task_link_task_id_task"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("previous_id", "task_id", name=op.f("pk_task_link")),
    )
    op.create_index("ix_task_link_task_id", "task_link", ["task_id"])

    op.create_table(
        "task_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("process_id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=True),
        sa.Column("transition", sa.String(length=50), nullable=False),
        sa.Column("from_status", status_type(), nullable=True),
        sa.Column("to_status", status_type(), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("comments", sa.Text(), nullable=True),
        timestamp("created"),
        sa.ForeignKeyConstraint(["process_id"], ["process.id"], name=op.f("fk_task_event_process_id_process"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["task_id"], ["task.id"], name=op.f("fk_task_event_task_id_task"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["user.id"], name=op.f("fk_task_event_user_id_user")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task_event")),
    )
    op.create_index(op.f("ix_task_event_process_id"), "task_event", ["process_id"])


def downgrade() -> None:
    # Dropping a table drops its indexes too.
    for table in ("task_event", "task_link", "task", "process", "user_group", "user", "group"):
        op.drop_table(table)
