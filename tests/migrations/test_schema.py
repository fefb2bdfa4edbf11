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
from webflow.core.models import is_search_index_table, schema_filters


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
        opts = {"compare_type": True, **schema_filters(conn.dialect.name)}
        context = MigrationContext.configure(conn, opts=opts)
        return list(compare_metadata(context, db.metadata))


def table_names() -> set[str]:
    """The tables, without SQLite's full-text index tables (see the search tests below)."""
    return {name for name in sa.inspect(db.engine).get_table_names() if not is_search_index_table(name)}


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


def search_index_definitions() -> dict[str, str]:
    """What search adds beside the models' tables: SQLite's FTS5 table and triggers, or
    PostgreSQL's GIN index on the tsvector column (with the column's type)."""
    with db.engine.connect() as conn:
        if db.engine.dialect.name == "postgresql":
            rows = list(conn.exec_driver_sql(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'search_document'"))
            rows += list(conn.exec_driver_sql(
                "SELECT column_name, udt_name FROM information_schema.columns "
                "WHERE table_name = 'search_document' AND column_name = 'document'"))
        else:
            rows = list(conn.exec_driver_sql(
                "SELECT name, sql FROM sqlite_master WHERE (type = 'trigger' AND tbl_name = 'search_document') "
                "OR name = 'search_fts'"))
        return {name: " ".join(definition.split()) for name, definition in rows}


def test_migrated_search_index_matches_the_models(app: Flask) -> None:
    upgrade()
    migrated = search_index_definitions()
    if db.engine.dialect.name == "postgresql":
        assert "USING gin (document)" in migrated["ix_search_document_document"]
        assert migrated["document"] == "tsvector"
    else:
        assert "fts5" in migrated["search_fts"] and len(migrated) == 4  # the table, three triggers
    downgrade(revision="base")
    assert not search_index_definitions()
    db.create_all()
    assert search_index_definitions() == migrated


def test_migrated_search_index_finds_a_process(app: Flask) -> None:
    """The migrated full-text index is the one the search query reads, on either database."""
    from webflow.core.search import SearchTerms, matching_processes
    from webflow.demo.helloworld import HelloWorldFlow
    from webflow.models import User

    upgrade()
    user = User(username="ann", is_superuser=True)
    db.session.add(user)
    db.session.commit()
    process = HelloWorldFlow.start.run(data={"text": "quarterly invoice"}, user=user)
    found = db.session.execute(matching_processes(db.engine.dialect.name, SearchTerms.parse("invoice")))
    assert [row.process_id for row in found] == [process.id]


def stored_times(task_id: int, process_id: int) -> tuple[object, ...]:
    """The times a task and its process hold, as the ORM reads them."""
    from webflow.models import Process, Task

    task, process = db.session.get(Task, task_id), db.session.get(Process, process_id)
    assert task is not None and process is not None
    return task.assigned, task.due, task.created, process.finished, process.created


def test_sqlite_timestamps_stored_with_an_offset_get_the_common_text(app: Flask) -> None:
    """0011: the engine's own UPDATEs used to store SQLite timestamps as "...+00:00" text,
    which SQL compares wrongly against the rest. The migration rewrites them to the text
    every other write stores; the times they mean do not change (PostgreSQL: nothing to do)."""
    from webflow.demo.helloworld import HelloWorldFlow
    from webflow.models import User

    upgrade(revision="0010_search")
    user = User(username="ann", is_superuser=True)
    db.session.add(user)
    db.session.commit()
    process = HelloWorldFlow.start.run(data={"text": "hi"}, user=user)
    task = process.get_task(HelloWorldFlow.approve)
    task.activate().assign(user)
    sqlite = db.engine.dialect.name == "sqlite"
    with db.engine.begin() as conn:
        if sqlite:  # what the old UPDATEs stored, with and without microseconds
            conn.exec_driver_sql("UPDATE task SET assigned = '2026-12-04 19:09:11.176213+00:00', "
                                 "due = '2026-12-06 08:00:00+00:00' WHERE id = ?", (task.id,))
            conn.exec_driver_sql("UPDATE process SET finished = '2026-12-04 19:09:12.000001+00:00' "
                                 "WHERE id = ?", (process.id,))
    db.session.expire_all()
    before = stored_times(task.id, process.id)

    upgrade()
    db.session.expire_all()
    assert stored_times(task.id, process.id) == before
    if sqlite:
        with db.engine.connect() as conn:
            stored = conn.exec_driver_sql("SELECT assigned, due FROM task WHERE id = ?", (task.id,)).one()
            finished = conn.exec_driver_sql("SELECT finished FROM process WHERE id = ?", (process.id,)).scalar()
            assert tuple(stored) == ("2026-12-04 19:09:11.176213", "2026-12-06 08:00:00.000000")
            assert finished == "2026-12-04 19:09:12.000001"
            # and SQL finds the rescheduled time due at that very time, as the timer query asks
            due = conn.exec_driver_sql("SELECT count(*) FROM task WHERE id = ? AND due <= ?",
                                       (task.id, "2026-12-06 08:00:00.000000")).scalar()
            assert due == 1
    downgrade(revision="0010_search")  # nothing to undo, and no error
