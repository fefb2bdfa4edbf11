"""Saved filters: a person's named filter, sort and search of the inbox or the queue
(endpoints of the inbox blueprint, as the task pages are of the flows blueprint)."""

from __future__ import annotations

import unicodedata
from typing import Any, cast
from urllib.parse import parse_qsl, urlencode

import sqlalchemy as sa
from flask import abort, flash, redirect, request, url_for
from flask_login import current_user, login_required
from werkzeug.routing import BuildError

from ..core.models import SavedFilter
from ..extensions import db
from .inbox import SORTS, WHEN_FILTERS, bp, list_filters, render_list
from .lookups import all_flows

#: The lists a filter can be saved on, and the query keys a filter keeps.
FILTERED_LISTS = ("inbox", "queue")
FILTER_KEYS = ("flow", "when", "q", "sort")
MAX_NAME = 80
MAX_FILTERS = 50
#: The longest query a filter keeps (``saved_filter.query``), URL-encoded.
MAX_QUERY: int = cast(sa.String, SavedFilter.__table__.c.query.type).length or 600
TOO_LONG = ("This filter is too long to save: shorten its search and save it again. "
            "Nothing was saved.")
LIST_URL = "/<any(inbox, queue):list_name>/filters/"


def name_problem(name: str) -> str | None:
    """Why a filter name is refused, or None for a good one."""
    if not name:
        return "Give the filter a name."
    if len(name) > MAX_NAME:
        return f"A filter name has at most {MAX_NAME} characters."
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs") for c in name):
        return "A filter name cannot hold control characters."
    return None


def filter_query() -> str:
    """The filter being saved: the list's own keys as the list applies them (unknown flows,
    due filters and sorts left out, the search as the list reads it), so the saved filter
    shows exactly the list the person sees. May be longer than MAX_QUERY (see save_filter)."""
    applied, asked = list_filters(all_flows()), request.args
    return urlencode([(k, applied[k]) for k in FILTER_KEYS  # a bad sort is the default: not kept
                      if asked.get(k) and applied[k] and (k != "sort" or asked[k] == applied[k])])


def mine(list_name: str) -> sa.Select[SavedFilter]:
    return sa.select(SavedFilter).where(SavedFilter.user_id == current_user.id,
                                        SavedFilter.list_name == list_name)


@bp.app_template_global()
def saved_filters(list_name: str) -> list[dict[str, Any]]:
    """My saved filters of the list, by name, each with its link and, when the list no
    longer applies all of it (its flow is not served any more, a due filter or sort is gone),
    why (``stale``)."""
    if not current_user.is_authenticated or list_name not in FILTERED_LISTS:
        return []
    rows = db.session.scalars(mine(list_name).order_by(SavedFilter.name, SavedFilter.id)).all()
    flows = all_flows()
    saved = []
    for row in rows:
        args = _args(row.query)
        saved.append({"id": row.id, "name": row.name, "stale": stale_reason(args, flows),
                      "url": url_for(f"inbox.{list_name}", **args)})
    return saved


def _args(query: str) -> dict[str, Any]:
    """The list keys of a stored query. A row of an older format (or an import) may hold
    others; never handed to ``url_for``, which takes ``endpoint``, ``_external``, ``_scheme``
    or ``_anchor`` as its own arguments."""
    return {key: value for key, value in parse_qsl(query) if key in FILTER_KEYS}


def stale_reason(args: dict[str, Any], flows: dict[str, Any]) -> str | None:
    """Why the list would not apply all of a saved filter now (it ignores what it does not
    know, so the filter would silently show more), or None."""
    if args.get("flow") and args["flow"] not in flows:
        return "its flow is no longer served here"
    if (args.get("when") and args["when"] not in WHEN_FILTERS) or (
            args.get("sort") and args["sort"].lstrip("-") not in SORTS):
        return "part of it is no longer offered"
    return None


@bp.route(LIST_URL, methods=["POST"])
@login_required
def save_filter(list_name: str) -> Any:
    """Save the list's current filter (the query string) under the name; a name already
    used on this list gets the new filter."""
    name = " ".join(request.form.get("name", "").split())
    problem = name_problem(name)
    existing = db.session.scalar(mine(list_name).where(SavedFilter.name == name)) if not problem else None
    query = filter_query()
    if problem is None and len(query) > MAX_QUERY:  # kept whole or not at all, never cut
        problem = TOO_LONG
    if problem is None and existing is None and (db.session.scalar(
            sa.select(sa.func.count()).select_from(mine(list_name).subquery())) or 0) >= MAX_FILTERS:
        problem = f"You can keep at most {MAX_FILTERS} filters on a list: delete one first."
    if problem:
        flash(problem, "error")
        return render_list(list_name, status=422, filter_name=name[:MAX_NAME])
    if existing is None:
        db.session.add(SavedFilter(user_id=current_user.id, list_name=list_name, name=name,
                                   query=query))
    else:
        existing.query = query
    try:
        db.session.commit()
    except sa.exc.IntegrityError:  # the same name saved at the same moment by another tab
        db.session.rollback()
        abort(409, "A filter of that name was just saved: reload the page.")
    flash(f"Filter “{name}” saved.", "success")
    kept: dict[str, Any] = dict(parse_qsl(query))
    return redirect(url_for(f"inbox.{list_name}", **kept), code=303)


@bp.route("/filters/<int:filter_id>/delete/", methods=["POST"])
@login_required
def delete_filter(filter_id: int) -> Any:
    """Delete one of my saved filters (another person's is not found: 404)."""
    row = db.session.get(SavedFilter, filter_id)
    if row is None or row.user_id != current_user.id:
        abort(404)
    list_name, name = row.list_name, row.name
    db.session.delete(row)
    db.session.commit()
    flash(f"Filter “{name}” deleted.", "success")
    # A row of a list that has no page (an older format, an import): url_for raised
    # BuildError, a 500 after the row was deleted.
    try:
        back = url_for(f"inbox.{list_name}")
    except BuildError:
        back = url_for("inbox.inbox")
    return redirect(back, code=303)
