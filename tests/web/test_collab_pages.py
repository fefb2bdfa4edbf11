"""Working together in the browser: comments, delegation, drafts, out of office (issue 16)."""

from __future__ import annotations

import re

import pytest
from web_flows import LabelFlow
from web_support import fresh, snapshot, task_of, task_url, user

from webflow import STATUS, db
from webflow.core.models import Comment, OutOfOffice, TaskDraft
from webflow.core.signals import comment_posted


def confirm_of(owner: str | None = "alice"):  # type: ignore[no-untyped-def]
    """A label process (amount 5) whose confirm task is assigned to ``owner``."""
    process = LabelFlow.start.run(data={"amount": 5}, user=user("alice"))
    if owner:
        task_of(process, "confirm").activate().assign(user(owner))
    return process, task_of(process, "confirm")


def comments() -> list[str]:
    db.session.commit()
    return [c.text for c in db.session.scalars(db.select(Comment).order_by(Comment.id))]


def process_url(process) -> str:  # type: ignore[no-untyped-def]
    return f"/flows/label/{process.id}/"


# -- comments -------------------------------------------------------------------------------


def test_a_comment_is_text_mentions_are_marked_and_htmx_swaps_the_history(app, people) -> None:  # type: ignore[no-untyped-def]
    process, confirm = confirm_of()
    bob = people("bob")
    bob.get(task_url(confirm))
    text = "<script>alert(1)</script> @alice please, not @nobody nor @carol"
    response = bob.post(task_url(confirm, "comments/"), {"text": text}, hx=True)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and 'id="task-history"' in html and "<html" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert" not in html
    assert '<strong class="wf-mention">@alice</strong>' in html
    assert "@nobody" in html and "wf-mention\">@nobody" not in html  # unknown: plain text
    assert "wf-mention\">@carol" not in html                           # cannot see the task
    page = people("alice").get(task_url(confirm)).get_data(as_text=True)
    assert "&lt;script&gt;" in page and "<script>alert" not in page
    assert page.index("assign") < page.index("commented")              # in time order with the trail
    db.session.commit()
    assert db.session.scalars(db.select(Comment)).one().mentions == ["alice"]


def test_who_cannot_see_the_task_cannot_comment(app, people) -> None:  # type: ignore[no-untyped-def]
    process, confirm = confirm_of()
    before = snapshot(process)
    assert people("carol").post(task_url(confirm, "comments/"), {"text": "hi"}).status_code == 403
    assert people("carol").post(process_url(process) + "comments/", {"text": "hi"}).status_code == 403
    assert comments() == [] and snapshot(process) == before


BAD_COMMENTS = [("", 422, "the comment is empty"), ("  \n ", 422, "the comment is empty"),
                ("x" * 5001, 422, "at most 5,000 characters"), ("a\x00b", 400, "NUL")]


def test_bad_comments_say_why_and_store_nothing(app, people) -> None:  # type: ignore[no-untyped-def]
    process, confirm = confirm_of()
    alice = people("alice")
    alice.get(task_url(confirm))
    for text, status, says in BAD_COMMENTS:
        for hx in (False, True):
            for url in (task_url(confirm, "comments/"), process_url(process) + "comments/"):
                response = alice.post(url, {"text": text}, hx=hx)
                answer = response.get_data(as_text=True)
                assert response.status_code == status and says in answer, (text, hx, url)
    assert comments() == []


def test_process_comments_show_on_the_process_page(app, people) -> None:  # type: ignore[no-untyped-def]
    process, confirm = confirm_of()
    alice = people("alice")
    alice.get(process_url(process))
    response = alice.post(process_url(process) + "comments/", {"text": "on the whole thing"})
    assert response.status_code == 303 and response.headers["Location"].endswith("#comments")
    people("bob").post(task_url(confirm, "comments/"), {"text": "on the task"})
    fragment = alice.post(process_url(process) + "comments/", {"text": "third"}, hx=True)
    html = fragment.get_data(as_text=True)
    assert fragment.status_code == 200 and 'id="comments"' in html and "<html" not in html
    assert html.index("on the whole thing") < html.index("on the task") < html.index("third")
    task_page = alice.get(task_url(confirm)).get_data(as_text=True)
    assert "on the task" in task_page and "on the whole thing" not in task_page


