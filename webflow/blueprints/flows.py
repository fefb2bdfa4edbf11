"""Flows and their processes: what I can start, process lists, start forms, the process page.

The task pages join this blueprint from ``tasks.py`` (endpoints ``flows.task_*``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, abort, current_app, flash, redirect, request, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from sqlalchemy.orm import selectinload
from wtforms import FileField
from wtforms.form import BaseForm
from wtforms.validators import StopValidation

from ..core.drafts import well_formed
from ..core.engine import cancel_blocker, stall_reason
from ..core.flow import Flow, Node
from ..core.form_tokens import is_form_token, new_form_token
from ..core.guard import kept_on_refusal
from ..core.json_data import NOT_A_JSON_NUMBER, unstorable
from ..core.models import Comment, task_link
from ..core.nodes.start import StartActivation
from ..core.queries import with_alive_leading
from ..core.status import STATUS
from ..core.visibility import can_see_process, sees_flow
from ..extensions import db
from ..graph_svg import node_states, process_graph
from ..models import Process, Task, TaskEvent
from .actions import task_actions
from .lookups import (
    ResultPage,
    all_flows,
    flow_or_404,
    page_number,
    paginate_within,
    parse_id,
    process_or_404,
    process_url,
    row_task_url,
    task_url,
)
from .web import engine_context, form_data, render_page

bp = Blueprint("flows", __name__)

PROCESS_STATUSES = (STATUS.NEW, STATUS.DONE, STATUS.CANCELED)


def startable_nodes(flow_class: type[Flow], user: Any) -> list[Node]:
    """The start nodes of the flow the user may start a process from."""
    return [node for node in flow_class.start_nodes() if node.can_execute(user, None)]


def sees_all_processes(flow_class: type[Flow], user: Any) -> bool:
    return sees_flow(flow_class, user)


def node_form(node: Node, **kwargs: Any) -> FlaskForm:
    """The node's Flask-WTF form, or an empty one (just the CSRF token) when it has none.
    Bound to a POST, a posted name no FieldList can read (``drafts.well_formed``) is 400."""
    form_class = getattr(node, "form", None) or FlaskForm
    if "formdata" not in kwargs and request.method == "POST" and not all(
            map(well_formed, [*request.form, *request.files])):
        abort(400, "The form is damaged: reload the page and fill it in again.")
    form = form_class(**kwargs)
    for field in nested_fields(form):
        refuse_non_number(field)
    return form  # type: ignore[no-any-return]


def nested_fields(field: Any) -> Iterator[Any]:
    """Every field in ``field`` (a form, a FieldList, a FormField) and those inside them."""
    for inner in (field.entries if getattr(field, "type", "") == "FieldList"
                  else field.form if getattr(field, "type", "") == "FormField"
                  else field if isinstance(field, BaseForm) else ()):
        yield inner
        yield from nested_fields(inner)


def refuse_non_number(field: Any) -> None:
    """A number field given NaN or an infinity ("nan", "snan", "inf": Decimal and float read
    them) says so and runs no other check of its value: a Decimal NaN raises on comparing
    (WTForms' NumberRange, a form's own ``validate_<field>``) and a signaling one on
    ``math.isnan``, which made a 500 of the form; a DecimalField inside a FieldList or
    FormField stored the text "NaN" or "Infinity" where a number belongs."""
    value = getattr(field, "data", None)
    if isinstance(value, Decimal | float) and not (
            value.is_finite() if isinstance(value, Decimal) else math.isfinite(value)):
        def stop(form: Any) -> None:
            raise StopValidation(NOT_A_NUMBER)
        field.pre_validate = stop  # this bound field only: the chain of checks is skipped


#: What a field that ``process.data`` could not hold says beside it (the form is 422, nothing stored).
FILE_REFUSED = ("A file cannot be kept here: process data holds text, numbers, yes/no, lists "
                "and dicts. Nothing was stored.")
NOT_A_NUMBER = "Give a number (not NaN or an infinity): nothing was stored."


def storable_data(form: FlaskForm) -> dict[str, Any] | None:
    """The validated form's data for ``process.data`` (``form_data``), or None after marking
    every field whose value the column cannot hold (the page answers 422 with the form as
    typed): a file (JSON has no place for one; it was kept as the text of its name or of
    ``FileStorage``, or dropped unseen when the form was not sent as multipart), NaN or an
    infinity (a FloatField or DecimalField takes "nan" and "inf"), anything else
    ``json_data.unstorable`` refuses (which would be a 409 error page after the form was
    accepted, what was typed lost)."""
    data = form_data(form)
    refused = False
    for field in form:
        if field.name not in data:
            continue
        data[field.name] = without_tokens(field, data[field.name])
        files = file_fields(field)
        if any(map(sent_a_file, files)):
            problem = FILE_REFUSED
        elif files:
            problem = None  # no file chosen: the field's empty value is stored
        elif isinstance(field.data, Decimal) and not field.data.is_finite():
            problem = NOT_A_NUMBER
        else:
            why = unstorable(data[field.name])
            problem = (None if why is None else NOT_A_NUMBER if NOT_A_JSON_NUMBER in why
                       else f"This value cannot be stored: {why}.")
        if problem is not None:
            refused = True
            if isinstance(field.errors, list):  # a FormField's are a dict: the flash names it
                field.errors.append(problem)
            flash(f"{field.label.text}: {problem}", "error")
    return None if refused else data


def without_tokens(field: Any, value: Any) -> Any:
    """The field's value without the CSRF token of a FlaskForm nested in it (``FormField``,
    in a ``FieldList`` too): ``form_data`` drops the form's own token only, and a nested
    one went into ``process.data``, shown on the data card to everyone who sees the
    process: the starter's live token, good for a forged request in their name."""
    if field.type == "FormField" and isinstance(value, dict):
        return {name: without_tokens(field.form[name], item) for name, item in value.items()
                if name not in field.form._fields or field.form[name].type != "CSRFTokenField"}
    if field.type == "FieldList" and isinstance(value, list) and len(value) == len(field.entries):
        return [without_tokens(entry, item) for entry, item in zip(field.entries, value, strict=True)]
    return value


