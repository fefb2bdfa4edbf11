"""Thin views, one blueprint per thing a person does."""

from flask import Flask, redirect, url_for
from werkzeug.wrappers import Response


def register_blueprints(app: Flask) -> None:
    from . import auth, inbox

    app.register_blueprint(auth.bp)
    app.register_blueprint(inbox.bp)

    @app.route("/")
    def index() -> Response:
        return redirect(url_for("inbox.inbox"))
