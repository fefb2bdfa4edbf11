"""Settings: defaults in code, overrides from the environment, in one place."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from .core.transaction import engine_options, normalize_database_url

INSTANCE_DIR = Path(os.environ.get("WEBFLOW_INSTANCE", Path.cwd() / "instance"))


def from_environment() -> dict[str, Any]:
    """The app's configuration read from the environment, with safe defaults."""
    database_url = normalize_database_url(
        os.environ.get("DATABASE_URL") or f"sqlite:///{INSTANCE_DIR / 'webflow.sqlite'}"
    )
    flows = [spec.strip() for spec in os.environ.get("WEBFLOW_FLOWS", "").split(",") if spec.strip()]
    return {
        "WEBFLOW_FLOWS": flows or None,
        "SECRET_KEY": os.environ.get("SECRET_KEY") or _dev_secret_key(),
        "SQLALCHEMY_DATABASE_URI": database_url,
        "SQLALCHEMY_ENGINE_OPTIONS": engine_options(database_url),
        "REDIS_URL": os.environ.get("REDIS_URL") or None,
        "WEBFLOW_QUEUE_PREFIX": os.environ.get("WEBFLOW_QUEUE_PREFIX", "webflow"),
        # Jobs without Redis run in the web process on a background thread ("thread"), or
        # right after the commit in the same thread ("inline", what tests use).
        "WEBFLOW_INLINE_JOBS": os.environ.get("WEBFLOW_INLINE_JOBS", "thread"),
        "WEBFLOW_PAGE_SIZE": int(os.environ.get("WEBFLOW_PAGE_SIZE", "25")),
        # The inbox and queue badges count up to this and then show "999+".
        "WEBFLOW_NAV_COUNT_CAP": int(os.environ.get("WEBFLOW_NAV_COUNT_CAP", "999")),
        "WEBFLOW_STUCK_JOB_SECONDS": int(os.environ.get("WEBFLOW_STUCK_JOB_SECONDS", "900")),
        # How often workers (or, without Redis, a thread of each web process) fire due timers;
        # WEBFLOW_TIMER_THREAD: auto (without Redis, not in tests), 1 (always) or 0 (never).
        "WEBFLOW_TIMER_INTERVAL": float(os.environ.get("WEBFLOW_TIMER_INTERVAL", "5")),
        "WEBFLOW_TIMER_THREAD": os.environ.get("WEBFLOW_TIMER_THREAD", "auto"),
    }


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
