"""Process liveness: ``stalled`` (when a process was left with nothing to do and no End
reached) and ``start_token`` (the start form's one-time token, so a form submitted twice
starts one process).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 07:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("process") as batch:
        batch.add_column(sa.Column("stalled", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("start_token", sa.String(64), nullable=True))
        batch.create_index("ix_process_stalled", ["stalled"])
        batch.create_unique_constraint("uq_process_start_token", ["start_token"])


def downgrade() -> None:
    with op.batch_alter_table("process") as batch:
        batch.drop_constraint("uq_process_start_token", type_="unique")
        batch.drop_index("ix_process_stalled")
        batch.drop_column("start_token")
        batch.drop_column("stalled")
