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
