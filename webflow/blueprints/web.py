"""What the task app's views share: HTMX fragments, the engine context, error pages."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Response, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf.csrf import CSRFError, generate_csrf
from jinja2_fragments.flask import render_blocks
from markupsafe import escape
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.exceptions import HTTPException

from ..core.context import Context
from ..core.exceptions import FlowLockFailed, FlowRuntimeError, PermissionDenied, StaleData
from ..core.transaction import is_unreachable
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


def message_in_place(message: str, status: int) -> Response:
    """For HTMX: the page stays as it is and shows ``message`` (an error) in its message box
    (``HX-Reswap: none``; htmx still applies the out-of-band swaps)."""
    flash(message, "error")
    response = current_app.make_response((oob_extras(), status))
    response.headers["HX-Reswap"] = "none"
    return response


def engine_context() -> Context:
    """How the engine runs in a request: failing automatic nodes stored as ERROR, user audited."""
    return Context(propagate_exception=False, user=current_user._get_current_object())


def safe_next(target: str | None, default: str) -> str:
    """``target`` when it is a path on this site, else ``default`` (no open redirects)."""
    if target:
        try:
            parts = urlsplit(target)
        except ValueError:  # "//[" and the like
            return default
        if (not parts.scheme and not parts.netloc and target.startswith("/")
                and not target.startswith("//") and "\\" not in target
                and not any(ord(c) < 32 or ord(c) == 127 for c in target)):  # no CR/LF in Location
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


#: What each error page says when the view gave no reason of its own.
MESSAGES = {
    400: "The request was not understood.",
    403: "You do not have permission to do that.",
    404: "There is no such page.",
    405: "This page does not take that kind of request.",
    409: "That is not possible now: the page may be out of date. Reload it and try again.",
    413: "The request is too large.",
    415: "The request was sent in a form this site does not read.",
    422: "Some of the values were not valid.",
    429: "Too many attempts. Please wait a minute and try again.",
    500: "Something went wrong on our side. Nothing was changed; please try again later.",
    503: "The process is busy right now. Please try again in a moment.",
}
#: Headers of the framework's error answer that the page keeps (what to use, when to retry).
KEPT_HEADERS = ("Allow", "Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


def _error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Any:
    """The error as a page in the site's look, or for HTMX the message in place."""
    try:
        db.session.rollback()
        if wants_fragment():
            response = message_in_place(message, status)
        else:
            page = render_template("errors.html", status=status, message=message, title=f"Error {status}")
            response = current_app.make_response((page, status))
    except Exception:  # the page itself failed (the database is gone): say it plainly
        current_app.logger.exception("the error page failed")
        response = current_app.make_response((f"Error {status}: {message}\n", status,
                                              {"Content-Type": "text/plain; charset=utf-8"}))
    response.headers.update(headers or {})
    return response


#: Marks an answer to HTMX as webflow's own (static/js/webflow.js reads it).
ANSWER_HEADER = "X-Webflow-Answer"
#: A fresh CSRF token for a page whose token expired (static/js/webflow.js puts it in place).
FRESH_TOKEN_HEADER = "X-Webflow-CSRF-Token"

UNREACHABLE = "The service is busy right now. Please try again in a moment."


def _unreachable_response() -> Any:
    """503 "busy, try again" while the database cannot be reached. Rendered without the
    site's templates: they read the logged-in user and the nav counts from the database."""
    try:
        db.session.rollback()
    except Exception:  # the connection is gone; the pool replaces it
        db.session.remove()
    if wants_fragment():
        body = (f'<div id="messages" class="wf-messages" aria-live="polite" hx-swap-oob="true">'
                f'<p class="flash error" role="alert">{escape(UNREACHABLE)}</p></div>')
        response = current_app.make_response((body, 503))
        response.headers["HX-Reswap"] = "none"
    else:
        body = (f"<!doctype html><title>Error 503</title><h1>Error 503</h1>"
                f"<p>{escape(UNREACHABLE)}</p>")
        response = current_app.make_response((body, 503))
    response.headers["Retry-After"] = "5"
    return response


