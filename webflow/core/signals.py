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
comment_posted = _signals.signal("comment_posted")
task_assigned = _signals.signal("task_assigned")
