"""``flask webflow ...`` commands."""

from __future__ import annotations

import math
import unicodedata

import click
import sqlalchemy as sa
from flask import current_app
from flask.cli import with_appcontext

from .core.exceptions import FlowRuntimeError
from .core.flow import Flow, import_flow
from .core.fsm import state_machine_dot
from .core.graph import flow_dot
from .extensions import db
from .models import Group, User


@click.group("webflow")
def webflow_cli() -> None:
    """Workflow engine commands."""


#: Tables every command that reads or writes rows needs.
SCHEMA_TABLES = ("user", "process", "task")


def require_schema() -> None:
    """Stop with a one-line error (exit 1) when the database cannot be reached, has no
    webflow tables, or is at another migration revision than this code's."""
    where = db.engine.url.render_as_string(hide_password=True)
    try:
        with db.engine.connect() as conn:
            inspector = sa.inspect(conn)
            missing = [name for name in SCHEMA_TABLES if not inspector.has_table(name)]
            stored = (list(conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalars())
                      if not missing and inspector.has_table("alembic_version") else [])
    except sa.exc.SQLAlchemyError as exc:
        reason = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [type(exc).__name__])[0]
        raise click.ClickException(f"cannot use the database {where}: {reason}") from None
    if missing:
        raise click.ClickException(f"the database {where} has no webflow tables ({', '.join(missing)} "
                                   "missing): run `flask --app wsgi db upgrade` first")
    if stored:
        from alembic.script import ScriptDirectory

        heads = set(ScriptDirectory(current_app.extensions["migrate"].directory).get_heads())
        if set(stored) != heads:
            raise click.ClickException(
                f"the database {where} is at migration revision {', '.join(stored)}, this code needs "
                f"{', '.join(sorted(heads))}: run `flask --app wsgi db upgrade` (with the code that "
                "has that revision, if it is newer)")


def find_flow(name: str) -> type[Flow]:
    flows = current_app.extensions["webflow_flows"]
    if name in flows:
        return flows[name]  # type: ignore[no-any-return]
    try:
        return import_flow(name)
    except FlowRuntimeError as exc:
        raise click.BadParameter(
            f"{name!r} is neither a served flow label ({', '.join(sorted(flows))}) "
            f"nor an importable 'module:Class'"
        ) from exc
    except Exception as exc:  # the module was found but failed while it was imported
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        raise click.BadParameter(f"importing {name!r} failed: {reason}") from exc


@webflow_cli.command("graph")
@click.argument("flow")
@with_appcontext
def graph_command(flow: str) -> None:
    """Print FLOW (a label or module:Class) as Graphviz DOT."""
    click.echo(flow_dot(find_flow(flow)))


@webflow_cli.command("check")
@click.argument("flows", nargs=-1)
@with_appcontext
def check_command(flows: tuple[str, ...]) -> None:
    """Report what in FLOWS (labels or module:Class; default: every served flow) can strand
    a process. Exits 1 when any flow has an error."""
    from .core.checks import Level, check_flow

    chosen = [find_flow(name) for name in flows] or list(current_app.extensions["webflow_flows"].values())
    errors = 0
    for flow_class in chosen:
        findings = check_flow(flow_class)
        errors += sum(f.level == Level.ERROR for f in findings)
        click.echo(f"{flow_class.flow_label} ({flow_class.path()}): "
                   + ("no problems found" if not findings else f"{len(findings)} finding(s)"))
        for finding in findings:
            click.echo(f"  {finding}")
    if errors:
        raise SystemExit(1)


@webflow_cli.command("fsm")
@click.argument("activation")
def fsm_command(activation: str) -> None:
    """Print an activation class's state machine as DOT (e.g. ViewActivation)."""
    from .core import activation as base
    from .core import nodes

    cls = getattr(nodes, activation, None) or getattr(base, activation, None)
    if not (isinstance(cls, type) and issubclass(cls, base.Activation)):  # not STATUS, not __class__
        raise click.BadParameter(f"no activation class {activation!r}")
    click.echo(state_machine_dot(cls))


@webflow_cli.command("init-db")
@with_appcontext
def init_db_command() -> None:
    """Create every table (development; production uses `flask db upgrade`)."""
    db.create_all()
    click.echo("Database ready.")


