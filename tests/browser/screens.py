"""The demo app with a little of everything, served for the screen tests; and what they check.

A module of its own name (not ``conftest``) so the screen tests import it unambiguously.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from app_support import make_test_app, serving
from flask import url_for

from webflow import Context, db
from webflow.core.away import set_away
from webflow.core.comments import post_comment
from webflow.core.drafts import save_draft
from webflow.core.models import SavedFilter
from webflow.demo.helloworld import HelloWorldFlow
from webflow.demo.shipment import ShipmentFlow
from webflow.demo.users import PASSWORD, load_demo
from webflow.models import Task, User

AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"
#: The two widths every page is checked at: a laptop and a phone.
WIDTHS = {"desktop": 1366, "phone": 390}
HEIGHT = {"desktop": 800, "phone": 844}
#: A word with no break opportunity: it must wrap inside its card, not widen the page.
LONG_WORD = "Unbroken" + "x" * 140 + "-end"
MESSAGES = ["Quarterly report is ready for review", "New intern starts Monday",
            "Office closed on Friday", "Please approve the new logo", "Budget for the summer party",
            "Update the emergency contacts", "Printer on floor 2 is fixed", "Team lunch on Thursday",
            "Welcome our new colleague Dana", "Server maintenance at 22:00", "Kitchen rota for March",
            "Parking spaces are reassigned"]


@dataclass
class Screen:
    """A page of the tour: who opens it, where, and the actions that must be within reach."""

    name: str
    user: str | None
    path: str
    actions: list[str] = field(default_factory=list)
    #: Within reach on a wide screen only, and on a phone only (the graph is drawn top-down there).
    wide_actions: list[str] = field(default_factory=list)
    narrow_actions: list[str] = field(default_factory=list)
    status: int = 200


def _user(name: str) -> User:
    return db.session.scalar(sa.select(User).where(User.username == name))


def _task(process: Any, node: str) -> Task:
    return db.session.scalars(sa.select(Task).where(Task.process_id == process.id, Task.node_name == node)
                              .order_by(Task.id.desc())).first()


def _seed() -> dict[str, str]:
    """Processes in every state a tour shows; the URLs of the pages that need ids."""
    alice, bob = _user("alice"), _user("bob")
    hellos = [HelloWorldFlow.start.run(data={"text": text}, user=alice) for text in MESSAGES]
    long_one = HelloWorldFlow.start.run(
        data={"text": f"A message with a very long word: {LONG_WORD}\nand a second line."}, user=alice)
    with Context(propagate_exception=False, user=bob):
        for process in (hellos[0], long_one):               # one in bob's archive, one in his inbox
            approve = _task(process, "approve").activate()
            approve.assign(bob)
        done = _task(hellos[0], "approve").activate()
        done.prepare(data={"approved": True}, user=bob)
        done.done()
    shipment = ShipmentFlow.start.run(
        data={"customer": "Ada Lovelace", "address": "12 Analytical Engine Street, London",
              "items": 3, "insured": True}, user=alice)
    with Context(propagate_exception=False, user=bob):
        packing = _task(shipment, "package_goods").activate()
        packing.assign(bob)
    talked = ShipmentFlow.start.run(                         # a task with comments and bob's draft
        data={"customer": "Grace Hopper", "address": "1 Compiler Lane, Arlington", "items": 1,
              "insured": False}, user=alice)
    with Context(propagate_exception=False, user=bob):
        talked_task = _task(talked, "package_goods").activate()
        talked_task.assign(bob)
    talked_task = _task(talked, "package_goods")
    post_comment(db.session(), talked, alice, "@bob the parcel is fragile: wrap the lenses one by one.",
                 task=talked_task)
    post_comment(db.session(), talked, bob, "Will do. Two boxes, I think;\nI will count them tomorrow.",
                 task=talked_task)
    save_draft(db.session(), talked_task, bob, {"packages": ["2"]}, ["packages"])
    db.session.add(SavedFilter(user_id=bob.id, list_name="queue", name="Hello world, oldest first",
                               query="flow=hello_world&sort=created"))
    set_away(db.session(), alice, bob)
    db.session.commit()
    packing_task = _task(shipment, "package_goods")
    long_task = _task(long_one, "approve")
    queued = _task(hellos[1], "approve")
    to_cancel = _task(hellos[2], "approve")
    return {
        "shipment": url_for("flows.process_detail", flow_label="shipment", process_id=shipment.id),
        "long_process": url_for("flows.process_detail", flow_label="hello_world", process_id=long_one.id),
        "task": url_for("flows.task_detail", flow_label="shipment", process_id=shipment.id,
                        node="package_goods", task_id=packing_task.id),
        "long_task": url_for("flows.task_detail", flow_label="hello_world", process_id=long_one.id,
                             node="approve", task_id=long_task.id),
        "confirm": url_for("admin.confirm_transition", flow_label="hello_world", process_id=hellos[1].id,
                           node="approve", task_id=queued.id, transition="cancel"),
        "cancel": url_for("admin.process_cancel", flow_label="shipment", process_id=shipment.id),
        "task_confirm": url_for("flows.task_confirm", flow_label="hello_world", process_id=hellos[2].id,
                                node="approve", task_id=to_cancel.id, transition="cancel"),
        "talked_task": url_for("flows.task_detail", flow_label="shipment", process_id=talked.id,
                               node="package_goods", task_id=_task(talked, "package_goods").id),
    }


#: The keys of ``_seed``'s answer (the tests' parameters are named before the server runs).
URL_KEYS = ("shipment", "long_process", "task", "long_task", "confirm", "cancel", "task_confirm", "talked_task")


@contextmanager
def demo_server(tmp: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """The demo flows and users on a fresh SQLite database, served from a thread."""
    app = make_test_app(f"sqlite:///{tmp / 'screens.sqlite'}", None, {}, "", SERVER_NAME=None)
    with app.app_context():
        load_demo()
        with app.test_request_context():
            urls = _seed()
        db.session.remove()
    with serving(app) as base:
        yield base, urls


def tour(urls: dict[str, str]) -> list[Screen]:
    """Every page of the README's tour, with its primary actions."""
    return [
        Screen("login", None, "/login", ["form.wf-form button[type=submit]"]),
        Screen("inbox", "bob", "/inbox/", ["a.wf-task-link >> nth=0", "form.wf-filters button[type=submit]"],
               narrow_actions=[".wf-tasks th a >> nth=3"]),  # the sort link Due: the narrowest
        Screen("queue", "bob", "/queue/", ["#task-list button[name=take] >> nth=0",
                                           "#task-list button[name=take] >> nth=-1",
                                           "#task-list input[name=task_id] >> nth=-1",
                                           ".wf-bulk button[type=submit]"]),
        Screen("queue-filter", "bob", "/queue/?flow=hello_world&sort=created",
               [".wf-saved-filters a >> nth=0", "#task-list button[name=take] >> nth=0"]),
        Screen("archive", "bob", "/archive/", ["a.wf-task-link >> nth=0"]),
        Screen("requests", "alice", "/requests/", ["#requests a >> nth=0", "#requests a.wf-muted >> nth=0",
                                                   "form.wf-filters button[type=submit]"]),
        Screen("search", "bob", "/search/?q=report", ["#results a.wf-task-link >> nth=0",
                                                       "form.wf-filters button[type=submit]"]),
        Screen("flows", "alice", "/flows/", [".wf-flow a.wf-button >> nth=0",
                                             ".wf-flow a.wf-button >> nth=-1"],
               narrow_actions=[".wf-flow-actions a:not(.wf-button) >> nth=0"]),  # Processes
        Screen("processes", "alice", "/flows/hello_world/", [".wf-page-head a.wf-primary",
                                                            "#processes a >> nth=0"]),
        Screen("start", "alice", "/flows/shipment/start/start/", ["#start-form button[type=submit]"],
               narrow_actions=["#start-form .wf-form-actions a"]),  # Cancel
        Screen("task", "bob", urls["task"], ["#task-work button[type=submit]", "#task-status button >> nth=0"]),
        Screen("task-long-text", "bob", urls["long_task"], ["#task-work button[type=submit]"]),
        Screen("task-comments", "bob", urls["talked_task"], ["#task-work button.wf-primary",
                                                             "#task-work button[formaction]",
                                                             "#task-status select[name=user_id]",
                                                             "#task-history button[type=submit]"]),
        Screen("task-confirm", "admin", urls["task_confirm"], [".wf-transitions button.wf-danger",
                                                               ".wf-transitions a.wf-button"]),
        Screen("process", "admin", urls["shipment"], [".wf-process-actions a.wf-danger",
                                                      ".wf-tasks a.wf-button >> nth=-1",
                                                      ".wf-tasks td a >> nth=-1"],
               ["#wf-node-end", "#wf-node-package_goods a"],
               ["#wf-down-node-end", "#wf-down-node-package_goods a"]),
        Screen("process-long-text", "alice", urls["long_process"], [".wf-tasks td a >> nth=0"],
               ["#wf-node-end"], ["#wf-down-node-end", "#wf-down-node-approve a"]),
        Screen("admin", "admin", "/admin/", ["form.wf-filters button[type=submit]", ".wf-counts a >> nth=-1",
                                             "#processes a >> nth=0"]),
        Screen("admin-confirm", "admin", urls["confirm"], [".wf-transitions button[type=submit]"]),
        Screen("admin-cancel", "admin", urls["cancel"], [".wf-confirm button.wf-danger"]),
        Screen("settings", "alice", "/settings/", ["#settings-timezone button[type=submit]",
                                                   "#settings-notifications button[type=submit]",
                                                   "#settings-away button[value=set]",
                                                   "#settings-away button[value=clear]"]),
        Screen("error", "alice", "/flows/no_such_flow/", [".wf-error-page a.wf-button"], status=404),
    ]


