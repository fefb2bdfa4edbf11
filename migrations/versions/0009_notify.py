"""Email notifications: the user's address and settings, the overdue notices, the outbox.

Revision ID: 0009_notify
Revises: 0006
Create Date: 2026-12-02 16:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_notify"
down_revision = "0008_collab"
branch_labels = None
depends_on = None

OWNED_DUE_ROWS = "status = 'ASSIGNED' AND due IS NOT NULL"


def upgrade() -> None:
    with op.batch_alter_table("user") as batch:
        batch.add_column(sa.Column("email", sa.String(254), nullable=True))
    op.create_index("ix_task_assigned_due", "task", ["due", "id"],
                    postgresql_where=sa.text(OWNED_DUE_ROWS), sqlite_where=sa.text(OWNED_DUE_ROWS))
    op.create_table(
        "notification_setting",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("assigned", sa.Boolean(), nullable=False),
        sa.Column("delegated", sa.Boolean(), nullable=False),
        sa.Column("mentioned", sa.Boolean(), nullable=False),
        sa.Column("overdue", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["user.id"], ondelete="CASCADE",
                                name="fk_notification_setting_user_id_user"),
        sa.PrimaryKeyConstraint("user_id", name="pk_notification_setting"),
    )
    op.create_table(
        "overdue_notice",
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("due", sa.DateTime(timezone=True), nullable=False),
        sa.Column("noticed", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["task_id"], ["task.id"], ondelete="CASCADE",
                                name="fk_overdue_notice_task_id_task"),
        sa.PrimaryKeyConstraint("task_id", "due", name="pk_overdue_notice"),
    )
    op.create_table(
        "notification",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=True),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("html", sa.Text(), nullable=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retry_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["user.id"], ondelete="CASCADE",
                                name="fk_notification_user_id_user"),
        sa.ForeignKeyConstraint(["task_id"], ["task.id"], ondelete="CASCADE",
                                name="fk_notification_task_id_task"),
        sa.PrimaryKeyConstraint("id", name="pk_notification"),
    )
    op.create_index("ix_notification_user_id", "notification", ["user_id"])
    op.create_index("ix_notification_task_id", "notification", ["task_id"])
    op.create_index("ix_notification_unsent", "notification", ["sent", "retry_at"])


def downgrade() -> None:
    op.drop_index("ix_notification_unsent", table_name="notification")
    op.drop_index("ix_notification_task_id", table_name="notification")
    op.drop_index("ix_notification_user_id", table_name="notification")
    op.drop_table("notification")
    op.drop_table("overdue_notice")
    op.drop_table("notification_setting")
    op.drop_index("ix_task_assigned_due", table_name="task")
    with op.batch_alter_table("user") as batch:
        batch.drop_column("email")
