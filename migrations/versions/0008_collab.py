"""Working together: comments, drafts of task forms, out of office.

Revision ID: 0008_collab
Revises: 0006
Create Date: 2026-12-02 16:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008_collab"
down_revision = "0007_timezone"
branch_labels = None
depends_on = None

# The models' column types, spelled out so this revision never changes with the models.
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def timestamp(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "comment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("process_id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=True),
        sa.Column("author_id", sa.Integer(), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("mentions", JSON, nullable=False),
        timestamp("created"),
        sa.ForeignKeyConstraint(["process_id"], ["process.id"], name=op.f("fk_comment_process_id_process"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["task_id"], ["task.id"], name=op.f("fk_comment_task_id_task"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["author_id"], ["user.id"], name=op.f("fk_comment_author_id_user"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_comment")),
    )
    op.create_index("ix_comment_process_created", "comment", ["process_id", "created"])
    op.create_index("ix_comment_task_created", "comment", ["task_id", "created"])
    op.create_table(
        "task_draft",
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("data", JSON, nullable=False),
        timestamp("saved"),
        sa.ForeignKeyConstraint(["task_id"], ["task.id"], name=op.f("fk_task_draft_task_id_task"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["user.id"], name=op.f("fk_task_draft_user_id_user"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("task_id", name=op.f("pk_task_draft")),
    )
    op.create_index(op.f("ix_task_draft_user_id"), "task_draft", ["user_id"])
    op.create_table(
        "out_of_office",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("substitute_id", sa.Integer(), nullable=False),
        timestamp("until", nullable=True),
        timestamp("created"),
        sa.ForeignKeyConstraint(["user_id"], ["user.id"], name=op.f("fk_out_of_office_user_id_user"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["substitute_id"], ["user.id"],
                                name=op.f("fk_out_of_office_substitute_id_user"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_out_of_office")),
    )
    op.create_index(op.f("ix_out_of_office_substitute_id"), "out_of_office", ["substitute_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_out_of_office_substitute_id"), table_name="out_of_office")
    op.drop_table("out_of_office")
    op.drop_index(op.f("ix_task_draft_user_id"), table_name="task_draft")
    op.drop_table("task_draft")
    op.drop_index("ix_comment_task_created", table_name="comment")
    op.drop_index("ix_comment_process_created", table_name="comment")
    op.drop_table("comment")
