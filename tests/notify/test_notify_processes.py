"""Notifications across processes: a real RQ worker sends them, and two processes noticing
overdue tasks at the same moment send each notice once (PostgreSQL)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from app_support import in_app_context
from flask import Flask
from notify_flows import FLOWS, NoticeFlow
from notify_support import BASE_URL, body_of, notify_app
from redis import Redis

from webflow import Context, db
from webflow.core import unit_of_work
from webflow.core.models import Notification, OverdueNotice, User, as_utc
from webflow.jobqueue import get_queue

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


def user(name: str) -> User:
    return db.session.scalar(sa.select(User).where(User.username == name))


@pytest.fixture
def rq_app(db_url: str, redis_url: str, smtp) -> Iterator[Flask]:  # type: ignore[no-untyped-def]
    prefix = f"webflow-test-{uuid.uuid4().hex[:8]}"
    app = notify_app(db_url, smtp[1], REDIS_URL=redis_url, WEBFLOW_QUEUE_PREFIX=prefix)
    with in_app_context(app):
        yield app
    conn = Redis.from_url(redis_url)
    for key in conn.scan_iter(f"*{prefix}*"):
        conn.delete(key)


def run_worker(app: Flask, port: int) -> subprocess.CompletedProcess[bytes]:
    config = app.config
    env = dict(os.environ, DATABASE_URL=config["SQLALCHEMY_DATABASE_URI"], REDIS_URL=config["REDIS_URL"],
               WEBFLOW_QUEUE_PREFIX=config["WEBFLOW_QUEUE_PREFIX"], WEBFLOW_FLOWS=",".join(FLOWS),
               MAIL_URL=f"smtp://127.0.0.1:{port}", WEBFLOW_BASE_URL=BASE_URL,
               PYTHONPATH=os.pathsep.join([str(HERE), str(ROOT)]))
    return subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "webflow", "worker", "--burst"],
                          cwd=ROOT, env=env, capture_output=True, timeout=120)


@pytest.mark.redis
def test_an_rq_worker_sends_the_notification_after_the_commit(rq_app, smtp):
    inbox, port = smtp
    with pytest.raises(RuntimeError):
        with unit_of_work(db.session()):
            task = NoticeFlow.start.run().get_task(NoticeFlow.review)
            task.activate().assign(user("bob"))
            raise RuntimeError("rolled back")
    assert get_queue(rq_app).count == 0  # a rolled-back transaction queues nothing

    process = NoticeFlow.start.run()
    task = process.get_task(NoticeFlow.review)
    with Context(user=user("mona")):
        task.activate().assign(user("bob"))
    # Committed and queued, not sent: the caller never talked to the mail server.
    assert get_queue(rq_app).count == 1 and inbox.messages == []
    [row] = db.session.scalars(sa.select(Notification)).all()
    assert row.sent is None

    result = run_worker(rq_app, port)
    assert result.returncode == 0, result.stdout.decode()[-2000:]
    [message] = inbox.wait_for(1)
    assert message["To"] == "bob@example.com"
    assert f"{BASE_URL}/flows/notice/{process.id}/review/{task.id}/" in body_of(message)
    db.session.rollback()
    db.session.expire_all()
    assert db.session.get(Notification, row.id).sent is not None
    assert get_queue(rq_app).count == 0


@pytest.mark.postgres
def test_two_processes_noticing_overdue_tasks_at_once_send_each_notice_once(pg_url, smtp, tmp_path):
    from webflow.core import Base, create_engine

    inbox, port = smtp
    engine = create_engine(pg_url)
    Base.metadata.drop_all(engine)
    engine.dispose()
    with in_app_context(notify_app(pg_url, port)):
        tasks = []
        for i in range(12):
            task = NoticeFlow.start.run().get_task(NoticeFlow.review)
            task.activate().assign(user("bob" if i % 2 else "mona"))
            tasks.append(task)
        inbox.messages.clear()  # the assignments' mails
        now = max(as_utc(t.due) for t in tasks) + timedelta(minutes=1)
        go = tmp_path / "go"
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), str(ROOT)]))
        procs = [subprocess.Popen([sys.executable, str(HERE / "fire_in_process.py"), pg_url, str(port),
                                   now.isoformat(), str(go)], env=env, cwd=ROOT,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(2)]
        deadline = time.monotonic() + 60
        while len(list(tmp_path.glob("go.ready-*"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)  # both at the start line: then they go at once
        go.write_text("go")
        for proc in procs:
            output = proc.communicate(timeout=120)[0].decode()
            assert proc.returncode == 0, output[-2000:]
        messages = inbox.wait_for(12)
        assert sorted(m["Subject"] for m in messages) == sorted(
            f"[webflow] Overdue: Review #{t.id}" for t in tasks)
        assert sorted(m["To"] for m in messages) == ["bob@example.com"] * 6 + ["mona@example.com"] * 6
        db.session.rollback()
        assert db.session.scalar(sa.select(sa.func.count()).select_from(OverdueNotice)) == 12
