"""Search: every task I may see, found by anything I remember of it, best match first."""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, current_app, request
from flask_login import current_user, login_required
from markupsafe import Markup, escape

from ..core.search import PREFIX_FROM, SearchTerms, search_tasks, sees_every_flow
from ..core.visibility import visible_tasks
from ..extensions import db
from .lookups import ResultPage, all_flows, page_number, within_pages
from .web import render_page

bp = Blueprint("search", __name__)

#: The tasks search lists: what people start and work on (not gateways, joins, jobs).
SEARCHED_KINDS = ("START", "HUMAN")
#: The most results a search counts and pages through: past it, more words narrow it.
RESULT_CAP = 1000
MAX_QUERY = 200


@bp.app_template_filter("highlight")
def highlight(text: str | None, query: str) -> Markup:
    """The text, escaped, with the query's words (and the words they begin) marked."""
    text = text or ""
    terms = SearchTerms.parse(query).words
    if not terms or not text:
        return escape(text)
    pattern = "|".join(re.escape(w) + (r"[^\W_]*" if len(w) >= PREFIX_FROM and not w.isdigit() else "")
                       for w in sorted(terms, key=len, reverse=True))
    found = re.compile(rf"(?<![^\W_])(?:{pattern})(?![^\W_])", re.IGNORECASE)
    out, last = [], 0
    for match in found.finditer(text):
        out += [escape(text[last:match.start()]), Markup("<mark>"), escape(match.group()), Markup("</mark>")]
        last = match.end()
    out.append(escape(text[last:]))
    return Markup("").join(out)


@bp.route("/search/")
@login_required
def search() -> Any:
    """Tasks I may see whose process matches the words (data, titles, numbers, people)."""
    query = " ".join(request.args.get("q", "").split())[:MAX_QUERY]
    user = current_user._get_current_object()
    per_page = current_app.config["WEBFLOW_PAGE_SIZE"]
    number = page_number()
    flows = all_flows().values()
    visible, sees_all = visible_tasks(flows, user), sees_every_flow(flows, user)
    found = search_tasks(db.session(), query, visible, kinds=SEARCHED_KINDS,
                         page=number, per_page=per_page, cap=RESULT_CAP, sees_all=sees_all)
    last = within_pages(number, found.total, per_page)
    if last != number:  # past the end (a hand-typed number, matches gone meanwhile): the last page
        number = last
        found = search_tasks(db.session(), query, visible, kinds=SEARCHED_KINDS,
                             page=number, per_page=per_page, cap=RESULT_CAP, sees_all=sees_all)
    page = ResultPage(found.tasks, number, per_page, found.total, found.capped)
    return render_page("search/results.html", ["results"], page=page, query=query,
                       searched=bool(SearchTerms.parse(query)), endpoint="search.search",
                       title=f"Search: {query}" if query else "Search")
