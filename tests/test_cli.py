"""The `flask webflow ...` commands."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from webflow import Flow, create_app, db, flow, this
from webflow.core.checks import FlowCheckWarning
from webflow.models import User

with pytest.warns(FlowCheckWarning):
    class LonelyJoinFlow(Flow):
        """A join no split leads to: `flask webflow check` reports it."""

        start = flow.StartFunction().Next(this.work)
        work = flow.View().Next(this.join)
        join = flow.Join().Next(this.end)
        end = flow.End()


@pytest.fixture
def app(tmp_path):  # type: ignore[no-untyped-def]
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'cli.sqlite'}"})
    with app.app_context():
        db.create_all()
    return app


@pytest.fixture
def runner(app):  # type: ignore[no-untyped-def]
    return app.test_cli_runner()


def test_graph_prints_the_flow_as_dot(runner):
    result = runner.invoke(args=["webflow", "graph", "hello_world"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith('digraph "hello_world" {')
    assert "start -> approve;" in result.output
    assert 'check_approve -> send [label="then"];' in result.output
    assert 'check_approve -> end [label="else"];' in result.output


def test_graph_accepts_a_module_path_and_refuses_an_unknown_flow(runner):
    ok = runner.invoke(args=["webflow", "graph", "webflow.demo.shipment:ShipmentFlow"])
    assert ok.exit_code == 0 and "split_work -> set_carrier;" in ok.output
    bad = runner.invoke(args=["webflow", "graph", "nope"])
    assert bad.exit_code != 0
    assert "'nope' is neither a served flow label" in bad.output


def test_fsm_prints_an_activation_state_machine(runner):
    result = runner.invoke(args=["webflow", "fsm", "ViewActivation"])
    assert result.exit_code == 0, result.output
    edges = set(re.findall(r"(\w+) -> (\w+) \[label=\"(\w+)\"\]", result.output))
    assert ("NEW", "ASSIGNED", "assign") in edges
    assert ("ASSIGNED", "ASSIGNED", "reassign") in edges
    assert ("DONE", "NEW", "undo") in edges
    assert runner.invoke(args=["webflow", "fsm", "Nope"]).exit_code != 0


def test_create_user_with_groups_and_permissions(app, runner):
    result = runner.invoke(args=["webflow", "create-user", "carol", "--password", "pw1",
                                 "--group", "clerks", "--permission", "hello_world.can_start"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        user = db.session.scalar(sa.select(User).where(User.username == "carol"))
        assert user.check_password("pw1") and not user.check_password("pw2")
        assert [g.name for g in user.groups] == ["clerks"]
        assert user.has_perm("hello_world.can_start")
        assert not user.has_perm("hello_world.manage")


def test_demo_loads_users_once(app, runner):
    first = runner.invoke(args=["webflow", "demo"])
    assert first.exit_code == 0, first.output
    assert "alice / demo" in first.output
    assert runner.invoke(args=["webflow", "demo"]).exit_code == 0
    with app.app_context():
        names = db.session.scalars(sa.select(User.username).order_by(User.username)).all()
        assert names == ["admin", "alice", "bob"]
        alice = db.session.scalar(sa.select(User).where(User.username == "alice"))
        bob = db.session.scalar(sa.select(User).where(User.username == "bob"))
        # alice writes hello-world messages, somebody else (bob) approves them.
        assert alice.has_perm("hello_world.can_start") and not alice.has_perm("hello_world.can_approve")
        assert bob.has_perm("hello_world.can_approve")
        assert not alice.has_perm("hello_world.manage")


def test_check_reports_each_served_flow_and_fails_on_an_error(runner):
    ok = runner.invoke(args=["webflow", "check"])
    assert ok.exit_code == 0, ok.output
    assert "hello_world (webflow.demo.helloworld.HelloWorldFlow): no problems found" in ok.output
    bad = runner.invoke(args=["webflow", "check", "test_cli:LonelyJoinFlow"])
    assert bad.exit_code == 1
    assert "error: join: no branch of a Split leads to this Join" in bad.output
    unknown = runner.invoke(args=["webflow", "check", "nope"])
    assert unknown.exit_code != 0 and "nope" in unknown.output


def test_fsm_prints_the_timer_machines(runner):
    for name in ("TimerActivation", "TimeoutActivation"):
        result = runner.invoke(args=["webflow", "fsm", name])
        assert result.exit_code == 0, result.output
        edges = set(re.findall(r"(\w+) -> (\w+) \[label=\"(\w+)\"\]", result.output))
        assert {("NEW", "SCHEDULED", "schedule"), ("SCHEDULED", "DONE", "fire"),
                ("SCHEDULED", "CANCELED", "cancel"), ("DONE", "NEW", "undo")} <= edges


def test_graph_draws_timers_and_boundary_timers(runner):
    result = runner.invoke(args=["webflow", "graph", "hello_world"])
    assert "approve -> approve_timeout [style=dotted, arrowhead=none];" in result.output
    assert "approve_timeout -> escalate;" in result.output
    assert 'approve_timeout [label="\u23f1 Approve: escalate after 2 minutes", shape=circle];' in result.output


def test_fire_timers_fires_the_due_ones(app, runner):
    from datetime import UTC, datetime, timedelta

    from webflow.demo.helloworld import HelloWorldFlow
    from webflow.models import Task

    with app.app_context():
        db.session.add(User(username="admin", is_superuser=True))
        db.session.commit()
        process = HelloWorldFlow.start.run(data={"text": "hi"})
        db.session.execute(sa.update(Task).where(Task.process_id == process.id,
                                                 Task.node_name == "approve_timeout")
                           .values(due=datetime.now(UTC) - timedelta(seconds=1)))
        db.session.commit()
    result = runner.invoke(args=["webflow", "fire-timers"])
    assert result.exit_code == 0 and "1 timer fired." in result.output, result.output
    assert "0 timers fired." in runner.invoke(args=["webflow", "fire-timers"]).output
