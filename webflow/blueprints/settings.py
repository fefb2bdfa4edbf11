"""My settings: one page of sections, each a partial template with its own form.

The page (``templates/settings/index.html``) only includes the section partials; each
section posts to an endpoint of its own here and, for HTMX, gets its partial back (a full
page otherwise)."""

from __future__ import annotations

from typing import Any
from zoneinfo import available_timezones

import sqlalchemy as sa
from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from flask_mailman.message import sanitize_address
from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, Field
from wtforms.validators import Length, Optional, Regexp, ValidationError

from ..core.away import away_of, clear_away, set_away, stand_ins, substitute_gone
from ..core.exceptions import InputRejected
from ..core.models import NotificationSetting, User, utcnow
from ..core.transaction import get_or_add
from ..extensions import db
from ..notifications import KINDS, mail_enabled
from ..timefmt import browser_zone, parse_local_input, zone_named
from .lookups import parse_id
from .web import oob_extras, render_page, wants_fragment

bp = Blueprint("settings", __name__, url_prefix="/settings")


def page_context(user: User, **overrides: Any) -> dict[str, Any]:
    """What every section of the page needs; a section's own form may be passed in."""
    context = {**timezone_context(), **away_context(user), **notifications_context()}
    context.update(overrides)
    return context


def zone_choices() -> list[str]:
    """Every IANA zone this server knows, sorted (the picker's options)."""
    return sorted(z for z in available_timezones() if "/" in z or z == "UTC")


def timezone_context() -> dict[str, Any]:
    """The time-zone section: the zones, and the browser's own (from its tz cookie)."""
    browser = browser_zone()
    return {"zones": zone_choices(), "browser_zone": str(browser) if browser else None}


#: The colleagues the out-of-office picker lists (by name), besides the substitute chosen.
MAX_COLLEAGUES = 500


def away_context(user: User) -> dict[str, Any]:
    """The out-of-office section: my setting and the colleagues I may name."""
    away = away_of(db.session(), user)
    colleagues = list(db.session.scalars(
        sa.select(User).where(User.is_active.is_(True), User.id != user.id)
        .order_by(User.username).limit(MAX_COLLEAGUES)))
    if away is not None and away.substitute.is_active and away.substitute not in colleagues:
        # Past the first MAX_COLLEAGUES names: the picker showed "Choose a colleague", and
        # changing only the end of the absence was refused for want of a substitute.
        colleagues = sorted([*colleagues, away.substitute], key=lambda u: u.username)
    return {"away": away, "away_active": away is not None and away.active(utcnow()),
            "substitute_gone": substitute_gone(away), "stand_ins": stand_ins(user), "colleagues": colleagues}

#: One address, nothing a mail header could be split with. The part before the @ is plain
#: ASCII (SMTP without SMTPUTF8 cannot carry another: it went out as an encoded word, a
#: different mailbox); the domain may be international (sent as punycode).
EMAIL_PATTERN = r"^[A-Za-z0-9.!#$%&*+/=?^_`{|}~-]+@[^@\s<>,;:\"'()\[\]\\\x00-\x1f\x7f]+$"
BAD_ADDRESS = "Give one address like name@example.com (letters before the @ in plain ASCII)."


def sendable(form: FlaskForm, field: Field) -> None:
    """The address as the mailer will write it (``deliver``: Flask-Mailman's own reading):
    "bob@example..com", a domain ending in a dot or a label of 64 letters passed the
    pattern, was saved, and every mail to it failed five times without a word to anyone."""
    if field.data and not field.errors:  # one message: the pattern refused it already
        try:
            sanitize_address(field.data, "utf-8")
        except (ValueError, UnicodeError) as exc:  # UnicodeError: a domain IDNA cannot encode
            raise ValidationError(BAD_ADDRESS) from exc


class NotificationsForm(FlaskForm):
    email = EmailField("Email address", validators=[
        Optional(), Length(max=254, message="An address has at most 254 characters."),
        Regexp(EMAIL_PATTERN, message=BAD_ADDRESS), sendable],
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
    user = current_user._get_current_object()
    return render_page("settings/index.html", ["content"], title="Settings", **page_context(user))


@bp.route("/away/", methods=["POST"])
@login_required
def away() -> Any:
    """Set or end my out-of-office: while set, tasks given to me go to my substitute."""
    user = current_user._get_current_object()
    if request.form.get("action") == "clear":
        clear_away(db.session(), user)
        flash("Welcome back: tasks come to you again.", "success")
        return section_answer(user)
    substitute_id = parse_id(request.form.get("substitute_id"))
    substitute = db.session.get(User, substitute_id) if substitute_id is not None else None
    # A refused form comes back as it was sent, the field at fault marked.
    sent = {"substitute_id": substitute_id, "until": request.form.get("until", "")[:40]}
    try:
        until = parse_local_input(request.form.get("until", ""))
    except ValueError:
        return section_answer(user, 422, "Give the end of your absence as a date and time "
                                         "(or leave it empty). Nothing was changed.",
                              away_sent=sent, away_invalid="until")
    try:
        set_away(db.session(), user, substitute, until)
    except InputRejected as exc:
        db.session.rollback()
        bad_substitute = substitute is None or not substitute.is_active or substitute.id == user.id
        return section_answer(user, 422, f"{exc} Nothing was changed.", away_sent=sent,
                              away_invalid="substitute" if bad_substitute else "until")
    flash(f"You are out of office: tasks given to you go to {substitute.username if substitute else ''} "
          "when they may do them.", "success")
    return section_answer(user)


def section_answer(user: User, status: int = 200, error: str | None = None, **sent: Any) -> Any:
    """The section again for HTMX (with the messages), else back to the settings page.

    ``sent``: ``away_sent`` (what the refused form held) and ``away_invalid`` (the field
    at fault), so the form comes back as it was sent."""
    if error:
        flash(error, "error")
    if wants_fragment():
        body = render_template("settings/_away.html", **away_context(user), **sent) + oob_extras()
        return current_app.make_response((body, status))
    if status != 200:
        return render_page("settings/index.html", ["content"], status=status, title="Settings",
                           **page_context(user, **sent))
    return redirect(url_for("settings.index"), code=303)


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
    # The same form sent twice at once: this copy's choices replace the other's.
    setting = get_or_add(db.session(), NotificationSetting, user.id, user_id=user.id)
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
                       **page_context(current_user._get_current_object(), **notifications_context(form)))


@bp.route("/timezone/", methods=["POST"])
@login_required
def timezone() -> Any:
    """Save the zone I read times in ("" follows the browser's zone); 422 for no zone."""
    user = current_user._get_current_object()
    name = request.form.get("timezone")
    error = None
    if name is None:
        error = "Choose a time zone. Nothing was changed."
    elif (name := name.strip()) and (zone_named(name) is None or name not in available_timezones()):
        error = f"“{name[:64]}” is not a time zone this site knows. Nothing was changed."
    if error is not None:
        flash(error, "error")
        return render_page("settings/index.html", ["content"], status=422, title="Settings",
                           **page_context(user))
    user.timezone = name or None
    db.session.commit()
    flash(f"Times are shown in {name} now." if name else
          "Times are shown in your browser's time zone now.", "success")
    return redirect(url_for("settings.index"), code=303)
