"""``End``: finishes the process when nothing else in it is unfinished."""

from __future__ import annotations

from .. import signals
from ..activation import Activation
from ..flow import Node
from ..fsm import transition
from ..models import utcnow
from ..status import STATUS


class EndActivation(Activation):
    automatic = True

    def run_automatic(self) -> None:
        self.perform()

    @transition(source=STATUS.NEW, target=STATUS.DONE)
    def perform(self) -> None:
        """Finish; the process is DONE once no other task of it is unfinished (``settle``)."""
        self.task.started = self.task.finished = utcnow()
        self.set_status(STATUS.DONE)
        self.send(signals.task_finished)

    @transition(source=STATUS.DONE, target=STATUS.NEW, conditions=Activation.undo.conditions)
    def undo(self) -> None:
        """Undo the end: the process is open again."""
        Activation.undo.func(self)
        self.process.status = STATUS.NEW
        self.process.finished = None


class End(Node):
    task_type = "END"
    activation_class = EndActivation
