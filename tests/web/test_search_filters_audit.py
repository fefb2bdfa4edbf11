"""Search, saved filters, my requests and settings at their edges: hostile input is never a
500 and changes nothing; a saved filter that outlives what it names still draws a safe link."""

from __future__ import annotations

from urllib.parse import quote

import pytest
import sqlalchemy as sa
from web_support import AuthActions, hello, user

from webflow import db
from webflow.core.models import NotificationSetting, SavedFilter

VALUES = ["", " ", "\udcff", "%", "_", "\\", ":*", "&|!()'", "9" * 30, str(2**31), str(2**63), "-1", "0",
          "1e5", "x" * 10000, "\uff10", "\u0663", "a:b", "%00", "\u202e", "null", "[]", "\t\n"]
KEYS = ["q", "page", "status", "flow", "when", "sort"]


def raw(value: str) -> str:
    """The value percent-encoded as a client may send it (a lone surrogate: bytes that are no UTF-8)."""
    return quote(value.encode("utf-8", "surrogateescape"))


def form(person: AuthActions, **fields: str) -> dict[str, object]:
    body = "&".join(f"{k}={raw(v)}" for k, v in {**fields, "csrf_token": person.token}.items())
    return {"data": body, "content_type": "application/x-www-form-urlencoded"}


def test_hostile_query_values_on_every_page_are_never_a_500(app, people) -> None:  # type: ignore[no-untyped-def]
    hello("apples")
    bob = people("bob")
    for path in ["/search/", "/requests/", "/queue/", "/inbox/", "/archive/", "/settings/"]:
        for key in KEYS:
            for value in VALUES:
                response = bob.client.get(path, query_string=f"{key}={raw(value)}")
                assert response.status_code == 200, (path, key, value[:20], response.status_code)
            repeated = bob.client.get(path, query_string=[(key, "a"), (key, "b")])
            assert repeated.status_code == 200


def test_hostile_filter_saves_and_deletes_change_nothing_they_should_not(app, people) -> None:  # type: ignore[no-untyped-def]
    bob = people("bob")
    bob.get("/queue/")
    for value in VALUES:
        for key in KEYS:
            response = bob.client.post("/queue/filters/", query_string=f"{key}={raw(value)}",
                                       **form(bob, name="n"))  # type: ignore[arg-type]
            assert response.status_code in (303, 422), (key, value[:20], response.status_code)
        response = bob.client.post("/queue/filters/", **form(bob, name=value))  # type: ignore[arg-type]
        assert response.status_code in (303, 422), (value[:20], response.status_code)
    db.session.commit()
    kept = {(row.name, row.query) for row in db.session.scalars(sa.select(SavedFilter))}
    assert all(len(name) <= 80 and "\ufffd" not in name for name, _ in kept)
    for filter_id in ["0", str(2**31), str(2**63), "abc", "-1", "01", "\u0661"]:
        assert bob.client.post(f"/filters/{raw(filter_id)}/delete/", **form(bob)).status_code == 404  # type: ignore[arg-type]
    for method in ["GET", "PUT", "DELETE", "PATCH"]:
        assert bob.client.open("/queue/filters/", method=method).status_code == 405
    db.session.commit()
    assert {(row.name, row.query) for row in db.session.scalars(sa.select(SavedFilter))} == kept


def test_hostile_settings_are_refused_and_change_nothing(app, people) -> None:  # type: ignore[no-untyped-def]
    bob = people("bob")
    bob.get("/settings/")
    for value in VALUES:
        for field, endpoint in [("email", "/settings/notifications"), ("timezone", "/settings/timezone/"),
                                ("until", "/settings/away/"), ("substitute_id", "/settings/away/")]:
            response = bob.client.post(endpoint, **form(bob, **{field: value}))  # type: ignore[arg-type]
            assert response.status_code < 500, (endpoint, field, value[:20], response.status_code)
    db.session.commit()
    db.session.expire_all()
    assert user("bob").timezone in (None, "")
    assert user("bob").email in (None, "")


# -- saved filters that outlive what they name ------------------------------------------------


def old_filter(owner: str, query: str, name: str = "Old one", list_name: str = "queue") -> SavedFilter:
    """A filter row as an older version (or an import) may have stored it."""
    row = SavedFilter(user_id=user(owner).id, list_name=list_name, name=name, query=query)
    db.session.add(row)
    db.session.commit()
    return row


@pytest.mark.parametrize("query", ["endpoint=tasks.detail&q=a", "q=a&_external=1&_scheme=javascript",
                                   "values=1", "list_name=inbox&_anchor=x", "page=3&q=a&status=DONE"])
def test_a_filter_of_an_old_format_draws_a_plain_link(app, people, query: str) -> None:  # type: ignore[no-untyped-def]
    """The stored query went whole into url_for: ``endpoint=`` made every queue page a 500
    for the filter's owner, ``_external``/``_scheme`` drew a ``javascript:`` link."""
    old_filter("bob", query)
    response = people("bob").get("/queue/")
    assert response.status_code == 200, response.status_code
    html = response.get_data(as_text=True)
    assert ">Old one</a>" in html and "javascript:" not in html and "_external" not in html
    link = html.split(">Old one</a>")[0].rsplit('<a href="', 1)[1].rstrip('"')
    assert link.startswith("/queue/") and "endpoint" not in link and "page=" not in link
    assert "status=" not in link and "#" not in link


