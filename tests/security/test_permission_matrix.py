"""Every URL and method of the app, times every kind of user, with and without HTMX.

The cases come from the URL map, and for the transition endpoints from the engine's rule
book (each activation's declared transitions, their ``label`` and ``permission``), so a
new URL or transition is covered without editing this file. Each answer is checked against
what the rules say, and a refusal (or any GET) must leave every row of the database as it
was. A request that changed the target gets a fresh one before the next user asks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from security_support import KINDS, STATES, client_for, dump, label_process, task_of, user
from web_flows import LabelFlow
from werkzeug.exceptions import MethodNotAllowed

from webflow.blueprints.action_addresses import FORM_ADDRESSES
from webflow.blueprints.actions import find_action, hands_over, people_transition, rule_book_names
from webflow.blueprints.flows import may_see_process, startable_nodes
from webflow.blueprints.tasks import can_complete, may_see
from webflow.models import Process, Task

#: Answers that send the browser on (to the login form, or after a change).
REDIRECTS = (302, 303)


@dataclass
class Case:
    endpoint: str
    method: str
    state: str | None              # which target the URL is about (None: no target)
    transition: str | None = None  # the <transition> part, for the endpoints that have one

    def __str__(self) -> str:
        return f"{self.method} {self.endpoint} {self.state or ''} {self.transition or ''}".strip()


def transitions_of(state: str) -> list[str]:
    """The declared transitions of the state's task, and a name no activation has."""
    activation_class = LabelFlow.node(STATES[state]).activation_class
    return sorted({*activation_class.transitions(), *rule_book_names(), "explode"})


def cases(app: Flask) -> list[Case]:
    """Every rule of the URL map with its methods, one it refuses (405), and its targets."""
    found = []
    for rule in app.url_map.iter_rules():
        methods = sorted(rule.methods - {"HEAD", "OPTIONS"})
        methods += ["POST" if "POST" not in methods else "GET"]  # one the rule does not take: 405
        args = set(rule.arguments)
        states = list(STATES) if "process_id" in args else [None]
        for method in methods:
            refused = method not in rule.methods  # one name is enough to see the 405
            for state in states:
                if "transition" in args:
                    names = transitions_of(state)
                    found += [Case(rule.endpoint, method, state, t) for t in names[:1] if refused] or \
                        [Case(rule.endpoint, method, state, t) for t in names]
                else:
                    found.append(Case(rule.endpoint, method, state))
    return found


def build_url(app: Flask, case: Case, process: Process | None) -> str:
    rule = next(r for r in app.url_map.iter_rules() if r.endpoint == case.endpoint)
    task = task_of(process, STATES[case.state]) if process is not None and case.state else None
    values: dict[str, Any] = {"flow_label": "label", "node": "start", "filename": "css/webflow.css",
                              "task_id": 1, "action": "fire",  # admin.timer_action: task 1 is no timer
                              "list_name": "queue", "filter_id": 1}  # saved filter 1 does not exist
    if task is not None:
        values.update(process_id=process.id, node=task.node_name, task_id=task.id)  # type: ignore[union-attr]
    if case.transition:
        values["transition"] = case.transition
    with app.test_request_context():
        return app.url_map.bind("localhost").build(case.endpoint, {k: v for k, v in values.items()
                                                                   if k in rule.arguments})


# -- what the rules say --------------------------------------------------------------------------


