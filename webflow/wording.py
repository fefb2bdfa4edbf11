"""What the engine's states and audit rows say to people who do not know the engine.

End users read words ("In progress", "Waiting for bob", "Done by bob"); the flow's managers
read the same words and, beside them, the engine's terms (statuses, transition names,
tokens), which the templates add when ``manages(flow_class)`` says so."""

from __future__ import annotations

from typing import Any

from flask import Flask, g
from flask_login import current_user
from markupsafe import Markup, escape

from .core.flow import Flow
from .core.status import STATUS

PROCESS_WORDS = {STATUS.NEW: "In progress", STATUS.DONE: "Done", STATUS.CANCELED: "Canceled"}
TASK_WORDS = {
    STATUS.NEW: "Waiting", STATUS.ASSIGNED: "Assigned", STATUS.PREPARED: "Being saved",
    STATUS.SCHEDULED: "Scheduled", STATUS.STARTED: "Running", STATUS.DONE: "Done",
    STATUS.CANCELED: "Canceled", STATUS.ERROR: "Failed",
}
#: What happened, by the audit row's transition: "{who} {words}" ({task} is the task's title).
#: The keys are the names the engine records (``TaskEvent.transition``): every transition of
#: an activation class, and the rows written outside one (``cancel_process`` by
#: ``engine.cancel_process``, ``change_due`` by ``timers.change_due``, ``note`` and ``error``
#: by ``Activation``). ``tests/web/test_ui_audit_fixes.py`` reads those names from the code
#: and checks that each has its words here.
EVENT_WORDS = {
    "assign": "took “{task}”", "unassign": "put “{task}” back in the queue",
    "reassign": "gave “{task}” to someone else", "done": "completed “{task}”",
    "cancel": "canceled “{task}”", "undo": "reopened “{task}”", "retry": "ran “{task}” again",
    "perform": "ran “{task}”", "error": "“{task}” failed",
    "schedule": "“{task}” is waiting for its time", "activate_next": "created the steps after “{task}”",
    "start": "started “{task}”", "prepare": "filled in “{task}”",
    "change_due": "changed the due date or priority of “{task}”",
    "reschedule": "changed when “{task}” ends its wait", "fire": "ended the wait of “{task}”",
    "note": "added a note to “{task}”", "cancel_process": "canceled the process",
}


def process_state(process: Any) -> str:
    """``In progress``, ``Done``, ``Canceled``."""
    return PROCESS_WORDS.get(process.status, process.status.value.capitalize())


def task_state(task: Any) -> str:
    """``Waiting to be taken``, ``Waiting for bob``, ``Done by bob``, ``Failed``, ..."""
    owner = task.owner.username if task.owner is not None else None
    human = task.flow_task_type == "HUMAN"
    if task.status == STATUS.NEW and human:
        return "Waiting to be taken"
    if task.status in (STATUS.ASSIGNED, STATUS.PREPARED) and owner:
        return f"Waiting for {owner}"
    if task.status == STATUS.DONE and human and owner:
        return f"Done by {owner}"
    return TASK_WORDS.get(task.status, task.status.value.capitalize())


def event_text(event: Any) -> str:
    """What the audit row says happened, without the actor: ``completed “Approve”``."""
    title = event.task.flow_task.title if event.task is not None else "the process"
    words = EVENT_WORDS.get(event.transition)
    if event.transition == "done" and event.task is not None and event.task.flow_task_type == "START":
        return "started the process"
    if event.transition == "retry" and getattr(event, "to_status", None) == STATUS.SCHEDULED:
        # A job's retry queues it: the run itself is the "started" row after it, if any.
        return f"queued “{title}” to run again"
    if event.transition in ("assign", "reassign") and (event.comments or "").startswith("assigned to "):
        # Given by the row's user to the one its note names (who may be that user: a
        # manager who takes over ann's task): not "took", nor "to someone else".
        return f"{event.transition}ed “{title}”"
    return words.format(task=title) if words else f"{event.transition.replace('_', ' ')} “{title}”"


def manages(flow_class: type[Flow] | None) -> bool:
    """True when the reader manages the flow (the engine's rule): they see its terms too."""
    if flow_class is None:
        return False
    known = g.get("manages")  # once per flow and request: lists ask per row
    if known is None:
        known = g.manages = {}
    if flow_class not in known:
        known[flow_class] = bool(current_user.is_authenticated and flow_class.can_manage(current_user))
    return known[flow_class]  # type: ignore[no-any-return]


# -- badges ------------------------------------------------------------------------------------
# What `ui.badge`, `ui.task_badge`, `ui.process_badge` and `ui.priority` draw (_macros.html
# points its names here). Python, not macros: a list row draws several, and a macro call
# cost more than the few bytes it wrote.


def status_badge(status: STATUS, words: str | None = None, engine: bool = True) -> Markup:
    """The status in people's words; with ``engine`` (managers) the engine's status too."""
    value = status.value
    term = f' <small class="wf-engine-term">{escape(value)}</small>' if words and engine else ""
    shown = escape(words or value)
    return Markup(f'<span class="wf-badge wf-status-{escape(value.lower())}">{shown}{term}</span>')


def task_badge(task: Any) -> Markup:
    return status_badge(task.status, task_state(task), manages(task.flow_class))


def process_badge(process: Any) -> Markup:
    return status_badge(process.status, process_state(process), manages(process.flow_class))


def priority_badge(value: int) -> Markup:
    """High priorities stand out; normal (0) and low ones are muted."""
    if value > 0:
        return Markup(f'<span class="wf-badge wf-priority-high">{int(value)}</span>')
    return Markup(f'<span class="wf-muted">{int(value) if value < 0 else 0}</span>')


def register(app: Flask) -> None:
    for func in (process_state, task_state, event_text, manages):
        app.add_template_global(func, func.__name__)
    for html in (status_badge, task_badge, process_badge, priority_badge):
        app.add_template_global(html, f"{html.__name__}_html")
