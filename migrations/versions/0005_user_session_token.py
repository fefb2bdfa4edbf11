"""The user's session token: sessions name it, and a new one (logout, password change)
ends every session made before.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 07:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: existing users get a token at their next login (sessions made before the
    # upgrade end then, as they name no token).
    with op.batch_alter_table("user") as batch:
        batch.add_column(sa.Column("session_token", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("user") as batch:
        batch.drop_column("session_token")
