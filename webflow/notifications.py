"""Email notifications: collected in the transaction of their event, sent after it commits.

The engine and the collaboration features send blinker signals inside their transaction
(``task_assigned``, ``task_delegated``, ``comment_posted``, ``task_overdue``). The receivers
here decide who hears about it (mail configured, the user has an address and did not turn
that kind off, and did not do it themselves) and write a ``Notification`` row with the
finished message into the same transaction. When that transaction ends, the rows that were
committed are handed to the job queue (RQ with Redis; without it a thread, or inline in
tests), whose job sends each once. A rolled-back transaction (or savepoint) takes its rows
with it, so nothing of it is ever sent. The request never talks to the mail server.
"""

from __future__ import annotations

import logging
import re
import smtplib
import threading
import time
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import Flask, current_app, has_app_context
from flask_mailman import EmailMultiAlternatives, Mail
from redis.exceptions import RedisError
from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

from .core import signals
from .core.context import get_session
from .core.models import Notification, NotificationSetting, Task, User, utcnow
from .core.status import FINISHED
from .extensions import db
from .timefmt import exact_for

log = logging.getLogger(__name__)

#: The kinds a user can turn off, in the order the settings page lists them.
KINDS = {
    "assigned": "A task is assigned to me",
    "delegated": "Someone delegates a task to me",
    "mentioned": "Someone mentions me in a comment",
    "overdue": "A task of mine is overdue",
}
#: Sending attempts per notification before it is given up (the error is kept on the row).
MAX_ATTEMPTS = 5
#: An unsent notification this long after it was queued is queued again (its job was lost).
RESEND_AFTER = timedelta(minutes=2)
_PENDING = "webflow_notifications"

mail = Mail()


def init_app(app: Flask) -> None:
    """Bind Flask-Mailman to the app's ``MAIL_*`` settings."""
    mail.init_app(app)


def mail_enabled(app: Flask) -> bool:
    """True when a mail server is configured (``MAIL_URL`` or ``MAIL_SERVER``)."""
    return bool(app.config.get("MAIL_SERVER"))


# -- receivers: who hears about what -------------------------------------------------------------


def _same_user(a: Any, b: Any) -> bool:
    return a is not None and b is not None and getattr(a, "id", None) == getattr(b, "id", None)


def on_task_assigned(sender: Any, process: Any = None, task: Any = None, user: Any = None, by: Any = None,
                     reason: str = "assign", **extra: Any) -> None:
    if reason == "delegate" or _same_user(user, by):
        return  # a delegation is told by task_delegated (with its note); nobody hears of their own act
    notify("assigned", user, process, task, by=by, reason=reason)


def on_task_delegated(sender: Any, process: Any = None, task: Any = None, user: Any = None, by: Any = None,
                      note: str = "", **extra: Any) -> None:
    if not _same_user(user, by):
        notify("delegated", user, process, task, by=by, note=note or "")


def on_comment_posted(sender: Any, process: Any = None, task: Any = None, comment: Any = None,
                      mentions: Any = (), **extra: Any) -> None:
    author = getattr(comment, "author", None)
    told: set[int] = set()
    for user in mentions or ():
        if user is None or user.id in told or _same_user(user, author):
            continue
        told.add(user.id)
        notify("mentioned", user, process, task, by=author, text=getattr(comment, "text", "") or "")


def on_task_overdue(sender: Any, process: Any = None, task: Any = None, user: Any = None, due: Any = None,
                    **extra: Any) -> None:
    # In the zone the person set, as their pages show it (it said UTC to everyone).
    notify("overdue", user, process, task, due=due, due_text=exact_for(due, user) if due is not None else "")


# Connected once, for every app: a receiver does nothing outside an app with mail configured.
signals.task_assigned.connect(on_task_assigned, weak=False)
signals.task_delegated.connect(on_task_delegated, weak=False)
signals.comment_posted.connect(on_comment_posted, weak=False)
signals.task_overdue.connect(on_task_overdue, weak=False)


