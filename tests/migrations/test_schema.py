"""The migrations build exactly the models' schema, on SQLite and PostgreSQL, and undo it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask
from flask_migrate import downgrade, upgrade

from webflow import create_app, db


@pytest.fixture
def app(db_url: str) -> Iterator[Flask]:
    """An app on an empty database; whatever the migrations leave is dropped afterwards."""
    app = create_app({"SQLALCHEMY_DATABASE_URI": db_url, "SECRET_KEY": "test", "TESTING": True})
    with app.app_context():
        yield app
        db.session.remove()
        db.drop_all()
        with db.engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
        db.engine.dispose()


def schema_diffs() -> list[object]:
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, db.metadata))


def table_names() -> set[str]:
    return set(sa.inspect(db.engine).get_table_names())


def test_upgrade_from_empty_gives_the_models_schema(app: Flask) -> None:
    upgrade()
    assert table_names() == set(db.metadata.tables) | {"alembic_version"}
    assert schema_diffs() == []


def index_definitions() -> dict[str, str]:
    """Every index as the database spells it, partial conditions included (which Alembic's
    comparison does not look at)."""
    with db.engine.connect() as conn:
        if db.engine.dialect.name == "postgresql":
            rows = conn.exec_driver_sql(
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
                "AND tablename <> 'alembic_version'")
        else:
            rows = conn.exec_driver_sql(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
        return {name: " ".join(definition.split()) for name, definition in rows}


def test_migrated_indexes_match_the_models_to_the_letter(app: Flask) -> None:
    upgrade()
    migrated = index_definitions()
    assert "WHERE" in migrated["ix_task_queue"]  # the queue's index is partial
    downgrade(revision="base")
    db.create_all()
    assert index_definitions() == migrated


def test_downgrade_to_base_removes_every_table(app: Flask) -> None:
    upgrade()
    downgrade(revision="base")
    assert table_names() == {"alembic_version"}
    upgrade()  # and back up again: the downgrade left nothing behind in the way
    assert schema_diffs() == []


def test_the_migrated_schema_runs_a_process(app: Flask) -> None:
    from webflow.demo.helloworld import HelloWorldFlow
    from webflow.models import Process, User

    upgrade()
    user = User(username="ann", is_superuser=True)
    db.session.add(user)
    db.session.commit()
    process = HelloWorldFlow.start.run(data={"text": "hi"}, user=user)
    task = process.get_task(HelloWorldFlow.approve)
    activation = task.activate()
    activation.assign(user)
    activation.prepare(data={"approved": True}, user=user)
    activation.done()
    stored = db.session.get(Process, process.id)
    assert stored is not None and stored.status == "DONE"
    assert stored.data == {"text": "hi", "approved": True, "sent": True}
