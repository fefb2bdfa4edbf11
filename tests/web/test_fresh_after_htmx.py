"""After each HTMX action the page reads exactly like the same page loaded fresh.

The answer's swaps (its target and every out-of-band element) are applied to the page as
it was, and the result's visible text is compared with a fresh load: a card the answer
forgot to swap would still show the old state and fail the comparison."""

from __future__ import annotations

from page_regions import apply_swaps, parse, visible_text
from web_support import AuthActions, hello, task_of, task_url


def act_and_compare(person: AuthActions, page_url: str, post_url: str, target: str,
                    data: dict[str, object] | None = None) -> list[str]:
    """Run the HTMX action from the page; the ids it swapped (the page then equals a fresh one)."""
    page = parse(person.get(page_url).get_data(as_text=True))
    response = person.post(post_url, data or {}, hx=True)
    assert response.status_code == 200, response.get_data(as_text=True)
    swapped = apply_swaps(page, response.get_data(as_text=True), target)
    fresh = parse(person.get(page_url).get_data(as_text=True))
    assert visible_text(page) == visible_text(fresh)
    return swapped


def test_assign_and_unassign_on_the_task_page_leave_it_as_a_fresh_load(app, people) -> None:  # type: ignore[no-untyped-def]
    approve = task_of(hello(), "approve")
    bob = people("bob")
    swapped = act_and_compare(bob, task_url(approve), task_url(approve, "assign/"), "task-status")
    assert {"task-status", "task-work", "task-history", "process-facts", "process-data",
            "nav-inbox-count", "nav-queue-count"} <= set(swapped)
    act_and_compare(bob, task_url(approve), task_url(approve, "unassign/"), "task-status")


def test_cancel_and_undo_on_the_task_page_leave_it_as_a_fresh_load(app, people) -> None:  # type: ignore[no-untyped-def]
    process = hello()
    approve, start = task_of(process, "approve"), task_of(process, "start")
    manager = people("manager")
    act_and_compare(manager, task_url(approve), task_url(approve, "cancel/"), "task-status")
    act_and_compare(manager, task_url(start), task_url(start, "undo/"), "task-status")


def test_complete_loads_the_next_page_whole(app, people) -> None:  # type: ignore[no-untyped-def]
    process = hello()
    approve = task_of(process, "approve")
    bob = people("bob")
    bob.post(task_url(approve, "assign/"))
    bob.get(task_url(approve))
    response = bob.post(task_url(approve), {"approved": "y"}, hx=True)
    assert response.get_data(as_text=True) == ""  # nothing swapped in place: the page is reloaded
    target = response.headers["HX-Redirect"]
    first = parse(bob.get(target).get_data(as_text=True))
    assert visible_text(first) == visible_text(parse(bob.get(target).get_data(as_text=True)))
    assert "Done" in visible_text(parse(bob.get(task_url(approve)).get_data(as_text=True)))


def test_take_on_the_queue_leaves_it_as_a_fresh_load(app, people) -> None:  # type: ignore[no-untyped-def]
    first, second = hello("one"), hello("two")
    bob = people("bob")
    take = task_of(first, "approve")
    swapped = act_and_compare(bob, "/queue/", "/queue/", "task-list", {"take": take.id})
    assert {"task-list", "nav-inbox-count", "nav-queue-count"} <= set(swapped)
    act_and_compare(bob, "/queue/", "/queue/", "task-list",
                    {"select_all": "1", "page_task_id": [task_of(second, "approve").id]})


def test_status_poll_swaps_every_card_once_the_job_is_over(app, people) -> None:  # type: ignore[no-untyped-def]
    from test_tasks import failed_label_job

    process, job = failed_label_job(people)
    manager = people("manager")
    page = parse(manager.get(task_url(job)).get_data(as_text=True))
    swapped = apply_swaps(page, manager.get(task_url(job, "status/"), hx=True).get_data(as_text=True),
                          "task-status")
    assert {"task-status", "task-work", "process-facts", "process-data"} <= set(swapped)
    assert visible_text(page) == visible_text(parse(manager.get(task_url(job)).get_data(as_text=True)))
