"""Regression tests of the defects a new user hit (issue 15), one test named after each."""

from __future__ import annotations

import re

from web_support import AuthActions, hello, task_of, task_url

from webflow import STATUS


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
    hello("one"), hello("two"), hello("three")
    app.config["WEBFLOW_PAGE_SIZE"] = 1
    page = people("bob").get("/queue/?sort=flow&q=o&flow=hello_world").get_data(as_text=True)
    link = re.search(r'href="([^"]+)" rel="next"', page).group(1).replace("&amp;", "&")
    assert all(part in link for part in ("sort=flow", "q=o", "flow=hello_world", "page=2"))


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
