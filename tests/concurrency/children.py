"""Child processes for the concurrency tests: started together behind a Barrier, each
reporting once, never left hanging."""

from __future__ import annotations

import multiprocessing
import queue
import time
from collections.abc import Callable
from typing import Any

import pytest

CHILD_TIMEOUT = 45  # seconds for all children of one test to report and exit

ctx = multiprocessing.get_context("spawn")


class Children:
    """Start N children on one target with a shared Barrier; collect what each reports
    within ``timeout`` seconds (spawned, unless given another multiprocessing context)."""

    def __init__(self, context: Any = ctx, timeout: float = CHILD_TIMEOUT) -> None:
        self.context = context
        self.timeout = timeout
        self.procs: list[Any] = []

    def run(self, target: Callable[..., None], args_for: Callable[[int, Any, Any], tuple[Any, ...]],
            count: int) -> list[dict[str, Any]]:
        barrier, results = self.context.Barrier(count), self.context.Queue()
        self.procs = [self.context.Process(target=target, args=args_for(n, barrier, results), daemon=True)
                      for n in range(count)]
        for proc in self.procs:
            proc.start()
        reports: list[tuple[str, Any]] = []
        deadline = time.monotonic() + self.timeout
        try:
            for _ in range(count):
                reports.append(results.get(timeout=max(deadline - time.monotonic(), 0.1)))
        except queue.Empty:
            pytest.fail(f"only {len(reports)} of {count} children reported within {self.timeout} s: "
                        f"{reports}")
        for proc in self.procs:
            proc.join(timeout=10)
            assert proc.exitcode == 0, f"child {proc.pid} ended with {proc.exitcode}"
        errors = [detail for kind, detail in reports if kind == "error"]
        assert not errors, "a child failed:\n" + "\n".join(errors)
        return [detail for _, detail in reports]

    def kill_leftovers(self) -> None:
        for proc in self.procs:
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)
