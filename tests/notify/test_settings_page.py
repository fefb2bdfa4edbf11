"""The settings page's notifications section: a person's address and the kinds they want."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from notify_flows import NoticeFlow
from notify_support import BASE_URL, body_of
from web_support import AuthActions

from webflow import db
from webflow.core.models import NotificationSetting, User
from webflow.notifications import KINDS


def settings_of(name: str) -> tuple[str | None, dict[str, bool] | None]:
    db.session.rollback()
    db.session.expire_all()
    user = db.session.scalar(sa.select(User).where(User.username == name))
    row = db.session.get(NotificationSetting, user.id)
    kinds = None if row is None else {k: getattr(row, k) for k in KINDS}
    return user.email, kinds


def test_the_page_shows_the_section_filled_with_what_the_user_has(smtp_app):
    bob = AuthActions(smtp_app).enter_as("bob")
    html = bob.get("/settings/").get_data(as_text=True)
    assert '<a href="/settings/" aria-current=page>Settings</a>' in html
    assert 'id="settings-notifications"' in html and 'hx-post="/settings/notifications"' in html
    assert 'value="bob@example.com"' in html
    assert html.count('<input checked') == 4 and html.count('type="checkbox"') == 4  # no settings: all on
    fragment = bob.get("/settings/", hx=True).get_data(as_text=True)
    assert "<html" not in fragment and 'id="settings-notifications"' in fragment


def test_saving_changes_the_address_and_turns_kinds_off(smtp_app, inbox):
    bob = AuthActions(smtp_app).enter_as("bob")
    response = bob.post("/settings/notifications", {"email": " bob@work.example ", "delegated": "y",
                                                    "mentioned": "y", "overdue": "y"})
    assert response.status_code == 303 and response.headers["Location"] == "/settings/"
    assert settings_of("bob") == ("bob@work.example", {"assigned": False, "delegated": True,
                                                       "mentioned": True, "overdue": True})
    page = bob.get("/settings/").get_data(as_text=True)
    assert "Notification settings saved." in page and 'value="bob@work.example"' in page

    # A manager gives bob a task through the web: bob turned that kind off.
    process = NoticeFlow.start.run()
    task = process.get_task(NoticeFlow.review)
    mona = AuthActions(smtp_app).enter_as("mona")
    bob_id = db.session.scalar(sa.select(User.id).where(User.username == "bob"))
    url = f"/flows/notice/{process.id}/review/{task.id}/assign/"
    assert mona.post(url, {"user_id": str(bob_id)}).status_code == 303
    assert inbox.messages == []

    # With the kind on again (HTMX this time), the next assignment reaches the new address.
    response = bob.post("/settings/notifications", {"email": "bob@work.example", "assigned": "y"}, hx=True)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" not in html and "Notification settings saved." in html
    reassign = url.replace("/assign/", "/reassign/")
    mona_id = db.session.scalar(sa.select(User.id).where(User.username == "mona"))
    assert mona.post(reassign, {"user_id": str(bob_id)}).status_code == 303   # bob hears of it
    assert mona.post(reassign, {"user_id": str(mona_id)}).status_code == 303  # mona took it herself
    [message] = inbox.messages
    assert message["To"] == "bob@work.example"
    assert f"{BASE_URL}/flows/notice/{process.id}/review/{task.id}/" in body_of(message)


@pytest.mark.parametrize("email", ["not-an-address", "bob@example.com\r\nBcc: eve@example.com",
                                   "a@b.c, eve@example.com", "<bob@example.com>", "x" * 250 + "@e.com"])
def test_a_bad_address_is_refused_and_nothing_changes(smtp_app, email):
    bob = AuthActions(smtp_app).enter_as("bob")
    response = bob.post("/settings/notifications", {"email": email})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "Nothing was changed." in html and "<html" in html and 'aria-invalid="true"' in html
    assert settings_of("bob") == ("bob@example.com", None)
    response = bob.post("/settings/notifications", {"email": email}, hx=True)
    assert response.status_code == 422 and "<html" not in response.get_data(as_text=True)
    assert settings_of("bob") == ("bob@example.com", None)


def test_an_empty_address_means_no_email_and_settings_need_a_login(smtp_app):
    bob = AuthActions(smtp_app).enter_as("bob")
    assert bob.post("/settings/notifications", {"email": "", "assigned": "y"}).status_code == 303
    assert settings_of("bob") == (None, {"assigned": True, "delegated": False, "mentioned": False,
                                         "overdue": False})
    anonymous = AuthActions(smtp_app)
    assert anonymous.get("/settings/").status_code == 302
    anonymous.get("/login")
    assert anonymous.post("/settings/notifications", {"email": "eve@example.com"}).status_code == 302
    assert settings_of("bob")[0] is None
    assert db.session.scalar(sa.select(sa.func.count()).select_from(User).where(
        User.email == "eve@example.com")) == 0
