"""The `flask webflow ...` commands at their edges: bad arguments and a database that is not
ready give a one-line error and a non-zero exit, never a traceback; running twice is safe."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from click.testing import Result
from flask import Flask

from webflow import create_app, db
from webflow.models import Group, User


def make(db_url: str) -> Flask:
    return create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": db_url, "SECRET_KEY": "test"})


@pytest.fixture
def app(db_url: str) -> Iterator[Flask]:
    app = make(db_url)
    with app.app_context():
        db.create_all()
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def run(app: Flask, *args: str) -> Result:
    return app.test_cli_runner().invoke(args=["webflow", *args])


def refused(result: Result, words: str, code: int = 1) -> None:
    """A clear one-line error, no traceback."""
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output and words in result.output, result.output


def users() -> list[tuple[str, bool]]:
    db.session.rollback()
    return [(u.username, u.is_superuser) for u in db.session.scalars(sa.select(User).order_by(User.username))]


# -- a database that is not ready ------------------------------------------------------------------


@pytest.mark.parametrize("args", [["search-index"], ["create-user", "ann", "--password", "pw"],
                                  ["fire-timers"], ["worker", "--burst"]])
def test_a_database_without_tables_is_told_to_upgrade(bare_db_url: str, args: list[str]) -> None:
    """They printed a SQL traceback; fire-timers logged one and said "0 timers fired." (exit 0);
    the worker started and failed every job it took."""
    app = make(bare_db_url)
    result = run(app, *args)
    refused(result, "has no webflow tables")
    assert "flask --app wsgi db upgrade" in result.output and "0 timers fired" not in result.output
    with app.app_context():
        assert not sa.inspect(db.engine).has_table("user")  # nothing was made
        db.engine.dispose()


def test_a_database_at_an_older_revision_is_told_to_upgrade(bare_db_url: str) -> None:
    from flask_migrate import upgrade

    app = make(bare_db_url)
    with app.app_context():
        upgrade(revision="0009_notify")
        db.engine.dispose()
    result = run(app, "search-index")
    refused(result, "is at migration revision 0009_notify")
    assert "0012_comment_token" in result.output
    with app.app_context():
        upgrade()
        db.engine.dispose()
    assert run(app, "search-index").exit_code == 0
    with app.app_context():  # (the migrated tables go with the test's database)
        from flask_migrate import downgrade

        downgrade(revision="base")
        db.engine.dispose()


def test_an_unreachable_database_is_one_line() -> None:
    app = make("postgresql://nobody@127.0.0.1:1/nothing")
    result = run(app, "search-index")
    refused(result, "cannot use the database postgresql+psycopg://nobody@127.0.0.1:1/nothing")
    assert len(result.output.strip().splitlines()) == 1


# -- bad arguments -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["__class__", "STATUS", "", "Flow", "TransitionNotAllowed"])
def test_fsm_refuses_what_is_not_an_activation_class(app: Flask, name: str) -> None:
    """``__class__`` and ``STATUS`` printed a made-up state machine, exit 0."""
    refused(run(app, "fsm", name), "no activation class", code=2)
    assert run(app, "fsm", "JoinActivation").exit_code == 0


@pytest.mark.parametrize("every", ["nan", "inf", "0", "-1", "soon"])
def test_fire_timers_refuses_a_bad_interval(app: Flask, every: str) -> None:
    """``--every nan`` fired once and then died in time.sleep with a traceback."""
    result = run(app, "fire-timers", "--every", every)
    refused(result, "--every", code=2)
    assert "timers fired" not in result.output


@pytest.mark.parametrize(("args", "words"), [
    (["", "--password", "pw"], "username must not be empty"),
    (["  ", "--password", "pw"], "username must not be empty"),
    ([" ann", "--password", "pw"], "must not begin or end with a space"),
    (["a" * 151, "--password", "pw"], "at most 150 characters"),
    (["an\x00n", "--password", "pw"], "control characters"),
    (["an\nn", "--password", "pw"], "control characters"),
    (["ann", "--password", ""], "password must not be empty"),
    (["ann", "--password", "pw", "--group", ""], "a group name must not be empty"),
    (["ann", "--password", "pw", "--group", "g" * 151], "at most 150 characters"),
    (["ann", "--password", "pw", "--permission", "x\x00"], "a permission must not be empty"),
])
def test_create_user_refuses_bad_names_and_saves_nothing(app: Flask, args: list[str], words: str) -> None:
    """A NUL or a 151-character name was a database traceback on PostgreSQL (SQLite stored it);
    a name with spaces around it made a second user nobody could tell apart."""
    refused(run(app, "create-user", *args), words, code=2)
    with app.app_context():
        assert users() == [] and db.session.scalar(sa.select(sa.func.count()).select_from(Group)) == 0


def test_create_user_twice_keeps_what_it_was_not_told_to_change(app: Flask) -> None:
    """Run again to reset a password, it took away superuser unless --superuser was repeated."""
    assert run(app, "create-user", "root", "--password", "one", "--superuser", "--group", "ops").exit_code == 0
    result = run(app, "create-user", "root", "--password", "two", "--group", "ops")
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert users() == [("root", True)]
        root = db.session.scalar(sa.select(User).where(User.username == "root"))
        assert root.check_password("two") and [g.name for g in root.groups] == ["ops"]
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Group)) == 1
    assert run(app, "create-user", "root", "--password", "two", "--no-superuser").exit_code == 0
    assert run(app, "create-user", "new", "--password", "x").exit_code == 0
    with app.app_context():
        assert users() == [("new", False), ("root", False)]


def test_search_index_and_init_db_twice_are_safe(app: Flask) -> None:
    from webflow.demo.helloworld import HelloWorldFlow
    from webflow.models import SearchDocument

    with app.app_context():
        db.session.add(User(username="ann", is_superuser=True))
        db.session.commit()
        HelloWorldFlow.start.run(data={"text": "twice"})
        before = db.session.scalars(sa.select(SearchDocument.body)).all()
        db.session.remove()
    for _ in range(2):
        result = run(app, "search-index")
        assert result.exit_code == 0 and "Indexed 1 processes." in result.output
        assert run(app, "init-db").exit_code == 0
    with app.app_context():
        assert db.session.scalars(sa.select(SearchDocument.body)).all() == before


@pytest.mark.parametrize(("source", "words"), [
    ('raise ValueError("boom at import")', "ValueError: boom at import"), ("x = (", "SyntaxError")])
def test_a_flow_module_that_fails_to_import_is_one_line(app: Flask, tmp_path, monkeypatch, source: str,
                                                        words: str) -> None:
    """A module that raised anything but ImportError while importing was a traceback."""
    (tmp_path / "broken_flow_module.py").write_text(source + "\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(__import__("sys").modules, "broken_flow_module", raising=False)
    for command in ("graph", "check"):
        result = run(app, command, "broken_flow_module:SomeFlow")
        refused(result, "importing 'broken_flow_module:SomeFlow' failed", code=2)
        assert words in result.output
