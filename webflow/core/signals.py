"""Blinker signals; the sender is the flow class, with ``process=`` and ``task=``
(``comment_posted`` adds ``comment=`` and ``mentions=``; ``task_assigned`` adds ``user=``,
``by=`` and ``reason=``)."""

from blinker import Namespace

_signals = Namespace()

flow_started = _signals.signal("flow_started")
flow_finished = _signals.signal("flow_finished")
task_started = _signals.signal("task_started")
task_finished = _signals.signal("task_finished")
task_failed = _signals.signal("task_failed")
# Working together (sent inside the transaction, once the rows have ids):
#: process=, task=, user=<new owner>, by=<acting user or None>,
#: reason="assign" | "reassign" | "delegate" | "substitute" | "auto"
task_assigned = _signals.signal("task_assigned")
#: process=, task=, user=<new owner>, by=<old owner>, note=str
task_delegated = _signals.signal("task_delegated")
#: process=, task=<Task or None>, comment=<Comment row>, mentions=<list of User>
comment_posted = _signals.signal("comment_posted")
#: process=, task=, user=<the owner>, due=<the due date that passed>: sent once per task
#: and due date by the overdue pass of ``fire_due_timers`` (see core/overdue.py)
task_overdue = _signals.signal("task_overdue")
