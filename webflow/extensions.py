"""Flask extensions, created unbound; ``create_app`` binds them."""

import os
import weakref

from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy.engine import Engine

from .core.models import Base

# Flask-SQLAlchemy works on the engine core's own metadata: one schema for everyone.
db = SQLAlchemy(metadata=Base.metadata)
login_manager = LoginManager()
csrf = CSRFProtect()
migrate = Migrate()

_engines: weakref.WeakSet[Engine] = weakref.WeakSet()


def fresh_pool_after_fork(engine: Engine) -> None:
    """Give a forked child (gunicorn worker, RQ work horse) its own connections.

    The child drops the pool it inherited without closing those connections, which still
    belong to the parent; it then opens its own on first use (SQLAlchemy's recipe for
    ``os.fork``).
    """
    _engines.add(engine)


def _dispose_pools_in_child() -> None:
    for engine in list(_engines):
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_dispose_pools_in_child)
