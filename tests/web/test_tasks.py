"""The task page, completing a task, its transitions and its status fragment."""

from __future__ import annotations

import pytest
from web_flows import LabelFlow
from web_support import fresh, hello, snapshot, task_of, task_url, user

from webflow import STATUS, FlowLockFailed, db
from webflow.core.nodes.view import ViewActivation


def assigned(to: str = "bob", text: str = "hi"):  # type: ignore[no-untyped-def]
    """A hello process whose approve task is assigned to ``to``."""
    process = hello(text)
    task_of(process, "approve").activate().assign(user(to))
    return process, task_of(process, "approve")


def test_task_page_shows_form_data_history_and_my_buttons(app, people) -> None:  # type: ignore[no-untyped-def]
    process, approve = assigned(text="<i>x</i>")
    page = people("bob").get(task_url(approve)).get_data(as_text=True)
    assert 'name="approved"' in page and 'name="csrf_token"' in page
    assert "&lt;i&gt;x&lt;/i&gt;" in page and "<i>x</i>" not in page
    assert "<strong>manager</strong>" not in page and "assign" in page      # history: who did what
    assert task_url(approve, "unassign/") in page
    # The owner's reassign is a delegation, to colleagues who may approve (none here but bob).
    assert task_url(approve, "reassign/") not in page or "Delegate to" in page
    viewer = people("alice").get(task_url(approve)).get_data(as_text=True)   # sees it, cannot act
    assert 'name="approved"' not in viewer and task_url(approve, "unassign/") not in viewer
    manager = people("manager").get(task_url(approve)).get_data(as_text=True)
    assert task_url(approve, "reassign/") in manager and task_url(approve, "unassign/") in manager
    assert 'name="user_id"' in manager and 'name="approved"' not in manager


def test_task_page_answers_404_for_mismatched_urls_and_403_for_strangers(app, people) -> None:  # type: ignore[no-untyped-def]
    process, approve = assigned()
    other = hello("other")
    bob = people("bob")
    assert bob.get(task_url(approve)).status_code == 200
    assert people("carol").get(task_url(approve)).status_code == 403
    for url in (f"/flows/label/{process.id}/approve/{approve.id}/",
                f"/flows/hello_world/{other.id}/approve/{approve.id}/",
                f"/flows/hello_world/{process.id}/start/{approve.id}/",
                f"/flows/hello_world/{process.id}/approve/999999/"):
        assert bob.get(url).status_code == 404
        assert bob.post(url + "unassign/").status_code == 404


def test_owner_completes_the_task_once(app, people) -> None:  # type: ignore[no-untyped-def]
    process, approve = assigned()
    bob = people("bob")
    bob.get(task_url(approve))
    assert people("alice").post(task_url(approve), {"approved": "y"}).status_code == 403
    response = bob.post(task_url(approve), {"approved": "y"})
    assert response.status_code == 303 and response.headers["Location"] == "/inbox/"
    done = snapshot(process)
    assert done[0] == STATUS.DONE and done[1]["approved"] is True and done[1]["sent"] is True
    again = bob.post(task_url(approve), {"approved": ""})
    assert again.status_code == 409 and "nothing was saved" in again.get_data(as_text=True)
    assert snapshot(process) == done


def test_completing_with_htmx_loads_the_next_page_whole(app, people) -> None:  # type: ignore[no-untyped-def]
    process, approve = assigned()
    bob = people("bob")
    bob.get(task_url(approve))
    response = bob.post(task_url(approve), {"approved": "y"}, hx=True)
    # Nothing else for bob in this process: the inbox, loaded whole (messages and counts fresh).
    assert response.status_code == 200 and response.headers["HX-Redirect"] == "/inbox/"
    inbox = bob.get("/inbox/").get_data(as_text=True)
    assert "is done. Nothing else for you in this process." in inbox
    again = bob.post(task_url(approve), {"approved": "y"}, hx=True)
    assert again.status_code == 409 and snapshot(process)[0] == STATUS.DONE


