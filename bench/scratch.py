"""A database of a benchmark's own: a SQLite file in a temporary folder, or a scratch
PostgreSQL database on the test server (``WEBFLOW_TEST_PG``) dropped afterwards."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

PG_SERVER = os.environ.get("WEBFLOW_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


@contextmanager
def scratch_database(kind: str, prefix: str = "webflow_bench", folder: str | None = None) -> Iterator[str]:
    """The URL of a fresh, empty database (``kind`` "sqlite" or "postgresql"), removed on exit;
    a SQLite file goes into ``folder`` when one is given (the caller removes it)."""
    if kind == "sqlite":
        if folder is not None:
            yield f"sqlite:///{folder}/{prefix}.sqlite"
            return
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{tmp}/{prefix}.sqlite"
        return
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_SERVER.replace("postgresql://", "postgresql+psycopg://"),
                             isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield PG_SERVER.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
