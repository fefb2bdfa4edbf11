"""A person's own settings: one page of sections, each posting to its own endpoint.

Each section is a partial (``templates/settings/_<section>.html``) that the page includes;
its form swaps itself for HTMX and falls back to a full page otherwise."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField
from wtforms.validators import Length, Optional, Regexp

from ..core.models import NotificationSetting, User
from ..extensions import db
from ..notifications import KINDS, mail_enabled
from .web import oob_extras, render_page, wants_fragment

bp = Blueprint("settings", __name__, url_prefix="/settings")

#: One address, nothing a mail header could be split with.
EMAIL_PATTERN = r"^[^@\s<>,;:\"'()\[\]\\]+@[^@\s<>,;:\"'()\[\]\\]+$"


class NotificationsForm(FlaskForm):
    email = EmailField("Email address", validators=[
        Optional(), Length(max=254, message="An address has at most 254 characters."),
        Regexp(EMAIL_PATTERN, message="Give one address like name@example.com.")],
        filters=[lambda value: value.strip() if isinstance(value, str) else value],
        description="Where notifications go. Leave it empty to get none.")
    assigned = BooleanField(KINDS["assigned"])
    delegated = BooleanField(KINDS["delegated"])
    mentioned = BooleanField(KINDS["mentioned"])
    overdue = BooleanField(KINDS["overdue"])


def notifications_form(user: User) -> NotificationsForm:
    """The form filled with what the user has now (no settings row: every kind on)."""
    setting = db.session.get(NotificationSetting, user.id)
    values = {kind: setting is None or bool(getattr(setting, kind)) for kind in KINDS}
    return NotificationsForm(formdata=None, email=user.email or "", **values)


def notifications_context(form: NotificationsForm | None = None) -> dict[str, Any]:
    return {"notifications_form": form or notifications_form(current_user),
            "mail_enabled": mail_enabled(current_app)}


@bp.route("/")
@login_required
def index() -> Any:
    """Every settings section of the signed-in user."""
    return render_page("settings/index.html", ["content"], title="Settings", **notifications_context())


@bp.route("/notifications", methods=["POST"])
@login_required
def notifications() -> Any:
    """Save the user's address and which notifications they want."""
    form = NotificationsForm()
    if not form.validate_on_submit():
        flash("Please correct the marked field. Nothing was changed.", "error")
        return notifications_section(form, 422)
    user = current_user._get_current_object()
    user.email = form.email.data or None
    setting = db.session.get(NotificationSetting, user.id)
    if setting is None:
        setting = NotificationSetting(user_id=user.id)
        db.session.add(setting)
    for kind in KINDS:
        setattr(setting, kind, bool(form[kind].data))
    db.session.commit()
    flash("Notification settings saved.", "success")
    if wants_fragment():
        return notifications_section(notifications_form(user), 200)
    return redirect(url_for("settings.index"), code=303)


def notifications_section(form: NotificationsForm, status: int) -> Any:
    """The section alone for HTMX (with the messages), else the whole page."""
    if wants_fragment():
        body = render_template("settings/_notifications.html", **notifications_context(form)) + oob_extras()
        return current_app.make_response((body, status))
    return render_page("settings/index.html", ["content"], status=status, title="Settings",
                       **notifications_context(form))