def register_shared(app: Flask) -> None:
    """Error pages that fit the site (a lock timeout is 503 "busy", never a 500)."""

    @app.errorhandler(FlowLockFailed)
    def busy(exc: FlowLockFailed) -> Any:
        return _error_response(503, MESSAGES[503])

    @app.errorhandler(FlowRuntimeError)
    def engine_refused(exc: FlowRuntimeError) -> Any:
        """Any other engine refusal (a transition not allowed now, a state it cannot handle):
        409 with the engine's reason, never a bare 500; the transaction was rolled back."""
        return _error_response(409, f"Not possible now: {exc}. Nothing was changed.")

    @app.errorhandler(DBAPIError)
    def database_error(exc: DBAPIError) -> Any:
        if not is_unreachable(exc):
            raise exc
        return _unreachable_response()

    @app.errorhandler(StaleDataError)
    @app.errorhandler(StaleData)
    def stale(exc: Exception) -> Any:
        return _error_response(409, "Someone changed this meanwhile; nothing was saved. "
                                    "Please reload and try again.")

    @app.errorhandler(CSRFError)
    def form_expired(exc: CSRFError) -> Any:
        """A POST without a live session (it expired, or the user logged out in another tab)
        goes to the login form and, after it, back to the page it came from; a logged-in
        user's stale form gets a message that says what to do."""
        if not current_user.is_authenticated:
            if request.endpoint == "auth.login":
                # The login form itself, left open longer than its token lives: no session
                # ended (it said so, dropped the name typed and nested ?next= in ?next=).
                from .auth import expired_login  # auth imports this module

                return expired_login()
            return to_login(coming_from())
        if request.headers.get("HX-Request") == "true":
            # The page's token outlived WTF_CSRF_TIME_LIMIT (an hour): webflow.js puts this
            # fresh one into the page, so the same button works again and nothing typed is
            # lost to a reload. Only the site's own scripts can read a header (no CORS).
            response = _error_response(400, "This page was open a long time, so that was not sent "
                                            "(nothing was changed). Press the button again: it works now.")
            response.headers[FRESH_TOKEN_HEADER] = generate_csrf()
            return response
        return _error_response(400, "This page was open too long or is out of date: reload it "
                                    "and try again. Nothing was changed.")

    @app.errorhandler(PermissionDenied)
    def denied(exc: PermissionDenied) -> Any:
        """The engine's own permission check (a start or a completion by the wrong user)."""
        return _error_response(403, MESSAGES[403])

    for code, text in MESSAGES.items():
        def handler(exc: HTTPException, text: str = text) -> Any:
            if request.path.startswith(url_for("static", filename="")):
                return exc
            if exc.code == 500:  # Flask has logged the exception; the page says nothing of it
                return _error_response(500, text)
            kept = {k: v for k, v in exc.get_headers() if k in KEPT_HEADERS}
            return _error_response(exc.code or 500, _description(exc, text), kept)

        app.register_error_handler(code, handler)

    @app.after_request
    def vary_on_htmx(response: Response) -> Response:
        # A page and its fragment share a URL: caches must keep them apart.
        response.vary.add("HX-Request")
        if request.headers.get("HX-Request") == "true":
            # webflow's own answer: webflow.js swaps an error answer only when it carries
            # this (a proxy's 502/503 page, or the WSGI server's bare 500, never replaces a
            # part of the page and what was typed in it).
            response.headers[ANSWER_HEADER] = "1"
        return response


def coming_from() -> str:
    """The page the request was sent from (for a POST, where the user should come back to;
    for an HTMX GET of a part of a page, a live refresh say, that page: not the part's own
    address, which shown alone after logging in was a bare fragment)."""
    if request.method == "GET" and not wants_fragment():
        return request.full_path if request.query_string else request.path
    for source in (request.headers.get("HX-Current-URL"), request.referrer):
        if source:
            parts = urlsplit(source)
            if parts.netloc in ("", request.host):
                path = parts.path + (f"?{parts.query}" if parts.query else "")
                return safe_next(path, url_for("index"))
    if request.method == "GET":  # a part of a page, sent without saying from which page
        return request.full_path if request.query_string else request.path
    return url_for("index")


def to_login(target: str) -> Response:
    """To the login form, then back to ``target``; an HTMX request gets 401 and HX-Redirect
    (htmx would swap the form into the page)."""
    login = url_for("auth.login", next=target)
    if wants_fragment() or request.headers.get("HX-Request") == "true":
        return Response(status=401, headers={"HX-Redirect": login})
    flash("Your session has ended. Please log in again.", "info")
    return redirect(login)  # type: ignore[return-value]


def _description(exc: HTTPException, default: str) -> str:
    """What the view passed to abort(), or ``default`` when it passed nothing of its own."""
    if exc.description and exc.description != type(exc).description and exc.code != 429:
        return exc.description
    return default