@webflow_cli.command("search-index")
@with_appcontext
def search_index_command() -> None:
    """Write every process's search document (after `flask db upgrade` to 0010_search on a
    database that already has processes, or after rows were written in plain SQL)."""
    from .core.search import rebuild_index

    require_schema()
    click.echo(f"Indexed {rebuild_index(db.session()):,} processes.")


def name_problem(what: str, name: str, limit: int = 150) -> str | None:
    """Why a username or group name is refused (None: a good one)."""
    if not name.strip():
        return f"{what} must not be empty"
    if name != name.strip():
        return f"{what} must not begin or end with a space"
    if len(name) > limit:
        return f"{what} has at most {limit} characters"
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp") for c in name):
        return f"{what} must not hold control characters"
    return None


@webflow_cli.command("create-user")
@click.argument("username")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.option("--superuser/--no-superuser", default=None,
              help="Give (or take away) every permission; an existing user keeps theirs unless told.")
@click.option("--group", "groups", multiple=True, help="Add to this group (created if new).")
@click.option("--permission", "permissions", multiple=True, help="Grant a permission.")
@with_appcontext
def create_user_command(username: str, password: str, superuser: bool | None,
                        groups: tuple[str, ...], permissions: tuple[str, ...]) -> None:
    """Create a user, or update the one with this USERNAME (its password, and the groups and
    permissions given; nothing is taken away unless told)."""
    problem = name_problem("username", username) or next(
        (p for p in (name_problem("a group name", g) for g in groups) if p), None)
    if problem is None and not password:
        problem = "the password must not be empty"
    if problem is None and any(not p.strip() or "\x00" in p for p in permissions):
        problem = "a permission must not be empty"
    if problem:
        raise click.BadParameter(problem)
    require_schema()
    user = db.session.scalar(sa.select(User).where(User.username == username))
    if user is None:
        user = User(username=username, is_superuser=False)
        db.session.add(user)
    user.set_password(password)
    if superuser is not None:
        user.is_superuser = superuser
    user.permissions = sorted(set(user.permissions or []) | set(permissions))
    for name in groups:
        group = db.session.scalar(sa.select(Group).where(Group.name == name))
        if group is None:
            group = Group(name=name, permissions=[])
            db.session.add(group)
        if group not in user.groups:
            user.groups.append(group)
    db.session.commit()
    click.echo(f"User {username} saved.")


@webflow_cli.command("demo")
@with_appcontext
def demo_command() -> None:
    """Create the schema (by migration) and the demo users (admin, alice, bob / 'demo')."""
    from flask_migrate import upgrade

    from .demo.users import load_demo

    inspector = sa.inspect(db.engine)
    if not inspector.has_table("process") or inspector.has_table("alembic_version"):
        upgrade()  # a fresh database gets the real schema, an older one the new revisions
    for line in load_demo():
        click.echo(line)


def _interval(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    if value is not None and not (math.isfinite(value) and value > 0):
        raise click.BadParameter("give a number of seconds greater than 0")
    return value


@webflow_cli.command("fire-timers")
@click.option("--every", type=float, default=None, callback=_interval,
              help="Keep firing, every this many seconds (at least 0.5).")
@with_appcontext
def fire_timers_command(every: float | None) -> None:
    """Fire the due timers once (for cron), or every few seconds with --every."""
    import time

    from .timers import fire_in_app

    require_schema()
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    while True:
        fired = fire_in_app(app)
        click.echo(f"{fired} timer{'s' if fired != 1 else ''} fired.")
        if every is None:
            return
        time.sleep(max(every, 0.5))


@webflow_cli.command("worker")
@click.option("--burst", is_flag=True, help="Stop when the queues are empty.")
@click.option("--queue", "queues", multiple=True, help="Queue to listen on (default: default).")
@with_appcontext
def worker_command(burst: bool, queues: tuple[str, ...]) -> None:
    """Run an RQ worker for job tasks (needs REDIS_URL)."""
    from .worker import run_worker

    require_schema()
    db.engine.dispose()  # the check's connection must not be inherited by forked job horses
    run_worker(current_app._get_current_object(), list(queues) or ["default"], burst)  # type: ignore[attr-defined]
