"""The one place the web app is assembled."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask

from . import config
from .core.context import set_session_provider
from .core.exceptions import FlowRuntimeError
from .core.flow import Flow, import_flow
from .core.transaction import configure_engine
from .extensions import csrf, db, fresh_pool_after_fork, login_manager, migrate

ROOT = Path(__file__).resolve().parent.parent
DEMO_FLOWS = ["webflow.demo.helloworld:HelloWorldFlow", "webflow.demo.shipment:ShipmentFlow",
              "webflow.demo.purchase:PurchaseRequestFlow", "webflow.demo.purchase:PurchasingFlow"]


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: settings from the environment, then ``test_config`` on top."""
    app = Flask(
        __name__,
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
        instance_path=str(config.INSTANCE_DIR),
    )
    app.config.from_mapping(config.from_environment())
    if test_config:
        app.config.from_mapping(test_config)
        if "SQLALCHEMY_DATABASE_URI" in test_config and "SQLALCHEMY_ENGINE_OPTIONS" not in test_config:
            url = config.normalize_database_url(test_config["SQLALCHEMY_DATABASE_URI"])
            app.config["SQLALCHEMY_DATABASE_URI"] = url
            app.config["SQLALCHEMY_ENGINE_OPTIONS"] = config.engine_options(url)
        if test_config.get("MAIL_URL"):
            app.config.update(config.parse_mail_url(test_config["MAIL_URL"]))
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    app.config["SECRET_KEY"] = config.secret_key(app.config)

    db.init_app(app)
    with app.app_context():
        configure_engine(db.engine)
        fresh_pool_after_fork(db.engine)
    set_session_provider(lambda: db.session())
    migrate.init_app(app, db, directory=str(ROOT / "migrations"))
    csrf.init_app(app)
    login_manager.init_app(app)

    # Ids in URLs are checked before any view runs: see lookups.IdConverter.
    from .blueprints.lookups import IdConverter

    app.url_map.converters["int"] = IdConverter

    specs = app.config.get("WEBFLOW_FLOWS") or DEMO_FLOWS
    if isinstance(specs, str):  # was read letter by letter: "cannot import flow 'm'"
        raise FlowRuntimeError("WEBFLOW_FLOWS is a list of flow classes or 'module:ClassName' strings, "
                               f"not the string {specs!r:.80} (write [{specs!r:.80}])")
    flows = [import_flow(spec) for spec in specs]
    app.extensions["webflow_flows"] = _flows_by_label(_with_subprocess_flows(flows))

    from . import jobs

    jobs.init_app(app)

    from . import timers

    timers.init_app(app)

    from . import notifications

    notifications.init_app(app)

    from . import livefeed

    livefeed.init_app(app)

    from .blueprints import register_blueprints

    register_blueprints(app)

    from . import security

    security.init_app(app)

    from .cli import webflow_cli

    app.cli.add_command(webflow_cli)
    return app


def _with_subprocess_flows(flows: list[type[Flow]]) -> list[type[Flow]]:
    """The flows, then the flows their ``Subprocess`` nodes start (at any depth): a child
    process of a flow the app did not serve could not be opened, worked on or repaired
    (its page and tasks were 404, /admin/ did not list it), and its parent waited for it."""
    served = list(flows)
    for flow_class in served:  # grows while it is read: children's children too
        for node in flow_class.nodes():
            child = getattr(node, "start_node", None) if node.task_type == "SUBPROCESS" else None
            if child is not None and child.flow_class not in served:
                served.append(child.flow_class)
    return served


def _flows_by_label(flows: list[type[Flow]]) -> dict[str, type[Flow]]:
    by_label: dict[str, type[Flow]] = {}
    for flow_class in flows:
        other = by_label.setdefault(flow_class.flow_label, flow_class)
        if other is not flow_class:
            raise ValueError(
                f"two flows share the label {flow_class.flow_label!r}: "
                f"{other.path()} and {flow_class.path()}"
            )
    return by_label
