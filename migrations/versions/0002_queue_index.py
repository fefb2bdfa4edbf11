"""Indexes for large lists: the queue's partial index replaces (status, owner_permission,
created), (status, id) replaces (status, finished), and a flow's processes get
(flow_class, created).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 04:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

QUEUE_ROWS = "status = 'NEW' AND owner_id IS NULL"


def upgrade() -> None:
    op.create_index("ix_task_queue", "task",
                    ["created", "id", "owner_permission", "flow_class", "flow_task_type"],
                    postgresql_where=sa.text(QUEUE_ROWS), sqlite_where=sa.text(QUEUE_ROWS))
    op.drop_index("ix_task_status_permission", table_name="task")
    op.create_index("ix_process_flow_created", "process", ["flow_class", "created"])
    op.create_index("ix_task_status_id", "task", ["status", "id"])
    op.drop_index("ix_task_status_finished", table_name="task")


def downgrade() -> None:
    op.create_index("ix_task_status_finished", "task", ["status", "finished"])
    op.drop_index("ix_task_status_id", table_name="task")
    op.drop_index("ix_process_flow_created", table_name="process")
    op.create_index("ix_task_status_permission", "task", ["status", "owner_permission", "created"])
    op.drop_index("ix_task_queue", table_name="task")
