"""Thin views, one blueprint per thing a person does."""

from flask import Flask, redirect, url_for
from werkzeug.wrappers import Response


def register_blueprints(app: Flask) -> None:
    # tasks, collab, action_addresses, search's helpers add endpoints to flows.bp and inbox.bp
    from . import (  # noqa: F401
        action_addresses,
        admin,
        auth,
        collab,
        flows,
        inbox,
        live,
        lookups,
        my_requests,
        saved_filters,
        search,
        settings,
        tasks,
        web,
    )

    app.register_blueprint(auth.bp)
    app.register_blueprint(inbox.bp)
    app.register_blueprint(flows.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(settings.bp)
    app.register_blueprint(search.bp)
    app.register_blueprint(my_requests.bp)
    app.register_blueprint(live.bp)
    live.register_template_globals(app)
    web.register_shared(app)
    lookups.register_template_globals(app)
    collab.register(app)
    from .. import timefmt, wording

    timefmt.register(app)
    wording.register(app)

    @app.route("/")
    def index() -> Response:
        return redirect(url_for("inbox.inbox"))

    @app.route("/favicon.ico")
    def favicon() -> Response:
        """Browsers ask for /favicon.ico on their own: sent on to the static icon (public)."""
        return redirect(url_for("static", filename="favicon.ico"))
