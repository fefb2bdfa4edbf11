"""Fixtures shared by every test: databases (SQLite and PostgreSQL), an app, users."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from webflow.core import Base, create_engine, use_session

sys.path.insert(0, str(Path(__file__).resolve().parent))  # app_support, for every folder

PG_ADMIN_URL = os.environ.get("WEBFLOW_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REQUIRE_SERVICES = os.environ.get("WEBFLOW_REQUIRE_SERVICES") == "1"


def _service_missing(what: str, exc: Exception) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"{what} is not reachable: {exc}")
    pytest.skip(f"{what} is not reachable: {exc}")


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A PostgreSQL database of this test run's own, dropped at the end."""
    name = f"webflow_test_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://"),
                             isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:
        _service_missing("PostgreSQL", exc)
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    yield url
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture
def redis_url() -> str:
    """The local Redis server's URL (tests use key prefixes of their own)."""
    from redis import Redis

    url = os.environ.get("WEBFLOW_TEST_REDIS", "redis://127.0.0.1:6379/0")
    try:
        Redis.from_url(url).ping()
    except Exception as exc:
        _service_missing("Redis", exc)
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path) -> str:  # type: ignore[no-untyped-def]
    """A fresh, empty database URL: each test runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.sqlite'}"
    url: str = request.getfixturevalue("pg_url")
    engine = create_engine(url)
    Base.metadata.drop_all(engine)
    engine.dispose()
    return url


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    engine = create_engine(db_url)
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine: sa.Engine) -> Iterator[Session]:
    """A session the engine core works on (no Flask involved)."""
    with Session(engine) as session, use_session(session):
        yield session