def file_fields(field: Any) -> list[Any]:
    """The file fields among ``field`` and the fields inside it (a FieldList's entries, a
    FormField's fields)."""
    if isinstance(field, FileField):
        return [field]
    if field.type == "FieldList":
        return [inner for entry in field.entries for inner in file_fields(entry)]
    if field.type == "FormField":
        return [inner for sub in field.form for inner in file_fields(sub)]
    return []


def sent_a_file(field: Any) -> bool:
    """True when the person chose a file for the field: as an upload, or (a form not sent as
    multipart) as the file's name."""
    chosen = [*request.files.getlist(field.name), *request.form.getlist(field.name)]
    return any(getattr(item, "filename", item) for item in chosen) or bool(field.data)


@bp.route("/flows/")
@login_required
def index() -> Any:
    """The flows I can see, with the start forms I may use."""
    user = current_user._get_current_object()
    visible = []
    for label, flow_class in all_flows().items():
        starts = startable_nodes(flow_class, user)
        if starts or flow_class.can_view(user):
            visible.append((label, flow_class, starts))
    return render_page("flows/index.html", ["flows"], visible=visible, title="Flows")


@bp.route("/flows/<flow_label>/")
@login_required
def process_list(flow_label: str) -> Any:
    """The flow's processes; people who may only start it see the ones they started."""
    flow_class = flow_or_404(flow_label)
    user = current_user._get_current_object()
    starts = startable_nodes(flow_class, user)
    everyone = sees_all_processes(flow_class, user)
    if not (everyone or starts):
        abort(403)
    status = request.args.get("status", "")
    status = status if status in {s.value for s in PROCESS_STATUSES} else ""
    text = request.args.get("q", "").strip()[:200]
    query = sa.select(Process).where(Process.flow_class_path == flow_class.path())
    if not everyone:
        query = query.where(Process.created_by_id == user.id)
    if status:
        query = query.where(Process.status == STATUS(status))
    if text:
        query = query.where(sa.func.lower(Process.summary).contains(text.lower(), autoescape=True))
    page = paginate_within(query.order_by(Process.created.desc(), Process.id.desc())
                           .options(selectinload(Process.created_by)), current_app.config["WEBFLOW_PAGE_SIZE"])
    return render_page("flows/processes.html", ["processes"], flow_class=flow_class, starts=starts,
                       page=page, filters={"status": status, "q": text}, statuses=PROCESS_STATUSES,
                       everyone=everyone, endpoint="flows.process_list", title=flow_class.process_title)