def expected(app: Flask, case: Case, url: str, who: Any, task: Task | None, hx: bool) -> int:
    """The status the rules give this user for this case."""
    try:
        endpoint, values = app.url_map.bind("localhost").match(url, case.method)
    except MethodNotAllowed:
        return 405
    if endpoint != case.endpoint:  # /queue/ by POST, .../status/ by POST: another rule's URL
        case = Case(endpoint, case.method, case.state, values.get("transition"))
    public = {"static": 200, "index": 302, "favicon": 302}
    if case.endpoint in public:
        return public[case.endpoint]
    if case.endpoint == "auth.login":
        if case.method == "GET":
            return 200 if who is None else 303
        return 400  # an empty form, whoever sends it
    if who is None:
        return 401 if hx else 302
    flow = app.extensions["webflow_flows"]["label"]
    checks: dict[str, Callable[[], int]] = {
        "auth.logout": lambda: 303,
        "inbox.inbox": lambda: 200, "inbox.queue": lambda: 200, "inbox.archive": lambda: 200,
        "inbox.queue_assign": lambda: 400 if hx else 303,  # nothing chosen: said on the queue page
        "flows.index": lambda: 200,
        "flows.process_list": lambda: 200 if (flow.can_view(who) or flow.can_manage(who)
                                              or startable_nodes(flow, who)) else 403,
        "flows.start": lambda: (403 if not flow.start.can_execute(who)
                                else 200 if case.method == "GET" else 422),
        "flows.process_detail": lambda: 200 if may_see_process(flow, task.process, who) else 403,
        "flows.task_detail": lambda: task_page(flow, task, who, case.method, hx),
        "flows.task_status": lambda: 200 if may_see(flow, task, who) else 403,
        "flows.task_transition": lambda: transition_answer(flow, task, who, case.transition or "", hx),
        "admin.index": lambda: 200 if (flow.can_manage(who) or who.has_perm("hello_world.manage")) else 403,
        "admin.confirm_transition": lambda: confirm_answer(flow, task, who, case.transition or ""),
        "flows.task_confirm": lambda: task_confirm_answer(flow, task, who, case.transition or ""),
        "settings.index": lambda: 200,
        "settings.timezone": lambda: 422,  # no zone chosen: said on the settings page
        "admin.process_cancel": lambda: cancel_answer(flow, task.process, who, case.method, hx),
        "admin.graph_svg": lambda: 200 if flow.can_view(who) else 403,
        # A manager's due-date form, sent empty: refused field by field (issue 14).
        "flows.task_due": lambda: 422 if flow.can_manage(who) else 403,
        # The matrix's task is no timer: there is no such timer to fire, for anyone.
        "admin.timer_action": lambda: 404,
        "admin.timer_action_opened": lambda: 404,  # its address opened (GET): the same 404
        # Working together (issue 16): an empty comment is refused for whoever may post one.
        "flows.task_comment": lambda: 422 if may_see(flow, task, who) else 403,
        "flows.process_comment": lambda: 422 if may_see_process(flow, task.process, who) else 403,
        "flows.task_draft": lambda: draft_answer(flow, task, who, hx),
        "settings.away": lambda: 422,  # no substitute chosen
        # The notifications form sent empty is valid (no address, every kind off) and saved.
        "settings.notifications": lambda: 200 if hx else 303,
        # Search and my requests: everyone's own; a filter saved without a name is refused,
        # and filter 1 is nobody's.
        "search.search": lambda: 200, "my_requests.index": lambda: 200,
        "inbox.save_filter": lambda: 422, "inbox.delete_filter": lambda: 404,
        # Live updates (issue 16): without Redis the stream says "poll" (204); the poll, the
        # nav counts and the stale-task banner follow the pages' rules.
        "live.events": lambda: 204,
        "live.poll": lambda: 200,
        "live.counts": lambda: 200 if hx else 303,
        "flows.task_banner": lambda: (403 if not may_see(flow, task, who) else 200 if hx else 303),
        # An address that takes only a form, opened: nothing is done, on to the task or process.
        "flows.task_action_opened": lambda: opened_answer(flow, task, who, case.transition or "", hx),
        "flows.process_comments_opened": lambda: (403 if not may_see_process(flow, task.process, who)
                                                  else 200 if hx else 303),
    }
    return checks[case.endpoint]()


def task_page(flow: Any, task: Task, who: Any, method: str, hx: bool) -> int:
    if not may_see(flow, task, who):
        return 403
    if method == "GET":
        return 200
    if task.flow_task_type != "HUMAN" or task.owner_id != who.id:
        return 403
    return 422 if can_complete(task, who) else 409  # the empty form is invalid


def draft_answer(flow: Any, task: Task, who: Any, hx: bool) -> int:
    """Only the owner keeps a draft, while the task is theirs to complete."""
    if not may_see(flow, task, who) or task.flow_task_type != "HUMAN" or task.owner_id != who.id:
        return 403
    if not can_complete(task, who):
        return 409
    return 200 if hx else 303


