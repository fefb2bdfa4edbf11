"""My requests: the processes I started, where each stands and who has it now."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, current_app, request
from flask_login import current_user, login_required
from sqlalchemy.orm import selectinload

from ..core.status import FINISHED, STATUS
from ..extensions import db
from ..models import Process, Task
from .lookups import all_flows, paginate_within
from .web import render_page

bp = Blueprint("my_requests", __name__)

#: The status filter: open processes, or those that ended one way or the other.
STATES = {"open": STATUS.NEW, "done": STATUS.DONE, "canceled": STATUS.CANCELED}


@bp.route("/requests/")
@login_required
def index() -> Any:
    """The processes I started, newest first, with their open steps and their owners."""
    user = current_user._get_current_object()
    state = request.args.get("status", "")
    state = state if state in STATES else ""
    query = sa.select(Process).where(
        Process.created_by_id == user.id,
        Process.flow_class_path.in_([f.path() for f in all_flows().values()]))
    if state:
        query = query.where(Process.status == STATES[state])
    page = paginate_within(query.order_by(Process.created.desc(), Process.id.desc()),
                           current_app.config["WEBFLOW_PAGE_SIZE"])
    return render_page("my_requests/index.html", ["requests"], page=page, state=state,
                       states=STATES, steps=open_steps(page.items), endpoint="my_requests.index",
                       title="My requests")


def open_steps(processes: list[Process]) -> dict[int, list[Task]]:
    """Each process's unfinished tasks with their owners (one query for the page)."""
    steps: dict[int, list[Task]] = defaultdict(list)
    if not processes:
        return steps
    tasks = db.session.scalars(
        sa.select(Task).where(Task.process_id.in_([p.id for p in processes]),
                              Task.status.not_in(list(FINISHED)))
        .order_by(Task.id).options(selectinload(Task.owner)))
    for task in tasks:
        steps[task.process_id].append(task)
    return steps
