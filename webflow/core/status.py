"""Task and process statuses."""

from __future__ import annotations

from enum import StrEnum


class STATUS(StrEnum):
    """Status of a task; a process uses NEW, DONE and CANCELED."""

    NEW = "NEW"
    ASSIGNED = "ASSIGNED"
    PREPARED = "PREPARED"
    SCHEDULED = "SCHEDULED"
    STARTED = "STARTED"
    DONE = "DONE"
    ERROR = "ERROR"
    CANCELED = "CANCELED"
    UNRIPE = "UNRIPE"


#: Statuses after which a task needs nothing more from anyone.
FINISHED = frozenset({STATUS.DONE, STATUS.CANCELED})
