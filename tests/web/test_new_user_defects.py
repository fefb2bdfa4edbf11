"""Regression tests of the defects a new user hit (issue 15), one test named after each."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from app_support import in_app_context, make_test_app
from flask import Flask
from web_support import AuthActions, fresh, hello, task_of, task_url, user

from webflow import STATUS, db
from webflow.demo.users import load_demo
from webflow.models import Process


def expire_session(person: AuthActions) -> None:
    """What the browser holds once the session cookie's life is over: nothing."""
    with person.client.session_transaction() as session:
        session.clear()


# -- an expired session ---------------------------------------------------------------------


def test_expired_session_sends_the_browser_to_login_and_back(app, people) -> None:  # type: ignore[no-untyped-def]
    process = hello()
    approve = task_of(process, "approve")
    bob = people("bob")
    page = task_url(approve)
    bob.get(page)
    expire_session(bob)
    response = bob.client.post(task_url(approve, "assign/"), data={"csrf_token": bob.token},
                               headers={"Referer": f"http://localhost{page}"})
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")
    assert "The CSRF session token is missing" not in response.get_data(as_text=True)
    assert task_of(process, "approve").owner_id is None  # nothing happened
    login = bob.client.get(response.headers["Location"])
    assert "Your session has ended" in login.get_data(as_text=True)
    # Logging in returns to the task page.
    back = bob.login("bob", next=re.search(r"next=([^&]+)", response.headers["Location"]).group(1))
    assert back.status_code == 303 and back.headers["Location"] == page


def test_expired_session_on_htmx_answers_hx_redirect_to_login(app, people) -> None:  # type: ignore[no-untyped-def]
    process = hello()
    approve = task_of(process, "approve")
    bob = people("bob")
    bob.get(task_url(approve))
    expire_session(bob)
    response = bob.client.post(task_url(approve, "assign/"),
                               headers={"HX-Request": "true", "X-CSRFToken": bob.token,
                                        "HX-Current-URL": f"http://localhost{task_url(approve)}"})
    assert response.status_code == 401
    assert response.headers["HX-Redirect"] == "/login?next=" + task_url(approve)
    assert task_of(process, "approve").status == STATUS.NEW


def test_expired_session_next_never_leaves_the_site(app, people) -> None:  # type: ignore[no-untyped-def]
    bob = people("bob")
    bob.get("/queue/")
    expire_session(bob)
    response = bob.client.post("/queue/", data={"csrf_token": bob.token},
                               headers={"Referer": "https://evil.example/phish"})
    assert response.status_code == 302 and response.headers["Location"] == "/login?next=/"


# -- lists ------------------------------------------------------------------------------------


def test_queue_sort_survives_a_search(app, people) -> None:  # type: ignore[no-untyped-def]
    hello("one"), hello("two")
    bob = people("bob")
    fragment = bob.get("/queue/?sort=flow&q=o&when=", hx=True).get_data(as_text=True)
    # The swapped list carries the sort into the filter form (searching sends it along).
    assert re.search(r'<input type="hidden" name="sort" value="flow" form="list-filters">', fragment)
    page = bob.get("/queue/?sort=flow&q=o").get_data(as_text=True)
    assert 'id="list-filters"' in page and 'value="flow" form="list-filters"' in page
    # Sort links keep the search and the filters; pager links keep all of them.
    task_sort = re.search(r'href="(/queue/\?[^"]*sort=task[^"]*)"', page).group(1)
    assert "q=o" in task_sort
    for list_name in ("inbox", "archive"):
        assert 'form="list-filters"' in bob.get(f"/{list_name}/?sort=flow").get_data(as_text=True)


def test_queue_pager_keeps_sort_filter_and_search(app, people) -> None:  # type: ignore[no-untyped-def]
    hello("one report"), hello("two reports"), hello("three report")
    app.config["WEBFLOW_PAGE_SIZE"] = 1
    page = people("bob").get("/queue/?sort=flow&q=report&flow=hello_world").get_data(as_text=True)
    link = re.search(r'href="([^"]+)" rel="next"', page).group(1).replace("&amp;", "&")
    assert all(part in link for part in ("sort=flow", "q=report", "flow=hello_world", "page=2"))


# -- bulk take --------------------------------------------------------------------------------