def wants(session: Session, user: User, kind: str) -> bool:
    """True when the user has an address and has not turned ``kind`` off."""
    if not getattr(user, "email", None) or not getattr(user, "is_active", True):
        return False
    setting = session.get(NotificationSetting, user.id)
    return setting is None or bool(getattr(setting, kind))


def notify(kind: str, user: User | None, process: Any, task: Any, **context: Any) -> Notification | None:
    """Write the notification into the running transaction, to be sent once it commits.

    Never raises: a notification that cannot be made is logged, the event goes on."""
    if user is None or not has_app_context():
        return None
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    if not mail_enabled(app):
        return None
    session = get_session()
    try:
        if not wants(session, user, kind) or _told_already(session, kind, user, task):
            return None
        subject, body, html = render_message(app, kind, user=user, process=process, task=task, **context)
        row = Notification(kind=kind, user_id=user.id, task_id=getattr(task, "id", None),
                           email=user.email, subject=subject, body=body, html=html,
                           created=utcnow(), retry_at=utcnow() + RESEND_AFTER)
        session.add(row)
    except Exception:
        log.exception("could not make the %s notification for %s", kind, getattr(user, "username", user))
        return None
    session.info.setdefault(_PENDING, []).append((app, row))
    return row


#: Kinds that say "this task is yours now": one mail per task and person per transaction.
HANDOVERS = ("assigned", "delegated")


def _told_already(session: Session, kind: str, user: User, task: Any) -> bool:
    """True when this transaction already tells the user that the task is theirs. A
    delegation to someone away sends ``task_assigned`` (substitute) and ``task_delegated``
    for the same new owner: the delegation's mail, with its note, replaces the other."""
    if kind not in HANDOVERS or task is None:
        return False
    for _app, row in session.info.get(_PENDING, ()):
        state = sa.inspect(row)
        if not (state.pending or state.persistent) or row.kind not in HANDOVERS \
                or (row.user_id, row.task_id) != (user.id, task.id):
            continue
        if kind == "delegated" and row.kind == "assigned":
            if state.pending:
                session.expunge(row)
            else:
                session.delete(row)
            return False
        return True
    return False


# -- the message ---------------------------------------------------------------------------------


def absolute_url(app: Flask, endpoint: str, **values: Any) -> str:
    """An absolute link for an email: ``WEBFLOW_BASE_URL``, else ``SERVER_NAME`` (never the
    Host header of whatever request happened to cause the email)."""
    base = app.config.get("WEBFLOW_BASE_URL")
    if not base and app.config.get("SERVER_NAME"):
        base = f"{app.config.get('PREFERRED_URL_SCHEME') or 'http'}://{app.config['SERVER_NAME']}"
    parts = urlsplit(base or "http://localhost:5000")
    adapter = app.url_map.bind(parts.netloc, script_name=parts.path or "/", url_scheme=parts.scheme or "http")
    return adapter.build(endpoint, values, force_external=True)


def target_url(app: Flask, process: Any, task: Any) -> str:
    """The task's page, or the process's page for a comment on the process."""
    flow_class = process.flow_class
    if task is not None:
        return absolute_url(app, "flows.task_detail", flow_label=flow_class.flow_label,
                            process_id=process.id, node=task.node_name, task_id=task.id)
    return absolute_url(app, "flows.process_detail", flow_label=flow_class.flow_label, process_id=process.id)


