"""Count what an engine sends to its database: statements and, on PostgreSQL, round trips.

Used by the benchmarks and the statement-count tests. What counts as a statement: every
SQL text the driver sends, i.e. each ``before_cursor_execute`` (SQLite's ``BEGIN
IMMEDIATE``, ``SAVEPOINT`` and ``RELEASE`` included), plus what the driver sends by itself:
psycopg's ``BEGIN`` before the first statement of a transaction (outside autocommit; in
autocommit webflow sends its BEGIN as a statement), and each ``COMMIT`` or
``ROLLBACK`` of a transaction that had begun. Round trips (PostgreSQL only) are read from
libpq's protocol trace: one per ``ReadyForQuery`` the server answers, so pool pings and
anything else a driver does on its own are in that figure even when no listener sees them.
SQLite runs in the process and has no round trips.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine


def _psycopg_in_transaction(dbapi_connection: Any) -> bool:
    info = getattr(dbapi_connection, "info", None)
    status = getattr(info, "transaction_status", None)
    return status is not None and int(status) != 0  # 0: IDLE, no transaction open


class SQLCounter:
    """Attach to an engine before it opens its first connection; then ``start()`` and
    read ``statements`` (the SQL texts, in order) and ``round_trips``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.postgresql = engine.dialect.name == "postgresql"
        self.statements: list[str] = []
        self.active = False
        self._trace_fd: int | None = None
        self._trace_path = ""
        self._trace_start = 0
        sa.event.listen(engine, "before_cursor_execute", self._statement)
        sa.event.listen(engine, "commit", self._commit)
        sa.event.listen(engine, "rollback", self._rollback)
        if self.postgresql:
            fd, self._trace_path = tempfile.mkstemp(prefix="webflow-trace-")
            self._trace_fd = fd
            sa.event.listen(engine, "connect", self._trace)

    def start(self) -> SQLCounter:
        """Count from now on (what was counted before is dropped)."""
        self.statements = []
        self._trace_start = self._ready_count()
        self.active = True
        return self

    def stop(self) -> SQLCounter:
        self.active = False
        self._trace_stop = self._ready_count()
        return self

    @property
    def round_trips(self) -> int | None:
        if not self.postgresql:
            return None
        end = self._ready_count() if self.active else self._trace_stop
        return end - self._trace_start

    def close(self) -> None:
        """Detach from the engine (and dispose its connections, which are traced)."""
        sa.event.remove(self.engine, "before_cursor_execute", self._statement)
        sa.event.remove(self.engine, "commit", self._commit)
        sa.event.remove(self.engine, "rollback", self._rollback)
        if self.postgresql:
            sa.event.remove(self.engine, "connect", self._trace)
            self.engine.dispose()
            if self._trace_fd is not None:
                os.close(self._trace_fd)
            os.unlink(self._trace_path)

    # -- listeners ---------------------------------------------------------------------

    def _statement(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not self.active:
            return
        dbapi_connection = conn.connection.dbapi_connection
        if (self.postgresql and not dbapi_connection.autocommit
                and not _psycopg_in_transaction(dbapi_connection)):
            self.statements.append("BEGIN")  # psycopg sends it first, as a round trip of its own
        self.statements.append(" ".join(statement.split()))

    def _commit(self, conn: Any) -> None:
        if self.active and self._sends_end(conn):
            self.statements.append("COMMIT")

    def _rollback(self, conn: Any) -> None:
        if self.active and self._sends_end(conn):
            self.statements.append("ROLLBACK")

    def _sends_end(self, conn: Any) -> bool:
        if self.postgresql:
            return _psycopg_in_transaction(conn.connection.dbapi_connection)
        return bool(conn.connection.dbapi_connection.in_transaction)  # sqlite3

    def _trace(self, dbapi_connection: Any, record: Any) -> None:
        from psycopg import pq

        dbapi_connection.pgconn.trace(self._trace_fd)
        dbapi_connection.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)

    def _ready_count(self) -> int:
        if not self.postgresql:
            return 0
        with open(self._trace_path, "rb") as trace:
            return sum(1 for line in trace if line.startswith(b"B") and b"\tReadyForQuery" in line)
