"""Alembic environment: the app's engine and the engine core's metadata.

Run through Flask-Migrate (``flask --app wsgi db upgrade``), so ``current_app`` is the app
built by ``create_app`` and the database is its ``SQLALCHEMY_DATABASE_URI``.
"""

from __future__ import annotations

import logging
from logging.config import fileConfig

import sqlalchemy as sa
from alembic import context
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from flask import current_app

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)
logger = logging.getLogger("alembic.env")

target_db = current_app.extensions["migrate"].db
target_metadata = target_db.metadata


def _process_revision_directives(context, revision, directives):  # type: ignore[no-untyped-def]
    """Write no empty revision when autogenerate finds nothing to do."""
    if getattr(config.cmd_opts, "autogenerate", False) and directives[0].upgrade_ops.is_empty():
        directives[:] = []
        logger.info("No changes in schema detected.")


def _configure_args(dialect_name: str) -> dict:  # type: ignore[type-arg]
    args = dict(current_app.extensions["migrate"].configure_args)
    args.setdefault("process_revision_directives", _process_revision_directives)
    args.setdefault("compare_type", True)
    # SQLite cannot ALTER most things: batch mode copies the table instead.
    args.setdefault("render_as_batch", dialect_name == "sqlite")
    # SQLite's full-text tables and PostgreSQL-only indexes are not schema differences.
    from webflow.core.models import schema_filters

    for key, value in schema_filters(dialect_name).items():
        args.setdefault(key, value)
    return args


def run_migrations_offline() -> None:
    """Emit the SQL to stdout (``flask db upgrade --sql``)."""
    url = target_db.engine.url
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True,
                      **_configure_args(url.get_backend_name()))
    with context.begin_transaction():
        context.run_migrations()


def _sqlite_foreign_keys(connection, on: bool) -> None:  # type: ignore[no-untyped-def]
    """Turn SQLite's foreign key enforcement on or off (only outside a transaction)."""
    connection.exec_driver_sql(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")
    connection.commit()  # ends the transaction SQLAlchemy began; the driver began none


def _check_foreign_keys(connection) -> None:  # type: ignore[no-untyped-def]
    """Refuse (and roll back) migrations that left a row pointing at nothing."""
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        tables = sorted({row[0] for row in broken})
        raise RuntimeError(f"the migration left {len(broken)} row(s) of {', '.join(tables)} pointing "
                           "at rows that are gone; nothing was changed")


def _explain_unknown_revision(connection, exc: CommandError) -> None:  # type: ignore[no-untyped-def]
    """A database at a revision these migrations do not have was migrated by a newer
    version of webflow: say so, instead of Alembic's "Can't locate revision"."""
    known = {script.revision for script in ScriptDirectory.from_config(config).walk_revisions()}
    unknown = [rev for rev in MigrationContext.configure(connection).get_current_heads() if rev not in known]
    if unknown:
        raise CommandError(
            f"the database is at revision {', '.join(unknown)}, which this version of webflow does not "
            "have: a newer version migrated it. Run that version (its `flask --app wsgi db downgrade` "
            "takes the database back), or restore a backup. Nothing was changed.") from exc


def _tell_unindexed(connection) -> None:  # type: ignore[no-untyped-def]
    """Processes without a search document (a database upgraded past 0010_search with
    processes in it: the documents hold flow titles, which only the app knows) are not
    found by search until the app writes them: say so, with the command."""
    inspector = sa.inspect(connection)
    if not (inspector.has_table("search_document") and inspector.has_table("process")):
        return
    missing = connection.exec_driver_sql(
        "SELECT count(*) FROM process WHERE NOT EXISTS "
        "(SELECT 1 FROM search_document WHERE search_document.process_id = process.id)").scalar()
    if missing:
        logger.warning("%s processes have no search document yet: search does not find them until "
                       "`flask --app wsgi webflow search-index` has run", missing)


def run_migrations_online() -> None:
    """Run the migrations on a connection of the app's engine.

    On SQLite, foreign keys are off while they run: a revision that rebuilds a table in
    batch mode (copy, DROP TABLE, rename) would otherwise have the DROP delete every row
    that references it, through ON DELETE CASCADE (every task of every process). They run
    in one transaction there, checked with ``foreign_key_check`` before the commit."""
    with target_db.engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            _sqlite_foreign_keys(connection, on=False)
        try:
            context.configure(connection=connection, target_metadata=target_metadata,
                              **_configure_args(connection.dialect.name),
                              **({"transactional_ddl": True} if sqlite else {}))
            with context.begin_transaction():
                try:
                    context.run_migrations()
                except CommandError as exc:
                    _explain_unknown_revision(connection, exc)
                    raise
                if sqlite:
                    _check_foreign_keys(connection)
                _tell_unindexed(connection)
        finally:
            if sqlite:
                connection.rollback()  # nothing open after a commit; after a failure, undone
                _sqlite_foreign_keys(connection, on=True)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
