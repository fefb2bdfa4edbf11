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


#: Folders whose tests run one after another on one xdist worker (``--dist loadgroup``):
#: the job, race and notification tests time what they see and start servers and workers
#: of their own; the browser tests drive one Chromium at a time and write the README's
#: screenshots. Every other test is spread over both workers.
ONE_WORKER = {"jobs": "timed", "concurrency": "timed", "notify": "timed", "browser": "browser"}
TESTS = Path(__file__).resolve().parent


# tryfirst: xdist's own hook reads the xdist_group markers to name each test's group, so
# the markers must be on the items before it runs (added after it, they are ignored).
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        folder = item.path.relative_to(TESTS).parts[0]
        if folder in ONE_WORKER:
            item.add_marker(pytest.mark.xdist_group(ONE_WORKER[folder]))


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


#: Everything in the ``public`` schema that an earlier test could have left different from
#: what ``create_all`` makes: columns and their types, indexes, constraints, triggers,
#: functions, views, enum types.
SCHEMA_SHAPE = """
SELECT coalesce(string_agg(x, ',' ORDER BY x), '') FROM (
  SELECT 't:' || table_name || '.' || column_name || ':' || data_type || ':' || is_nullable AS x
    FROM information_schema.columns WHERE table_schema = 'public'
  UNION ALL SELECT 'i:' || indexname || ':' || indexdef FROM pg_indexes WHERE schemaname = 'public'
  UNION ALL SELECT 'c:' || conname FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
    WHERE n.nspname = 'public'
  UNION ALL SELECT 'g:' || tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND NOT t.tgisinternal
  UNION ALL SELECT 'f:' || proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname = 'public'
  UNION ALL SELECT 'v:' || table_name FROM information_schema.views WHERE table_schema = 'public'
  UNION ALL SELECT 'y:' || typname FROM pg_type y JOIN pg_namespace n ON n.oid = y.typnamespace
    WHERE n.nspname = 'public' AND y.typtype = 'e'
) shape
"""
#: The shape ``create_all`` gives an empty database, learnt by the run's first full rebuild.
_PRISTINE: dict[str, str] = {}


def empty_postgresql(url: str) -> None:
    """Leave the database as ``create_all`` makes it, with no rows and every id sequence at 1.

    Dropping and creating the tables cost about half a second a test, a thousand times a
    run; emptying them costs a few milliseconds. They are emptied only when their shape is
    exactly what ``create_all`` made (a test that migrated, altered or left other objects
    gets the full rebuild). Either way ``create_all`` afterwards finds what it would make."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            shape = conn.exec_driver_sql(SCHEMA_SHAPE).scalar()
            if shape and shape == _PRISTINE.get(url):
                tables = list(reversed(Base.metadata.sorted_tables))  # children first
                for table in tables:  # DELETE beats TRUNCATE on tiny tables
                    conn.exec_driver_sql(f'DELETE FROM "{table.name}"')
                conn.exec_driver_sql("SELECT " + ", ".join(
                    f"setval(pg_get_serial_sequence('\"{t.name}\"', 'id'), 1, false)"
                    for t in tables if "id" in t.c and t.c.id.autoincrement in (True, "auto")
                    and t.c.id.primary_key))
                return
            conn.exec_driver_sql("DROP SCHEMA public CASCADE")
            conn.exec_driver_sql("CREATE SCHEMA public")
            Base.metadata.create_all(conn)
            _PRISTINE[url] = conn.exec_driver_sql(SCHEMA_SHAPE).scalar()
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path) -> str:  # type: ignore[no-untyped-def]
    """A database URL with no rows: each test runs on SQLite (a new, empty file) and on
    PostgreSQL (the run's database with the models' tables, emptied, ids from 1). A test
    that needs no tables at all asks for ``bare_db_url``."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.sqlite'}"
    url: str = request.getfixturevalue("pg_url")
    empty_postgresql(url)
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def bare_db_url(request: pytest.FixtureRequest, tmp_path) -> str:  # type: ignore[no-untyped-def]
    """A database URL with no tables at all (for migrations and the "not migrated" checks)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.sqlite'}"
    url: str = request.getfixturevalue("pg_url")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA public CASCADE")
        conn.exec_driver_sql("CREATE SCHEMA public")
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
