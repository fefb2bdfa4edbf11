"""``End``: finishes the process when nothing else in it is unfinished."""

from __future__ import annotations

from typing import Any

from .. import signals
from ..activation import Activation
from ..exceptions import FlowRuntimeError
from ..flow import Node
from ..fsm import transition
from ..models import utcnow
from ..permissions import managing
from ..status import FINISHED, STATUS


class EndActivation(Activation):
    automatic = True

    def run_automatic(self) -> None:
        self.perform()

    @transition(source=STATUS.NEW, target=STATUS.DONE, permission=managing, label="Run now")
    def perform(self) -> None:
        """Finish; the process is DONE once no other task of it is unfinished (``settle``).
        A terminating End cancels every unfinished task first (explicit termination)."""
        self.task.started = self.task.finished = utcnow()
        self.send(signals.task_started)
        self.set_status(STATUS.DONE)
        if self.flow_task.terminate:
            from ..engine import cancel_tasks
            from ..queries import as_tasks, process_tasks

            cancel_tasks(self.process, as_tasks(self.session, [
                t for t in process_tasks(self.session, self.process)
                if t.status not in FINISHED and t is not self.task]))
        self.send(signals.task_finished)

    @transition(source=STATUS.DONE, target=STATUS.NEW,
                conditions=Activation.undo.conditions,
                permission=managing, label="Undo")
    def undo(self) -> None:
        """Undo the end: the process is open again."""
        Activation.undo.func(self)
        self.process.status = STATUS.NEW
        self.process.finished = None


class End(Node):
    """``flow.End(terminate=False)``; ``terminate=True`` ends the whole process at once,
    canceling every unfinished task (a running job's result is then dropped)."""

    task_type = "END"
    activation_class = EndActivation

    def __init__(self, terminate: bool = False) -> None:
        super().__init__()
        self.terminate = terminate

    def resolve(self, flow_class: Any) -> None:
        if self._next:  # the graph drew the edge, the engine never took it
            raise FlowRuntimeError(f"{flow_class.__name__}.{self.name}: an End has no .Next(): the "
                                   "process ends here")
        super().resolve(flow_class)
