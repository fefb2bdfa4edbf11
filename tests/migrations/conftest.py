"""Migrations start from a database with no tables at all."""

from __future__ import annotations

import pytest


@pytest.fixture
def db_url(bare_db_url: str) -> str:
    """Here ``db_url`` is bare: the revisions make the tables."""
    return bare_db_url
