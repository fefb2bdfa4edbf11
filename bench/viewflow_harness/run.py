"""Drive viewflow for bench_side_by_side.py: run with the viewflow virtualenv's python.

Reads commands on stdin, one per line, and answers each with one JSON line:
``run human|auto|caller N`` runs N processes and answers the seconds; ``count PATH`` runs
one process with every statement counted (the same rules as webflow.core.sqlcount:
statements sent through the cursor, psycopg's implicit BEGIN and each COMMIT; round trips
from libpq's trace on PostgreSQL). The human path is three transactions, each the way a
viewflow page runs it (``transaction.atomic()`` and ``task.activation()``, which locks the
process and re-reads the task): start; assign; start + execute the View task. ``caller``
is the human path's lookups with no transition (the caller's own cost).
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


def counted(path):
    """The path with every statement it sends counted when a counter is given (the
    caller's lookups included, as webflow's side counts them)."""

    def run(user_id, counter=None, spent=None):
        if counter is None:
            return path(user_id)
        counter.statements, counter.active = [], True
        mark = counter.ready()
        try:
            return path(user_id)
        finally:
            counter.active = False
            spent["path"] = (counter.statements, counter.ready() - mark if counter.postgresql else None)

    return run


@counted
def human_path(user_id):
    user = User.objects.get(pk=user_id)  # the caller's lookups, as in a request
    with transaction.atomic():
        process = HumanFlow.start.run()
    task_pk = Task.objects.values_list("pk", flat=True).get(process=process, flow_task=HumanFlow.work)
    # Each transition's request loads the user and the task by its id, as ours does.
    user = User.objects.get(pk=user_id)
    task = Task.objects.get(pk=task_pk)
    with transaction.atomic(), task.activation() as activation:
        activation.assign(user)
    user = User.objects.get(pk=user_id)
    task = Task.objects.get(pk=task_pk)
    with transaction.atomic(), task.activation() as activation:
        activation.start(None)
        activation.process.data = {**activation.process.data, "note": "ok"}
        activation.process.save()
        activation.execute()


@counted
def caller_path(user_id):
    """The human path's lookups alone, on a process started once (CALLER_PROCESS): what
    the caller costs with no transition at all (Django reads in autocommit)."""
    process = CALLER_PROCESS[0]
    User.objects.get(pk=user_id)
    task_pk = Task.objects.values_list("pk", flat=True).get(process=process, flow_task=HumanFlow.work)
    for _ in range(2):  # before assign, then before start + execute
        User.objects.get(pk=user_id)
        Task.objects.get(pk=task_pk)


@counted
def auto_path(user_id):
    with transaction.atomic():
        AutoFlow.start.run()


CALLER_PROCESS = []


PATHS = {"human": human_path, "auto": auto_path, "caller": caller_path}


def main():
    call_command("migrate", verbosity=0)
    user_id = User.objects.create(username="worker").pk
    counter = Counter()
    counter.trace()
    with transaction.atomic():
        CALLER_PROCESS.append(HumanFlow.start.run())
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