def test_hostile_ids_in_comment_urls_are_404_never_500(app, people) -> None:  # type: ignore[no-untyped-def]
    process, confirm = confirm_of()
    alice = people("alice")
    for url in (f"/flows/label/{2**63}/comments/",
                f"/flows/label/{process.id}/confirm/{2**40}/comments/",
                f"/flows/nope/{process.id}/comments/",
                f"/flows/label/{process.id}/start/{confirm.id}/comments/"):
        assert alice.post(url, {"text": "x"}).status_code == 404
    assert comments() == []


def post_token(html: str) -> str:
    """The comment form's one-time token on the page or fragment."""
    match = re.search(r'name="comment_token" value="([0-9a-f]{32})"', html)
    assert match, "the comment form carries no one-time token"
    return match.group(1)


@pytest.mark.parametrize("hx", [False, True])
@pytest.mark.parametrize("where", ["task", "process"])
def test_a_comment_form_sent_twice_posts_one_comment(app, people, where: str, hx: bool) -> None:  # type: ignore[no-untyped-def]
    """A double click without JavaScript, a retry after the answer was lost, Back and send
    again: the same form stores one comment, tells no one twice, and says it was already
    posted. The page drawn after a post has a new form, whose comment is a new one."""
    process, confirm = confirm_of()
    page_url = task_url(confirm) if where == "task" else process_url(process)
    alice = people("alice")
    told: list[list[str]] = []

    def note(sender, comment, mentions, **extra) -> None:  # type: ignore[no-untyped-def]
        told.append([u.username for u in mentions])

    token = post_token(alice.get(page_url).get_data(as_text=True))
    form = {"text": "please check, @bob", "comment_token": token}
    with comment_posted.connected_to(note):
        first = alice.post(page_url + "comments/", form, hx=hx)
        again = alice.post(page_url + "comments/", form, hx=hx)
    assert comments() == ["please check, @bob"] and len(told) == 1  # the mentions sent once
    if hx:
        assert first.status_code == again.status_code == 200
        second_html = again.get_data(as_text=True)
        next_token = post_token(first.get_data(as_text=True))
    else:
        assert first.status_code == again.status_code == 303
        second_html = alice.get(again.headers["Location"]).get_data(as_text=True)
        next_token = post_token(second_html)
    assert "already posted" in second_html and second_html.count("please check,") == 1
    assert next_token != token
    meant_again = alice.post(page_url + "comments/", {**form, "comment_token": next_token}, hx=hx)
    assert meant_again.status_code in (200, 303)
    assert comments() == ["please check, @bob", "please check, @bob"]  # meant twice: posted twice


def test_a_comment_without_a_token_is_posted_each_time(app, people) -> None:  # type: ignore[no-untyped-def]
    """A client that sends no token (a script) gets what it asks for: nothing to match."""
    process, confirm = confirm_of()
    alice = people("alice")
    for _ in range(2):
        assert alice.post(task_url(confirm, "comments/"), {"text": "ping"}).status_code == 303
    assert comments() == ["ping", "ping"]


@pytest.mark.parametrize("token", ["x", "A" * 32, "a" * 31, "a" * 33, "a" * 5000, "é" * 32, "a" * 31 + "\n"],
                         ids=["short", "capitals", "31", "33", "5000", "accents", "newline"])
def test_a_damaged_comment_token_is_refused_with_the_text_kept(app, people, token: str) -> None:  # type: ignore[no-untyped-def]
    process, confirm = confirm_of()
    alice = people("alice")
    alice.get(task_url(confirm))
    for url in (task_url(confirm, "comments/"), process_url(process) + "comments/"):
        response = alice.post(url, {"text": "kept words", "comment_token": token}, hx=True)
        html = response.get_data(as_text=True)
        assert response.status_code == 422 and "damaged" in html and "kept words" in html, url
        assert post_token(html) != token
    assert comments() == []


def test_a_token_of_someone_elses_comment_or_another_process_is_refused(app, people) -> None:  # type: ignore[no-untyped-def]
    process, confirm = confirm_of()
    other, _ = confirm_of()
    alice, bob = people("alice"), people("bob")
    token = post_token(alice.get(task_url(confirm)).get_data(as_text=True))
    mine = alice.post(task_url(confirm, "comments/"), {"text": "mine", "comment_token": token})
    assert mine.status_code == 303
    bob.get(task_url(confirm))
    answer = bob.post(task_url(confirm, "comments/"), {"text": "his", "comment_token": token}, hx=True)
    assert answer.status_code == 422 and "already used" in answer.get_data(as_text=True)
    answer = alice.post(process_url(other) + "comments/", {"text": "there", "comment_token": token}, hx=True)
    assert answer.status_code == 422 and "already used" in answer.get_data(as_text=True)
    assert comments() == ["mine"]


