"""Defects an HTTP and a UI audit found: bounds the README promises (saved filters' length,
ids in URLs and forms, drafts counted in characters), a delegation that would come back to
the delegating person through out of office, and refusals said in a person's words."""

from __future__ import annotations

from urllib.parse import quote, urlencode

import pytest
from web_flows import LabelFlow
from web_support import fresh, hello, snapshot, task_of, task_url, user
from werkzeug.datastructures import MultiDict

from webflow import STATUS, db
from webflow.core.drafts import check_draft
from webflow.core.exceptions import InputRejected
from webflow.core.models import SavedFilter, TaskDraft


def saved() -> list[SavedFilter]:
    db.session.commit()
    return list(db.session.scalars(db.select(SavedFilter).order_by(SavedFilter.id)))


def confirm_of(owner: str = "bob"):  # type: ignore[no-untyped-def]
    """A label process whose confirm task is assigned to ``owner``."""
    process = LabelFlow.start.run(data={"amount": 5}, user=user("alice"))
    task_of(process, "confirm").activate().assign(user(owner))
    return process, task_of(process, "confirm")


# -- saved filters: what is kept fits, or the person is told ----------------------------------


LONG_QUERIES = [
    "q=" + quote("中" * 70),                 # 70 characters, 630 once encoded
    urlencode({"q": "é" * 200}),             # 200 characters, 1,200 once encoded
    urlencode({"flow": "f" * 200, "when": "w" * 200, "q": "q" * 200, "sort": "s" * 200}),
]


@pytest.mark.parametrize("list_name", ["queue", "inbox"])
@pytest.mark.parametrize("hx", [False, True])
def test_a_filter_too_long_to_keep_is_refused_with_a_reason(app, people, list_name: str, hx: bool) -> None:  # type: ignore[no-untyped-def]
    bob = people("bob")
    bob.get(f"/{list_name}/")
    for query in LONG_QUERIES[:2]:
        response = bob.post(f"/{list_name}/filters/?{query}", {"name": "mine"}, hx=hx)
        assert response.status_code == 422, query
        assert "too long to save" in response.get_data(as_text=True)
    assert saved() == []


def test_a_filter_keeps_what_the_list_applies_and_fits(app, people) -> None:  # type: ignore[no-untyped-def]
    """Unknown flows, due filters and sorts are ignored by the list: the saved filter is the
    list as shown (a search at the list's own 200 characters fits)."""
    bob = people("bob")
    bob.get("/queue/")
    assert bob.post(f"/queue/filters/?{LONG_QUERIES[2]}", {"name": "odd"}).status_code == 303
    assert bob.post("/queue/filters/?" + urlencode({"q": "中" * 65, "sort": "-due"}),
                    {"name": "cjk"}).status_code == 303
    kept = {row.name: row.query for row in saved()}
    assert kept["odd"] == "q=" + "q" * 200
    assert kept["cjk"] == urlencode({"q": "中" * 65, "sort": "-due"})
    assert all(len(query) <= 600 for query in kept.values())


# -- ids: ASCII digits, canonical, in range ---------------------------------------------------


def arabic(n: int) -> str:
    return "".join(chr(0x660 + int(c)) for c in str(n))


def fullwidth(n: int) -> str:
    return "".join(chr(0xFF10 + int(c)) for c in str(n))


def test_ids_in_urls_in_other_digits_or_with_leading_zeros_are_404(app, people) -> None:  # type: ignore[no-untyped-def]
    process = hello()
    approve = task_of(process, "approve")
    bob = people("bob")
    p, t = process.id, approve.id
    assert bob.get(f"/flows/hello_world/{p}/").status_code == 200
    for url in (f"/flows/hello_world/{arabic(p)}/", f"/flows/hello_world/{fullwidth(p)}/",
                f"/flows/hello_world/0{p}/", f"/flows/hello_world/{p}/approve/{arabic(t)}/",
                f"/flows/hello_world/{p}/approve/{fullwidth(t)}/status/",
                f"/flows/hello_world/{p}/approve/00{t}/"):
        assert bob.get(url).status_code == 404, url
    before = snapshot(process)
    for url in (f"/flows/hello_world/{arabic(p)}/approve/{arabic(t)}/assign/",
                f"/flows/hello_world/{p}/approve/0{t}/assign/"):
        assert bob.post(url).status_code == 404, url
    assert snapshot(process) == before


@pytest.mark.parametrize("bad", [str(2**31), str(2**63), "١٢", "0", "-1", "1e3", "１"])
def test_taking_a_good_and_a_bad_id_is_400_and_takes_nothing(app, people, bad: str) -> None:  # type: ignore[no-untyped-def]
    process = hello()
    approve = task_of(process, "approve")
    bob = people("bob")
    bob.get("/queue/")
    before = snapshot(process)
    for hx in (False, True):
        headers = {"HX-Request": "true", "X-CSRFToken": bob.token} if hx else {}
        form = [("task_id", str(approve.id)), ("task_id", bad)]
        if not hx:
            form.append(("csrf_token", bob.token))
        response = bob.client.post("/queue/", data=MultiDict(form), headers=headers)
        # Without HTMX the answer is the queue again (303), with the message.
        assert response.status_code == (400 if hx else 303), (bad, hx)
        page = response if hx else bob.get("/queue/")
        assert "Nothing was taken." in page.get_data(as_text=True)
    assert snapshot(process) == before


