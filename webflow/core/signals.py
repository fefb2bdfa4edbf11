"""Blinker signals; the sender is the flow class, with ``process=`` and ``task=``."""

from blinker import Namespace

_signals = Namespace()

flow_started = _signals.signal("flow_started")
flow_finished = _signals.signal("flow_finished")
task_started = _signals.signal("task_started")
task_finished = _signals.signal("task_finished")
task_failed = _signals.signal("task_failed")
