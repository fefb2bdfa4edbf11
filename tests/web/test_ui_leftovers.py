"""UI defects left from an audit, each as the person sees it: a confirmation page that cannot
be used now says why in place (HTMX) or as a page of its own (409), an action's address
opened, reloaded or bookmarked leads back to its task, and a comment by someone else is news
to an open task page that polls. SQLite and PostgreSQL."""

from __future__ import annotations

import html
import json
import re

from web_support import AuthActions, fresh, hello, task_of, task_url, user

from webflow import STATUS


def messages_text(body: str) -> str:
    """The words of the message box an answer brings (as a page or out of band)."""
    match = re.search(r'<div id="messages"[^>]*>(.*?)</div>', body, re.S)
    assert match, "the answer brings no message box"
    return html.unescape(re.sub(r"<[^>]+>|\s+", " ", match.group(1))).strip()


# -- 1. refusals on the confirmation pages, with and without HTMX -------------------------------


def test_a_confirmation_that_cannot_be_used_now_says_why_in_place(app, people) -> None:  # type: ignore[no-untyped-def]
    process = hello()
    approve = task_of(process, "approve")
    manager = people("manager")
    assert manager.post(task_url(approve, "cancel/"), {"next": task_url(approve)}).status_code == 303
    for url in (task_url(approve, "cancel/confirm/"), task_url(approve, "undo/confirm/"),
                f"/admin/confirm/hello_world/{process.id}/approve/{approve.id}/undo/"):
        # Without JavaScript: the page of its own, with the reason and the way back, 409.
        page = manager.get(url)
        text = page.get_data(as_text=True)
        assert page.status_code == 409 and "<html" in text and "Not allowed now" in text, url
        assert f'href="{task_url(approve)}"' in text or f'href="/flows/hello_world/{process.id}/"' in text
        # With HTMX: the reason as a message in place; nothing of the page is swapped.
        fragment = manager.get(url, hx=True)
        body = fragment.get_data(as_text=True)
        assert fragment.status_code == 409 and fragment.headers.get("HX-Reswap") == "none", url
        assert "<html" not in body
        assert '<div id="messages" class="wf-messages" aria-live="polite" hx-swap-oob="true">' in body
        assert "Not allowed now" in messages_text(body) and "flash error" in body, url
    assert fresh(approve).status == STATUS.CANCELED


def test_an_allowed_confirmation_asked_for_by_htmx_is_its_card(app, people) -> None:  # type: ignore[no-untyped-def]
    process = hello()
    approve = task_of(process, "approve")
    manager = people("manager")
    for url in (task_url(approve, "cancel/confirm/"), f"/flows/hello_world/{process.id}/cancel/",
                f"/admin/confirm/hello_world/{process.id}/approve/{approve.id}/cancel/"):
        fragment = manager.get(url, hx=True)
        body = fragment.get_data(as_text=True)
        assert fragment.status_code == 200 and "<html" not in body, url
        assert body.lstrip().startswith('<section id="confirm" class="wf-confirm">'), url
        assert manager.get(url).get_data(as_text=True).count('<section id="confirm"') == 1


