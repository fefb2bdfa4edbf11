"""Email notifications against a real SMTP server, on SQLite and PostgreSQL.

Jobs run inline here (after the commit, in the caller's thread): when a call returns, what
it was going to send has reached the server, so "none" is checked at once. The RQ path has
its own test in test_notify_worker.py.
"""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from app_support import in_app_context
from notify_flows import AutoAssignFlow, BrokenAfterAssignFlow, NoticeFlow
from notify_support import BASE_URL, body_of, notify_app

from webflow import STATUS, Context, db, fire_due_timers
from webflow.core import unit_of_work
from webflow.core.models import Notification, NotificationSetting, OverdueNotice, as_utc
from webflow.signals import comment_posted, task_assigned, task_delegated


def review_task(process):  # type: ignore[no-untyped-def]
    return process.get_task(NoticeFlow.review)


def sent_rows() -> list[Notification]:
    db.session.rollback()
    return list(db.session.scalars(sa.select(Notification).order_by(Notification.id)))


# -- assigned --------------------------------------------------------------------------------------


def test_a_manager_assigning_a_task_mails_the_new_owner_once(smtp_app, inbox, user):
    process = NoticeFlow.start.run()
    task = review_task(process)
    with Context(user=user("mona")):
        task.activate().assign(user("bob"))
    [message] = inbox.messages
    assert message["To"] == "bob@example.com" and message["X-Envelope-To"] == "bob@example.com"
    assert message["Subject"] == f"[webflow] Assigned to you: Review #{task.id}"
    text = body_of(message)
    assert "mona assigned a task to you." in text
    url = f"{BASE_URL}/flows/notice/{process.id}/review/{task.id}/"
    assert url in text and f'href="{url}"' in body_of(message, "html")
    [row] = sent_rows()
    assert row.sent is not None and row.attempts == 1 and row.kind == "assigned"

    with Context(user=user("mona")):
        task.activate().reassign(user("mona"))  # mona gives it to herself: no mail
    assert len(inbox.messages) == 1


def test_reassigning_mails_the_new_owner(smtp_app, inbox, user):
    process = NoticeFlow.start.run()
    task = review_task(process)
    task.activate().assign(user("carol"))  # no email address: nothing sent, nothing fails
    with Context(user=user("mona")):
        task.activate().reassign(user("bob"))
    assert [m["To"] for m in inbox.messages] == ["bob@example.com"]
    assert "mona assigned a task to you." in body_of(inbox.messages[0])


def test_taking_a_task_yourself_sends_nothing(smtp_app, inbox, user):
    task = review_task(NoticeFlow.start.run())
    with Context(user=user("bob")):
        task.activate().assign(user("bob"))
    assert task.owner.username == "bob"
    assert inbox.messages == [] and sent_rows() == []


def test_assignment_at_creation_mails_the_assignee(smtp_app, inbox, user):
    process = AutoAssignFlow.start.run(approver="bob")
    task = process.get_task(AutoAssignFlow.approve)
    assert task.status == STATUS.ASSIGNED
    [message] = inbox.messages
    assert message["To"] == "bob@example.com"
    assert message["Subject"] == f"[webflow] Assigned to you: Approve #{task.id}"
    assert "A task was assigned to you." in body_of(message)


def test_a_rolled_back_transaction_sends_nothing(smtp_app, inbox, user):
    task = review_task(NoticeFlow.start.run())
    with pytest.raises(RuntimeError, match="changed my mind"):
        with unit_of_work(db.session()):
            task.activate().assign(user("bob"))
            raise RuntimeError("changed my mind")
    assert inbox.messages == [] and sent_rows() == []
    db.session.refresh(task)
    assert task.owner_id is None

    with pytest.raises(RuntimeError):
        with unit_of_work(db.session()):
            AutoAssignFlow.start.run(approver="bob")
            raise RuntimeError("not this one either")
    assert inbox.messages == [] and sent_rows() == []


def test_an_assignment_rolled_back_with_its_savepoint_sends_nothing(smtp_app, inbox, user):
    with Context(propagate_exception=False):
        process = BrokenAfterAssignFlow.start.run()
    handler = process.get_task(BrokenAfterAssignFlow.prepare_it)
    assert handler.status == STATUS.DONE
    approve = process.get_task(BrokenAfterAssignFlow.approve)
    assert (approve.status, approve.owner_id) == (STATUS.NEW, None)  # the assignment is gone
    assert inbox.messages == [] and sent_rows() == []


def test_a_user_who_turned_assignments_off_gets_none(smtp_app, inbox, user):
    db.session.add(NotificationSetting(user_id=user("bob").id, assigned=False))
    db.session.commit()
    task = review_task(NoticeFlow.start.run())
    with Context(user=user("mona")):
        task.activate().assign(user("bob"))
    assert inbox.messages == [] and sent_rows() == []
    # ... but still hears of the other kinds
    with unit_of_work(db.session()):
        task_delegated.send(NoticeFlow, process=task.process, task=task, user=user("bob"),
                            by=user("mona"), note="")
    assert [m["Subject"].split(":")[0] for m in inbox.messages] == ["[webflow] Delegated to you"]