def test_bad_input_on_a_task_says_why_and_stores_nothing(app, people) -> None:  # type: ignore[no-untyped-def]
    process = LabelFlow.start.run(data={"amount": 5}, user=user("alice"))
    confirm = task_of(process, "confirm")
    confirm.activate().assign(user("bob"))
    before = snapshot(process)
    bob = people("bob")
    bob.get(task_url(confirm))
    for hx in (False, True):
        response = bob.post(task_url(confirm), {"amount": "500"}, hx=hx)
        html = response.get_data(as_text=True)
        assert response.status_code == 422 and "Number must be between 1 and 100." in html
        assert ("<html" in html) is not hx
    assert snapshot(process) == before


def test_a_failing_automatic_step_is_stored_as_error_and_my_task_is_done(app, people) -> None:  # type: ignore[no-untyped-def]
    process = LabelFlow.start.run(data={"amount": 99}, user=user("alice"))
    confirm = task_of(process, "confirm")
    confirm.activate().assign(user("bob"))
    bob = people("bob")
    bob.get(task_url(confirm))
    assert bob.post(task_url(confirm), {"amount": "99"}).status_code == 303
    assert task_of(process, "confirm").status == STATUS.DONE
    assert task_of(process, "print_label").status == STATUS.DONE     # the job ran inline
    check = task_of(process, "check")
    assert check.status == STATUS.ERROR and "amount 99 is refused" in check.comments
    page = people("manager").get(task_url(check)).get_data(as_text=True)
    assert "amount 99 is refused" in page and task_url(check, "retry/") in page


# transition, who, setup (returns the task), expected status code, what the task looks like after
TRANSITIONS = [
    ("assign", "bob", lambda: task_of(hello(), "approve"), 303, ("ASSIGNED", "bob")),
    ("assign", "carol", lambda: task_of(hello(), "approve"), 403, ("NEW", None)),
    ("assign", "bob", lambda: assigned("alice")[1], 409, ("ASSIGNED", "alice")),
    ("unassign", "bob", lambda: assigned("bob")[1], 303, ("NEW", None)),
    ("unassign", "alice", lambda: assigned("bob")[1], 403, ("ASSIGNED", "bob")),
    ("unassign", "manager", lambda: assigned("bob")[1], 303, ("NEW", None)),
    ("reassign", "manager", lambda: assigned("bob")[1], 303, ("ASSIGNED", "alice")),
    ("reassign", "bob", lambda: assigned("bob")[1], 303, ("ASSIGNED", "alice")),  # the owner delegates
    ("reassign", "carol", lambda: assigned("bob")[1], 403, ("ASSIGNED", "bob")),
    ("cancel", "manager", lambda: task_of(hello(), "approve"), 303, ("CANCELED", None)),
    ("cancel", "bob", lambda: task_of(hello(), "approve"), 403, ("NEW", None)),
    ("cancel", "manager", lambda: assigned("bob")[1], 409, ("ASSIGNED", "bob")),
    ("undo", "manager", lambda: assigned("bob")[1], 409, ("ASSIGNED", "bob")),
    ("perform", "manager", lambda: assigned("bob")[1], 409, ("ASSIGNED", "bob")),
]


@pytest.mark.parametrize(("transition", "who", "setup", "code", "after"), TRANSITIONS,
                         ids=[f"{t[0]}-{t[1]}-{t[3]}" for t in TRANSITIONS])
@pytest.mark.parametrize("hx", [False, True], ids=["plain", "htmx"])
def test_transitions_by_who_asks(app, people, transition, who, setup, code, after, hx) -> None:  # type: ignore[no-untyped-def]
    task = setup()
    before = snapshot(task.process)
    data = {"user_id": user("alice").id} if transition == "reassign" else {}
    response = people(who).post(task_url(task, f"{transition}/"), data, hx=hx)
    expected = 200 if (hx and code == 303) else code
    assert response.status_code == expected, response.get_data(as_text=True)
    task = fresh(task)
    assert (task.status.value, task.owner.username if task.owner else None) == after
    if code != 303:
        assert snapshot(task.process) == before
    if hx:
        html = response.get_data(as_text=True)
        assert "<html" not in html and 'id="messages"' in html