def transition_answer(flow: Any, task: Task, who: Any, name: str, hx: bool) -> int:
    """The rule book's answer: unknown or unlabelled 404, unseen 403, rule 403, status 409."""
    activation = task.activate()
    declared = people_transition(activation, name)
    if declared is None and name not in rule_book_names():
        return 404
    if not may_see(flow, task, who):
        return 403
    if declared is None:
        return 409  # a transition of other kinds of task
    blocked = declared.blocked_reason(activation)
    arguments = {}
    if hands_over(declared):
        if task.owner_id is not None and blocked is None:
            return 400  # handing an owned task over needs a pick
        arguments = {"user": who}
    if not declared.allows(activation, who, arguments):
        return 403
    if blocked is not None:
        return 409
    return 200 if hx else 303


def opened_answer(flow: Any, task: Task, who: Any, name: str, hx: bool) -> int:
    """A task action's (or form's) address opened: the action's 404 and 403, else to the task."""
    if people_transition(task.activate(), name) is None and name not in (*rule_book_names(), *FORM_ADDRESSES):
        return 404
    if not may_see(flow, task, who):
        return 403
    return 200 if hx else 303


def confirm_answer(flow: Any, task: Task, who: Any, name: str) -> int:
    if not flow.can_manage(who):
        return 403
    activation = task.activate()
    declared = people_transition(activation, name)
    if declared is None:
        return 409 if name in rule_book_names() else 404
    if find_action(task, who, declared.name) is not None:
        return 200
    return 409 if declared.blocked_reason(activation) is not None else 403


def task_confirm_answer(flow: Any, task: Task, who: Any, name: str) -> int:
    """The task page's "are you sure?": the transition's own answers, for whoever may see it."""
    activation = task.activate()
    declared = people_transition(activation, name)
    if declared is None and name not in rule_book_names():
        return 404
    if not may_see(flow, task, who):
        return 403
    if declared is None:
        return 409
    if find_action(task, who, declared.name) is not None:
        return 200
    return 409 if declared.blocked_reason(activation) is not None else 403


def cancel_answer(flow: Any, process: Process, who: Any, method: str, hx: bool) -> int:
    """The process cancel: its page, or done (HTMX loads the process page: HX-Redirect)."""
    from webflow.core.engine import cancel_blocker

    if not flow.can_manage(who):
        return 403
    if cancel_blocker(process) is not None:
        return 409
    return 200 if method == "GET" or hx else 303


# -- the matrix ----------------------------------------------------------------------------------


@pytest.mark.parametrize("hx", [False, True], ids=["plain", "htmx"])
def test_every_url_method_and_user(sqlite_app: Flask, hx: bool) -> None:
    """On SQLite only (some 1,800 requests a run): the rules are the same on PostgreSQL, whose
    own refusals (ids, NUL bytes) the property tests in test_fuzz.py cover."""
    app = sqlite_app
    checked = 0
    failures = []
    targets: dict[str, Process] = {}
    people = {kind: client_for(app, kind) for kind in KINDS}
    last: list[Any] | None = None  # the rows after the last request, while nothing else wrote
    for case in cases(app):
        if case.state and case.state not in targets:
            targets[case.state] = label_process(case.state)
            last = None
        process = targets.get(case.state or "")
        for kind in KINDS:
            who = user(kind) if kind else None
            task = task_of(process, STATES[case.state]) if process is not None and case.state else None
            url = build_url(app, case, process)
            want = expected(app, case, url, who, task, hx)
            before = last if last is not None else dump()
            person = people[kind]
            if case.method == "GET":
                response = person.get(url, hx=hx)
            else:
                response = person.post(url, {}, hx=hx)
            after = last = dump()
            checked += 1
            if response.status_code != want:
                failures.append(f"{case} as {kind} ({'htmx' if hx else 'plain'}) {url}: "
                                f"{response.status_code}, the rules say {want}")
            changed = after != before
            if changed and (case.method == "GET" or response.status_code >= 400
                            or response.status_code == 302 or case.endpoint == "auth.login"):
                failures.append(f"{case} as {kind}: answered {response.status_code} and changed rows")
            if changed and case.state:
                targets[case.state] = process = label_process(case.state)  # as it was, for the next user
                last = None
            if case.endpoint == "auth.logout":
                people[kind] = client_for(app, kind)  # that browser is logged out now
    assert not failures, f"{len(failures)} of {checked} answers differ:\n" + "\n".join(failures[:40])
    assert checked > 500