def test_bulk_take_select_all_takes_the_page_without_javascript(app, people) -> None:  # type: ignore[no-untyped-def]
    first, second = hello("one"), hello("two")
    bob = people("bob")
    page = bob.get("/queue/").get_data(as_text=True)
    assert 'data-select-all="task_id"' in page and "Take the chosen tasks" in page
    ids = re.findall(r'name="page_task_id" value="(\d+)"', page)
    response = bob.post("/queue/", {"select_all": "1", "page_task_id": ids})
    assert response.status_code == 303
    assert all(task_of(p, "approve").owner_id is not None for p in (first, second))
    assert "2 tasks assigned to you." in bob.get(response.headers["Location"]).get_data(as_text=True)


def test_bulk_take_button_always_present_and_message_in_view(app, people) -> None:  # type: ignore[no-untyped-def]
    for n in range(3):
        hello(f"task {n}")
    bob = people("bob")
    app.config["WEBFLOW_PAGE_SIZE"] = 30
    page = bob.get("/queue/").get_data(as_text=True)
    # The bar comes before the rows, not only below a short list.
    assert page.index("Take the chosen tasks") < page.index('id="row-task-')
    assert 'hx-swap="outerHTML show:#messages:top"' in page


# -- the demo's forms and data tables ---------------------------------------------------------


@pytest.fixture
def demo_app(db_url: str) -> Iterator[Flask]:
    """The demo flows and users (jobs inline, no wait in the slow demo job)."""
    with in_app_context(make_test_app(db_url, None, {}, "", WEBFLOW_DEMO_JOB_SECONDS=0)) as app:
        load_demo()
        yield app


def start_shipment(alice: AuthActions, **values: str) -> Process:
    alice.get("/flows/shipment/start/start/")
    form = {"customer": "Ada", "address": "1 Loop Road", "items": "3", "insured": "y", **values}
    assert alice.post("/flows/shipment/start/start/", form).status_code == 303
    db.session.commit()
    return db.session.scalars(sa.select(Process).order_by(Process.id.desc())).first()


def test_packages_zero_gets_the_range_message_not_required(demo_app: Flask) -> None:
    alice, bob = AuthActions(demo_app).enter_as("alice"), AuthActions(demo_app).enter_as("bob")
    process = start_shipment(alice)
    packing = task_of(process, "package_goods")
    bob.post("/queue/", {"take": packing.id})
    bob.get(task_url(packing))
    response = bob.post(task_url(packing), {"packages": "0"})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "A shipment has 1 to 1,000 packages." in html and "This field is required." not in html
    empty = bob.post(task_url(packing), {"packages": ""}).get_data(as_text=True)
    assert "Give the number of packages." in empty
    assert task_of(process, "package_goods").status == STATUS.ASSIGNED


def test_long_message_is_refused_with_its_length_never_cut(demo_app: Flask) -> None:
    alice = AuthActions(demo_app).enter_as("alice")
    form = alice.get("/flows/hello_world/start/start/").get_data(as_text=True)
    assert 'maxlength="500"' in form and "At most 500 characters." in form
    response = alice.post("/flows/hello_world/start/start/", {"text": "x" * 5000})
    assert response.status_code == 422
    assert "at most 500 characters; this one has 5000." in response.get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Process)) == 0


def test_data_tables_show_form_labels_formatted_values_and_line_breaks(demo_app: Flask) -> None:
    alice = AuthActions(demo_app).enter_as("alice")
    process = start_shipment(alice, address="1 Loop Road\nFlat 2")
    carrier = task_of(process, "set_carrier")
    alice.get(task_url(carrier))
    alice.post(task_url(carrier), {"carrier": "courier"})
    page = alice.get(f"/flows/shipment/{process.id}/").get_data(as_text=True)
    rows = dict(re.findall(r'<th scope="row">([^<]+?)\s*</th>\s*<td class="wf-value[^"]*">([^<]*)</td>', page))
    assert rows["Carrier"] == "Courier" and rows["Insure the shipment"] == "Yes"
    assert "courier" not in rows and "True" not in rows.values()
    assert '<td class="wf-value wf-multiline">1 Loop Road\nFlat 2</td>' in page
    # A manager also sees each field's key (the engine's name for it).
    admin = AuthActions(demo_app).enter_as("admin").get(f"/flows/shipment/{process.id}/").get_data(as_text=True)
    assert '<code class="wf-muted">carrier</code>' in admin


# -- after Complete ---------------------------------------------------------------------------


