"""Defects a UI audit found, each as the person sees it: the saved filter is the one shown,
admin's counters follow the filter, Save draft's busy state, history words for every event
the engine records, a refused out-of-office keeps its input, a refused form opens on its
first bad field."""

from __future__ import annotations

import ast
import html
import importlib
import pkgutil
import re
from pathlib import Path
from types import SimpleNamespace

from web_support import hello, task_of, task_url, user

import webflow
from webflow import db
from webflow.core.models import SavedFilter

# -- 1. "Save this filter…" saves what the list shows -------------------------------------


def save_action(page: str) -> str:
    match = re.search(r'<form id="save-filter-form" method="post" action="([^"]+)"', page)
    assert match, "no save form"
    return html.unescape(match.group(1))


def test_the_save_form_follows_the_list_redrawn_by_a_filter_or_a_sort(app, people) -> None:  # type: ignore[no-untyped-def]
    hello("apples")
    bob = people("bob")
    assert save_action(bob.get("/queue/?flow=label&sort=created").get_data(as_text=True)) == \
        "/queue/filters/?flow=label&sort=created"
    # The filter form changed to Hello world: HTMX redraws the list only; the save form's
    # address comes with it, so Save stores what is shown.
    fragment = bob.get("/queue/?flow=hello_world&when=&q=&sort=created", hx=True).get_data(as_text=True)
    assert "<html" not in fragment
    action = save_action(fragment)
    assert action.startswith("/queue/filters/?") and "flow=hello_world" in action and "sort=created" in action
    # the name and button outside the list belong to that form
    page = bob.get("/queue/").get_data(as_text=True)
    assert 'name="name" maxlength="80" required value="" form="save-filter-form"' in page
    assert '<button type="submit" class="wf-button wf-small" form="save-filter-form">Save</button>' in page
    assert bob.post(action, {"name": "Hello world only"}).status_code == 303
    db.session.expire_all()
    saved = db.session.scalar(db.select(SavedFilter).where(SavedFilter.name == "Hello world only"))
    assert saved.query == "flow=hello_world&sort=created"
    # a sort click on the inbox (HTMX) brings the sort into the save form too
    sorted_list = bob.get("/inbox/?sort=task&page=1", hx=True).get_data(as_text=True)
    assert save_action(sorted_list) == "/inbox/filters/?sort=task"
    # the archive keeps no filters: no save form
    assert "save-filter-form" not in bob.get("/archive/").get_data(as_text=True)


# -- 2. admin's counters are redrawn with the table ------------------------------------------


def counters(page: str) -> dict[str, int]:
    block = page[page.index('id="admin-counts"'):]
    block = block[:block.index("</ul>")]
    return {status: int(n) for status, n in re.findall(r">(NEW|DONE|CANCELED)\s*<strong>(\d+)</strong>", block)}


def test_admin_counters_follow_the_flow_filter_of_an_htmx_filter(app, people) -> None:  # type: ignore[no-untyped-def]
    hello("one")
    hello("two")
    manager = people("manager")
    assert counters(manager.get("/admin/").get_data(as_text=True))["NEW"] == 2
    filtered = "/admin/?flow=label&status=&started_from=&started_to="
    fragment = manager.get(filtered, hx=True).get_data(as_text=True)
    assert "<html" not in fragment
    assert re.search(r'<ul id="admin-counts"[^>]*hx-swap-oob="true"', fragment), "counters not redrawn"
    assert counters(fragment) == {"NEW": 0, "DONE": 0, "CANCELED": 0}
    assert 'href="/admin/?status=NEW&amp;flow=label"' in fragment
    # unfiltered, a counter's link carries no empty flow
    assert 'href="/admin/?status=NEW"' in manager.get("/admin/").get_data(as_text=True)
    assert counters(manager.get("/admin/?flow=hello_world", hx=True).get_data(as_text=True))["NEW"] == 2


# -- 3. Save draft: both buttons disabled while it runs --------------------------------------


def test_the_task_form_disables_both_buttons_with_a_selector_that_works_from_either(app, people) -> None:  # type: ignore[no-untyped-def]
    process = hello("draft me")
    bob = people("bob")
    approve = task_of(process, "approve")
    bob.post("/queue/", {"take": approve.id})
    page = bob.get(task_url(approve)).get_data(as_text=True)
    form = re.search(r'<form class="wf-form"[^>]*>', page)
    assert form
    selector = re.search(r'hx-disabled-elt="([^"]+)"', form.group(0))
    assert selector
    # "find …" is looked up from the element that sends: from the Save draft button (which
    # inherits the attribute) it found nothing. A document selector works from both.
    assert not selector.group(1).startswith(("find ", "closest ", "next", "previous", "this"))
    assert selector.group(1) == "#task-work .wf-form-actions button"
    actions = page[page.index('<p class="wf-form-actions">'):]
    assert actions.count("<button") >= 2 and "Save draft" in actions[:actions.index("</p>")]


# -- 4. words for every event the engine records ---------------------------------------------


