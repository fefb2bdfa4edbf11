"""Drive viewflow for bench_side_by_side.py: run with the viewflow virtualenv's python.

Reads commands on stdin, one per line, and answers each with one JSON line:
``run human|auto N`` runs N processes and answers the seconds; ``count human|auto`` runs
one process with every statement counted (the same rules as webflow.core.sqlcount:
statements sent through the cursor, psycopg's implicit BEGIN and each COMMIT; round trips
from libpq's trace on PostgreSQL). The human path is three transactions, each the way a
viewflow page runs it (``transaction.atomic()`` and ``task.activation()``, which locks the
process and re-reads the task): start; assign; start + execute the View task.
"""

import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from vfbench.flows import AutoFlow, HumanFlow  # noqa: E402
from viewflow.workflow.models import Task  # noqa: E402


class Counter:
    """Statements through the cursor, the driver's BEGIN and COMMITs, round trips."""

    def __init__(self):
        self.statements = []
        self.active = False
        self.postgresql = connection.vendor == "postgresql"
        self.trace_path = None
        connection.execute_wrappers.append(self.wrap)
        original_commit = connection._commit

        def commit():
            if self.active and connection.connection is not None and self.in_transaction():
                self.statements.append("COMMIT")
            return original_commit()

        connection._commit = commit

    def in_transaction(self):
        if self.postgresql:
            return int(connection.connection.info.transaction_status) != 0
        return connection.connection.in_transaction

    def wrap(self, execute, sql, params, many, context):
        if self.active:
            if self.postgresql and not self.in_transaction() and not connection.get_autocommit():
                self.statements.append("BEGIN")
            self.statements.append(" ".join(sql.split()))
        return execute(sql, params, many, context)

    def trace(self):
        if not self.postgresql or self.trace_path is not None:
            return
        from psycopg import pq

        connection.ensure_connection()
        fd, self.trace_path = tempfile.mkstemp(prefix="vf-trace-")
        connection.connection.pgconn.trace(fd)
        connection.connection.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)

    def ready(self):
        if self.trace_path is None:
            return 0
        with open(self.trace_path, "rb") as trace:
            return sum(1 for line in trace if line.startswith(b"B") and b"\tReadyForQuery" in line)


def human_path(user_id, counter=None, spent=None):
    def begin():
        if counter is not None:
            counter.statements, counter.active = [], True
            return counter.ready()
        return 0

    def end(name, trips_before):
        if counter is not None:
            counter.active = False
            spent[name] = (counter.statements, counter.ready() - trips_before if counter.postgresql else None)

    user = User.objects.get(pk=user_id)  # the caller's lookups, as in a request
    mark = begin()
    with transaction.atomic():
        process = HumanFlow.start.run()
    end("start", mark)
    task = Task.objects.get(process=process, flow_task=HumanFlow.work)
    user = User.objects.get(pk=user_id)
    mark = begin()
    with transaction.atomic(), task.activation() as activation:
        activation.assign(user)
    end("assign", mark)
    task = Task.objects.get(pk=task.pk)
    user = User.objects.get(pk=user_id)
    mark = begin()
    with transaction.atomic(), task.activation() as activation:
        activation.start(None)
        activation.process.data = {**activation.process.data, "note": "ok"}
        activation.process.save()
        activation.execute()
    end("done", mark)


def auto_path(user_id, counter=None, spent=None):
    mark = 0
    if counter is not None:
        counter.statements, counter.active = [], True
        mark = counter.ready()
    with transaction.atomic():
        AutoFlow.start.run()
    if counter is not None:
        counter.active = False
        spent["run"] = (counter.statements, counter.ready() - mark if counter.postgresql else None)


PATHS = {"human": human_path, "auto": auto_path}


def main():
    call_command("migrate", verbosity=0)
    user_id = User.objects.create(username="worker").pk
    counter = Counter()
    counter.trace()
    for path in PATHS.values():  # warm
        for _ in range(5):
            path(user_id)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        command, name, *rest = line.split()
        if command == "run":
            n = int(rest[0])
            began = time.perf_counter()
            for _ in range(n):
                PATHS[name](user_id)
            answer = {"seconds": time.perf_counter() - began}
        else:
            spent = {}
            PATHS[name](user_id, counter, spent)
            answer = {"spent": spent}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