@pytest.mark.parametrize("hx", [False, True])
def test_after_complete_the_next_task_of_mine_in_the_process_opens(demo_app: Flask, hx: bool) -> None:
    alice = AuthActions(demo_app).enter_as("alice")
    process = start_shipment(alice)
    carrier = task_of(process, "set_carrier")
    alice.get(task_url(carrier))
    response = alice.post(task_url(carrier), {"carrier": "post"}, hx=hx)
    insurance = task_of(process, "take_insurance")
    where = response.headers["HX-Redirect" if hx else "Location"]
    assert where == task_url(insurance) and response.status_code == (200 if hx else 303)
    page = alice.get(where).get_data(as_text=True)
    assert "Next: Take insurance" in page
    # None of hers is left, but one she may take waits in the queue: that one, and it says so.
    response = alice.post(task_url(insurance), {"policy": "P-1"}, hx=hx)
    packing = task_of(process, "package_goods")
    assert response.headers["HX-Redirect" if hx else "Location"] == task_url(packing)
    page = alice.get(task_url(packing)).get_data(as_text=True)
    assert "Next: Package goods (waiting in the queue: take it to work on it)." in page
    # Nothing else: the inbox, and it says there is nothing else.
    alice.post(task_url(packing, "assign/"))
    alice.get(task_url(packing))
    response = alice.post(task_url(packing), {"packages": "2"}, hx=hx)
    assert response.headers["HX-Redirect" if hx else "Location"] == "/inbox/"
    assert "Nothing else for you in this process." in alice.get("/inbox/").get_data(as_text=True)


# -- confirmations, labels and the hand-over picker ---------------------------------------------


def test_cancel_task_without_javascript_asks_first_and_reads_cancel_this_task(app, people) -> None:  # type: ignore[no-untyped-def]
    process = hello()
    approve = task_of(process, "approve")
    manager = people("manager")
    page = manager.get(task_url(approve)).get_data(as_text=True)
    confirm_url = task_url(approve, "cancel/confirm/")
    # The button is a link to a confirmation page (htmx asks in a dialog instead).
    link = re.search(rf'<a href="{re.escape(confirm_url)}"[^>]*>([^<]+)</a>', page)
    assert link and link.group(1) == "Cancel this task" and 'hx-confirm="Cancel this task?' in link.group(0)
    assert f'<form method="post" action="{task_url(approve, "cancel/")}"' not in page
    confirm = manager.get(confirm_url)
    html = confirm.get_data(as_text=True)
    assert confirm.status_code == 200 and "the process does not go on from here" in html
    assert f'action="{task_url(approve, "cancel/")}"' in html and "No, back to the task" in html
    assert task_of(process, "approve").status == STATUS.NEW  # asking changed nothing
    done = manager.post(task_url(approve, "cancel/"), {"next": task_url(approve)})
    assert done.status_code == 303 and task_of(process, "approve").status == STATUS.CANCELED
    # Not possible any more: the page says why; somebody who may not cancel is refused.
    assert manager.get(confirm_url).status_code == 409
    other = task_of(hello("two"), "approve")
    assert people("bob").get(task_url(other, "cancel/confirm/")).status_code == 403
    assert people("carol").get(task_url(other, "cancel/confirm/")).status_code == 403
    assert manager.get(task_url(other, "explode/confirm/")).status_code == 404


def test_engine_buttons_explain_themselves(app, people) -> None:  # type: ignore[no-untyped-def]
    process = hello()
    approve = task_of(process, "approve")
    page = people("bob").get(task_url(approve)).get_data(as_text=True)
    assert 'title="Take this task: it moves to your inbox' in page
    people("bob").post(task_url(approve, "assign/"))
    page = people("bob").get(task_url(approve)).get_data(as_text=True)
    assert 'title="Give the task back to the queue' in page


def test_reassign_picker_defaults_to_nobody_and_refuses_no_choice(app, people) -> None:  # type: ignore[no-untyped-def]
    process = hello()
    approve = task_of(process, "approve")
    manager = people("manager")
    page = manager.get(task_url(approve)).get_data(as_text=True)
    picker = re.search(r'<select name="user_id" required>(.*?)</select>', page, re.S).group(1)
    assert re.match(r'\s*<option value="" selected>Choose a person…</option>', picker)
    for hx in (False, True):
        response = manager.post(task_url(approve, "assign/"), {"picker": "1", "user_id": ""}, hx=hx)
        assert response.status_code == 400
        assert "Choose the person to give the task to." in (
            response.get_data(as_text=True) if hx else response.get_data(as_text=True))
    assert task_of(process, "approve").owner_id is None  # not given to the manager either


