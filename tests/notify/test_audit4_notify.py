"""Notifications to an address no mail can go to (audit 4): stored before the settings form
refused such addresses, or written from code. Given up at once, with the reason kept."""

from __future__ import annotations

import sqlalchemy as sa
from notify_flows import NoticeFlow

from webflow import Context, db
from webflow.core.models import Notification
from webflow.notifications import MAX_ATTEMPTS, deliver


def test_an_address_the_mailer_cannot_write_is_given_up_at_once(smtp_app, inbox, user) -> None:  # type: ignore[no-untyped-def]
    """"bob@example..com": every attempt failed the same way (the mailer cannot write the
    address), five times over an hour, each a failed job with a traceback."""
    user("bob").email = "bob@example..com"
    db.session.commit()
    task = NoticeFlow.start.run().get_task(NoticeFlow.review)
    with Context(user=user("mona")):
        task.activate().assign(user("bob"))
    db.session.rollback()
    db.session.expire_all()
    [row] = db.session.scalars(sa.select(Notification)).all()
    assert row.sent is None and row.attempts == MAX_ATTEMPTS, (row.attempts, row.error)
    assert "bob@example..com" in (row.error or "")
    assert deliver(row.id).startswith("skipped")
    assert inbox.messages == []
