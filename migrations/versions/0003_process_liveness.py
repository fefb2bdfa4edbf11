"""Process liveness and subprocesses: ``stalled`` (when a process was left with nothing to
do and no End reached), ``start_token`` (the start form's one-time token, so a form
submitted twice starts one process), ``parent_task_id`` and ``root_process_id`` (a
subprocess's parent task and the top process of its tree, locked first).

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
        batch.add_column(sa.Column("parent_task_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("root_process_id", sa.Integer(), nullable=True))
        batch.create_index("ix_process_parent_task_id", ["parent_task_id"])
        batch.create_foreign_key("fk_process_parent_task_id_task", "task", ["parent_task_id"], ["id"],
                                 ondelete="SET NULL")


def downgrade() -> None:
    with op.batch_alter_table("process") as batch:
        batch.drop_constraint("fk_process_parent_task_id_task", type_="foreignkey")
        batch.drop_index("ix_process_parent_task_id")
        batch.drop_column("root_process_id")
        batch.drop_column("parent_task_id")
        batch.drop_constraint("uq_process_start_token", type_="unique")
        batch.drop_index("ix_process_stalled")
        batch.drop_column("start_token")
        batch.drop_column("stalled")
