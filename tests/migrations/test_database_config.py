"""DATABASE_URL from the environment, as Heroku and docker-compose give it."""

from __future__ import annotations

import pytest

from webflow import create_app


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@db.example:5432/prod", "postgresql+psycopg://u:p@db.example:5432/prod"),
        ("postgresql://u:p@db.example/prod", "postgresql+psycopg://u:p@db.example/prod"),
        ("postgresql+psycopg://u@db.example/prod", "postgresql+psycopg://u@db.example/prod"),
        ("sqlite:////tmp/webflow.sqlite", "sqlite:////tmp/webflow.sqlite"),
    ],
)
def test_database_url_from_the_environment(monkeypatch: pytest.MonkeyPatch, given: str, expected: str) -> None:
    monkeypatch.setenv("DATABASE_URL", given)
    monkeypatch.setenv("SECRET_KEY", "test")
    app = create_app()
    assert app.config["SQLALCHEMY_DATABASE_URI"] == expected
    with app.app_context():
        from webflow import db

        assert db.engine.url.render_as_string(hide_password=False) == expected


def test_postgresql_connections_are_checked_before_use(monkeypatch: pytest.MonkeyPatch) -> None:
    """A connection the server dropped (restart, idle timeout) is replaced, not handed out."""
    monkeypatch.setenv("DATABASE_URL", "postgres://u@db.example/prod")
    app = create_app({"SECRET_KEY": "test"})
    options = app.config["SQLALCHEMY_ENGINE_OPTIONS"]
    assert "pool_pre_ping" not in options  # idle connections are pinged (configure_engine), busy ones not
    assert "lock_timeout" in options["connect_args"]["options"]


def test_a_dropped_idle_connection_is_replaced_not_handed_out(pg_url: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The pool pings a connection that was idle (here: any), and replaces a dead one."""
    import sqlalchemy as sa

    from webflow.core import create_engine, transaction

    monkeypatch.setattr(transaction, "PING_AFTER_IDLE", 0.0)
    engine = create_engine(pg_url)
    try:
        with engine.connect() as conn:
            dropped = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        with create_engine(pg_url).connect() as admin:  # the server ends that session
            admin.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": dropped})
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT pg_backend_pid()").scalar() != dropped
    finally:
        engine.dispose()


def test_a_busy_connection_is_not_pinged(pg_url: str) -> None:
    """Within PING_AFTER_IDLE of its last use a connection goes out as it is: no round trip."""
    from webflow.core import create_engine
    from webflow.core.sqlcount import SQLCounter

    engine = create_engine(pg_url)
    counter = SQLCounter(engine)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        counter.start()
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        counter.stop()
        assert counter.round_trips == len(counter.statements) == 1  # autocommit: no BEGIN, no ROLLBACK
    finally:
        counter.close()
        engine.dispose()
