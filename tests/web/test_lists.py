"""Inbox, queue and archive: who sees what, filters, sorting, bulk assign, nav counts."""

from __future__ import annotations

import re

from web_support import hello, task_of, task_url, user

from webflow import STATUS


def count(html: str, name: str) -> int:
    match = re.search(rf'id="nav-{name}-count"[^>]*>(\d+)<', html)
    assert match, f"no {name} count"
    return int(match.group(1))


def test_queue_shows_tasks_people_may_take(app, people) -> None:  # type: ignore[no-untyped-def]
    process = hello("<b>bold</b> request")
    approve = task_of(process, "approve")
    bob_queue = people("bob").get("/queue/").get_data(as_text=True)
    assert task_url(approve) in bob_queue and count(bob_queue, "queue") == 1
    assert "&lt;b&gt;bold&lt;/b&gt; request" in bob_queue and "<b>bold" not in bob_queue  # escaped
    carol_queue = people("carol").get("/queue/").get_data(as_text=True)
    assert task_url(approve) not in carol_queue and count(carol_queue, "queue") == 0


def test_take_from_the_queue_moves_the_task_to_my_inbox(app, people) -> None:  # type: ignore[no-untyped-def]
    process = hello()
    approve = task_of(process, "approve")
    bob = people("bob")
    response = bob.post("/queue/", {"take": approve.id})
    assert response.status_code == 303 and response.headers["Location"] == "/queue/"
    assert task_of(process, "approve").owner_id == user("bob").id
    inbox = bob.get("/inbox/").get_data(as_text=True)
    assert task_url(approve) in inbox and count(inbox, "inbox") == 1 and count(inbox, "queue") == 0


def test_bulk_assign_with_htmx_answers_the_list_and_fresh_counts(app, people) -> None:  # type: ignore[no-untyped-def]
    first, second = hello("one"), hello("two")
    bob = people("bob")
    bob.get("/queue/")
    ids = [task_of(first, "approve").id, task_of(second, "approve").id]
    response = bob.post("/queue/", {"task_id": ids}, hx=True)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" not in html
    assert 'id="task-list"' in html and "2 tasks assigned to you." in html
    assert re.search(r'id="nav-inbox-count"[^>]*hx-swap-oob="true"[^>]*>2<', html)
    assert all(task_of(p, "approve").status == STATUS.ASSIGNED for p in (first, second))


def test_bulk_assign_refuses_tasks_i_may_not_take(app, people) -> None:  # type: ignore[no-untyped-def]
    process = hello()
    approve = task_of(process, "approve")
    assert people("carol").post("/queue/", {"task_id": [approve.id]}).status_code == 403
    assert people("bob").post("/queue/", {"task_id": [999999]}).status_code == 404
    assert task_of(process, "approve").owner_id is None


def test_queue_ids_that_are_not_numbers_change_nothing(app, people) -> None:  # type: ignore[no-untyped-def]
    process = hello()
    bob = people("bob")
    not_a_number = "One of the chosen tasks is not a task number. Nothing was taken."
    for form, words in (({"take": "abc"}, not_a_number), ({"task_id": ["x", ""]}, not_a_number),
                        ({"task_id": [""]}, "Choose the tasks to take first."),
                        ({}, "Choose the tasks to take first.")):
        response = bob.post("/queue/", form, hx=True)
        assert response.status_code == 400, form
        # "abc" was told to choose a task first, as if nothing had been sent
        assert words in response.get_data(as_text=True), form
    assert task_of(process, "approve").owner_id is None


def test_a_task_taken_meanwhile_is_reported_not_taken_twice(app, people) -> None:  # type: ignore[no-untyped-def]
    process = hello()
    approve = task_of(process, "approve")
    assert people("alice").post("/queue/", {"take": approve.id}).status_code == 303
    response = people("bob").post("/queue/", {"take": approve.id}, hx=True)
    assert response.status_code == 409 and "already taken" in response.get_data(as_text=True)
    assert task_of(process, "approve").owner_id == user("alice").id


def test_filter_by_flow_and_text_and_sort(app, people) -> None:  # type: ignore[no-untyped-def]
    apples, pears = hello("apples please"), hello("pears please")
    bob = people("bob")
    page = bob.get("/queue/?q=APPLES").get_data(as_text=True)
    assert task_url(task_of(apples, "approve")) in page and task_url(task_of(pears, "approve")) not in page
    assert "No task matches" in bob.get("/queue/?flow=label").get_data(as_text=True)
    oldest_first = bob.get("/queue/?sort=created").get_data(as_text=True)
    assert oldest_first.index("apples please") < oldest_first.index("pears please")
    newest_first = bob.get("/queue/?sort=-created").get_data(as_text=True)
    assert newest_first.index("pears please") < newest_first.index("apples please")
    assert bob.get("/queue/?sort=nonsense&flow=nope&page=99").status_code == 200


