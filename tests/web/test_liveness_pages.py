"""What people see of the engine's liveness: a start form sent twice starts one process,
stalled processes are listed and explained, and activate_next into existing work is a 409
with the reason, never a 500 (with and without HTMX)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from app_support import in_app_context, make_test_app
from web_support import PASSWORD, AuthActions, hello, snapshot, task_of, task_url, user

from webflow import Context, Flow, db, fire_due_timers, flow, this
from webflow.models import Process

START = "/flows/hello_world/start/start/"


def start_token(html: str) -> str:
    match = re.search(r'name="start_token" value="([0-9a-f]{32})"', html)
    assert match, "the start form has no one-time token"
    return match.group(1)


def processes() -> list[Process]:
    db.session.commit()
    return list(db.session.scalars(db.select(Process).order_by(Process.id)))


def test_the_same_start_form_sent_twice_starts_one_process(app, people) -> None:  # type: ignore[no-untyped-def]
    alice = people("alice")
    token = start_token(alice.get(START).get_data(as_text=True))
    first = alice.post(START, {"text": "once", "start_token": token})
    assert first.status_code == 303
    again = alice.post(START, {"text": "once", "start_token": token})  # Back, then submit again
    assert again.status_code == 303
    assert again.headers["Location"] == first.headers["Location"]
    [process] = processes()
    page = alice.get(again.headers["Location"]).get_data(as_text=True)
    assert f"This form was already sent: Hello world #{process.id} was started then" in page
    # Each new rendering of the form is a new token: a second process on purpose works.
    token2 = start_token(alice.get(START).get_data(as_text=True))
    assert token2 != token
    assert alice.post(START, {"text": "twice", "start_token": token2}).status_code == 303
    assert [p.data["text"] for p in processes()] == ["once", "twice"]


def test_a_resent_form_with_bad_input_still_lands_on_the_first_process(app, people) -> None:  # type: ignore[no-untyped-def]
    alice = people("alice")
    token = start_token(alice.get(START).get_data(as_text=True))
    assert alice.post(START, {"text": "", "start_token": token}).status_code == 422
    assert processes() == []
    refill = alice.post(START, {"text": "fixed", "start_token": token})
    assert refill.status_code == 303 and len(processes()) == 1
    assert alice.post(START, {"text": "", "start_token": token}).status_code == 303  # already started
    assert len(processes()) == 1


def test_a_damaged_or_foreign_token_is_refused_and_starts_nothing(app, people) -> None:  # type: ignore[no-untyped-def]
    alice, bob = people("alice"), people("bob")
    alice.get(START)
    for bad in ("x", "0" * 31, "G" * 32, "0" * 33, "\x00" * 32):
        response = alice.post(START, {"text": "x", "start_token": bad})
        assert response.status_code == 400, bad
        page = response.get_data(as_text=True)
        assert "reload the page" in page or "NUL character" in page
    assert processes() == []
    token = start_token(alice.get(START).get_data(as_text=True))
    assert alice.post(START, {"text": "mine", "start_token": token}).status_code == 303
    bob.get(START)
    stolen = bob.post(START, {"text": "theirs", "start_token": token})
    assert stolen.status_code == 409 and "already used" in stolen.get_data(as_text=True)
    assert [p.data["text"] for p in processes()] == ["mine"]


def test_a_stalled_process_is_listed_and_explained(app, people) -> None:  # type: ignore[no-untyped-def]
    process = hello("stall me")
    approve = task_of(process, "approve")
    with Context(user=user("manager")):
        approve.activate().cancel()
    admin = people("manager").get("/admin/").get_data(as_text=True)
    assert 'id="stalled"' in admin
    row = admin[admin.index('id="stalled"'):admin.index('id="stuck"')]
    assert f"Hello world #{process.id}" in row and "(canceled)" in row
    assert "<td>manager</td>" in row
    page = people("manager").get(f"/flows/hello_world/{process.id}/").get_data(as_text=True)
    assert "This process is stalled" in page and "by manager" in page and "undo a finished task" in page
    starter = people("alice").get(f"/flows/hello_world/{process.id}/").get_data(as_text=True)
    assert "This process is stalled" in starter and "A manager of this flow can repair it." in starter
    # Cancel the process: it is no longer listed.
    cancel = people("manager").post(f"/flows/hello_world/{process.id}/cancel/")
    assert cancel.status_code == 303
    admin = people("manager").get("/admin/").get_data(as_text=True)
    assert "No process is stalled." in admin


def test_activate_next_into_existing_work_is_a_409_with_the_reason(app, people) -> None:  # type: ignore[no-untyped-def]
    process = hello("next")
    start = task_of(process, "start")
    before = snapshot(process)
    manager = people("manager")
    for hx in (False, True):
        response = manager.post(task_url(start, "activate_next/"), hx=hx)
        # A start task has no activate_next: refused (404 for a name it does not have)
        assert response.status_code in (404, 409), response.get_data(as_text=True)
    assert snapshot(process) == before


class JobIntoJoinFlow(Flow):
    """Job into a join

    A job and a person's review meet in a join."""

    start = flow.StartFunction().Next(this.split)
    split = flow.Split().Next(this.pack).Next(this.review)
    pack = flow.Job(lambda act: None).Next(this.join)
    review = flow.View().Permission(auto_create=True).Next(this.join)
    join = flow.Join().Next(this.end)
    end = flow.End()


