"""Time: a task's due date and priority, and the indexes the lists and the timers use.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 07:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

QUEUE_ROWS = "status = 'NEW' AND owner_id IS NULL"
TIMER_ROWS = "status = 'SCHEDULED' AND flow_task_type IN ('TIMER', 'TIMEOUT')"


def upgrade() -> None:
    # Plain ALTERs (SQLite >= 3.35 drops columns itself): a batch copy of the table would
    # have to rebuild the partial indexes from reflection.
    op.add_column("task", sa.Column("due", sa.DateTime(timezone=True), nullable=True))
    op.add_column("task", sa.Column("priority", sa.Integer(), nullable=False, server_default=sa.text("0")))
    op.create_index("ix_task_queue_due", "task", ["due", "id"],
                    postgresql_where=sa.text(QUEUE_ROWS), sqlite_where=sa.text(QUEUE_ROWS))
    op.create_index("ix_task_queue_priority", "task", ["priority", "id"],
                    postgresql_where=sa.text(QUEUE_ROWS), sqlite_where=sa.text(QUEUE_ROWS))
    op.create_index("ix_task_owner_due", "task", ["owner_id", "status", "due"])
    op.create_index("ix_task_timer_due", "task", ["due", "id"],
                    postgresql_where=sa.text(TIMER_ROWS), sqlite_where=sa.text(TIMER_ROWS))


def downgrade() -> None:
    op.drop_index("ix_task_timer_due", table_name="task")
    op.drop_index("ix_task_owner_due", table_name="task")
    op.drop_index("ix_task_queue_priority", table_name="task")
    op.drop_index("ix_task_queue_due", table_name="task")
    op.drop_column("task", "priority")
    op.drop_column("task", "due")