def one_line(text: str, limit: int = 200) -> str:
    """Text fit for a mail header: no line breaks or control characters, bounded."""
    text = re.sub(r"[\x00-\x1f\x7f\u2028\u2029]+", " ", str(text))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render_message(app: Flask, kind: str, **context: Any) -> tuple[str, str, str]:
    """Subject, plain text and HTML of a notification (the HTML escapes every value)."""
    process, task = context["process"], context["task"]
    flow_class = process.flow_class
    context.update(
        url=target_url(app, process, task),
        flow_title=flow_class.process_title,
        task_title=task.flow_task.title if task is not None else None,
        summary=getattr(process, "summary", "") or "",
    )
    what = (f"{context['task_title']} #{task.id}" if task is not None
            else f"{flow_class.process_title} #{process.id}")
    subjects = {
        "assigned": f"Assigned to you: {what}",
        "delegated": f"Delegated to you: {what}",
        "mentioned": f"{getattr(context.get('by'), 'username', 'Someone')} mentioned you: {what}",
        "overdue": f"Overdue: {what}",
    }
    env = app.jinja_env
    body = env.get_template(f"mail/{kind}.txt").render(**context)
    html = env.get_template(f"mail/{kind}.html").render(**context)
    return one_line(f"[webflow] {subjects[kind]}"), body, html


# -- after the commit: to the job queue ----------------------------------------------------------


@event.listens_for(Session, "after_transaction_end")
def _transaction_ended(session: Session, transaction: SessionTransaction) -> None:
    """When the outermost transaction ends, queue the notifications it committed.

    A row rolled back (with the whole transaction, or with a savepoint inside it) is no
    longer persistent: it is dropped here, unsent."""
    if transaction.parent is not None or _PENDING not in session.info:
        return
    pending = session.info.pop(_PENDING)
    committed: dict[Flask, list[int]] = {}
    for app, row in pending:
        state = sa.inspect(row)
        if state.persistent and state.identity is not None:
            committed.setdefault(app, []).append(int(state.identity[0]))
    for app, ids in committed.items():
        try:
            dispatch(app, ids)
        except Exception:  # the commit stands; the timer pass queues them again later
            log.exception("could not queue notifications %s; they are queued again later", ids)


def dispatch(app: Flask, ids: list[int]) -> None:
    """Hand committed notifications to the job queue (``jobs.job_mode`` decides where)."""
    from .jobs import job_mode

    mode = job_mode(app)
    if mode == "rq":
        from .jobqueue import REDIS_BACKOFF_SECONDS, get_queue

        # The job queue's backoff: a dead Redis costs one timeout, not one per commit.
        if time.monotonic() < app.extensions.get("webflow_redis_down_until", 0.0):
            log.warning("Redis was unreachable moments ago: notifications %s are queued again later", ids)
            return
        queue = get_queue(app)
        for notification_id in ids:
            try:
                queue.enqueue("webflow.notifications.deliver", notification_id, job_timeout=120,
                              result_ttl=600, failure_ttl=7 * 24 * 3600,
                              description=f"webflow notification {notification_id}")
            except RedisError:
                app.extensions["webflow_redis_down_until"] = time.monotonic() + REDIS_BACKOFF_SECONDS
                log.warning("Redis unreachable: notification %s is queued again later", notification_id)
                return
    elif mode == "thread":
        threading.Thread(target=_deliver_in_app, args=(app, ids), daemon=True).start()
    else:
        _deliver_in_app(app, ids)


def _deliver_in_app(app: Flask, ids: list[int]) -> None:
    # An app context of its own: its own database session, never the one just committed.
    with app.app_context():
        for notification_id in ids:
            try:
                deliver(notification_id)
            except Exception:
                log.exception("notification %s was not sent; it is tried again later", notification_id)


# -- the job: send one notification once ---------------------------------------------------------


