"""The WSGI entry point: ``gunicorn wsgi:app``."""

from webflow import create_app

app = create_app()
