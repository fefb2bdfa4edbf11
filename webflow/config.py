"""Settings: defaults in code, overrides from the environment, in one place."""

from __future__ import annotations

import math
import os
import secrets
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .core.transaction import engine_options, normalize_database_url

INSTANCE_DIR = Path(os.environ.get("WEBFLOW_INSTANCE", Path.cwd() / "instance"))


def number(environ: Mapping[str, str], name: str, default: float, *, whole: bool = True,
           low: float = 0, high: float = math.inf, low_open: bool = True) -> Any:
    """A number setting from the environment, refused with a message that names the
    variable when it is no number, not finite, or out of its range."""
    raw = (environ.get(name) or "").strip()
    if not raw:
        return default
    kind = "a whole number" if whole else "a number"
    try:
        value: float = int(raw) if whole else float(raw)
    except ValueError:
        raise ValueError(f"{name} must be {kind}, not {raw[:40]!r}") from None
    too_low = value <= low if low_open else value < low
    if not math.isfinite(value) or too_low or value > high:
        bound = f"greater than {low:g}" if low_open else f"at least {low:g}"
        most = f" and at most {high:g}" if high < math.inf else ""
        raise ValueError(f"{name} must be {kind} {bound}{most}, not {raw[:40]!r}")
    return value


def from_environment() -> dict[str, Any]:
    """The app's configuration read from the environment, with safe defaults."""
    database_url = normalize_database_url(
        os.environ.get("DATABASE_URL") or f"sqlite:///{INSTANCE_DIR / 'webflow.sqlite'}"
    )
    flows = [spec.strip() for spec in os.environ.get("WEBFLOW_FLOWS", "").split(",") if spec.strip()]
    return {
        "WEBFLOW_FLOWS": flows or None,
        # None until create_app decides: required in production, else a development key.
        "SECRET_KEY": os.environ.get("SECRET_KEY") or None,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "SQLALCHEMY_ENGINE_OPTIONS": engine_options(database_url),
        "REDIS_URL": os.environ.get("REDIS_URL") or None,
        "WEBFLOW_QUEUE_PREFIX": os.environ.get("WEBFLOW_QUEUE_PREFIX", "webflow"),
        # Jobs without Redis run in the web process on a background thread ("thread"), or
        # right after the commit in the same thread ("inline", what tests use).
        "WEBFLOW_INLINE_JOBS": os.environ.get("WEBFLOW_INLINE_JOBS", "thread"),
        "WEBFLOW_PAGE_SIZE": number(os.environ, "WEBFLOW_PAGE_SIZE", 25, high=1000),
        # The inbox and queue badges count up to this and then show "999+".
        "WEBFLOW_NAV_COUNT_CAP": number(os.environ, "WEBFLOW_NAV_COUNT_CAP", 999),
        "WEBFLOW_STUCK_JOB_SECONDS": number(os.environ, "WEBFLOW_STUCK_JOB_SECONDS", 900),
        # Jobs on RQ: how often each worker looks for lost jobs, how long a job may be
        # missing from Redis or its worker silent before it is lost, and the Redis socket
        # timeouts of the web process (an enqueue never waits longer).
        "WEBFLOW_RECONCILE_SECONDS": number(os.environ, "WEBFLOW_RECONCILE_SECONDS", 15.0, whole=False),
        "WEBFLOW_JOB_LOST_SECONDS": number(os.environ, "WEBFLOW_JOB_LOST_SECONDS", 30.0, whole=False),
        "WEBFLOW_REDIS_TIMEOUT": number(os.environ, "WEBFLOW_REDIS_TIMEOUT", 1.0, whole=False),
        # -- live updates (README: "Live updates") --
        # Open event streams per web process (each holds a thread of gunicorn's gthread
        # worker: keep it below --threads), the heartbeat that finds pages gone away, how
        # long a stream lives before the browser opens a new one, and how often pages poll
        # while no stream is open (without Redis).
        "WEBFLOW_LIVE_MAX_STREAMS": number(os.environ, "WEBFLOW_LIVE_MAX_STREAMS", 200, low=0, low_open=False),
        "WEBFLOW_LIVE_HEARTBEAT": number(os.environ, "WEBFLOW_LIVE_HEARTBEAT", 15.0, whole=False),
        "WEBFLOW_LIVE_LIFETIME": number(os.environ, "WEBFLOW_LIVE_LIFETIME", 300.0, whole=False),
        "WEBFLOW_LIVE_POLL_SECONDS": number(os.environ, "WEBFLOW_LIVE_POLL_SECONDS", 5.0, whole=False),
        # How long a page waits for an HTMX answer before it says the server did not answer.
        "WEBFLOW_REQUEST_TIMEOUT_MS": number(os.environ, "WEBFLOW_REQUEST_TIMEOUT_MS", 30000),
        # -- security (README: "Security") --
        "WEBFLOW_ENV": os.environ.get("WEBFLOW_ENV", ""),
        # How many proxies in front of the app set X-Forwarded-For/-Proto/-Host (0: none).
        "WEBFLOW_PROXY_FIX": number(os.environ, "WEBFLOW_PROXY_FIX", 0, low=0, low_open=False, high=10),
        "MAX_CONTENT_LENGTH": number(os.environ, "WEBFLOW_MAX_CONTENT_LENGTH", 1024 * 1024),
        "MAX_FORM_MEMORY_SIZE": number(os.environ, "WEBFLOW_MAX_CONTENT_LENGTH", 1024 * 1024),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        # Secure is also set for every request that came over HTTPS (see security.py).
        "SESSION_COOKIE_SECURE": os.environ.get("WEBFLOW_SECURE_COOKIES") == "1",
        # Failed logins allowed per client address and per username (Flask-Limiter syntax).
        "WEBFLOW_LOGIN_LIMIT": os.environ.get("WEBFLOW_LOGIN_LIMIT", "10 per minute;50 per hour"),
        # How often workers (or, without Redis, a thread of each web process) fire due timers;
        # WEBFLOW_TIMER_THREAD: auto (without Redis, not in tests), 1 (always) or 0 (never).
        "WEBFLOW_TIMER_INTERVAL": number(os.environ, "WEBFLOW_TIMER_INTERVAL", 5.0, whole=False),
        "WEBFLOW_TIMER_THREAD": os.environ.get("WEBFLOW_TIMER_THREAD", "auto"),
        # -- email notifications (README: "Notifications") --
        # The address links in emails start with (no request tells a job which host it is).
        "WEBFLOW_BASE_URL": base_url(os.environ.get("WEBFLOW_BASE_URL") or None),
        **mail_settings(os.environ),
    }


