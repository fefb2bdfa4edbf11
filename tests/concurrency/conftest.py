"""Child processes for the concurrency tests: spawned, synchronised, never left hanging."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from children import Children


@pytest.fixture
def children() -> Iterator[Children]:
    runner = Children()
    yield runner
    runner.kill_leftovers()