def test_the_process_cancel_form_is_refused_in_place_with_htmx_and_as_a_page_without(app, people) -> None:  # type: ignore[no-untyped-def]
    process = hello()
    manager = people("manager")
    url = f"/flows/hello_world/{process.id}/cancel/"
    page = manager.get(url).get_data(as_text=True)
    # The form posts into its own card with HTMX (and is a plain form without JavaScript).
    card = page[page.index('<section id="confirm"'):]
    form = re.search(r'<form method="post" action="([^"]+)"([^>]*)>', card)
    assert form and form.group(1) == url
    assert f'hx-post="{url}"' in form.group(2) and 'hx-target="#confirm"' in form.group(2)
    # Someone else cancels the process meanwhile; the form is sent from the open page.
    other = AuthActions(app).enter_as("manager")
    other.get(url)
    assert other.post(url, {}).status_code == 303
    response = manager.post(url, {}, hx=True)
    body = response.get_data(as_text=True)
    assert response.status_code == 409 and "<html" not in body and "HX-Reswap" not in response.headers
    card = body[:body.index('<div id="messages"')]
    assert card.lstrip().startswith('<section id="confirm" class="wf-confirm">')
    assert "<form" not in card and "Back to the process" in card and "Canceled" in card
    assert messages_text(body) == f"The process was not canceled: process {process.id} is CANCELED."
    assert body.count(f"process {process.id} is CANCELED") == 1  # said once, in the message
    # Without JavaScript: the whole page, 409, the reason once and the way back.
    response = manager.post(url, {})
    text = response.get_data(as_text=True)
    assert response.status_code == 409 and "<html" in text and "Back to the process" in text
    assert text.count(f"process {process.id} is CANCELED") == 1
    # Asked for by HTMX while it cannot be done: the message, nothing swapped.
    fragment = manager.get(url, hx=True)
    assert fragment.status_code == 409 and fragment.headers.get("HX-Reswap") == "none"
    assert f"process {process.id} is CANCELED" in messages_text(fragment.get_data(as_text=True))


def test_the_process_cancel_form_with_htmx_goes_to_the_process_when_done(app, people) -> None:  # type: ignore[no-untyped-def]
    process = hello()
    manager = people("manager")
    url = f"/flows/hello_world/{process.id}/cancel/"
    manager.get(url)
    response = manager.post(url, {}, hx=True)
    process_page = f"/flows/hello_world/{process.id}/"
    assert response.status_code == 200 and response.headers["HX-Redirect"] == process_page
    assert fresh(process).status == STATUS.CANCELED
    assert f"Process #{process.id} is canceled." in manager.get(process_page).get_data(as_text=True)


# -- 2. an action's address opened, reloaded or bookmarked --------------------------------------


def test_an_action_address_reloaded_or_bookmarked_leads_back_to_the_task(app, people) -> None:  # type: ignore[no-untyped-def]
    process = hello()
    approve = task_of(process, "approve")
    manager = people("manager")
    manager.get(task_url(approve, "cancel/confirm/"))
    assert manager.post(task_url(approve, "cancel/"), {"next": task_url(approve)}).status_code == 303
    # The confirmation sent again (Back, then its button): refused, a 409 page at the action's address.
    assert manager.post(task_url(approve, "cancel/"), {"next": task_url(approve)}).status_code == 409
    # That address opened (a reload after the browser's warning, a bookmark, a typed or shared link):
    # nothing is done, and the person lands on the task as it is now, told why.
    for suffix, words in (("cancel/", "“Cancel this task” is done only when its button is pressed"),
                          ("undo/", "“Undo” is done only when its button is pressed"),
                          ("assign/", "“Assign” is done only when its button is pressed"),
                          ("restart/", "this kind of task has no “restart” action"),  # a job's
                          ("due/", "that address only takes what the page's forms send"),
                          ("draft/", "that address only takes what the page's forms send"),
                          ("comments/", "that address only takes what the page's forms send")):
        response = manager.get(task_url(approve, suffix))
        assert response.status_code == 303 and response.headers["Location"] == task_url(approve), suffix
        page = manager.get(task_url(approve))
        assert page.status_code == 200
        said = messages_text(page.get_data(as_text=True))
        assert said.startswith("Nothing was done:") and words in said and said.endswith("as it is now."), said
    assert fresh(approve).status == STATUS.CANCELED
    # With HTMX, the task page loads whole.
    response = manager.get(task_url(approve, "cancel/"), hx=True)
    assert response.status_code == 200 and response.headers["HX-Redirect"] == task_url(approve)
    # The process's comment address leads to its comments.
    response = manager.get(f"/flows/hello_world/{process.id}/comments/")
    assert response.status_code == 303
    assert response.headers["Location"] == f"/flows/hello_world/{process.id}/#comments"
    # The task page's own rules: an unknown action or task is 404, a task you may not see 403.
    assert manager.get(task_url(approve, "explode/")).status_code == 404
    assert manager.get(f"/flows/hello_world/{process.id}/approve/999999/cancel/").status_code == 404
    assert people("carol").get(task_url(approve, "cancel/")).status_code == 403
    # Other addresses that take no GET keep their 405 (with Allow).
    response = manager.get("/logout")
    assert response.status_code == 405 and "POST" in response.headers["Allow"]


