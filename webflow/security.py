"""What every request and response goes through: proxies, input hygiene, headers, cookies,
login throttling. See the README's "Security" section for what is enforced where.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, abort, request
from flask.sessions import SecureCookieSessionInterface
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from werkzeug.middleware.proxy_fix import ProxyFix

#: Our own static files only: no inline script or style, no eval, no framing by others.
CSP = "; ".join([
    "default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:",
    "font-src 'self'", "connect-src 'self'", "object-src 'none'", "base-uri 'none'",
    "form-action 'self'", "frame-ancestors 'none'",
])
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}
HSTS = "max-age=31536000; includeSubDomains"
#: The bodies our forms send; anything else (JSON above all) is refused before a view runs.
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
WRITES = ("POST", "PUT", "PATCH", "DELETE")


class SessionInterface(SecureCookieSessionInterface):
    """The session cookie is Secure whenever the request came over HTTPS (behind ProxyFix too)."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(super().get_cookie_secure(app) or request.is_secure)


def init_app(app: Flask) -> None:
    """Install the proxy fix, the request checks, the response headers and the login limits."""
    proxies = int(app.config.get("WEBFLOW_PROXY_FIX") or 0)
    if proxies:
        # Trust exactly this many proxies' X-Forwarded-* headers (more would let clients forge them).
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies,  # type: ignore[method-assign]
                                x_host=proxies, x_port=proxies, x_prefix=proxies)
    app.session_interface = SessionInterface()
    app.before_request(refuse_bad_input)
    app.after_request(add_security_headers)
    init_limiter(app)


def refuse_bad_input() -> None:
    """400 for a body that is not a form, or a NUL byte anywhere in the query, form or path."""
    if (request.method in WRITES and request.mimetype not in FORM_TYPES
            and (request.mimetype or request.content_length)):
        abort(400, "Forms are sent form-encoded; other bodies (JSON and the like) are not accepted.")
    # PostgreSQL cannot store NUL in text, and no person types one.
    values = [request.path, *request.args.keys(), *request.args.values()]
    if request.method in WRITES:
        values += [*request.form.keys(), *request.form.values()]
    if any("\x00" in value for value in values):
        abort(400, "The request holds a NUL character.")


def add_security_headers(response: Response) -> Response:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if request.is_secure:
        response.headers.setdefault("Strict-Transport-Security", HSTS)
    return response


# -- login throttling ----------------------------------------------------------------------


def _login_username() -> str:
    return "login-user:" + request.form.get("username", "").strip().lower()[:150]


def _failed(response: Response) -> bool:
    """Only failed attempts count: a login that succeeds redirects (303)."""
    return response.status_code != 303


def init_limiter(app: Flask) -> Limiter:
    """Throttle failed logins per client address and per username (Redis when REDIS_URL is set)."""
    redis_url = app.config.get("REDIS_URL")
    limiter = Limiter(
        get_remote_address, app=app, storage_uri=redis_url or "memory://",
        key_prefix=f"{app.config.get('WEBFLOW_QUEUE_PREFIX', 'webflow')}-limits",
        # A Redis outage must not lock everybody out: count in memory meanwhile.
        swallow_errors=True, in_memory_fallback_enabled=bool(redis_url), headers_enabled=True,
        enabled=app.config.get("RATELIMIT_ENABLED", True),
    )
    limit = app.config["WEBFLOW_LOGIN_LIMIT"]
    view: Any = app.view_functions["auth.login"]
    view = limiter.limit(limit, methods=["POST"], deduct_when=_failed)(view)
    view = limiter.limit(limit, methods=["POST"], deduct_when=_failed, key_func=_login_username)(view)
    app.view_functions["auth.login"] = view
    app.extensions["webflow_limiter"] = limiter
    return limiter
