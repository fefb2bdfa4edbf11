"""``End``: finishes the process when nothing else in it is unfinished."""

from __future__ import annotations

from .. import signals
from ..activation import Activation
from ..engine import finish_process
from ..flow import Node
from ..fsm import transition
from ..models import utcnow
from ..permissions import managing
from ..queries import count_unfinished
from ..status import STATUS


class EndActivation(Activation):
    automatic = True

    def run_automatic(self) -> None:
        self.perform()

    @transition(source=STATUS.NEW, target=STATUS.DONE, permission=managing, label="Run now")
    def perform(self) -> None:
        """Finish; the process is DONE when no other task of it is unfinished."""
        task, process = self.task, self.process
        task.started = task.finished = utcnow()
        self.set_status(STATUS.DONE)
        signals.task_finished.send(self.flow_class, process=process, task=task)
        if not count_unfinished(self.session, process, exclude=task):
            finish_process(process, self.flow_class, task)

    @transition(source=STATUS.DONE, target=STATUS.NEW, conditions=Activation.undo.conditions,
                permission=managing, label="Undo")
    def undo(self) -> None:
        """Undo the end: the process is open again."""
        Activation.undo.func(self)
        self.process.status = STATUS.NEW
        self.process.finished = None


class End(Node):
    task_type = "END"
    activation_class = EndActivation
