"""Child processes for the concurrency tests: spawned, synchronised, never left hanging."""

from __future__ import annotations

import multiprocessing
import queue
from collections.abc import Callable, Iterator
from typing import Any

import pytest

CHILD_TIMEOUT = 45  # seconds for all children of one test to report and exit

ctx = multiprocessing.get_context("spawn")


class Children:
    """Start N children on one target with a shared Barrier; collect what each reports."""

    def __init__(self) -> None:
        self.procs: list[Any] = []

    def run(self, target: Callable[..., None], args_for: Callable[[int, Any, Any], tuple[Any, ...]],
            count: int) -> list[dict[str, Any]]:
        barrier, results = ctx.Barrier(count), ctx.Queue()
        self.procs = [ctx.Process(target=target, args=args_for(n, barrier, results), daemon=True)
                      for n in range(count)]
        for proc in self.procs:
            proc.start()
        reports: list[tuple[str, Any]] = []
        try:
            for _ in range(count):
                reports.append(results.get(timeout=CHILD_TIMEOUT))
        except queue.Empty:
            pytest.fail(f"only {len(reports)} of {count} children reported within {CHILD_TIMEOUT} s: "
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


@pytest.fixture
def children() -> Iterator[Children]:
    runner = Children()
    yield runner
    runner.kill_leftovers()