def deliver(notification_id: int) -> str:
    """Send one notification (the job RQ runs; needs an app context). Taking it is a
    conditional update, so of two deliveries of one notification only one sends it."""
    session = db.session()
    try:
        if not mail_enabled(current_app):
            return "skipped: mail is not configured"
        now = utcnow()
        taken = session.execute(  # type: ignore[attr-defined]
            sa.update(Notification)
            .where(Notification.id == notification_id, Notification.sent.is_(None),
                   Notification.attempts < MAX_ATTEMPTS)
            .values(sent=now, attempts=Notification.attempts + 1)
        ).rowcount
        session.commit()
        if not taken:
            return "skipped: already sent, or given up"
        row = session.get(Notification, notification_id)
        assert row is not None
        stale = outdated(session, row)
        if stale is not None:
            # Taken, never sent: given up with the reason, so no pass queues it again.
            session.execute(sa.update(Notification).where(Notification.id == notification_id)
                            .values(sent=None, attempts=MAX_ATTEMPTS, error=f"not sent: {stale}"))
            session.commit()
            return f"skipped: {stale}"
        person = session.get(User, row.user_id)  # there, with an address: see outdated
        address = (person.email if person is not None else None) or row.email  # a changed one gets it
        message = EmailMultiAlternatives(subject=row.subject, body=row.body, to=[address],
                                         from_email=current_app.config.get("MAIL_DEFAULT_SENDER"),
                                         connection=mail.get_connection())
        if row.html:
            message.attach_alternative(row.html, "text/html")
        try:
            message.send()
        except Exception as exc:
            session.rollback()
            attempts = row.attempts
            final = refused_for_good(exc)
            session.execute(
                sa.update(Notification).where(Notification.id == notification_id)
                .values(sent=None, error=one_line(f"{type(exc).__name__}: {exc}", 1000),
                        # A refusal the server says is final is not tried four times more.
                        attempts=MAX_ATTEMPTS if final else Notification.attempts,
                        retry_at=utcnow() + RESEND_AFTER * 2 ** attempts))
            session.commit()
            if final:
                log.warning("notification %s given up: %s was refused for good (%s)",
                            notification_id, row.email, exc)
                return "given up: the address was refused"
            raise
        return "sent"
    finally:
        session.close()


def refused_for_good(exc: BaseException) -> bool:
    """True when the mail server refused every recipient with a permanent (5xx) answer
    ("550 no such user"), or the mailer could not write the address at all (a ValueError or
    UnicodeError: "bob@example..com", stored before the settings form refused it):
    sending again cannot help. A 4xx, a timeout or a server that is down are tried again."""
    if isinstance(exc, ValueError):  # UnicodeError too; the SMTP errors are OSErrors
        return True
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [answer[0] for answer in exc.recipients.values()]
        return bool(codes) and all(isinstance(code, int) and 500 <= code < 600 for code in codes)
    return False


def outdated(session: Session, row: Notification) -> str | None:
    """Why a notification is no longer true when its turn to be sent comes (a retry after
    the mail server was down, a queue that was slow), or None. "Assigned to you" for a task
    that was canceled, finished or given to someone else since, "overdue" for a task no
    longer theirs, anything for a person who was deactivated, cleared their address or
    turned that kind off: nothing is sent. (A changed address gets it: see deliver.)"""
    user = session.get(User, row.user_id)
    if user is None or not wants(session, user, row.kind):
        return "the person no longer wants it (inactive, no address, or that kind turned off)"
    if row.kind in ("assigned", "delegated", "overdue") and row.task_id is not None:
        task = session.get(Task, row.task_id)
        if task is None or task.status in FINISHED:
            return "the task was finished or canceled before it went out"
        if task.owner_id != row.user_id:
            return "the task was given to someone else before it went out"
    return None


def requeue_unsent(app: Flask) -> int:
    """Queue again the notifications whose job was lost or whose sending failed, once their
    ``retry_at`` has come (the timer pass calls this). Sending stays once: see ``deliver``."""
    if not mail_enabled(app):
        return 0
    session = db.session()
    ids = list(session.scalars(
        sa.select(Notification.id)
        .where(Notification.sent.is_(None), Notification.attempts < MAX_ATTEMPTS,
               Notification.retry_at <= utcnow())
        .order_by(Notification.retry_at).limit(100)))
    if ids:
        # Pushed back first, so the next pass does not queue them a second time meanwhile.
        session.execute(sa.update(Notification).where(Notification.id.in_(ids))
                        .values(retry_at=utcnow() + RESEND_AFTER))
    session.commit()
    if ids:
        dispatch(app, ids)
    return len(ids)