@bp.route("/flows/<flow_label>/start/<node>/", methods=["GET", "POST"])
@login_required
def start(flow_label: str, node: str) -> Any:
    """GET shows the start form; POST validates it and starts a process."""
    flow_class = flow_or_404(flow_label)
    start_node: Any = next((n for n in flow_class.start_nodes() if n.name == node), None)
    if start_node is None:
        abort(404)
    user = current_user._get_current_object()
    if not start_node.can_execute(user, None):
        abort(403)
    if start_node.view_func is not None:
        # The node's own view: it gets the activation, calls prepare(data, user) and
        # done() itself, and returns the response.
        with engine_context():
            return start_node.view_func(StartActivation.new(start_node))
    token = start_token()
    form = node_form(start_node)
    context = {"flow_class": flow_class, "node": start_node, "form": form, "start_token": token,
               "title": f"Start: {flow_class.process_title}"}
    if request.method == "POST" and (earlier := started_with(token, user)) is not None:
        return already_started(flow_class, earlier, user)
    data = storable_data(form) if form.validate_on_submit() else None
    if data is None:
        if request.method == "POST":
            flash("Please correct the marked fields.", "error")
        return render_page("flows/start.html", ["start_form"],
                           status=422 if request.method == "POST" else 200, **context)

    def begin() -> Any:
        activation = StartActivation.new(start_node)
        activation.process.start_token = token if request.form.get(START_TOKEN) else None
        with engine_context():
            activation.prepare(data=data, user=user)
            activation.done()
        return activation.process

    try:
        process = kept_on_refusal(db.session(), begin)
    except sa.exc.IntegrityError:
        # The same form, sent twice at once: the other request stored its process first.
        db.session.rollback()
        earlier = started_with(token, user)
        if earlier is None:
            abort(409, "This form was already used: reload the page and fill it in again.")
        return already_started(flow_class, earlier, user)
    flash(f"{flow_class.process_title} #{process.id} is started.", "success")
    return redirect(_after_start(flow_class, process, user), code=303)


#: The start form's hidden one-time token: the same rendered form sent again (Back button,
#: double click, a retry after a timeout) finds the process it started instead of another.
START_TOKEN = "start_token"


def start_token() -> str:
    """The token the posted form carries (400 when malformed), or a new one for the form."""
    sent = request.form.get(START_TOKEN, "") if request.method == "POST" else ""
    if not sent:
        return new_form_token()
    if not is_form_token(sent):
        abort(400, "The form is damaged: reload the page and fill it in again.")
    return sent


def started_with(token: str, user: Any) -> Process | None:
    """The process this user's form with this token already started."""
    return db.session.scalar(sa.select(Process).where(Process.start_token == token,
                                                      Process.created_by_id == user.id))


def already_started(flow_class: type[Flow], process: Process, user: Any) -> Any:
    flash(f"This form was already sent: {flow_class.process_title} #{process.id} was started then, "
          "and nothing new was started.", "info")
    return redirect(_after_start(flow_class, process, user), code=303)


def _after_start(flow_class: type[Flow], process: Process, user: Any) -> str:
    """Where the starter goes next: their next task in it, the process, or the flow list."""
    mine = db.session.scalars(sa.select(Task).where(
        Task.process_id == process.id, Task.owner_id == user.id, Task.status == STATUS.ASSIGNED,
    ).order_by(Task.id).limit(1)).first()
    if mine is not None:
        return task_url(mine)
    if may_see_process(flow_class, process, user):
        return process_url(process)
    return url_for("flows.index")


