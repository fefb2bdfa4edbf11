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
#: Open steps named per process; the rest are counted (a fan-out has thousands open at once).
STEPS_SHOWN = 10


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
    steps, more = open_steps(page.items, user)
    return render_page("my_requests/index.html", ["requests"], page=page, state=state,
                       states=STATES, steps=steps, more=more, endpoint="my_requests.index",
                       title="My requests")


def open_steps(processes: list[Process], user: Any) -> tuple[dict[int, list[Task]], dict[int, int]]:
    """Each process's first ``STEPS_SHOWN`` unfinished tasks with their owners, and how
    many more it has (one query for the page). A fan-out's thousands of open steps were
    each read and drawn: a page of megabytes. A step's deadline timer is the flow's own
    business: only its managers see it (and count it)."""
    steps: dict[int, list[Task]] = defaultdict(list)
    more: dict[int, int] = {}
    if not processes:
        return steps, more
    managed = [f.path() for f in {p.flow_class for p in processes} if f.can_manage(user)]
    shown = sa.or_(Task.flow_task_type != "TIMEOUT", Task.flow_class_path.in_(managed))
    ranked = (sa.select(Task.id, Task.process_id,
                        sa.func.row_number().over(partition_by=Task.process_id, order_by=Task.id).label("n"),
                        sa.func.count().over(partition_by=Task.process_id).label("open"))
              .where(Task.process_id.in_([p.id for p in processes]), Task.status.not_in(list(FINISHED)), shown)
              .subquery())
    rows = db.session.execute(
        sa.select(Task, ranked.c.open).join(ranked, ranked.c.id == Task.id)
        .where(ranked.c.n <= STEPS_SHOWN).order_by(Task.id).options(selectinload(Task.owner)))
    for task, open_count in rows:
        steps[task.process_id].append(task)
        more[task.process_id] = open_count - len(steps[task.process_id])
    return steps, more
