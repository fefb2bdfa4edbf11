"""Logging in and out."""

from __future__ import annotations

import hmac
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from sqlalchemy.orm import joinedload
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired

from ..extensions import db, login_manager
from ..models import User
from .lookups import parse_id
from .web import coming_from, safe_next, to_login, wants_fragment

bp = Blueprint("auth", __name__)

login_manager.login_view = "auth.login"
login_manager.login_message = "Please log in to see this page."
login_manager.login_message_category = "info"


#: Checked for a username nobody has, so that an unknown name takes as long as a wrong password.
DUMMY = User(password_hash="pbkdf2_sha256$200000$fb1abe68cd3c5950d2ede0a5ce34c7da$"
                           "ac3be39fc12fa068c7161c13a23d71b303d077658d66c1dd9dc44cfc84ebdba8")


@login_manager.unauthorized_handler
def unauthorized() -> Any:
    """To the login form; an HTMX request gets 401 and HX-Redirect (htmx would swap the form in)."""
    if request.method != "GET":  # a POST of a page whose session ended: back to that page
        return to_login(coming_from())
    target = url_for("auth.login", next=coming_from())
    if wants_fragment():
        return Response(status=401, headers={"HX-Redirect": target})
    flash(login_manager.login_message, login_manager.login_message_category)
    return redirect(target)


#: The session's user with their groups in the same statement: nearly every page asks the
#: user's permissions (the rule book, the queue, the navigation), which would read them one
#: statement later. Built once: Session.get with options builds and keys a new one each time.
USER_WITH_GROUPS = sa.select(User).where(User.id == sa.bindparam("user_id")).options(joinedload(User.groups))


@login_manager.user_loader
def load_user(session_id: str) -> User | None:
    """The session's user, if still active and the session's token is still theirs."""
    user_id, _, token = session_id.partition(":")
    parsed = parse_id(user_id)
    user = (db.session.execute(USER_WITH_GROUPS, {"user_id": parsed}).unique().scalar_one_or_none()
            if parsed is not None else None)
    if user is None or not user.is_active or not user.session_token:
        return None
    return user if hmac.compare_digest(token, user.session_token) else None


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
    user = db.session.scalar(sa.select(User).where(User.username == (form.username.data or "")[:150]))
    matches = (user or DUMMY).check_password(form.password.data or "")  # the same work either way
    if user is None or not matches or not user.is_active:
        flash("Wrong username or password.", "error")
        return render_template("auth/login.html", form=form, title="Log in"), 401
    if not user.session_token:
        user.new_session_token()  # a user from before sessions named tokens
        db.session.commit()
    # A fresh session: nothing of the anonymous one (its CSRF token above all) is kept.
    session.clear()
    login_user(user)
    return redirect(target, code=303)


def expired_login() -> Any:
    """The login form sent after its CSRF token expired (a login page left open longer than
    WTF_CSRF_TIME_LIMIT, an hour): the form again with a fresh token and the name that was
    typed, at the same address (its ``next`` kept), saying to enter the password again."""
    form = LoginForm(formdata=None, username=(request.form.get("username") or "")[:150])
    flash("This login form was open a long time, so it was not sent. Enter your password again.", "error")
    return render_template("auth/login.html", form=form, title="Log in"), 400


@bp.route("/logout", methods=["POST"])
@login_required
def logout() -> Any:
    """Log out and go back to the login form; copies of the session cookie stop working too."""
    current_user.new_session_token()
    db.session.commit()
    logout_user()
    flash("You are logged out.", "info")
    return redirect(url_for("auth.login"), code=303)
