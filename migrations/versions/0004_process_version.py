"""A version on the process row, checked by every write (no update lost to a stale read).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 07:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("process") as batch:
        batch.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="1"))


def downgrade() -> None:
    with op.batch_alter_table("process") as batch:
        batch.drop_column("version")
