"""SQLite: timestamps the engine stored as "...+00:00" get the text every other write stores.

Revision ID: 0011_sqlite_timestamps
Revises: 0010_search
Create Date: 2026-12-04 19:30:00

Before this revision, the UPDATEs the engine sends itself on SQLite
(``webflow.core.row_updates``) bound aware datetimes without SQLAlchemy's SQLite format,
so the driver stored ``2026-12-04 19:09:11.176213+00:00`` where every other write stores
``2026-12-04 19:09:11.176213``. Both read back as the same time, but SQL compares them as
text: a timer rescheduled that way was not found due at its own time. Every such value is
in UTC (the column type converts before binding), so the suffix is always ``+00:00``; a
value without microseconds (``isoformat`` leaves them out) gets ``.000000``.
PostgreSQL stores timestamps as timestamps: nothing to do there.
"""

from __future__ import annotations

from alembic import op

revision = "0011_sqlite_timestamps"
down_revision = "0010_search"
branch_labels = None
depends_on = None

# The columns those UPDATEs could write: process and task timestamps.
TIMESTAMPS = {
    "process": ("created", "finished"),
    "task": ("created", "assigned", "started", "finished", "due"),
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table, columns in TIMESTAMPS.items():
        for column in columns:
            op.execute(
                f"UPDATE {table} SET {column} = CASE WHEN length({column}) = 25 "
                f"THEN substr({column}, 1, 19) || '.000000' ELSE substr({column}, 1, 26) END "
                f"WHERE {column} LIKE '%+00:00'")


def downgrade() -> None:
    """Nothing to undo: the values mean the same times as before."""
