"""Notifications whose turn to be sent comes after the world moved on: the mail server was
down, and meanwhile the task was canceled, finished or given to someone else, or the person
was deactivated or cleared their address. Nothing untrue is sent, and nothing is retried
forever; what is still true goes out, once. Also: mail settings with bad values."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from app_support import in_app_context
from flask import Flask
from notify_flows import NoticeFlow
from notify_support import SMTPInbox, notify_app

from webflow import STATUS, Context, db, fire_due_timers
from webflow.config import mail_settings
from webflow.core import unit_of_work
from webflow.core.models import Notification, User, as_utc
from webflow.notifications import MAX_ATTEMPTS, deliver, mail, requeue_unsent
from webflow.signals import comment_posted


@pytest.fixture
def mail_down(db_url: str, smtp: tuple[SMTPInbox, int]) -> Iterator[Flask]:
    """The app with its mail server unreachable (nobody listens on that port)."""
    port = smtp[1]
    with in_app_context(notify_app(db_url, port + 1 if port < 65535 else port - 1)) as app:
        yield app


def server_back(app: Flask, smtp: tuple[SMTPInbox, int]) -> int:
    """The server is back and the retry time has come: the timer pass queues what waits."""
    app.config.update(MAIL_PORT=smtp[1])
    mail.init_app(app)
    db.session.rollback()
    db.session.execute(sa.update(Notification).values(retry_at=Notification.created))
    db.session.commit()
    return requeue_unsent(app)


def rows() -> list[Notification]:
    db.session.rollback()
    db.session.expire_all()
    return list(db.session.scalars(sa.select(Notification).order_by(Notification.id)))


def assigned_to_bob(user):  # type: ignore[no-untyped-def]
    task = NoticeFlow.start.run().get_task(NoticeFlow.review)
    with Context(user=user("mona")):
        task.activate().assign(user("bob"))
    [row] = rows()
    assert row.sent is None and row.error  # the server was down: kept for later
    return task


def given_up(row: Notification, words: str) -> None:
    assert row.sent is None and row.attempts >= MAX_ATTEMPTS and words in (row.error or ""), row.error


def test_an_assignment_canceled_before_its_mail_went_out_is_not_sent(mail_down, smtp, user, inbox):
    """The retry sent "Assigned to you" for a task that was canceled meanwhile."""
    task = assigned_to_bob(user)
    task.process.cancel()  # a manager cancels the request
    db.session.refresh(task)
    assert task.status == STATUS.CANCELED
    assert server_back(mail_down, smtp) == 1
    assert inbox.messages == []
    [row] = rows()
    given_up(row, "canceled")
    assert requeue_unsent(mail_down) == 0 and deliver(row.id).startswith("skipped")  # never again
    assert inbox.messages == []


def test_a_task_given_to_someone_else_meanwhile_is_not_sent_to_the_first(mail_down, smtp, user, inbox):
    task = assigned_to_bob(user)
    with Context(user=user("mona")):
        task.activate().reassign(user("mona"))  # mona takes it herself: she is told nothing
    server_back(mail_down, smtp)
    assert inbox.messages == []
    given_up(rows()[0], "someone else")


def test_an_overdue_task_finished_before_its_mail_went_out_is_not_sent(mail_down, smtp, user, inbox):
    task = NoticeFlow.start.run().get_task(NoticeFlow.review)
    with Context(user=user("bob")):
        task.activate().assign(user("bob"))  # took it himself: no mail
    fire_due_timers(now=as_utc(task.due) + timedelta(minutes=1))
    [row] = rows()
    assert row.kind == "overdue" and row.sent is None
    with Context(user=user("bob")):
        activation = task.activate()
        activation.prepare(user=user("bob"))
        activation.done()
    server_back(mail_down, smtp)
    assert inbox.messages == []
    given_up(rows()[0], "finished")


@pytest.mark.parametrize("change", ["inactive", "no address", "turned off"])
def test_a_person_who_no_longer_wants_it_gets_nothing(mail_down, smtp, user, inbox, change: str):
    from webflow.core.models import NotificationSetting

    assigned_to_bob(user)
    bob = user("bob")
    if change == "inactive":
        bob.is_active = False
    elif change == "no address":
        bob.email = None
    else:
        db.session.add(NotificationSetting(user_id=bob.id, assigned=False))
    db.session.commit()
    server_back(mail_down, smtp)
    assert inbox.messages == []
    given_up(rows()[0], "no longer wants it")


def test_a_changed_address_gets_what_is_still_true_once(mail_down, smtp, user, inbox):
    assigned_to_bob(user)
    db.session.execute(sa.update(User).where(User.username == "bob").values(email="bob@new.example"))
    db.session.commit()
    assert server_back(mail_down, smtp) == 1
    [message] = inbox.messages
    assert message["X-Envelope-To"] == "bob@new.example"
    [row] = rows()
    assert row.sent is not None and deliver(row.id).startswith("skipped")
    assert len(inbox.messages) == 1


def test_a_mention_on_a_task_canceled_meanwhile_still_goes_out(mail_down, smtp, user, inbox):
    """A comment was made: that stays true whatever became of the task."""
    process = NoticeFlow.start.run()
    task = process.get_task(NoticeFlow.review)
    with unit_of_work(db.session()):
        comment = SimpleNamespace(text="@bob look", author=user("alice"))
        comment_posted.send(NoticeFlow, process=process, task=task, comment=comment, mentions=[user("bob")])
    process.cancel()
    server_back(mail_down, smtp)
    [message] = inbox.messages
    assert message["To"] == "bob@example.com" and "mentioned you" in message["Subject"]


# -- settings with bad values ---------------------------------------------------------------------


@pytest.mark.parametrize(("environ", "words"), [
    ({"MAIL_SERVER": "mail.example.com", "MAIL_PORT": "smtp"}, "MAIL_PORT"),
    ({"MAIL_SERVER": "mail.example.com", "MAIL_PORT": "0"}, "MAIL_PORT"),
    ({"MAIL_SERVER": "mail.example.com", "MAIL_PORT": "70000"}, "MAIL_PORT"),
    ({"MAIL_SERVER": "mail.example.com", "MAIL_TIMEOUT": "soon"}, "MAIL_TIMEOUT"),
    ({"MAIL_SERVER": "mail.example.com", "MAIL_TIMEOUT": "nan"}, "MAIL_TIMEOUT"),
    ({"MAIL_SERVER": "mail.example.com", "MAIL_TIMEOUT": "-1"}, "MAIL_TIMEOUT"),
    ({"MAIL_URL": "smtp://mail.example.com:0"}, "MAIL_URL"),
])
def test_bad_mail_settings_are_refused_naming_the_variable(environ: dict[str, str], words: str) -> None:
    """``MAIL_PORT=smtp`` was "invalid literal for int() with base 10"; port 0 and a
    negative or NaN timeout were taken, to fail at every send."""
    with pytest.raises(ValueError, match=words):
        mail_settings(environ)


def test_bad_numbers_in_the_environment_are_refused_naming_the_variable(monkeypatch) -> None:
    from webflow.config import from_environment

    for name, value in [("WEBFLOW_PAGE_SIZE", "0"), ("WEBFLOW_PAGE_SIZE", "many"),
                        ("WEBFLOW_TIMER_INTERVAL", "nan"), ("WEBFLOW_MAX_CONTENT_LENGTH", "1MB")]:
        monkeypatch.setenv(name, value)
        with pytest.raises(ValueError, match=name):
            from_environment()
        monkeypatch.delenv(name)
    assert from_environment()["WEBFLOW_PAGE_SIZE"] == 25


# -- addresses ------------------------------------------------------------------------------------


def test_an_address_smtp_cannot_carry_is_refused_an_international_domain_is_not(smtp_app, inbox, user):
    """"bób@example.com" was accepted; its mail went out to "=?utf-8?q?b=C3=B3b?=@example.com",
    someone else's mailbox or none, five times."""
    from web_support import AuthActions

    bob = AuthActions(smtp_app).enter_as("bob")
    response = bob.post("/settings/notifications", {"email": "b\u00f3b@example.com", "assigned": "y"})
    assert response.status_code == 422 and "plain ASCII" in response.get_data(as_text=True)
    db.session.expire_all()
    assert user("bob").email == "bob@example.com"
    response = bob.post("/settings/notifications", {"email": "bob@ex\u00e4mple.com", "assigned": "y"})
    assert response.status_code == 303
    task = NoticeFlow.start.run().get_task(NoticeFlow.review)
    with Context(user=user("mona")):
        task.activate().assign(user("bob"))
    [message] = inbox.messages
    assert message["X-Envelope-To"] == "bob@xn--exmple-cua.com"


