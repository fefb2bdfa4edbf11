"""Django settings for the viewflow side of bench_side_by_side.py (our own, minimal).

The database comes from VF_DATABASE: ``sqlite:///path`` or ``postgresql://user@host:port/name``."""

import os
from urllib.parse import urlsplit

SECRET_KEY = "bench-only"
USE_TZ = True
DEBUG = False
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "viewflow",
    "viewflow.workflow",
    "vfbench",
]

_url = os.environ["VF_DATABASE"]
if _url.startswith("sqlite:///"):
    # WAL and synchronous=NORMAL, as webflow sets its SQLite connections (Django 5.1+).
    DATABASES = {"default": {
        "ENGINE": "django.db.backends.sqlite3", "NAME": _url[len("sqlite:///"):],
        "OPTIONS": {"init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"},
    }}
else:
    _parts = urlsplit(_url)
    DATABASES = {"default": {
        "ENGINE": "django.db.backends.postgresql", "NAME": _parts.path.lstrip("/"),
        "USER": _parts.username or "postgres", "HOST": _parts.hostname or "127.0.0.1",
        "PORT": str(_parts.port or 5432),
    }}