def may_see_process(flow_class: type[Flow], process: Process, user: Any) -> bool:
    """Viewers and managers see every process; the starter sees their own (core.visibility)."""
    return can_see_process(process, user)


@bp.route("/flows/<flow_label>/<int:process_id>/")
@login_required
def process_detail(flow_label: str, process_id: int) -> Any:
    """The process page: data, tasks, graph, audit trail; repair buttons for managers."""
    flow_class = flow_or_404(flow_label)
    process = process_or_404(flow_class, process_id)
    if not may_see_process(flow_class, process, current_user):
        abort(403)
    # HTMX: the page's own section (its pagers and live refreshes swap it), with the
    # navigation counts and messages out of band; any other request: the whole page.
    return render_page("flows/process_detail.html", ["process"],
                       **process_detail_context(flow_class, process, current_user))


#: Task rows per page of the process page: a fan-out over thousands of items would
#: otherwise be one page of megabytes (5,000 tasks: 4-5 MB, 2-3 s).
PROCESS_TASKS_PER_PAGE = 100


#: Tasks a row's Previous or Leading cell names; the rest are counted. A split's leading
#: tasks are one per item of a fan-out.
LINKS_NAMED = 12


@dataclass(slots=True)
class LinkCell:
    """A Previous or Leading cell of the process page: the first linked tasks (the text
    and target of each link) and how many there are."""

    named: list[tuple[str, str]]
    total: int

    @property
    def more(self) -> int:
        return self.total - len(self.named)


def linked_cells(flow_class: type[Flow], task_ids: list[int]) -> dict[int, tuple[LinkCell, LinkCell]]:
    """The Previous and Leading cells of these tasks: two queries that name at most
    ``LINKS_NAMED`` linked tasks per cell and count the rest in the database (loading a
    split's thousands of leading tasks to name a dozen took most of the page's time)."""
    empty = LinkCell([], 0)
    cells: dict[int, tuple[LinkCell, LinkCell]] = {task_id: (empty, empty) for task_id in task_ids}
    on_page = set(task_ids)
    for side, (here, there) in enumerate(((task_link.c.task_id, task_link.c.previous_id),
                                          (task_link.c.previous_id, task_link.c.task_id))):
        numbered = (
            sa.select(here.label("here"), Task.id, Task.node_name, Task.process_id,
                      sa.func.row_number().over(partition_by=here, order_by=Task.id).label("n"),
                      sa.func.count().over(partition_by=here).label("total"))
            .join(Task, Task.id == there).where(here.in_(task_ids)).subquery())
        found: dict[int, LinkCell] = {}
        for row in db.session.execute(sa.select(numbered).where(numbered.c.n <= LINKS_NAMED)
                                      .order_by(numbered.c.here, numbered.c.n)):
            cell = found.setdefault(row.here, LinkCell([], row.total))
            # A task of this page is a jump down the page; another is opened.
            href = f"#task-{row.id}" if row.id in on_page else row_task_url(flow_class, row.process_id, row)
            cell.named.append((f"{row.node_name} #{row.id}", href))
        for task_id, cell in found.items():
            pair = cells[task_id]
            cells[task_id] = (cell, pair[1]) if side == 0 else (pair[0], cell)
    return cells


#: Subprocesses the process page names; a Subprocess fanned out over a list starts one
#: per item, and each is linked from the page of the task that started it.
CHILDREN_NAMED = 100


def children_of(process: Process, every: Sequence[Any]) -> dict[str, Any]:
    """The processes the process's Subprocess tasks started: the first ``CHILDREN_NAMED``,
    oldest first, and how many there are (``every``: the process's task rows)."""
    if not any(row.flow_task_type == "SUBPROCESS" for row in every):
        return {"children": [], "children_total": 0}
    # A subquery, not the tasks' ids: thousands of them would be thousands of parameters.
    started = Process.parent_task_id.in_(sa.select(Task.id).where(
        Task.process_id == process.id, Task.flow_task_type == "SUBPROCESS").scalar_subquery())
    children = list(db.session.scalars(sa.select(Process).where(started).order_by(Process.id)
                                       .limit(CHILDREN_NAMED)))
    total = len(children)
    if total == CHILDREN_NAMED:
        total = db.session.scalar(sa.select(sa.func.count()).select_from(Process).where(started)) or 0
    return {"children": children, "children_total": total}


