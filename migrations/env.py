"""Alembic environment: the app's engine and the engine core's metadata.

Run through Flask-Migrate (``flask --app wsgi db upgrade``), so ``current_app`` is the app
built by ``create_app`` and the database is its ``SQLALCHEMY_DATABASE_URI``.
"""

from __future__ import annotations

import logging
from logging.config import fileConfig

from alembic import context
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


def run_migrations_online() -> None:
    """Run the migrations on a connection of the app's engine."""
    with target_db.engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata,
                          **_configure_args(connection.dialect.name))
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
