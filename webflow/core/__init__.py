"""The workflow engine. No Flask here: it takes a SQLAlchemy session and plain values."""

from . import nodes as flow
from . import signals
from .activation import Activation
from .context import Context, get_session, set_session_provider, use_session
from .exceptions import FlowLockFailed, FlowRuntimeError, PermissionDenied, TransitionNotAllowed
from .flow import Flow, Node, import_flow, this
from .models import Base, Group, Process, Task, TaskEvent, User
from .status import STATUS
from .timers import fire_due_timers
from .transaction import create_engine, unit_of_work

__all__ = [
    "STATUS", "Activation", "Base", "Context", "Flow", "FlowLockFailed", "FlowRuntimeError",
    "Group", "Node", "PermissionDenied", "Process", "Task", "TaskEvent",
    "TransitionNotAllowed", "User", "create_engine", "fire_due_timers", "flow", "get_session", "import_flow",
    "set_session_provider", "signals", "this", "unit_of_work", "use_session",
]

# Search documents follow every commit that changes what they hold (see core.search).
from .search import keep_index_current  # noqa: E402

keep_index_current()