def test_activate_next_of_a_job_into_a_waiting_join_is_refused_not_a_500(db_url) -> None:  # type: ignore[no-untyped-def]
    app = make_test_app(db_url, [JobIntoJoinFlow], {"boss": ["job_into_join.manage"]}, PASSWORD)
    with in_app_context(app):
        process = JobIntoJoinFlow.start.run()
        job = task_of(process, "pack")
        assert job.status.value == "DONE" and task_of(process, "join").status.value == "STARTED"
        boss = AuthActions(app).enter_as("boss")
        page = boss.get(f"/flows/job_into_join/{process.id}/").get_data(as_text=True)
        assert "activate_next" not in page  # no button for what the engine refuses
        before = snapshot(process)
        plain = boss.post(task_url(job, "activate_next/"))
        assert plain.status_code == 409
        assert "its next tasks already exist" in plain.get_data(as_text=True)
        htmx = boss.post(task_url(job, "activate_next/"), hx=True)
        assert htmx.status_code == 409
        assert "its next tasks already exist" in htmx.get_data(as_text=True)  # shown in the page
        assert snapshot(process) == before


class TwoReviewsFlow(Flow):
    """Two reviews

    Two people review in parallel, then a third looks."""

    start = flow.StartFunction().Next(this.split)
    split = flow.Split().Next(this.a).Next(this.b)
    a = flow.View().Permission(auto_create=True).Next(this.join)
    b = flow.View().Permission(auto_create=True).Next(this.join)
    join = flow.Join().Next(this.c)
    c = flow.View().Permission(auto_create=True).Next(this.end)
    end = flow.End()


def test_a_process_stalled_at_an_undone_join_is_listed_with_its_repair(db_url) -> None:  # type: ignore[no-untyped-def]
    """Both reviews reached the join, the manager canceled the task after it and undid the
    join: /admin/ lists the process with the undo as its reason, its page tells a manager
    to cancel the join then undo a branch, and someone who only sees it to ask a manager."""
    app = make_test_app(db_url, [TwoReviewsFlow], {"boss": ["two_reviews.manage"],
                                                   "vera": ["two_reviews.view"]}, PASSWORD)
    with in_app_context(app):
        boss_user = user("boss")
        process = TwoReviewsFlow.start.run()
        for node in ("a", "b"):  # from code (trusted): the reviews are not the point here
            activation = task_of(process, node).activate()
            activation.assign(boss_user)
            activation.prepare(data={}, user=boss_user)
            activation.done()
        with Context(user=boss_user):
            task_of(process, "c").activate().cancel()
            join = task_of(process, "join")
            join.activate().undo()
        db.session.commit()
        boss, vera = AuthActions(app).enter_as("boss"), AuthActions(app).enter_as("vera")
        admin = boss.get("/admin/").get_data(as_text=True)
        row = admin[admin.index('id="stalled"'):admin.index('id="stuck"')]
        assert f"Two reviews #{process.id}" in row and f"#{join.id}" in row and "(undone)" in row
        page = " ".join(boss.get(f"/flows/two_reviews/{process.id}/").get_data(as_text=True).split())
        assert "This process is stalled" in page and f"#{join.id} was undone by boss" in page
        assert "nothing will reach it again" in page and "cancel it, then undo a branch before it" in page
        seen = " ".join(vera.get(f"/flows/two_reviews/{process.id}/").get_data(as_text=True).split())
        assert "This process is stalled" in seen and "A manager of this flow can repair it." in seen


class WaitThenApproveFlow(Flow):
    """Wait then approve"""

    start = flow.StartFunction().Next(this.wait)
    wait = flow.Timer(timedelta(seconds=0)).Next(this.approve)
    approve = flow.View().Permission(auto_create=True).Next(this.end)
    end = flow.End()


def test_a_process_stalled_at_an_undone_timer_names_its_own_repair(db_url) -> None:  # type: ignore[no-untyped-def]
    """The manager unwound a finished process back to its timer: nothing schedules an undone
    timer again, so the page says to cancel it and run Activate next on the task before it
    (not the join's "undo a branch"); someone who only sees it is sent to a manager."""
    app = make_test_app(db_url, [WaitThenApproveFlow], {"boss": ["wait_then_approve.manage",
                                                                 "wait_then_approve.can_approve"],
                                                        "vera": ["wait_then_approve.view"]}, PASSWORD)
    with in_app_context(app):
        boss_user = user("boss")
        process = WaitThenApproveFlow.start.run()
        fire_due_timers(now=datetime.now(UTC) + timedelta(minutes=1))
        approve = task_of(process, "approve").activate()
        approve.assign(boss_user)
        approve = task_of(process, "approve").activate()
        approve.prepare(data={}, user=boss_user)
        approve.done()
        with Context(user=boss_user):
            for node in ("end", "approve"):
                task_of(process, node).activate().undo()
                task_of(process, node).activate().cancel()
            wait = task_of(process, "wait")
            wait.activate().undo()
        db.session.commit()
        boss, vera = AuthActions(app).enter_as("boss"), AuthActions(app).enter_as("vera")
        page = " ".join(boss.get(f"/flows/wait_then_approve/{process.id}/").get_data(as_text=True).split())
        assert "This process is stalled" in page and f"#{wait.id} was undone by boss" in page
        assert "Nothing runs" in page and "Activate next" in page
        assert "undo a branch before it" not in page
        seen = " ".join(vera.get(f"/flows/wait_then_approve/{process.id}/").get_data(as_text=True).split())
        assert "This process is stalled" in seen and "A manager of this flow can repair it." in seen
        assert "Activate next" not in seen
