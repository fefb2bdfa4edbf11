"""Logging in and out."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired

from ..extensions import db, login_manager
from ..models import User
from .web import safe_next

bp = Blueprint("auth", __name__)

login_manager.login_view = "auth.login"
login_manager.login_message = "Please log in to see this page."
login_manager.login_message_category = "info"


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    """The logged-in user of the session, if still active."""
    user = db.session.get(User, int(user_id))
    return user if user is not None and user.is_active else None


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired()])
    password = PasswordField("Password", validators=[DataRequired()])


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """Show the login form; on success go to ``next`` (a path on this site) or the inbox."""
    form = LoginForm()
    target = safe_next(request.args.get("next"), url_for("index"))
    if current_user.is_authenticated and request.method == "GET":
        return redirect(target, code=303)
    if not form.validate_on_submit():
        status = 400 if request.method == "POST" else 200
        return render_template("auth/login.html", form=form, title="Log in"), status
    user = db.session.scalar(sa.select(User).where(User.username == form.username.data))
    if user is None or not user.is_active or not user.check_password(form.password.data or ""):
        flash("Wrong username or password.", "error")
        return render_template("auth/login.html", form=form, title="Log in"), 401
    login_user(user)
    return redirect(target, code=303)


@bp.route("/logout", methods=["POST"])
@login_required
def logout() -> Any:
    """Log out and go back to the login form."""
    logout_user()
    flash("You are logged out.", "info")
    return redirect(url_for("auth.login"), code=303)
