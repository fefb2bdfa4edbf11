"""The WSGI entry point: ``gunicorn wsgi:app``."""

import gc

from webflow import create_app

app = create_app()
# What is loaded by now (modules, the app, the flows) lives as long as the process: frozen,
# the collector's full passes no longer walk it. Unfrozen, such a pass took about 100 ms on
# the 2-core development machine and landed on a random request (see "Search at a million
# tasks" in the README).
gc.freeze()
