"""The graph's clock marks, and the web process's timer thread (on only when asked in tests)."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from app_support import in_app_context, make_test_app
from web_support import hello, task_of

from webflow import Flow, create_app, db, flow, this
from webflow.demo.helloworld import HelloWorldFlow
from webflow.graph_svg import flow_svg
from webflow.models import Task


class ClockFlow(Flow):
    start = flow.StartFunction().Next(this.wait)
    wait = flow.Timer(timedelta(hours=1)).Next(this.end)
    end = flow.End()


def test_the_graph_draws_a_timer_and_a_boundary_timer_on_its_task_border():
    svg = str(flow_svg(HelloWorldFlow))
    boundary = re.search(r'<g class="wf-node wf-node-timeout" id="wf-node-approve_timeout".*?</g>', svg)
    assert boundary and "wf-clock-hand" in boundary.group(0)
    task = re.search(r'id="wf-node-approve".*?<rect class="wf-shape" x="([\d.]+)" y="([\d.]+)" '
                     r'width="([\d.]+)" height="([\d.]+)"', svg)
    circle = re.search(r'<circle class="wf-shape" cx="([\d.]+)" cy="([\d.]+)"', boundary.group(0))
    assert task and circle
    x, y, w, h = map(float, task.groups())
    cx, cy = map(float, circle.groups())
    assert x < cx < x + w and cy == y + h  # on the task's lower border
    assert 'data-source="approve_timeout" data-target="escalate"' in svg
    timer = re.search(r'id="wf-node-wait".*?</g>', str(flow_svg(ClockFlow)))
    assert timer and "wf-clock-hand" in timer.group(0)


def test_tests_get_no_timer_thread_unless_they_ask(db_url) -> None:  # type: ignore[no-untyped-def]
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": db_url})
    with app.app_context():
        db.create_all()
    app.test_client().get("/login")
    assert "webflow_timer_thread" not in app.extensions
    with in_app_context(app):
        db.drop_all()


def test_the_web_process_thread_fires_due_timers_when_asked(db_url) -> None:  # type: ignore[no-untyped-def]
    app = make_test_app(db_url, [HelloWorldFlow], {"alice": ["hello_world.can_start"]}, "pw",
                        WEBFLOW_TIMER_THREAD="1", WEBFLOW_TIMER_INTERVAL=0.2)
    with in_app_context(app):
        from webflow.models import User

        db.session.add(User(username="admin", is_superuser=True))
        db.session.commit()
        approve = task_of(hello("waiting", by="alice"), "approve")
        # the escalation's timer is due already
        db.session.execute(sa.update(Task).where(Task.node_name == "approve_timeout")
                           .values(due=datetime.now(UTC) - timedelta(seconds=1)))
        db.session.commit()
        app.test_client().get("/login")  # the first request starts the thread
        thread = app.extensions["webflow_timer_thread"]
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                db.session.commit()
                db.session.expire_all()
                if db.session.get(Task, approve.id).status.value == "CANCELED":
                    break
                time.sleep(0.1)
            assert db.session.get(Task, approve.id).status.value == "CANCELED"
            assert task_of(approve.process, "escalate").owner.username == "admin"
        finally:
            thread.stop()
        assert not thread.thread.is_alive()