# -- delegation --------------------------------------------------------------------------------


def test_the_owner_delegates_to_a_permitted_colleague_with_a_note(app, people) -> None:  # type: ignore[no-untyped-def]
    process, confirm = confirm_of("alice")
    alice = people("alice")
    page = alice.get(task_url(confirm)).get_data(as_text=True)
    assert task_url(confirm, "reassign/") in page and 'name="note"' in page and "Delegate to" in page
    picker = page[page.index(task_url(confirm, "reassign/")):]
    picker = picker[:picker.index("</form>")]
    assert f'value="{user("bob").id}"' in picker and f'value="{user("carol").id}"' not in picker
    assert task_url(confirm, "reassign/") not in people("bob").get(task_url(confirm)).get_data(as_text=True)
    response = alice.post(task_url(confirm, "reassign/"),
                          {"user_id": user("bob").id, "note": "you know <them>"})
    assert response.status_code == 303
    assert fresh(confirm).owner_id == user("bob").id and fresh(confirm).status == STATUS.ASSIGNED
    history = people("bob").get(task_url(confirm)).get_data(as_text=True)
    assert "alice delegated to bob: you know &lt;them&gt;" in history


WRONG_DELEGATIONS = [
    ("alice", "carol", 403),     # carol may not confirm labels
    ("alice", "manager", 403),   # nor may the manager
    ("bob", "alice", 403),       # bob does not own the task
    ("alice", "alice", 403),     # to oneself
    ("alice", str(2**40), 400),  # no such user
    ("alice", "²", 400),         # not a number
    ("alice", "", 400),          # nobody picked
]


def test_delegation_to_the_wrong_people_is_refused_and_changes_nothing(app, people) -> None:  # type: ignore[no-untyped-def]
    process, confirm = confirm_of("alice")
    before = snapshot(process)
    for who, pick, status in WRONG_DELEGATIONS:
        person = people(who)
        person.get(task_url(confirm))
        user_id = user(pick).id if pick in ("alice", "bob", "carol", "manager") else pick
        response = person.post(task_url(confirm, "reassign/"), {"user_id": user_id, "note": "here"})
        assert response.status_code == status, (who, pick)
        if pick == "carol":
            assert "carol may not work on this task" in response.get_data(as_text=True)
        assert snapshot(process) == before, (who, pick)


def test_an_overlong_delegation_note_is_refused(app, people) -> None:  # type: ignore[no-untyped-def]
    process, confirm = confirm_of("alice")
    before = snapshot(process)
    response = people("alice").post(task_url(confirm, "reassign/"),
                                    {"user_id": user("bob").id, "note": "n" * 1001})
    assert response.status_code == 422 and "at most 1,000 characters" in response.get_data(as_text=True)
    assert snapshot(process) == before


# -- drafts -------------------------------------------------------------------------------------


def test_a_draft_is_kept_for_the_owner_only_and_never_in_process_data(app, people) -> None:  # type: ignore[no-untyped-def]
    process, confirm = confirm_of("alice")
    alice = people("alice")
    page = alice.get(task_url(confirm)).get_data(as_text=True)
    assert "Save draft" in page and task_url(confirm, "draft/") in page
    response = alice.post(task_url(confirm, "draft/"), {"amount": "12 or 13?", "sneaky": "x"})
    assert response.status_code == 303
    assert fresh(process).data == {"amount": 5}                     # nothing completed, nothing merged
    assert fresh(confirm).status == STATUS.ASSIGNED
    page = alice.get(task_url(confirm)).get_data(as_text=True)
    assert 'value="12 or 13?"' in page and "Draft saved" in page and "only you see it" in page
    for other in ("bob", "manager"):
        assert "12 or 13?" not in people(other).get(task_url(confirm)).get_data(as_text=True)
    assert db.session.get(TaskDraft, confirm.id).data == {"amount": ["12 or 13?"]}
    done = alice.post(task_url(confirm), {"amount": "7"})
    assert done.status_code == 303 and fresh(process).data["amount"] == 7
    db.session.commit()
    assert db.session.get(TaskDraft, confirm.id) is None             # completing drops it