def test_without_mail_settings_nothing_is_queued_and_nothing_fails(db_url, smtp, user):
    inbox, _ = smtp
    with in_app_context(notify_app(db_url, None)) as app:
        assert app.config["MAIL_SERVER"] is None
        process = NoticeFlow.start.run()
        with Context(user=user("mona")):
            review_task(process).activate().assign(user("bob"))
        assert fire_due_timers(now=as_utc(review_task(process).due) + timedelta(minutes=1)) == 0
        assert sent_rows() == []
    assert inbox.messages == []


# -- delegated and mentioned (their senders live in the collaboration features) ----------------------


def test_a_delegation_mails_the_new_owner_once_with_the_note_escaped(smtp_app, inbox, user):
    process = NoticeFlow.start.run()
    task = review_task(process)
    with Context(user=user("bob")):
        task.activate().assign(user("bob"))
    note = 'Please check <script>alert("x")</script> & the totals'
    with unit_of_work(db.session()):
        task.owner = user("mona")
        # Delegation sends both signals; the mail is the delegation's, with its note.
        task_assigned.send(NoticeFlow, process=process, task=task, user=user("mona"), by=user("bob"),
                           reason="delegate")
        task_delegated.send(NoticeFlow, process=process, task=task, user=user("mona"), by=user("bob"),
                            note=note)
    [message] = inbox.messages
    assert message["To"] == "mona@example.com"
    assert message["Subject"] == f"[webflow] Delegated to you: Review #{task.id}"
    assert "bob delegated a task to you." in body_of(message) and note in body_of(message)
    html = body_of(message, "html")
    assert "<script>" not in html and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; the totals" in html


def test_a_delegation_to_a_substitute_sends_one_mail_the_delegations(smtp_app, inbox, user):
    process = NoticeFlow.start.run()
    task = review_task(process)
    task.activate().assign(user("bob"))
    inbox.messages.clear()
    with unit_of_work(db.session()):
        # bob delegates to carol, who is away: mona, her substitute, gets the task.
        task.owner = user("mona")
        db.session.flush()
        task_assigned.send(NoticeFlow, process=process, task=task, user=user("mona"), by=user("bob"),
                           reason="substitute")
        db.session.flush()  # the first notification is already written when the second comes
        task_delegated.send(NoticeFlow, process=process, task=task, user=user("mona"), by=user("bob"),
                            note="over to you")
    [message] = inbox.messages
    assert message["Subject"] == f"[webflow] Delegated to you: Review #{task.id}"
    assert "over to you" in body_of(message)
    # bob's own assignment earlier, then the delegation: the substitute's row is gone
    assert [(row.kind, row.email) for row in sent_rows()] == [("assigned", "bob@example.com"),
                                                              ("delegated", "mona@example.com")]


def test_a_mention_mails_each_mentioned_user_once_but_not_the_author(smtp_app, inbox, user):
    process = NoticeFlow.start.run()
    task = review_task(process)
    comment = SimpleNamespace(text="@bob @mona look <b>here</b>\nSubject: injected", author=user("alice"))
    with unit_of_work(db.session()):
        comment_posted.send(NoticeFlow, process=process, task=task, comment=comment,
                            mentions=[user("bob"), user("alice"), user("bob"), user("carol"), user("mona")])
    assert sorted(m["To"] for m in inbox.messages) == ["bob@example.com", "mona@example.com"]
    for message in inbox.messages:
        assert message["Subject"] == f"[webflow] alice mentioned you: Review #{task.id}"
        assert "look <b>here</b>\nSubject: injected" in body_of(message)
        assert "look &lt;b&gt;here&lt;/b&gt;" in body_of(message, "html")
        assert message.get_all("Subject") == [message["Subject"]]


def test_a_mention_on_the_process_links_to_the_process(smtp_app, inbox, user):
    process = NoticeFlow.start.run()
    with unit_of_work(db.session()):
        comment_posted.send(NoticeFlow, process=process, task=None,
                            comment=SimpleNamespace(text="hi @bob", author=None), mentions=[user("bob")])
    [message] = inbox.messages
    assert message["Subject"] == f"[webflow] Someone mentioned you: Notice review #{process.id}"
    assert f"{BASE_URL}/flows/notice/{process.id}/" in body_of(message)


def test_a_user_who_turned_mentions_off_gets_none(smtp_app, inbox, user):
    db.session.add(NotificationSetting(user_id=user("bob").id, mentioned=False))
    db.session.commit()
    process = NoticeFlow.start.run()
    with unit_of_work(db.session()):
        comment_posted.send(NoticeFlow, process=process, task=None,
                            comment=SimpleNamespace(text="@bob", author=user("alice")), mentions=[user("bob")])
    assert inbox.messages == []