def base_url(url: str | None) -> str | None:
    """``WEBFLOW_BASE_URL`` checked: an http(s) address with a host (a path prefix is kept);
    anything else would put broken links in every email."""
    if url is None:
        return None
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in url.strip()):
        raise ValueError(f"WEBFLOW_BASE_URL must look like https://flow.example.com (a path may follow), "
                         f"not {url[:80]!r}")
    return url.strip()


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def mail_settings(environ: Mapping[str, str]) -> dict[str, Any]:
    """Flask-Mailman's settings from ``MAIL_URL`` or the ``MAIL_*`` variables. Without a
    server (``MAIL_SERVER`` unset and no ``MAIL_URL``) notifications are off."""
    settings: dict[str, Any] = {
        "MAIL_SERVER": environ.get("MAIL_SERVER") or None,
        "MAIL_PORT": number(environ, "MAIL_PORT", 25, high=65535),
        "MAIL_USERNAME": environ.get("MAIL_USERNAME") or None,
        "MAIL_PASSWORD": environ.get("MAIL_PASSWORD") or None,
        "MAIL_USE_TLS": _flag(environ.get("MAIL_USE_TLS")),
        "MAIL_USE_SSL": _flag(environ.get("MAIL_USE_SSL")),
        "MAIL_DEFAULT_SENDER": environ.get("MAIL_DEFAULT_SENDER") or "webflow@localhost",
        "MAIL_TIMEOUT": number(environ, "MAIL_TIMEOUT", 10.0, whole=False),
        # Real SMTP also under TESTING (Flask-Mailman would keep test mail in memory).
        "MAIL_BACKEND": environ.get("MAIL_BACKEND") or "smtp",
    }
    if environ.get("MAIL_URL"):
        settings.update(parse_mail_url(environ["MAIL_URL"]))
    return settings


def parse_mail_url(url: str) -> dict[str, Any]:
    """``smtp://user:password@host:port?tls=1`` (STARTTLS) or ``smtps://...`` (TLS from the
    start; also ``?ssl=1``) as Flask-Mailman settings; ``?from=`` sets the sender."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"MAIL_URL is not a valid URL ({exc})") from None
    if port == 0:
        raise ValueError("MAIL_URL's port must be 1 to 65535, not 0")
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError("MAIL_URL must look like smtp://user:password@host:port?tls=1 "
                         f"(or smtps://...), not {parts.scheme or 'no'} scheme with host {parts.hostname!r}")
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    ssl = parts.scheme == "smtps" or _flag(query.get("ssl"))
    settings: dict[str, Any] = {
        "MAIL_SERVER": parts.hostname,
        "MAIL_PORT": port or (465 if ssl else 25),
        "MAIL_USERNAME": unquote(parts.username) if parts.username else None,
        "MAIL_PASSWORD": unquote(parts.password) if parts.password else None,
        "MAIL_USE_SSL": ssl,
        "MAIL_USE_TLS": not ssl and _flag(query.get("tls")),
    }
    if query.get("from"):
        settings["MAIL_DEFAULT_SENDER"] = query["from"]
    return settings


def is_production(config: dict[str, Any]) -> bool:
    """Production: ``WEBFLOW_ENV=production``, or served by gunicorn unless
    ``WEBFLOW_ENV=development`` says otherwise. ``flask run``, the CLI, the worker and the
    tests are development unless told."""
    env = (config.get("WEBFLOW_ENV") or "").lower()
    if env:
        return env == "production"
    return "gunicorn" in sys.modules


def secret_key(config: dict[str, Any]) -> str:
    """The configured SECRET_KEY; in development a key kept in the instance folder."""
    if config.get("SECRET_KEY"):
        return str(config["SECRET_KEY"])
    if is_production(config):
        raise RuntimeError(
            "SECRET_KEY is not set. In production (WEBFLOW_ENV=production, or served by gunicorn) "
            "every process must share one key: set the SECRET_KEY environment variable to a long "
            "random value, e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`."
        )
    return _dev_secret_key()


def _dev_secret_key() -> str:
    """A key kept in the instance folder, so sessions survive a restart in development."""
    path = INSTANCE_DIR / "secret_key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        INSTANCE_DIR.mkdir(parents=True, exist_ok=True)
        key = secrets.token_hex(32)
        path.write_text(key)
        return key