def test_htmx_transition_answers_the_status_fragment(app, people) -> None:  # type: ignore[no-untyped-def]
    approve = task_of(hello(), "approve")
    response = people("bob").post(task_url(approve, "assign/"), hx=True)
    html = response.get_data(as_text=True)
    assert html.lstrip().startswith('<div id="task-status"') and "wf-status-assigned" in html
    assert 'name="approved"' in html                                     # the form, out of band
    assert task_url(approve, "unassign/") in html and "Vary" in response.headers


def test_transition_rules_for_pickers_unknown_names_and_csrf(app, people) -> None:  # type: ignore[no-untyped-def]
    process, approve = assigned("bob")
    manager = people("manager")
    assert manager.post(task_url(approve, "reassign/")).status_code == 400          # nobody picked
    assert manager.post(task_url(approve, "reassign/"), {"user_id": "x"}).status_code == 400
    assert manager.post(task_url(approve, "reassign/"), {"user_id": user("carol").id}).status_code == 400
    assert manager.post(task_url(approve, "explode/")).status_code == 404
    assert people("bob").post(task_url(approve, "unassign/"), csrf=False).status_code == 400
    assert manager.post(task_url(approve, "assign/"), {"user_id": user("alice").id}).status_code == 409
    assert fresh(approve).owner_id == user("bob").id
    assert people("bob").post(task_url(approve, "assign/"), {"user_id": user("alice").id}).status_code == 403


def test_manager_assigns_someone_else(app, people) -> None:  # type: ignore[no-untyped-def]
    approve = task_of(hello(), "approve")
    response = people("manager").post(task_url(approve, "assign/"), {"user_id": user("alice").id,
                                                                     "next": "https://evil.example/"})
    assert response.status_code == 303 and response.headers["Location"] == task_url(approve)
    assert fresh(approve).owner_id == user("alice").id


def failed_label_job(people):  # type: ignore[no-untyped-def]
    """A label process whose job failed: bob confirmed amount 13, the printer is on fire."""
    process = LabelFlow.start.run(data={"amount": 13}, user=user("alice"))
    confirm = task_of(process, "confirm")
    confirm.activate().assign(user("bob"))
    bob = people("bob")
    bob.get(task_url(confirm))
    bob.post(task_url(confirm), {"amount": "13"})
    return process, task_of(process, "print_label")


def test_status_fragment_polls_while_a_job_runs(app, people) -> None:  # type: ignore[no-untyped-def]
    process, job = failed_label_job(people)
    assert job.status == STATUS.ERROR and "printer on fire" in job.comments
    status = people("manager").get(task_url(job, "status/"), hx=True)
    html = status.get_data(as_text=True)
    assert status.status_code == 200 and "<html" not in html and "wf-status-error" in html
    assert 'hx-trigger="every 2s"' not in html and task_url(job, "retry/") in html
    job.status = STATUS.STARTED
    db.session.commit()
    html = people("manager").get(task_url(job, "status/"), hx=True).get_data(as_text=True)
    assert 'hx-trigger="every 2s"' in html and "wf-status-started" in html
    assert people("carol").get(task_url(job, "status/"), hx=True).status_code == 403


def test_restart_of_a_failed_job_runs_it_again(app, people) -> None:  # type: ignore[no-untyped-def]
    process, job = failed_label_job(people)
    assert job.status == STATUS.ERROR
    process.data = {**process.data, "amount": 12}
    db.session.commit()
    assert people("bob").post(task_url(job, "restart/")).status_code == 403
    assert people("manager").post(task_url(job, "restart/")).status_code == 303
    assert fresh(job).status == STATUS.DONE and snapshot(process)[0] == STATUS.DONE
    assert people("manager").post(task_url(job, "restart/")).status_code == 409


def test_a_busy_process_answers_503_and_changes_nothing(app, people, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    process, approve = assigned("bob")
    before = snapshot(process)

    def busy(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise FlowLockFailed("could not lock process")

    monkeypatch.setattr(ViewActivation, "run_transition", busy)
    bob = people("bob")
    bob.get(task_url(approve))
    for hx in (False, True):
        response = bob.post(task_url(approve), {"approved": "y"}, hx=hx)
        assert response.status_code == 503 and "busy" in response.get_data(as_text=True)
        assert response.headers.get("HX-Reswap") == ("none" if hx else None)
    assert snapshot(process) == before