# -- 4. a comment by someone else reaches an open task page that polls ---------------------------


def drawn(page: str, pattern: str) -> str:
    match = re.search(pattern, page)
    assert match, pattern
    return html.unescape(match.group(1))


def poll(person: AuthActions, etag: str, task_id: int) -> tuple[int, str, list[dict[str, str]]]:
    """What the page's poller asks and gets (webflow.js): status, the next ETag, the events."""
    response = person.get(f"/events/poll?task={task_id}", **{"If-None-Match": etag})
    events = response.get_json()["events"] if response.status_code == 200 else []
    return response.status_code, response.headers.get("ETag", etag), events


def comment_event(task_id: int, author: str) -> dict[str, str]:
    """The event a comment sets off on the task page (the data a stream sends too)."""
    return {"event": f"task-{task_id}", "data": json.dumps({"kind": "comment", "by": user(author).id})}


def test_a_comment_by_someone_else_reaches_an_open_task_page_that_polls(app, people) -> None:  # type: ignore[no-untyped-def]
    alice, bob = people("alice"), people("bob")
    task = task_of(hello(), "approve")
    page = alice.get(task_url(task)).get_data(as_text=True)
    etag = '"' + drawn(page, r'data-live-etag="([^"]+)"') + '"'
    status_url = drawn(page, r'id="task-status"[^>]*hx-get="([^"]+)"')
    banner_url = drawn(page, r'id="live-banner"[^>]*hx-get="([^"]+)"')
    status, etag, _ = poll(alice, etag, task.id)
    assert status == 304
    # Bob comments on the task (no audit event): the page hears of it, as a comment by bob.
    bob.get(task_url(task))
    assert bob.post(task_url(task, "comments/"), {"text": "Looks fine to me"}, hx=True).status_code == 200
    status, etag, events = poll(alice, etag, task.id)
    assert status == 200 and comment_event(task.id, "bob") in events
    # What the event sets off: the status element's refresh brings the history with the comment
    # (out of band; the form stays: status and owner unchanged), the banner names bob.
    refreshed = alice.get(status_url, hx=True).get_data(as_text=True)
    assert "Looks fine to me" in refreshed and 'id="task-history"' in refreshed
    assert 'id="task-work"' not in refreshed
    banner = alice.get(f"{banner_url}&kind=comment&by={user('bob').id}", hx=True).get_data(as_text=True)
    assert "bob commented" in banner
    assert poll(alice, etag, task.id)[0] == 304  # nothing new since
    # Once the page knows each part, a second comment is that task's news alone.
    bob.post(task_url(task, "comments/"), {"text": "And one more thing"}, hx=True)
    status, etag, events = poll(alice, etag, task.id)
    assert (status, events) == (200, [comment_event(task.id, "bob")])
    # A change of the task itself is no comment: the banner reads the audit trail.
    assert bob.post(task_url(task, "assign/"), hx=True).status_code == 200
    status, etag, events = poll(alice, etag, task.id)
    assert {"event": f"task-{task.id}"} in events
    assert "bob took this task" in alice.get(banner_url, hx=True).get_data(as_text=True)
    # Her own comment reaches her other open pages; their banner says nothing of it.
    alice.post(task_url(task, "comments/"), {"text": "Thanks"}, hx=True)
    status, etag, events = poll(alice, etag, task.id)
    assert events == [comment_event(task.id, "alice")]
    own = alice.get(f"{banner_url}&kind=comment&by={user('alice').id}", hx=True).get_data(as_text=True)
    assert own.strip() == ""
    # An ETag the page never had (made up, cut short) is answered, never a failure.
    version = etag.strip('"').split(".")[0]
    for made_up in (f'"{version}.a.b.c"', f'"{version}.a.b.c-"', '"0-x.a.b.-"', '"-.-.-.-"',
                    '"1-99999999999999999999"'):
        assert poll(alice, made_up, task.id)[0] in (200, 304), made_up