def test_more_than_500_ids_take_nothing(app, people) -> None:  # type: ignore[no-untyped-def]
    process = hello()
    approve = task_of(process, "approve")
    bob = people("bob")
    bob.get("/queue/")
    before = snapshot(process)
    response = bob.client.post("/queue/", data=MultiDict([("task_id", str(approve.id))] * 501),
                               headers={"HX-Request": "true", "X-CSRFToken": bob.token})
    assert response.status_code == 400 and "at most 500 tasks" in response.get_data(as_text=True)
    assert snapshot(process) == before


# -- drafts are counted in characters ----------------------------------------------------------


def test_a_draft_within_the_limits_is_kept_whatever_its_characters(app, people) -> None:  # type: ignore[no-untyped-def]
    process, confirm = confirm_of("alice")
    alice = people("alice")
    for text in ("a" * 6000, "é" * 6000, "\U0001F600" * 6000, "\"" * 10_000):
        response = alice.post(task_url(confirm, "draft/"), {"amount": text}, hx=True)
        assert response.status_code == 200, ascii(text[:1])
        db.session.commit()
        db.session.expire_all()
        assert db.session.get(TaskDraft, confirm.id).data == {"amount": [text]}
    response = alice.post(task_url(confirm, "draft/"), {"amount": "\U0001F600" * 10_001}, hx=True)
    assert response.status_code == 422 and "more than 10,000 characters" in response.get_data(as_text=True)


def test_a_whole_draft_is_counted_in_characters_too() -> None:
    fields = [f"f{n}" for n in range(7)]
    fits = {name: ["\U0001F600" * 9_000] for name in fields}   # 63,000 characters
    assert check_draft(fits, fields) == fits
    with pytest.raises(InputRejected, match="more than 64,000 characters in all"):
        check_draft({name: ["a" * 9_200] for name in fields}, fields)


# -- delegating to someone whose tasks come back to you ------------------------------------


def test_delegating_to_someone_away_who_has_you_as_substitute_is_refused(app, people) -> None:  # type: ignore[no-untyped-def]
    alice, bob = people("alice"), people("bob")
    assert alice.post("/settings/away/", {"substitute_id": user("bob").id, "until": ""}).status_code == 303
    process, confirm = confirm_of("bob")
    assert bob.post(task_url(confirm, "draft/"), {"amount": "12?"}).status_code == 303
    page = bob.get(task_url(confirm)).get_data(as_text=True)
    if task_url(confirm, "reassign/") in page:  # alice is not offered in bob's picker
        picker = page[page.index(task_url(confirm, "reassign/")):]
        assert f'<option value="{user("alice").id}"' not in picker[:picker.index("</form>")]
    before = snapshot(process)
    for hx in (False, True):
        response = bob.post(task_url(confirm, "reassign/"), {"user_id": user("alice").id, "note": "please"},
                            hx=hx)
        text = response.get_data(as_text=True)
        assert response.status_code == 403, hx
        assert "alice is out of office" in text and "would come back to you" in text
        assert "Delegate: done" not in text
    assert snapshot(process) == before
    db.session.commit()
    assert db.session.get(TaskDraft, confirm.id).data == {"amount": ["12?"]}
    assert fresh(confirm).owner_id == user("bob").id


# -- refusals in a person's words ---------------------------------------------------------------


@pytest.mark.parametrize("hx", [False, True])
def test_taking_a_canceled_queue_task_says_it_was_canceled(app, people, hx: bool) -> None:  # type: ignore[no-untyped-def]
    process = hello()
    approve = task_of(process, "approve")
    bob, manager = people("bob"), people("manager")
    bob.get("/queue/")
    manager.get(task_url(approve))
    assert manager.post(task_url(approve, "cancel/")).status_code == 303
    assert fresh(approve).status == STATUS.CANCELED
    before = snapshot(process)
    response = bob.post("/queue/", {"take": approve.id}, hx=hx)
    assert response.status_code == (409 if hx else 303)  # without HTMX: back to the queue
    text = bob.get("/queue/").get_data(as_text=True) if not hx else response.get_data(as_text=True)
    assert "was canceled" in text and "taken by someone else" not in text
    assert snapshot(process) == before


def test_taking_a_task_someone_took_first_names_them_in_plain_words(app, people) -> None:  # type: ignore[no-untyped-def]
    process = hello()
    approve = task_of(process, "approve")
    alice, bob = people("alice"), people("bob")
    bob.get(task_url(approve))
    assert alice.post(task_url(approve, "assign/")).status_code == 303
    before = snapshot(process)
    for hx in (False, True):
        response = bob.post(task_url(approve, "assign/"), hx=hx)
        text = response.get_data(as_text=True)
        assert response.status_code == 409, hx
        assert "This task was already taken by alice." in text
        assert "in status" not in text and "is not allowed for task" not in text
    assert snapshot(process) == before
    # The queue says who, too.
    response = bob.post("/queue/", {"take": approve.id}, hx=True)
    assert response.status_code == 409 and "already taken by alice" in response.get_data(as_text=True)
