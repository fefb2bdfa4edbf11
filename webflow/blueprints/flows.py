"""Flows and their processes: the process page (more views join here)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, render_template
from flask_login import current_user, login_required

from .admin import flow_or_404, process_detail_context, process_or_404

bp = Blueprint("flows", __name__)


@bp.route("/flows/<flow_label>/<int:process_id>/")
@login_required
def process_detail(flow_label: str, process_id: int) -> Any:
    """The process page: data, tasks, graph, audit trail; repair buttons for managers."""
    flow_class = flow_or_404(flow_label)
    process = process_or_404(flow_class, process_id)
    if not (flow_class.can_view(current_user) or flow_class.can_manage(current_user)):
        abort(403)
    return render_template("flows/process_detail.html",
                           **process_detail_context(flow_class, process, current_user))
