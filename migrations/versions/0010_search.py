"""Search documents (PostgreSQL: tsvector + GIN; SQLite: FTS5 and its triggers) and saved filters.

Revision ID: 0010_search
Revises: 0006
Create Date: 2026-12-02 16:00:00

The documents are written by the app (they hold flow and task titles, which live in the
flow classes): after upgrading a database that has processes, fill them once with
``flask --app wsgi webflow search-index``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import TSVECTOR

revision = "0010_search"
down_revision = "0009_notify"
branch_labels = None
depends_on = None

# SQLite's full-text index of search_document.body and the triggers that keep it in step
# (as webflow.core.models creates them; the migration test compares the two).
SEARCH_FTS_DDL = (
    "CREATE VIRTUAL TABLE search_fts USING fts5(body, content='search_document', "
    "content_rowid='process_id', tokenize='unicode61 remove_diacritics 0')",
    "CREATE TRIGGER search_document_ai AFTER INSERT ON search_document BEGIN "
    "INSERT INTO search_fts(rowid, body) VALUES (new.process_id, new.body); END",
    "CREATE TRIGGER search_document_ad AFTER DELETE ON search_document BEGIN "
    "INSERT INTO search_fts(search_fts, rowid, body) VALUES ('delete', old.process_id, old.body); END",
    "CREATE TRIGGER search_document_au AFTER UPDATE ON search_document BEGIN "
    "INSERT INTO search_fts(search_fts, rowid, body) VALUES ('delete', old.process_id, old.body); "
    "INSERT INTO search_fts(rowid, body) VALUES (new.process_id, new.body); END",
)


def upgrade() -> None:
    op.create_table(
        "search_document",
        sa.Column("process_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("document", sa.Text().with_variant(TSVECTOR(), "postgresql"), nullable=True),
        sa.ForeignKeyConstraint(["process_id"], ["process.id"], name="fk_search_document_process_id_process",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("process_id", name="pk_search_document"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.create_index("ix_search_document_document", "search_document", ["document"], postgresql_using="gin")
    else:
        for statement in SEARCH_FTS_DDL:
            op.execute(statement)
    op.create_table(
        "saved_filter",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("list_name", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("query", sa.String(length=600), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["user.id"], name="fk_saved_filter_user_id_user",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_saved_filter"),
        sa.UniqueConstraint("user_id", "list_name", "name", name="uq_saved_filter_name"),
    )


def downgrade() -> None:
    op.drop_table("saved_filter")
    if op.get_bind().dialect.name != "postgresql":
        op.execute("DROP TABLE IF EXISTS search_fts")  # its triggers go with search_document
    else:
        op.drop_index("ix_search_document_document", table_name="search_document")
    op.drop_table("search_document")
