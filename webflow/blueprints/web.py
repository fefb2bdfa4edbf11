"""What the task app's views share: HTMX fragments, the engine context, error pages."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Response, current_app, flash, render_template, request, url_for
from flask_login import current_user
from jinja2_fragments.flask import render_blocks
from werkzeug.exceptions import HTTPException

from ..core.context import Context
from ..core.exceptions import FlowLockFailed, PermissionDenied
from ..extensions import db


def wants_fragment() -> bool:
    """True for an HTMX request that swaps part of a page (not boosted, not a history restore)."""
    headers = request.headers
    return (headers.get("HX-Request") == "true" and headers.get("HX-Boosted") != "true"
            and headers.get("HX-History-Restore-Request") != "true")


def render_page(template: str, blocks: list[str], status: int = 200, **context: Any) -> Response:
    """The whole page, or for HTMX only ``blocks`` plus the navigation counts and messages.

    The first block is the swap target; the others carry ``hx-swap-oob`` (the template
    marks a block out-of-band when its name is in ``oob``)."""
    if wants_fragment():
        body = render_blocks(template, blocks, oob=set(blocks[1:]), **context) + oob_extras()
    else:
        body = render_template(template, oob=set(), **context)
    return current_app.make_response((body, status))


def oob_extras() -> str:
    """The navigation counts and flash messages as out-of-band swaps."""
    return render_template("_oob.html")


def engine_context() -> Context:
    """How the engine runs in a request: failing automatic nodes stored as ERROR, user audited."""
    return Context(propagate_exception=False, user=current_user._get_current_object())


def safe_next(target: str | None, default: str) -> str:
    """``target`` when it is a path on this site, else ``default`` (no open redirects)."""
    if target:
        parts = urlsplit(target)
        if (not parts.scheme and not parts.netloc and target.startswith("/")
                and not target.startswith("//") and "\\" not in target):
            return target
    return default


def form_data(form: Any) -> dict[str, Any]:
    """The form's data for ``process.data``: no CSRF token, only JSON values."""
    return {name: _json_value(value) for name, value in form.data.items() if name != "csrf_token"}


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if hasattr(value, "isoformat"):
        return value.isoformat()  # dates and times
    return str(value)  # Decimal and the like: exact, and readable


def _error_response(status: int, message: str) -> Any:
    db.session.rollback()
    if wants_fragment():
        # Keep the page as it is and show the message (htmx still applies out-of-band swaps).
        flash(message, "error")
        response = current_app.make_response((oob_extras(), status))
        response.headers["HX-Reswap"] = "none"
        return response
    return render_template("errors.html", status=status, message=message, title=f"Error {status}"), status


def register_shared(app: Flask) -> None:
    """Error pages that fit the site (a lock timeout is 503 "busy", never a 500), nav helpers."""

    messages = {
        400: "The request was not understood.",
        403: "You do not have permission to do that.",
        404: "There is no such page.",
    }

    @app.errorhandler(FlowLockFailed)
    def busy(exc: FlowLockFailed) -> Any:
        return _error_response(503, "The process is busy right now. Please try again in a moment.")

    @app.errorhandler(PermissionDenied)
    def denied(exc: PermissionDenied) -> Any:
        """The engine's own permission check (a start or a completion by the wrong user)."""
        return _error_response(403, messages[403])

    for code, text in messages.items():
        def handler(exc: HTTPException, text: str = text) -> Any:
            if request.path.startswith(url_for("static", filename="")):
                return exc
            return _error_response(exc.code or 500, _description(exc, text))

        app.register_error_handler(code, handler)

    @app.after_request
    def vary_on_htmx(response: Response) -> Response:
        # A page and its fragment share a URL: caches must keep them apart.
        response.vary.add("HX-Request")
        return response


def _description(exc: HTTPException, default: str) -> str:
    """What the view passed to abort(), or ``default`` when it passed nothing of its own."""
    if exc.description and exc.description != type(exc).description:
        return exc.description
    return default
