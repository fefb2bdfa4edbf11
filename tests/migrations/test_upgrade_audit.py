"""Upgrading a database that holds real rows keeps every row, on SQLite and PostgreSQL; a
database made without migrations, or migrated by a newer version, gets a clear message.

The rows are written in plain SQL with the columns each old revision had (as the app of
that time wrote them), then ``flask db upgrade`` runs to the head."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from flask_migrate import downgrade, upgrade

from webflow import create_app, db

ROOT = Path(__file__).resolve().parents[2]
HELLO = "webflow.demo.helloworld.HelloWorldFlow"
#: The tables whose rows an upgrade must keep, by the revision that made them.
TABLES = {"0001": ("group", "user", "user_group", "process", "task", "task_link", "task_event"),
          "0008_collab": ("comment", "task_draft", "out_of_office"),
          "0009_notify": ("notification_setting", "overdue_notice", "notification"),
          "0010_search": ("search_document", "saved_filter")}
ORDER = ["0001", "0002", "0003", "0004", "0005", "0006", "0007_timezone", "0008_collab", "0009_notify",
         "0010_search", "0011_sqlite_timestamps", "0012_comment_token"]


@pytest.fixture
def app(db_url: str) -> Iterator[Flask]:
    app = create_app({"SQLALCHEMY_DATABASE_URI": db_url, "SECRET_KEY": "test", "TESTING": True})
    with app.app_context():
        yield app
        db.session.remove()
        if db.engine.dialect.name == "postgresql":  # whatever revision it was left at
            with db.engine.begin() as conn:
                conn.exec_driver_sql("DROP SCHEMA public CASCADE")
                conn.exec_driver_sql("CREATE SCHEMA public")
        db.engine.dispose()  # (SQLite: a file of the test's own)


def at_least(revision: str, since: str) -> bool:
    return ORDER.index(revision) >= ORDER.index(since)


def fill(revision: str) -> None:
    """Rows of a running system, as a database at ``revision`` holds them."""
    t = "'2026-01-01 10:00:00'"
    statements = [
        "INSERT INTO \"group\"(id, name, permissions) VALUES (1, 'clerks', '[\"hello_world.can_approve\"]')",
        "INSERT INTO \"user\"(id, username, password_hash, is_superuser, is_active, permissions) "
        "VALUES (1, 'ann', 'x', false, true, '[]'), (2, 'ben', 'x', false, true, '[]')",
        "INSERT INTO user_group(user_id, group_id) VALUES (2, 1)",
        "INSERT INTO process(id, flow_class, status, data, summary, created, created_by_id) VALUES "
        f"(1, '{HELLO}', 'NEW', '{{\"text\": \"quarterly invoice\"}}', 'quarterly invoice', {t}, 1), "
        f"(2, '{HELLO}', 'DONE', '{{\"text\": \"lunch\"}}', 'lunch', {t}, 1)",
        "INSERT INTO task(id, process_id, flow_class, flow_task, flow_task_type, status, token, owner_id, "
        "created, data, attempts) VALUES "
        f"(1, 1, '{HELLO}', 'start', 'START', 'DONE', 'start', 1, {t}, '{{}}', 0), "
        f"(2, 1, '{HELLO}', 'approve', 'HUMAN', 'ASSIGNED', 'start', 2, {t}, '{{}}', 0), "
        f"(3, 2, '{HELLO}', 'start', 'START', 'DONE', 'start', 1, {t}, '{{}}', 0), "
        f"(4, 2, '{HELLO}', 'end', 'END', 'DONE', 'start', NULL, {t}, '{{}}', 0)",
        "INSERT INTO task_link(previous_id, task_id) VALUES (1, 2), (3, 4)",
        "INSERT INTO task_event(id, process_id, task_id, transition, from_status, to_status, user_id, created) "
        f"VALUES (1, 1, 1, 'start', NULL, 'DONE', 1, {t}), (2, 1, 2, 'assign', 'NEW', 'ASSIGNED', 2, {t}), "
        f"(3, 2, 4, 'done', 'NEW', 'DONE', NULL, {t})",
    ]
    if at_least(revision, "0008_collab"):
        statements += [
            f"INSERT INTO comment(id, process_id, task_id, author_id, text, mentions, created) "
            f"VALUES (1, 1, 2, 1, 'please @ben', '[\"ben\"]', {t})",
            "INSERT INTO task_draft(task_id, user_id, data, saved) "
            f"VALUES (2, 2, '{{\"approved\": true}}', {t})",
            f"INSERT INTO out_of_office(user_id, substitute_id, until, created) VALUES (2, 1, NULL, {t})",
        ]
    if at_least(revision, "0009_notify"):
        statements += [
            "INSERT INTO notification_setting(user_id, assigned, delegated, mentioned, overdue) "
            "VALUES (2, true, false, true, true)",
            f"INSERT INTO overdue_notice(task_id, due, noticed) VALUES (2, {t}, {t})",
            "INSERT INTO notification(id, kind, user_id, task_id, email, subject, body, created, attempts) "
            f"VALUES (1, 'assigned', 2, 2, 'ben@example.com', 'Assigned', 'body', {t}, 0)",
        ]
    if at_least(revision, "0010_search"):
        statements += [
            "INSERT INTO search_document(process_id, body) VALUES (1, 'hello world quarterly invoice')",
            f"INSERT INTO saved_filter(id, user_id, list_name, name, query, created) "
            f"VALUES (1, 2, 'inbox', 'Invoices', 'q=invoice', {t})",
        ]
    with db.engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)
        if db.engine.dialect.name == "postgresql":  # rows given their ids: the sequences follow
            for table in ("group", "user", "process", "task", "task_event", "comment", "notification",
                          "saved_filter"):
                if sa.inspect(conn).has_table(table):
                    conn.exec_driver_sql(f"SELECT setval(pg_get_serial_sequence('\"{table}\"', 'id'), "
                                         f"(SELECT max(id) FROM \"{table}\"))")


def counts(revision: str) -> dict[str, int]:
    tables = [name for since, names in TABLES.items() if at_least(revision, since) for name in names]
    with db.engine.connect() as conn:
        return {name: conn.exec_driver_sql(f'SELECT count(*) FROM "{name}"').scalar() for name in tables}


@pytest.mark.parametrize("revision", ["0001", "0002", "0008_collab", "0010_search", "0011_sqlite_timestamps"])
def test_upgrading_a_database_with_rows_keeps_every_row(app: Flask, revision: str) -> None:
    """0003 rebuilds ``process`` in batch mode on SQLite (copy, DROP TABLE, rename): with
    foreign keys on, the DROP deleted every task, link and event through ON DELETE CASCADE."""
    upgrade(revision=revision)
    fill(revision)
    before = counts(revision)
    assert all(before.values()), before
    upgrade()
    assert counts(revision) == before
    with db.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1  # on again afterwards
            assert conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall() == []
        owners = dict(conn.exec_driver_sql("SELECT id, owner_id FROM task ORDER BY id").fetchall())
    assert owners == {1: 1, 2: 2, 3: 1, 4: None}


def test_the_upgraded_rows_work_on(app: Flask) -> None:
    """An old process, upgraded, is found by search once indexed and is finished by its owner."""
    from webflow.core.search import SearchTerms, matching_processes, rebuild_index
    from webflow.demo.helloworld import HelloWorldFlow
    from webflow.models import Process, Task, User

    upgrade(revision="0002")
    fill("0002")
    upgrade()
    assert rebuild_index(db.session()) == 2
    found = db.session.execute(matching_processes(db.engine.dialect.name, SearchTerms.parse("invoice")))
    assert [row.process_id for row in found] == [1]
    ben = db.session.get(User, 2)
    task = db.session.get(Task, 2)
    assert task is not None and task.flow_task is HelloWorldFlow.approve
    activation = task.activate()
    activation.prepare(data={"approved": False}, user=ben)
    activation.done()
    db.session.expire_all()
    assert db.session.get(Process, 1).status == "DONE"


def test_downgrading_keeps_the_rows_of_the_tables_that_stay(app: Flask) -> None:
    upgrade()
    fill("0012_comment_token")
    before = counts("0002")
    downgrade(revision="0002")
    assert counts("0002") == before


def test_comments_from_before_0012_have_no_token_and_keep_through_a_downgrade(app: Flask) -> None:
    """0012 gives comments the token of the form that posted them: older comments have none
    (any number of them may), a token is stored once, and going back keeps every comment."""
    upgrade(revision="0011_sqlite_timestamps")
    fill("0011_sqlite_timestamps")
    upgrade()
    insert = ("INSERT INTO comment(process_id, task_id, author_id, text, mentions, created, post_token) "
              "VALUES (1, 2, 2, 'thanks', '[]', '2026-01-02 10:00:00', {})")
    with db.engine.begin() as conn:
        assert conn.exec_driver_sql("SELECT post_token FROM comment").scalars().all() == [None]
        conn.exec_driver_sql(insert.format("NULL"))
        conn.exec_driver_sql(insert.format("'" + "a" * 32 + "'"))
    with pytest.raises(sa.exc.IntegrityError), db.engine.begin() as conn:
        conn.exec_driver_sql(insert.format("'" + "a" * 32 + "'"))
    downgrade(revision="0011_sqlite_timestamps")
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT text FROM comment ORDER BY id").scalars().all() == [
            "please @ben", "thanks", "thanks"]


def flask_db(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": db_url, "SECRET_KEY": "test", "WEBFLOW_FLOWS": ""}
    return subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "db", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_an_unmigrated_database_is_told_to_stamp_not_shown_a_traceback(app: Flask, db_url: str) -> None:
    db.create_all()  # as `flask webflow init-db` makes it
    result = flask_db(db_url, "upgrade")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "already exists" not in result.stderr
    assert "no migration revision" in result.stderr and "flask --app wsgi db stamp head" in result.stderr
    assert not sa.inspect(db.engine).has_table("alembic_version")  # nothing was changed
    assert flask_db(db_url, "stamp", "head").returncode == 0
    assert flask_db(db_url, "upgrade").returncode == 0


def test_a_database_ahead_of_the_code_is_told_so(app: Flask, db_url: str) -> None:
    upgrade()
    with db.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0099_from_the_future'")
    result = flask_db(db_url, "upgrade")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "0099_from_the_future" in result.stderr and "a newer version migrated it" in result.stderr
    with db.engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    assert stored == "0099_from_the_future"


def test_an_upgrade_past_0010_with_processes_names_the_index_command(app: Flask, db_url: str) -> None:
    """The processes of a database upgraded past 0010_search have no search document: search
    found none of them, and nothing said so where the upgrade ran."""
    upgrade(revision="0009_notify")
    fill("0009_notify")
    db.engine.dispose()
    result = flask_db(db_url, "upgrade")
    assert result.returncode == 0, result.stderr
    assert "2 processes have no search document yet" in result.stderr
    assert "flask --app wsgi webflow search-index" in result.stderr
    quiet = flask_db(db_url, "upgrade")  # at the head, and still unindexed: said again
    assert "no search document" in quiet.stderr
