"""My settings: one page of sections, each a partial template with its own form.

The page (``templates/settings/index.html``) only includes the section partials; each
section posts to an endpoint of its own here and, for HTMX, gets its partial back."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from ..core.away import away_of, clear_away, set_away
from ..core.exceptions import InputRejected
from ..core.models import User, utcnow
from ..extensions import db
from ..timefmt import parse_local_input
from .lookups import parse_id
from .web import oob_extras, wants_fragment

bp = Blueprint("settings", __name__, url_prefix="/settings")


def away_context(user: User) -> dict[str, Any]:
    """The out-of-office section: my setting and the colleagues I may name."""
    away = away_of(db.session(), user)
    colleagues = db.session.scalars(
        sa.select(User).where(User.is_active.is_(True), User.id != user.id)
        .order_by(User.username).limit(500)).all()
    return {"away": away, "away_active": away is not None and away.active(utcnow()),
            "colleagues": colleagues}


@bp.route("/")
@login_required
def index() -> Any:
    """My settings."""
    user = current_user._get_current_object()
    return render_template("settings/index.html", title="Settings", **away_context(user))


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
    try:
        until = parse_local_input(request.form.get("until", ""))
    except ValueError:
        return section_answer(user, 422, "Give the end of your absence as a date and time "
                                         "(or leave it empty). Nothing was changed.")
    try:
        set_away(db.session(), user, substitute, until)
    except InputRejected as exc:
        db.session.rollback()
        return section_answer(user, 422, f"{exc} Nothing was changed.")
    flash(f"You are out of office: tasks given to you go to {substitute.username if substitute else ''} "
          "when they may do them.", "success")
    return section_answer(user)


def section_answer(user: User, status: int = 200, error: str | None = None) -> Any:
    """The section again for HTMX (with the messages), else back to the settings page."""
    if error:
        flash(error, "error")
    if wants_fragment():
        body = render_template("settings/_away.html", **away_context(user)) + oob_extras()
        return current_app.make_response((body, status))
    if status != 200:
        return render_template("settings/index.html", title="Settings", **away_context(user)), status
    return redirect(url_for("settings.index"), code=303)



