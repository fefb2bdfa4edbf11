"""What the fault tests need: servers of their own to break, the ledger jobs write, checks."""

from __future__ import annotations

import contextlib
import select
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import sqlalchemy as sa

from webflow import STATUS, db
from webflow.models import Process, Task


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A redis-server of the test's own on a free port, without persistence: stopping it
    loses every queue, job and heartbeat, as a crashed Redis would."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def freeze(self, frozen: bool = True) -> None:
        """Stop (SIGSTOP) or resume the server: it accepts connections but never answers."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP if frozen else signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None


class TcpProxy:
    """A TCP proxy of the test's own in front of a server: ``cut()`` closes every
    connection and refuses new ones (the server unreachable), ``restore()`` listens again."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.listener: socket.socket | None = None
        self.links: list[socket.socket] = []
        self.lock = threading.Lock()
        self.stopped = False

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self.lock:
            if self.listener is not None:
                self.listener.close()
                self.listener = None
            for sock in self.links:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    sock.close()
            self.links.clear()

    def close(self) -> None:
        self.stopped = True
        self.cut()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                server = socket.create_connection(self.target, 5)
            except OSError:
                client.close()
                continue
            with self.lock:
                if self.listener is not listener:
                    client.close()
                    server.close()
                    return
                self.links += [client, server]
            threading.Thread(target=self._pipe, args=(client, server), daemon=True).start()

    def _pipe(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while True:
                readable, _, _ = select.select([a, b], [], [], 1.0)
                for sock in readable:
                    chunk = sock.recv(65536)
                    if not chunk:
                        return
                    (b if sock is a else a).sendall(chunk)
        except (OSError, ValueError):
            return
        finally:
            for sock in (a, b):
                with contextlib.suppress(OSError):
                    sock.close()


def ledger_runs(path: Path) -> list[tuple[int, int, str, float]]:
    """(task id, attempt, job id, time) of every job run noted in the ledger."""
    if not path.exists():
        return []
    runs = []
    for line in path.read_text().splitlines():
        task_id, attempt, job_id, _pid, at = line.split()
        runs.append((int(task_id), int(attempt), job_id, float(at)))
    return runs


def assert_each_attempt_ran_once(path: Path) -> dict[int, int]:
    """No job id and no (task, attempt) ran twice; returns the runs per task."""
    runs = ledger_runs(path)
    by_job = Counter(job_id for _, _, job_id, _ in runs)
    assert [job for job, n in by_job.items() if n > 1] == [], "a delivery ran the job twice"
    by_attempt = Counter((task_id, attempt) for task_id, attempt, _, _ in runs)
    assert [key for key, n in by_attempt.items() if n > 1] == [], "an attempt ran twice"
    return dict(Counter(task_id for task_id, _, _, _ in runs))


def statuses(process_ids: list[int]) -> Counter[STATUS]:
    db.session.rollback()
    rows = db.session.scalars(sa.select(Process.status).where(Process.id.in_(process_ids)))
    return Counter(rows)


def assert_no_task_duplicated(process_ids: list[int]) -> None:
    rows = db.session.execute(
        sa.select(Task.process_id, Task.node_name, sa.func.count())
        .where(Task.process_id.in_(process_ids))
        .group_by(Task.process_id, Task.node_name)
    ).all()
    assert [row for row in rows if row[2] != 1] == []