def log_in(context: Any, base: str, name: str, password: str = PASSWORD) -> Any:
    """A page of ``context`` logged in as ``name`` through the login form."""
    page = context.new_page()
    page.goto(f"{base}/login")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", password)
    page.click("form.wf-form button[type=submit]")
    page.wait_for_url(f"{base}/inbox/")
    return page


def axe_violations(page: Any) -> list[str]:
    """axe-core's violations on the page as it is now, one line each."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.add_script_tag(path=str(AXE))
    found = page.evaluate("""async () => {
        const result = await axe.run(document, {resultTypes: ['violations']});
        return result.violations.map(v => v.id + ' (' + v.impact + '): ' +
            v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(', '));
    }""")
    return list(found)


def overflow(page: Any) -> str | None:
    """Why the page scrolls sideways (the widest elements), or None when it does not."""
    return page.evaluate("""() => {
        const width = window.innerWidth;
        if (document.documentElement.scrollWidth <= width) { return null; }
        const wide = [...document.querySelectorAll('body *')]
            .filter(e => e.getBoundingClientRect().right > width + 0.5)
            .map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') +
                 (typeof e.className === 'string' ? '.' + e.className.split(' ').join('.') : '') +
                 ' ' + Math.round(e.getBoundingClientRect().right));
        return 'page is ' + document.documentElement.scrollWidth + ' px wide at ' + width + ': ' +
            wide.slice(0, 6).join('; ');
    }""")


def out_of_reach(page: Any, selector: str) -> str | None:
    """Why the element cannot be used (hidden, outside the viewport, covered), or None."""
    target = page.locator(selector).first
    if target.count() == 0:
        return f"{selector}: not on the page"
    target.scroll_into_view_if_needed(timeout=2000)
    box = target.bounding_box()
    if box is None or box["width"] == 0:
        return f"{selector}: not visible"
    viewport = page.viewport_size
    if box["x"] < -0.5 or box["x"] + box["width"] > viewport["width"] + 0.5:
        return f"{selector}: outside the viewport horizontally ({box})"
    # README: buttons, and links in lists (a row, a flow's card, a form's buttons), are at
    # least 44 px on phones (a thumb); elsewhere 24 px (a pointer).
    thumb = target.evaluate("""e => e.matches('button, .wf-button, input[type=checkbox]') ||
        (e.matches('a') && !!e.closest('table, .wf-inline-list, .wf-flow-actions, .wf-form-actions'))""")
    least = 44 if thumb and viewport["width"] < 700 else 24
    if min(box["width"], box["height"]) < least - 0.5:
        return f"{selector}: too small to touch ({box['width']:.0f}x{box['height']:.0f}, at least {least})"
    try:
        target.click(trial=True, timeout=2000)       # fails when another element covers it
    except Exception as exc:  # noqa: BLE001 (Playwright's timeout: the message says what covers it)
        return f"{selector}: not clickable: {str(exc).splitlines()[0]}"
    return None


def graph_hidden(page: Any) -> list[str]:
    """The graph's nodes that lie outside its figure (hidden behind a scroll or cut off)."""
    return list(page.evaluate("""() => {
        const figure = document.querySelector('.wf-graph-figure');
        if (!figure) { return []; }
        const box = figure.getBoundingClientRect();
        return [...figure.querySelectorAll('.wf-node')].filter(node => {
            const r = node.getBoundingClientRect();
            const outside = r.left < box.left - 0.5 || r.right > box.right + 0.5 || r.right > window.innerWidth;
            return node.checkVisibility() && outside;
        }).map(node => 'graph node ' + node.dataset.node + ' is outside its box');
    }"""))


def wait_until(page: Any, expression: str, timeout: float = 5000) -> None:
    """Wait until the JavaScript ``expression`` is true in the page. Not Playwright's
    ``wait_for_function``: when its first answer is false it polls by compiling the text
    inside the page, which the app's Content-Security-Policy (no 'unsafe-eval') refuses;
    ``evaluate`` goes through the debugging protocol, which the policy does not govern."""
    import time

    deadline = time.monotonic() + timeout / 1000
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout:.0f} ms: {expression}")
        page.wait_for_timeout(50)