# -- overdue -----------------------------------------------------------------------------------------


def test_an_overdue_task_is_noticed_once_however_often_timers_fire(smtp_app, inbox, user):
    process = NoticeFlow.start.run()
    task = review_task(process)
    due = as_utc(task.due)
    with Context(user=user("bob")):
        task.activate().assign(user("bob"))
    assert fire_due_timers(now=due - timedelta(seconds=1)) == 0
    assert inbox.messages == []
    for _ in range(2):
        fire_due_timers(now=due + timedelta(minutes=1))
    [message] = inbox.messages
    assert message["To"] == "bob@example.com"
    assert message["Subject"] == f"[webflow] Overdue: Review #{task.id}"
    assert f"it was due {due:%Y-%m-%d %H:%M} UTC" in body_of(message)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(OverdueNotice)) == 1


def test_overdue_tasks_beyond_one_batch_are_each_noticed_once(smtp_app, inbox, user, monkeypatch):
    from webflow.core import overdue

    monkeypatch.setattr(overdue, "BATCH", 2)
    tasks = [review_task(NoticeFlow.start.run()) for _ in range(5)]
    for task in tasks:
        task.activate().assign(user("bob"))
    inbox.messages.clear()
    now = max(as_utc(t.due) for t in tasks) + timedelta(minutes=1)
    assert overdue.notice_overdue_tasks(now) == 5
    assert overdue.notice_overdue_tasks(now) == 0
    assert sorted(m["Subject"] for m in inbox.messages) == sorted(
        f"[webflow] Overdue: Review #{t.id}" for t in tasks)


def test_an_unassigned_or_finished_task_is_never_overdue_news(smtp_app, inbox, user):
    queued = review_task(NoticeFlow.start.run())
    done = review_task(NoticeFlow.start.run())
    with Context(user=user("bob")):
        activation = done.activate()
        activation.assign(user("bob"))
        activation.prepare(user=user("bob"))
        activation.done()
    fire_due_timers(now=as_utc(queued.due) + timedelta(days=2))
    assert inbox.messages == []


def test_a_new_due_date_that_passes_is_noticed_again_and_a_turned_off_kind_is_not(smtp_app, inbox, user):
    from webflow.core.timers import change_due

    task = review_task(NoticeFlow.start.run())
    task.activate().assign(user("bob"))
    inbox.messages.clear()  # the assignment's mail
    first = as_utc(task.due)
    fire_due_timers(now=first + timedelta(minutes=1))
    change_due(task, first + timedelta(days=1))
    fire_due_timers(now=first + timedelta(days=1, minutes=1))
    assert [m["Subject"] for m in inbox.messages] == [f"[webflow] Overdue: Review #{task.id}"] * 2

    db.session.add(NotificationSetting(user_id=user("bob").id, overdue=False))
    db.session.commit()
    change_due(task, first + timedelta(days=2))
    fire_due_timers(now=first + timedelta(days=2, minutes=1))
    assert len(inbox.messages) == 2


# -- sending ---------------------------------------------------------------------------------------


def test_a_failed_send_is_kept_and_sent_once_later(db_url, smtp, user):
    from webflow.notifications import deliver, requeue_unsent

    inbox, port = smtp
    dead = notify_app(db_url, port + 1 if port < 65535 else port - 1)  # nobody listens there
    with in_app_context(dead) as app:
        task = review_task(NoticeFlow.start.run())
        task.activate().assign(user("bob"))  # the send fails after the commit: the assignment stands
        db.session.refresh(task)
        assert task.owner.username == "bob"
        [row] = sent_rows()
        assert row.sent is None and row.attempts == 1 and "Error" in row.error
        app.config.update(MAIL_PORT=port)  # the server is back
        from webflow.notifications import mail

        mail.init_app(app)
        assert requeue_unsent(app) == 0  # not yet: it waits for its retry time
        db.session.execute(sa.update(Notification).values(retry_at=row.created))
        db.session.commit()
        assert requeue_unsent(app) == 1
        assert deliver(row.id).startswith("skipped")  # sent already: never twice
        assert requeue_unsent(app) == 0
    [message] = inbox.messages
    assert message["To"] == "bob@example.com"


def test_with_redis_unreachable_the_event_stands_and_its_notification_waits(db_url, smtp, user):
    inbox, port = smtp
    with in_app_context(notify_app(db_url, port, REDIS_URL="redis://127.0.0.1:1/0")) as app:
        task = review_task(NoticeFlow.start.run())
        with Context(user=user("mona")):
            task.activate().assign(user("bob"))  # the enqueue fails after the commit: no error
        db.session.refresh(task)
        assert task.owner.username == "bob"
        [row] = sent_rows()
        assert row.sent is None and row.attempts == 0  # the timer round queues it again later
        assert app.extensions["webflow_redis_down_until"] > 0
    assert inbox.messages == []
