"""Comments remember the one-time token of the form that posted them, so the same form
sent twice stores one comment.

Revision ID: 0012_comment_token
Revises: 0011_sqlite_timestamps
Create Date: 2026-12-06 08:00:00

Existing comments get no token (NULL): they were posted before forms carried one, and a
unique index allows any number of NULLs on both databases.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_comment_token"
down_revision = "0011_sqlite_timestamps"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN on both databases (no table copy on SQLite), then the index.
    op.add_column("comment", sa.Column("post_token", sa.String(64), nullable=True))
    op.create_index("ux_comment_post_token", "comment", ["post_token"], unique=True)


def downgrade() -> None:
    op.drop_index("ux_comment_post_token", table_name="comment")
    with op.batch_alter_table("comment") as batch:
        batch.drop_column("post_token")