#: Audit rows per page of the process page's trail: a fan-out over thousands of items
#: leaves two or three rows per branch.
PROCESS_EVENTS_PER_PAGE = 200
#: Comments per page of the process page, which shows its tasks' comments too (a fan-out
#: of reviews may have one per item).
PROCESS_COMMENTS_PER_PAGE = 100


def newest_page(entity: Any, process: Process, key: str, per_page: int) -> ResultPage:
    """A page of the process's audit rows or comments (``?<key>=``), oldest first; without
    a page asked for (or a bad one), the last: what happened most recently. Each row names
    its task and links to it: the tasks come with their rows in one query, with only what
    the name, the link and the wording need."""
    mine = entity.process_id == process.id
    total = db.session.scalar(sa.select(sa.func.count()).select_from(entity).where(mine)) or 0
    page = ResultPage([], 1, per_page, total, False)
    page.page = min(parse_id(request.args.get(key)) or page.pages, page.pages)
    page.items = list(db.session.scalars(
        sa.select(entity).where(mine).order_by(entity.created, entity.id)
        .offset((page.page - 1) * per_page).limit(per_page)
        .options(selectinload(entity.task).load_only(Task.node_name, Task.process_id, Task.flow_class_path,
                                                     Task.flow_task_type))))
    return page


def process_detail_context(flow_class: type[Flow], process: Process, user: Any) -> dict[str, Any]:
    """Everything the process page shows: data, tasks (a page of them), graph, audit
    trail, repair buttons."""
    # The graph, the nodes' links and the subprocesses need every task, but only these
    # columns: plain rows, not objects.
    every = db.session.execute(
        sa.select(Task.id, Task.node_name, Task.status, Task.flow_task_type)
        .where(Task.process_id == process.id).order_by(Task.id)).all()
    paging = ResultPage([], page_number(), PROCESS_TASKS_PER_PAGE, len(every), False)
    paging.page = min(paging.page, paging.pages)  # past the end: the last page
    first = (paging.page - 1) * PROCESS_TASKS_PER_PAGE
    shown = every[first:first + PROCESS_TASKS_PER_PAGE]
    if shown:
        # Owners and links in three queries, not three per task.
        paging.items = list(db.session.scalars(
            sa.select(Task).where(Task.process_id == process.id, Task.id.between(shown[0].id, shown[-1].id))
            .order_by(Task.id)
            # Undo's rule asks whether a done task's leading tasks are all canceled: counted
            # for every row in the same query (the cells below name a few of them).
            .options(selectinload(Task.owner), with_alive_leading())))
    tasks: list[Task] = paging.items
    manager = flow_class.can_manage(user)
    latest = {row.node_name: row for row in every}
    links = {name: row_task_url(flow_class, process.id, row) for name, row in latest.items()}
    trail = newest_page(TaskEvent, process, "trail", PROCESS_EVENTS_PER_PAGE)
    comments = newest_page(Comment, process, "comments", PROCESS_COMMENTS_PER_PAGE)
    return {
        "flow_class": flow_class,
        "process": process,
        "tasks": tasks,
        "tasks_page": paging,
        "on_page": {task.id for task in tasks},
        "linked": linked_cells(flow_class, [task.id for task in tasks]) if manager else {},
        "events": trail.items,
        "trail": trail,
        "comments": comments.items,
        "comments_page": comments,
        "is_manager": manager,
        "transitions": {t.id: task_actions(t, user) for t in tasks} if manager else {},
        "cancel_blocker": cancel_blocker(process) if manager else None,
        **children_of(process, every),
        "parent_task": process.parent_task,
        "stalled": process.status == STATUS.NEW and process.stalled is not None,
        "stall": stall_reason(db.session(), process) if process.stalled is not None else None,
        "graph": process_graph(flow_class, node_states(every), links),  # type: ignore[arg-type]
        "title": f"{flow_class.process_title} #{process.id}",
    }