def test_saving_a_draft_with_htmx_swaps_the_form(app, people) -> None:  # type: ignore[no-untyped-def]
    process, confirm = confirm_of("alice")
    alice = people("alice")
    alice.get(task_url(confirm))
    response = alice.post(task_url(confirm, "draft/"), {"amount": "forty"}, hx=True)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and 'id="task-work"' in html and 'value="forty"' in html
    assert "Draft saved" in html and "<html" not in html


def test_a_draft_by_anyone_but_the_owner_is_refused(app, people) -> None:  # type: ignore[no-untyped-def]
    for who, owner in (("bob", "alice"), ("carol", "alice"), ("manager", "alice"), ("alice", None)):
        process, confirm = confirm_of(owner)
        before = snapshot(process)
        for hx in (False, True):
            assert people(who).post(task_url(confirm, "draft/"), {"amount": "1"}, hx=hx).status_code == 403
        assert snapshot(process) == before
        db.session.commit()
        assert db.session.get(TaskDraft, confirm.id) is None


def test_an_oversized_draft_is_refused_and_unassigning_drops_a_draft(app, people) -> None:  # type: ignore[no-untyped-def]
    process, confirm = confirm_of("alice")
    alice = people("alice")
    response = alice.post(task_url(confirm, "draft/"), {"amount": "9" * 10_001}, hx=True)
    answer = response.get_data(as_text=True)
    assert response.status_code == 422 and "was not saved" in answer
    assert "9" * 10_001 in answer                                     # what was typed is still there
    db.session.commit()
    assert db.session.get(TaskDraft, confirm.id) is None
    assert alice.post(task_url(confirm, "draft/"), {"amount": "3"}).status_code == 303
    assert alice.post(task_url(confirm, "unassign/")).status_code == 303
    db.session.commit()
    assert db.session.get(TaskDraft, confirm.id) is None


# -- out of office --------------------------------------------------------------------------------


def test_out_of_office_sends_new_assignments_to_the_substitute(app, people) -> None:  # type: ignore[no-untyped-def]
    process, confirm = confirm_of("alice")
    bob = people("bob")
    page = bob.get("/settings/").get_data(as_text=True)
    assert "Out of office" in page and 'href="/settings/"' in page
    response = bob.post("/settings/away/", {"substitute_id": user("alice").id, "until": ""})
    assert response.status_code == 303
    assert "You are out of office" in bob.get("/settings/").get_data(as_text=True)
    manager = people("manager")
    manager.get(task_url(confirm))
    assert manager.post(task_url(confirm, "reassign/"), {"user_id": user("bob").id}).status_code == 303
    assert fresh(confirm).owner_id == user("alice").id              # bob is away: alice has it
    history = people("alice").get(task_url(confirm)).get_data(as_text=True)
    assert "assigned to alice, substituting for bob" in history
    assert bob.post("/settings/away/", {"action": "clear"}).status_code == 303
    db.session.commit()
    assert db.session.get(OutOfOffice, user("bob").id) is None


BAD_AWAY = [
    ({}, "Choose an active colleague"),
    ({"substitute_id": "SELF"}, "your own substitute"),
    ({"substitute_id": str(2**63)}, "Choose an active colleague"),
    ({"substitute_id": "ALICE", "until": "2001-01-01T10:00"}, "already past"),
    ({"substitute_id": "ALICE", "until": "tomorrow"}, "date and time"),
    ({"substitute_id": "ALICE", "until": "99999-01-01T10:00"}, "date and time"),
]


def test_bad_out_of_office_settings_say_why_and_change_nothing(app, people) -> None:  # type: ignore[no-untyped-def]
    names = {"SELF": str(user("bob").id), "ALICE": str(user("alice").id)}
    for form, says in BAD_AWAY:
        values = {k: names.get(v, v) for k, v in form.items()}
        for hx in (False, True):
            response = people("bob").post("/settings/away/", values, hx=hx)
            assert response.status_code == 422 and says in response.get_data(as_text=True), (form, hx)
    db.session.commit()
    assert db.session.get(OutOfOffice, user("bob").id) is None