def recorded_event_names() -> set[str]:
    """Every ``TaskEvent.transition`` the engine can write, read from its code: the declared
    transitions of every activation class (a locked transition logs its name), and the names
    passed to ``record_event`` and ``Activation.log`` as literals."""
    from webflow.core.activation import Activation
    from webflow.core.fsm import declared_transitions

    core = Path(webflow.__file__).parent / "core"
    for module in pkgutil.walk_packages([str(core)], "webflow.core."):
        importlib.import_module(module.name)
    importlib.import_module("webflow.demo")

    def subclasses(cls: type) -> set[type]:
        found = {cls}
        subs: list[type] = cls.__subclasses__()
        for sub in subs:
            found |= subclasses(sub)
        return found

    names = {t.name for cls in subclasses(Activation) for t in declared_transitions(cls).values()}
    for path in core.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            called = (func.id if isinstance(func, ast.Name)
                      else func.attr if isinstance(func, ast.Attribute) else "")
            position = {"record_event": 3, "log": 0}.get(called)
            if position is None or len(node.args) <= position:
                continue
            arg = node.args[position]
            if called == "log" and not (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
                                        and func.value.id == "self"):
                continue
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                names.add(arg.value)
                continue
            # Passed on, not named here: ``log`` hands its ``name`` to record_event, and a
            # transition logs ``trans.name`` (the declared transitions, above).
            passed_on = (isinstance(arg, ast.Name) and arg.id == "name") or \
                (isinstance(arg, ast.Attribute) and arg.attr == "name")
            assert passed_on, f"{path.name}:{node.lineno}: an event name this test cannot read: teach it"
    return names


def test_every_event_the_engine_records_has_words_and_no_words_are_for_nothing() -> None:
    from webflow.wording import EVENT_WORDS

    names = recorded_event_names()
    assert {"change_due", "cancel_process", "note", "error", "assign", "done"} <= names  # the scan works
    assert names - EVENT_WORDS.keys() == set(), "events without words"
    assert EVENT_WORDS.keys() - names == set(), "words for events the engine never records"


def test_the_history_reads_a_due_change_and_a_canceled_process_in_words(app) -> None:  # type: ignore[no-untyped-def]
    from webflow.wording import event_text

    task = SimpleNamespace(flow_task=SimpleNamespace(title="Package goods"), flow_task_type="HUMAN")
    assert event_text(SimpleNamespace(transition="change_due", task=task)) == \
        "changed the due date or priority of “Package goods”"
    assert event_text(SimpleNamespace(transition="cancel_process", task=None)) == "canceled the process"


def test_the_history_says_a_jobs_retry_queued_it_and_a_handlers_ran_it() -> None:
    """A manager's Retry of a job read "ran “Print label” again" though it only queued the
    job (the run is the "started" row after it, once a worker takes it)."""
    from webflow.core.status import STATUS
    from webflow.wording import event_text

    job = SimpleNamespace(flow_task=SimpleNamespace(title="Print label"), flow_task_type="JOB")
    handler = SimpleNamespace(flow_task=SimpleNamespace(title="Check"), flow_task_type="HANDLER")
    assert event_text(SimpleNamespace(transition="retry", task=job, to_status=STATUS.SCHEDULED,
                                      comments=None)) == "queued “Print label” to run again"
    assert event_text(SimpleNamespace(transition="retry", task=handler, to_status=STATUS.DONE,
                                      comments=None)) == "ran “Check” again"


def test_the_pages_show_the_words_of_a_due_change_and_a_process_cancel(app, people) -> None:  # type: ignore[no-untyped-def]
    process = hello("words")
    approve = task_of(process, "approve")
    manager = people("manager")
    assert manager.post(task_url(approve, "due/"), {"due": "", "priority": "7"}).status_code in (200, 303)
    page = people("alice").get(task_url(approve)).get_data(as_text=True)
    assert "changed the due date or priority of “Approve”" in page and "change due" not in page
    assert manager.post(f"/flows/hello_world/{process.id}/cancel/").status_code == 303
    trail = people("alice").get(f"/flows/hello_world/{process.id}/").get_data(as_text=True)
    assert "canceled the process" in trail and "cancel process" not in trail


# -- 5. a refused out-of-office keeps what was typed; a refused form opens on its bad field --


def test_a_refused_out_of_office_keeps_the_substitute_and_the_date(app, people) -> None:  # type: ignore[no-untyped-def]
    alice_id = user("alice").id
    for hx in (True, False):
        sent = {"substitute_id": alice_id, "until": "2020-01-01T10:00", "action": "set"}
        response = people("bob").post("/settings/away/", sent, hx=hx)
        assert response.status_code == 422
        page = response.get_data(as_text=True)
        assert "The end of your absence is already past." in page
        assert f'<option value="{alice_id}" selected>alice</option>' in page
        assert re.search(r'<input id="away-until"[^>]*value="2020-01-01T10:00"[^>]*aria-invalid="true"', page)
        assert not re.search(r'<select id="away-substitute"[^>]*aria-invalid', page)
    # no substitute: the picker is the field at fault, the date stays
    page = people("bob").post("/settings/away/", {"substitute_id": "", "until": "2099-01-01T10:00"},
                              hx=True).get_data(as_text=True)
    assert re.search(r'<select id="away-substitute"[^>]*aria-invalid="true"[^>]*autofocus', page)
    assert 'value="2099-01-01T10:00"' in page
    # a date that is no date
    page = people("bob").post("/settings/away/", {"substitute_id": alice_id, "until": "someday"}) \
        .get_data(as_text=True)
    assert 'value="someday"' in page and f'<option value="{alice_id}" selected>' in page


def test_a_refused_start_form_opens_on_its_first_bad_field(app, people) -> None:  # type: ignore[no-untyped-def]
    alice = people("alice")
    page = alice.get("/flows/label/start/start/").get_data(as_text=True)
    assert "autofocus" not in page
    response = alice.post("/flows/label/start/start/", {"amount": "", "start_token": re.search(
        r'name="start_token" value="([^"]+)"', page).group(1)})  # type: ignore[union-attr]
    assert response.status_code == 422
    fields = re.findall(r"<(?:input|select|textarea)\b[^>]*>", response.get_data(as_text=True))
    focused = [f for f in fields if "autofocus" in f]
    assert len(focused) == 1 and 'aria-invalid="true"' in focused[0] and 'name="amount"' in focused[0]