def test_a_filter_of_a_flow_no_longer_served_says_so(app, people) -> None:  # type: ignore[no-untyped-def]
    """Its flow gone from WEBFLOW_FLOWS, the filter silently showed every flow's tasks."""
    old_filter("bob", "flow=expense&q=apples", name="Expenses")
    old_filter("bob", "when=someday", name="Someday")
    old_filter("bob", "flow=hello_world", name="Hello")
    html = people("bob").get("/queue/").get_data(as_text=True)
    expenses = html.split(">Expenses</a>")[1].split("</li>")[0]
    assert "no longer" in expenses
    assert "no longer" in html.split(">Someday</a>")[1].split("</li>")[0]
    assert "no longer" not in html.split(">Hello</a>")[1].split("</li>")[0]


def test_another_persons_filter_name_is_never_drawn_for_me(app, people) -> None:  # type: ignore[no-untyped-def]
    old_filter("alice", "flow=expense", name="Alice private")
    assert "Alice private" not in people("bob").get("/queue/").get_data(as_text=True)


def test_settings_of_an_inactive_person_cannot_be_changed(app) -> None:  # type: ignore[no-untyped-def]
    bob = AuthActions(app).enter_as("bob")
    bob.get("/settings/")
    row = user("bob")
    row.is_active = False
    db.session.commit()
    response = bob.client.post("/settings/notifications", **form(bob, email="x@example.com", assigned="y"))  # type: ignore[arg-type]
    assert response.status_code in (302, 401)
    db.session.expire_all()
    assert user("bob").email is None and db.session.get(NotificationSetting, user("bob").id) is None


# -- search: what the person may not see takes no room and is never counted -----------------------


def test_processes_i_may_not_see_neither_crowd_out_nor_count_in_my_search(app, people, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The best ``RESULT_CAP`` processes (of the newest ``CANDIDATES``) were chosen before the
    visibility rule: newer processes dave may not see pushed his own match out ("No task you
    may see matches"), and their number showed as "more than 1 task: add words"."""
    from test_search import label_process

    from webflow.core import search
    from webflow.models import Task, User

    db.session.add(User(username="dave", permissions=["label.can_confirm"], password_hash="x"))
    db.session.commit()

    def confirm_of(process):  # type: ignore[no-untyped-def]
        return db.session.scalar(sa.select(Task.id).where(Task.process_id == process.id,
                                                          Task.node_name == "confirm"))

    older = confirm_of(label_process(people("alice"), amount=77))  # dave may confirm it
    for n in range(4):
        hello(f"number 77 again {n}")                               # newer, dave may not see them
    monkeypatch.setattr(search, "CANDIDATES", 3)
    monkeypatch.setattr("webflow.blueprints.search.RESULT_CAP", 2)
    dave = AuthActions(app).enter_as("dave")
    page = dave.get("/search/?q=77").get_data(as_text=True)
    assert f'id="row-task-{older}"' in page and page.count("row-task-") == 1
    assert "more than" not in page and "1 task" in page
    newer = confirm_of(label_process(people("alice"), amount=77))
    page = dave.get("/search/?q=77").get_data(as_text=True)
    assert f'id="row-task-{older}"' in page and f'id="row-task-{newer}"' in page
    assert "more than" not in page and "2 tasks" in page
    assert "more than" in people("bob").get("/search/?q=77").get_data(as_text=True)  # bob sees them all


def test_any_text_reaches_either_full_text_syntax_as_plain_words(app) -> None:  # type: ignore[no-untyped-def]
    """Random text (every Unicode category but surrogates) never makes the query fail."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from webflow.core.search import search_tasks

    hello("apples \u00bd \uff11\uff12 \u0663 na\u0308ive")

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=80))
    def search(text: str) -> None:
        page = search_tasks(db.session(), text, sa.true(), kinds=["HUMAN", "START"])
        assert page.total >= 0
        db.session.rollback()

    search()


def test_a_saved_filter_link_shows_the_list_it_was_saved_from(app, people) -> None:  # type: ignore[no-untyped-def]
    """Whatever the search, a filter is saved whole (its link gives the same list) or refused."""
    import re
    from html import unescape

    from hypothesis import HealthCheck, example, given, settings
    from hypothesis import strategies as st

    bob = people("bob")
    bob.get("/queue/")
    shown = re.compile(r'<input type="search" name="q" value="([^"]*)"')

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(q=st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=250),
           sort=st.sampled_from(["", "-due", "priority", "nonsense", "-created"]),
           flow=st.sampled_from(["", "hello_world", "label", "gone"]))
    @example(q="'&\"<x> 100%", sort="-due", flow="label")
    def save_and_follow(q: str, sort: str, flow: str) -> None:
        query = f"q={raw(q)}&sort={sort}&flow={flow}"
        listed = bob.client.get(f"/queue/?{query}").get_data(as_text=True)
        response = bob.client.post(f"/queue/filters/?{query}", **form(bob, name="prop"))  # type: ignore[arg-type]
        assert response.status_code in (303, 422)
        if response.status_code == 422:
            assert "too long to save" in response.get_data(as_text=True)
            return
        html = bob.client.get("/queue/").get_data(as_text=True)
        link = unescape(html.split(">prop</a>")[0].rsplit('<a href="', 1)[1].rstrip('"'))  # as browsers read
        followed = bob.client.get(link).get_data(as_text=True)
        assert shown.findall(followed)[:1] == shown.findall(listed)[:1]

    save_and_follow()
