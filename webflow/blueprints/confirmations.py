"""Confirmation pages as people meet them: a destructive task action's page
(``tasks.task_confirm``), a manager's repair (``admin.confirm_transition``) and the process
cancel (``admin.process_cancel``).

Each answers 200 with its form, or 409 with the reason when it cannot be used now: a page of
its own without JavaScript; for HTMX its card (the ``confirm`` block), or when refused the
reason in the page's message box with nothing swapped, as every other refusal of the app.
"""

from __future__ import annotations

from typing import Any

from flask import Response

from .web import message_in_place, render_page, wants_fragment


def confirmation(template: str, reason: str | None, message: str, **context: Any) -> Response:
    """The confirmation ``template`` with its form (200), or refused now (``reason``: 409):
    the page says why; an HTMX request gets ``message`` in place instead."""
    status = 200 if reason is None else 409
    if reason is not None and wants_fragment():
        return message_in_place(message, status)
    return render_page(template, ["confirm"], status=status, reason=reason, **context)
