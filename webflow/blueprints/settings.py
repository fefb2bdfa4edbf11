"""The settings page: one section per thing a person sets for themselves (time zone, ...).

The page is a container; each section is a partial (``templates/settings/_<name>.html``)
with its own form posting to its own endpoint here."""

from __future__ import annotations

from typing import Any
from zoneinfo import available_timezones

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from ..extensions import db
from ..timefmt import browser_zone, zone_named

bp = Blueprint("settings", __name__)


def zone_choices() -> list[str]:
    """Every IANA zone this server knows, sorted (the picker's options)."""
    return sorted(z for z in available_timezones() if "/" in z or z == "UTC")


def render_settings(status: int = 200) -> Any:
    browser = browser_zone()
    return render_template("settings/index.html", title="Settings", zones=zone_choices(),
                           browser_zone=str(browser) if browser else None), status


@bp.route("/settings/")
@login_required
def index() -> Any:
    """My settings, one section each."""
    return render_settings()


@bp.route("/settings/timezone/", methods=["POST"])
@login_required
def timezone() -> Any:
    """Save the zone I read times in ("" follows the browser's zone); 422 for no zone."""
    if "timezone" not in request.form:
        flash("Choose a time zone. Nothing was changed.", "error")
        return render_settings(422)
    name = request.form["timezone"].strip()
    if name and (zone_named(name) is None or name not in available_timezones()):
        flash(f"“{name[:64]}” is not a time zone this site knows. Nothing was changed.", "error")
        return render_settings(422)
    current_user.timezone = name or None
    db.session.commit()
    flash(f"Times are shown in {name} now." if name else
          "Times are shown in your browser's time zone now.", "success")
    return redirect(url_for("settings.index"), code=303)