class RefusingInbox(SMTPInbox):
    """A server that knows no ``bob@example.com`` (550) and is busy for ``mona`` (450)."""

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]
        if address == "bob@example.com":
            return "550 5.1.1 no such user here"
        if address == "mona@example.com":
            return "450 4.2.1 mailbox busy, try later"
        envelope.rcpt_tos.append(address)
        return "250 OK"


def test_an_address_refused_for_good_is_given_up_at_once_a_busy_one_is_retried(db_url, user):
    """A 550 was tried five times over an hour, each a failed job with a traceback."""
    from aiosmtpd.controller import Controller
    from notify_support import free_port

    refusing, port = RefusingInbox(), free_port()
    controller = Controller(refusing, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        with in_app_context(notify_app(db_url, port)):
            for name in ("bob", "mona"):
                task = NoticeFlow.start.run().get_task(NoticeFlow.review)
                task.activate().assign(user(name))  # no actor: both are told
            bob_row, mona_row = rows()
            given_up(bob_row, "550")
            assert mona_row.sent is None and mona_row.attempts == 1 and "450" in (mona_row.error or "")
            assert deliver(bob_row.id).startswith("skipped")
    finally:
        controller.stop()
    assert refusing.messages == []


@pytest.mark.parametrize("url", ["https://", "ftp://flow.example.com", "http://flow example.com", "/app"])
def test_a_base_url_that_makes_broken_links_is_refused(monkeypatch, url: str) -> None:
    """"https://" made every mail's link "https:///flows/..."; "ftp://x" became "http://x"."""
    from webflow.config import from_environment

    monkeypatch.setenv("WEBFLOW_BASE_URL", url)
    with pytest.raises(ValueError, match="WEBFLOW_BASE_URL"):
        from_environment()
    monkeypatch.setenv("WEBFLOW_BASE_URL", "https://flow.example.com/app")
    assert from_environment()["WEBFLOW_BASE_URL"] == "https://flow.example.com/app"
