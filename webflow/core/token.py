"""Execution tokens: ``start``, and ``T/S_n`` for branch n of split task S on token T."""

from __future__ import annotations

from collections.abc import Iterable

START = "start"


def branch(token: str, split_task_id: int, n: int) -> str:
    """The token of branch n (1-based) of the split task."""
    return f"{token}/{split_task_id}_{n}"


def is_branch(token: str) -> bool:
    return "/" in token


def inside(token: str, on: str) -> bool:
    """True for a token of a branch of a split on token ``on`` (at any depth): the region
    a join on ``on`` waits for."""
    return token.startswith(on + "/")


def base(token: str) -> str:
    """The token the split was on: what a join continues with."""
    return token.rsplit("/", 1)[0]


def split_prefix(token: str) -> str:
    """The prefix every branch of the token's innermost split shares (``T/S_``)."""
    head, _, last = token.rpartition("/")
    split_id = last.split("_", 1)[0]
    return f"{head}/{split_id}_"


def split_prefixes(tokens: Iterable[str], on: str) -> set[str]:
    """The ``split_prefix`` of each token that is a branch of a split on token ``on``: what
    a join on ``on`` asks of every task that reached it (thousands at the end of a large
    fan-out, so string slices here rather than a call per token)."""
    head = on + "/"
    size = len(head)
    return {(token[:cut + 1] if (cut := token.find("_", size)) >= 0 else token + "_")
            for token in tokens if token.startswith(head) and "/" not in token[size:]}