def test_pages_of_the_lists(app, people) -> None:  # type: ignore[no-untyped-def]
    app.config["WEBFLOW_PAGE_SIZE"] = 2
    for n in range(3):
        hello(f"message {n}")
    bob = people("bob")
    first = bob.get("/queue/").get_data(as_text=True)
    assert "Page 1 of 2" in first and "3 tasks" in first
    assert "message 0" in bob.get("/queue/?page=2").get_data(as_text=True)


def test_lists_answer_htmx_with_the_table_only(app, people) -> None:  # type: ignore[no-untyped-def]
    alice = people("alice")
    for url in ("/inbox/", "/queue/", "/archive/"):
        fragment = alice.get(url, hx=True)
        html = fragment.get_data(as_text=True)
        assert "<html" not in html and 'id="task-list"' in html and 'hx-swap-oob="true"' in html
        assert "HX-Request" in fragment.headers["Vary"]
        for header in ("HX-Boosted", "HX-History-Restore-Request"):
            page = alice.get(url, hx=True, **{header: "true"}).get_data(as_text=True)
            assert page.lstrip().lower().startswith("<!doctype html>")


def test_archive_lists_what_i_finished(app, people) -> None:  # type: ignore[no-untyped-def]
    process = hello()
    approve = task_of(process, "approve")
    bob = people("bob")
    bob.post("/queue/", {"take": approve.id})
    bob.get(task_url(approve))
    assert bob.post(task_url(approve), {"approved": "y"}).status_code == 303
    assert task_url(approve) in bob.get("/archive/").get_data(as_text=True)
    assert task_url(approve) not in people("alice").get("/archive/").get_data(as_text=True)


def test_a_big_queue_shows_a_capped_badge_and_the_exact_total(app, people) -> None:  # type: ignore[no-untyped-def]
    app.config["WEBFLOW_NAV_COUNT_CAP"] = 2
    for n in range(3):
        hello(f"item {n}")
    html = people("bob").get("/queue/").get_data(as_text=True)
    assert re.search(r'id="nav-queue-count"[^>]*aria-label="more than 2 tasks"[^>]*>2\+<', html)
    assert "3 tasks" in html                       # the list itself counts them all
    inbox = people("bob").get("/inbox/").get_data(as_text=True)
    assert re.search(r'id="nav-queue-count"[^>]*>2\+<', inbox)
    app.config["WEBFLOW_NAV_COUNT_CAP"] = 3
    assert count(people("bob").get("/inbox/").get_data(as_text=True), "queue") == 3


def _failing_for(task_id: int, error: Exception, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The engine refuses the take of one task (its process busy past the lock's wait, or
    the permission gone under the lock); the others go through the real transition."""
    from webflow.core.nodes.view import ViewActivation

    original = ViewActivation.run_transition

    def run_transition(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if self.task.id == task_id:
            raise error
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ViewActivation, "run_transition", run_transition)


def test_a_bulk_take_that_fails_partway_names_what_it_took(app, people, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A batch whose second take finds its process busy (or the permission gone under the
    lock) keeps the first take and says so: not the whole-page 503/403 "nothing was
    changed", which was false, with the taken task still drawn in the queue."""
    from webflow import FlowLockFailed
    from webflow.core.exceptions import PermissionDenied

    for error, words in ((FlowLockFailed("could not lock process"), "its process was busy"),
                         (PermissionDenied("no longer allowed"), "you may no longer take it")):
        first, second = hello("one"), hello("two")
        ids = [task_of(first, "approve").id, task_of(second, "approve").id]
        _failing_for(ids[1], error, monkeypatch)
        bob = people("bob")
        bob.get("/queue/")
        response = bob.post("/queue/", {"task_id": ids}, hx=True)
        html = response.get_data(as_text=True)
        assert response.status_code == 200 and 'id="task-list"' in html
        assert "1 task assigned to you." in html and f"1 task not taken: {words}" in html
        assert "Nothing was changed" not in html
        assert task_of(first, "approve").owner_id == user("bob").id
        assert task_of(second, "approve").owner_id is None
        assert task_url(task_of(first, "approve")) not in html       # the list is redrawn
        monkeypatch.undo()
        bob.post("/queue/", {"task_id": [ids[1]]})                    # tidy for the next round


def test_a_bulk_take_whose_every_process_is_busy_is_503_and_takes_nothing(app, people, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from webflow import FlowLockFailed

    process = hello()
    approve = task_of(process, "approve")
    _failing_for(approve.id, FlowLockFailed("could not lock process"), monkeypatch)
    response = people("bob").post("/queue/", {"task_id": [approve.id]}, hx=True)
    assert response.status_code == 503
    assert "1 task not taken: its process was busy. Try again" in response.get_data(as_text=True)
    assert task_of(process, "approve").owner_id is None