# -- local time and the settings page ---------------------------------------------------------


def test_times_are_local_with_the_zone_and_relative_in_lists(app, people) -> None:  # type: ignore[no-untyped-def]
    process = hello()
    approve = task_of(process, "approve")
    bob = people("bob")
    bob.client.set_cookie("tz", "Asia/Kathmandu")  # what timezone.js stores (UTC+05:45)
    page = bob.get(task_url(approve)).get_data(as_text=True)
    stamp = approve.created.replace(tzinfo=UTC) if approve.created.tzinfo is None else approve.created
    local = stamp.astimezone(ZoneInfo("Asia/Kathmandu"))
    assert f'<time datetime="{stamp.isoformat()}"' in page
    assert f"{local:%Y-%m-%d %H:%M} +0545" in page  # the reader's time, zone shown
    queue = bob.get("/queue/").get_data(as_text=True)
    assert re.search(r'<time datetime="[^"]+" title="[^"]+ \+0545">(now|\d+ \w+ ago)</time>', queue)


def test_settings_page_stores_my_time_zone_over_the_browsers(app, people) -> None:  # type: ignore[no-untyped-def]
    process = hello()
    approve = task_of(process, "approve")
    bob = people("bob")
    bob.client.set_cookie("tz", "Asia/Kathmandu")
    page = bob.get("/settings/").get_data(as_text=True)
    assert 'href="/settings/"' in page and 'id="settings-timezone"' in page
    assert "zone (now Asia/Kathmandu)" in page
    saved = bob.post("/settings/timezone/", {"timezone": "America/St_Johns"})
    assert saved.status_code == 303 and fresh(user("bob")).timezone == "America/St_Johns"
    assert "Times are shown in America/St_Johns now." in bob.get("/settings/").get_data(as_text=True)
    local = approve.created.replace(tzinfo=UTC).astimezone(ZoneInfo("America/St_Johns"))
    assert f"{local:%Y-%m-%d %H:%M} N" in bob.get(task_url(approve)).get_data(as_text=True)  # NST/NDT
    # Back to the browser's zone; bad names change nothing.
    for bad in ("Mars/Olympus", "../etc/passwd", "x" * 100):
        response = bob.post("/settings/timezone/", {"timezone": bad})
        assert response.status_code == 422 and "is not a time zone" in response.get_data(as_text=True)
    assert bob.post("/settings/timezone/", {}).status_code == 422
    assert fresh(user("bob")).timezone == "America/St_Johns"
    assert bob.post("/settings/timezone/", {"timezone": ""}).status_code == 303
    assert fresh(user("bob")).timezone is None


# -- words for people, terms for managers -------------------------------------------------------


def test_end_users_see_words_and_managers_also_the_engine_terms(app, people) -> None:  # type: ignore[no-untyped-def]
    process = hello()
    approve = task_of(process, "approve")
    bob, manager = people("bob"), people("manager")
    bob.post(task_url(approve, "assign/"))
    page = bob.get(task_url(approve)).get_data(as_text=True)
    assert re.search(r'wf-status-new">In progress</span>', page)      # the process, not "NEW"
    assert re.search(r'wf-status-assigned">Waiting for bob</span>', page)
    assert "PREPARED" not in page and "wf-engine-term" not in page
    assert "<strong>bob</strong>\n            took “Approve”" in page
    process_page = bob.get(f"/flows/hello_world/{process.id}/").get_data(as_text=True)
    assert "<th>Token</th>" not in process_page and "<th>Previous</th>" not in process_page
    assert "wf-event-transition" not in process_page and "took “Approve”" in process_page
    # The manager reads the same words, and the engine's terms beside them.
    page = manager.get(task_url(approve)).get_data(as_text=True)
    assert 'In progress <small class="wf-engine-term">NEW</small>' in page
    assert "assign: NEW → ASSIGNED" in page
    process_page = manager.get(f"/flows/hello_world/{process.id}/").get_data(as_text=True)
    assert "<th>Token</th>" in process_page and "<th>Leading</th>" in process_page
    hello("another")
    queue = people("alice").get("/queue/").get_data(as_text=True)
    assert 'wf-status-new">Waiting to be taken</span>' in queue
    assert "started the process" in process_page
