"""The task lists: inbox, queue, archive."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, render_template
from flask_login import current_user, login_required

from ..core.status import STATUS
from ..extensions import db
from ..models import Task

bp = Blueprint("inbox", __name__)


@bp.route("/inbox/")
@login_required
def inbox():  # type: ignore[no-untyped-def]
    tasks = db.session.scalars(
        sa.select(Task).where(Task.owner_id == current_user.id, Task.status == STATUS.ASSIGNED)
        .order_by(Task.created.desc()).limit(50)
    ).all()
    return render_template("inbox/list.html", tasks=tasks, title="Inbox")
