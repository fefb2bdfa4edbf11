"""A forked child (gunicorn worker, RQ work horse) never uses its parent's connections."""

from __future__ import annotations

import multiprocessing
from typing import Any

import sqlalchemy as sa
from flask import Flask

from webflow import create_app, db

BACKEND_PID = sa.text("SELECT pg_backend_pid()")


def backend_pid_in_child(app: Flask, results: Any) -> None:
    with app.app_context():
        results.put(db.session.scalar(BACKEND_PID))
        db.session.remove()


def test_a_forked_child_opens_its_own_connection(pg_url: str) -> None:
    app = create_app({"SQLALCHEMY_DATABASE_URI": pg_url, "SECRET_KEY": "test", "TESTING": True})
    ctx = multiprocessing.get_context("fork")
    with app.app_context():
        parent_pid = db.session.scalar(BACKEND_PID)
        db.session.commit()  # the connection goes back to the pool, open, as between requests

        results = ctx.Queue()
        child = ctx.Process(target=backend_pid_in_child, args=(app, results))
        child.start()
        child_pid = results.get(timeout=30)
        child.join(timeout=30)
        assert child.exitcode == 0

        assert child_pid != parent_pid
        # The parent's pooled connection is still the same, and still works.
        assert db.session.scalar(BACKEND_PID) == parent_pid
        db.session.remove()
        db.engine.dispose()
