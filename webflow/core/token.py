"""Execution tokens: ``start``, and ``T/S_n`` for branch n of split task S on token T."""

from __future__ import annotations

START = "start"


def branch(token: str, split_task_id: int, n: int) -> str:
    """The token of branch n (1-based) of the split task."""
    return f"{token}/{split_task_id}_{n}"


def is_branch(token: str) -> bool:
    return "/" in token


def base(token: str) -> str:
    """The token the split was on: what a join continues with."""
    return token.rsplit("/", 1)[0]


def split_prefix(token: str) -> str:
    """The prefix every branch of the token's innermost split shares (``T/S_``)."""
    head, _, last = token.rpartition("/")
    split_id = last.split("_", 1)[0]
    return f"{head}/{split_id}_"
