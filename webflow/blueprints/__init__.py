"""Thin views, one blueprint per thing a person does."""

from flask import Flask, redirect, url_for
from werkzeug.wrappers import Response


def register_blueprints(app: Flask) -> None:
    from . import admin, auth, flows, inbox, live, lookups, tasks, web  # noqa: F401 (tasks adds to flows.bp)

    app.register_blueprint(auth.bp)
    app.register_blueprint(inbox.bp)
    app.register_blueprint(flows.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(live.bp)
    live.register_template_globals(app)
    web.register_shared(app)
    lookups.register_template_globals(app)
    from .. import timefmt

    timefmt.register(app)

    @app.route("/")
    def index() -> Response:
        return redirect(url_for("inbox.inbox"))
