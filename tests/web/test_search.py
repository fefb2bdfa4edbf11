"""Search: a task found by a word of its data, a number, a person or a flow's title, ranked,
never one the person may not see, never a 500 whatever is typed; the ``q=`` of the lists."""

from __future__ import annotations

import re

import pytest
from web_support import hello, task_of, task_url, user

from webflow import db
from webflow.core.search import SearchTerms, search_tasks
from webflow.core.visibility import may_see_task, visible_tasks
from webflow.models import Process, Task


def found(person, query: str) -> list[int]:  # type: ignore[no-untyped-def]
    """The task ids the search page lists for the person, in its order."""
    response = person.get(f"/search/?q={query}")
    assert response.status_code == 200
    return [int(n) for n in re.findall(r'id="row-task-(\d+)"', response.get_data(as_text=True))]


def label_process(alice, amount: int = 42) -> Process:  # type: ignore[no-untyped-def]
    """A label process started through its form by alice; its confirm task in the queue."""
    alice.get("/flows/label/start/start/")
    assert alice.post("/flows/label/start/start/", {"amount": str(amount)}).status_code == 303
    db.session.commit()
    return db.session.scalars(db.select(Process).where(Process.flow_class_path.like("%LabelFlow"))
                              .order_by(Process.id.desc())).first()


def test_finds_a_task_by_a_word_of_its_data(app, people) -> None:  # type: ignore[no-untyped-def]
    invoice, other = hello("Quarterly invoice for Acme"), hello("lunch order")
    approve = task_of(invoice, "approve")
    results = found(people("bob"), "acme")
    assert approve.id in results and task_of(other, "approve").id not in results
    assert approve.id in found(people("bob"), "quart")     # the beginning of a word
    assert found(people("bob"), "acme+lunch") == []         # every word must match


def test_finds_by_process_and_task_number_the_named_one_first(app, people) -> None:  # type: ignore[no-untyped-def]
    first = hello("ticket")
    mentions = hello(f"follow-up of {first.id}")            # the number in another's data
    approve = task_of(first, "approve")
    by_process = found(people("bob"), str(first.id))
    assert approve.id in by_process and task_of(mentions, "approve").id in by_process
    assert by_process.index(approve.id) < by_process.index(task_of(mentions, "approve").id)
    later = task_of(mentions, "approve")
    assert db.session.get(Process, later.id) is None      # a task number that is no process's
    assert found(people("bob"), str(later.id))[0] == later.id
    assert found(people("bob"), "9999999") == [] and found(people("bob"), "99999999999999") == []


def test_finds_by_owner_and_starter_name(app, people) -> None:  # type: ignore[no-untyped-def]
    process = hello("parcel", by="alice")
    approve = task_of(process, "approve")
    assert approve.id in found(people("bob"), "alice")     # alice started it
    assert approve.id not in found(people("alice"), "bob")
    bob = people("bob")
    assert bob.post("/queue/", {"take": approve.id}).status_code == 303
    assert approve.id in found(people("alice"), "bob")     # bob has it now: the index followed


def test_finds_by_flow_title_and_task_title(app, people) -> None:  # type: ignore[no-untyped-def]
    process = hello("x")
    approve = task_of(process, "approve")
    assert approve.id in found(people("bob"), "hello+world")
    assert approve.id in found(people("bob"), "approve")
    label = label_process(people("alice"))
    confirm = task_of(label, "confirm")
    assert confirm.id in found(people("alice"), "label") and approve.id not in found(people("alice"), "label")


def test_the_better_match_comes_first(app, people) -> None:  # type: ignore[no-untyped-def]
    weak = hello("apples and a great many other words about the harvest and the weather this year")
    strong = hello("apples apples apples")
    results = found(people("bob"), "apples")
    assert results.index(task_of(strong, "approve").id) < results.index(task_of(weak, "approve").id)


def test_never_shows_a_task_the_person_may_not_see(app, people) -> None:  # type: ignore[no-untyped-def]
    label = label_process(people("alice"), amount=31)
    start, confirm = task_of(label, "start"), task_of(label, "confirm")
    assert {start.id, confirm.id} <= set(found(people("alice"), "31"))   # views the flow
    assert found(people("bob"), "31") == [confirm.id]                  # may work on confirm only
    assert found(people("carol"), "31") == []                          # may do nothing
    assert {start.id, confirm.id} <= set(found(people("manager"), "31"))
    hello("secret words", by="alice")
    assert found(people("carol"), "secret") == []
    # The lists' q= filter keeps to the list: carol's queue and archive stay empty.
    for url in ("/queue/?q=secret", "/archive/?q=secret", "/inbox/?q=secret"):
        assert "row-task-" not in people("carol").get(url).get_data(as_text=True)


def test_the_search_rule_is_the_task_pages_rule(app, people) -> None:  # type: ignore[no-untyped-def]
    """The SQL form of the visibility rule lists exactly the tasks whose page the rule opens."""
    label_process(people("alice"), amount=55)
    hello("fifty five", by="bob")
    flows = app.extensions["webflow_flows"]
    tasks = db.session.scalars(db.select(Task)).all()
    for name in ("alice", "bob", "carol", "manager"):
        who = user(name)
        listed = set(db.session.scalars(db.select(Task.id).join(Process, Task.process_id == Process.id)
                                        .where(visible_tasks(flows.values(), who))))
        assert listed == {t.id for t in tasks if may_see_task(t.flow_class, t, who)}, name


HOSTILE = ['"', '""', "'", "*", "apples*", "NEAR(apples pears)", "NEAR(", "-apples", "apples -pears",
           "body:apples", ":", "^", "(", ")", "a OR b", "AND", "NOT", "!", "&", "|", "<->", "\\",
           "%", "_", "%_%", "';--", "\u00e9t\u00e9", "\u65e5\u672c", "\U0001f600", "x" * 5000,
           " ".join(["w"] * 500), "1" * 40, "-1", "0", "2147483648", "#12", "a:*", "'a':*"]


@pytest.mark.parametrize("page", ["/search/", "/queue/", "/inbox/", "/archive/"])
def test_hostile_queries_never_fail(app, people, page: str) -> None:  # type: ignore[no-untyped-def]
    hello("apples and pears")
    bob = people("bob")
    for query in HOSTILE:
        response = bob.client.get(page, query_string={"q": query})
        assert response.status_code == 200, (page, query, response.status_code)
        fragment = bob.client.get(page, query_string={"q": query}, headers={"HX-Request": "true"})
        assert fragment.status_code == 200
    assert bob.client.get(page, query_string={"q": "apples\x00"}).status_code == 400   # NUL: refused, said


def test_hostile_terms_reach_the_database_as_plain_words(app) -> None:  # type: ignore[no-untyped-def]
    hello("near apples")
    for query in HOSTILE:
        page = search_tasks(db.session(), query, db.true(), kinds=["HUMAN"])
        assert page.total >= 0
    assert SearchTerms.parse('NEAR("apples" -x:*)').words == ("near", "apples", "x")


def test_a_completed_forms_new_value_is_searchable(app, people) -> None:  # type: ignore[no-untyped-def]
    alice = people("alice")
    label = label_process(alice, amount=42)
    confirm = task_of(label, "confirm")
    assert found(alice, "77") == []
    assert alice.post("/queue/", {"take": confirm.id}).status_code == 303
    alice.get(task_url(confirm))
    assert alice.post(task_url(confirm), {"amount": "77"}).status_code == 303
    assert confirm.id in found(alice, "77")
    assert confirm.id not in found(alice, "42")  # the old value is gone from the index


def test_data_changed_from_code_is_searchable(app, people) -> None:  # type: ignore[no-untyped-def]
    process = hello("before")
    row = db.session.get(Process, process.id)
    row.data = {"text": "afterwards"}
    db.session.commit()
    approve = task_of(process, "approve")
    start = task_of(process, "start")
    assert set(found(people("bob"), "afterwards")) == {start.id, approve.id}
    assert found(people("bob"), "before") == []


def test_queue_q_uses_search_with_numbers(app, people) -> None:  # type: ignore[no-untyped-def]
    first, _, third, fourth = hello("alpha"), hello("beta"), hello("gamma"), hello("delta")
    bob = people("bob")
    page = bob.get(f"/queue/?q={fourth.id}").get_data(as_text=True)  # (and task #4's process)
    assert task_url(task_of(fourth, "approve")) in page
    assert task_url(task_of(first, "approve")) not in page and task_url(task_of(third, "approve")) not in page
    page = bob.get("/queue/?q=alice+beta").get_data(as_text=True)
    assert page.count("row-task-") == 1 and "1 task" in page


def test_search_page_pages_highlights_and_answers_htmx(app, people) -> None:  # type: ignore[no-untyped-def]
    app.config["WEBFLOW_PAGE_SIZE"] = 2
    hello("<b>invoice</b> one")
    hello("invoice two")
    bob = people("bob")
    page = bob.get("/search/?q=invoice").get_data(as_text=True)
    assert "Page 1 of 2" in page and "4 tasks" in page   # each process's start and approve
    both = page + bob.get("/search/?q=invoice&page=2").get_data(as_text=True)
    assert "&lt;b&gt;<mark>invoice</mark>&lt;/b&gt;" in both and "<b>invoice" not in both
    assert len(found(bob, "invoice&page=2")) == 2
    fragment = bob.get("/search/?q=invoice", hx=True).get_data(as_text=True)
    assert "<html" not in fragment and 'id="results"' in fragment
    assert "Type words" in bob.get("/search/").get_data(as_text=True)
    assert people("carol").get("/search/?q=invoice").get_data(as_text=True).count("row-task-") == 0


def test_rows_written_in_plain_sql_are_found_after_the_index_command(app, people) -> None:  # type: ignore[no-untyped-def]
    """Rows that bypass the session (an import, the migration's existing rows) have no
    document until ``flask webflow search-index`` writes them all."""
    process = hello("indexed")
    db.session.execute(db.update(Process).where(Process.id == process.id).values(data={"text": "imported"}))
    db.session.commit()
    assert found(people("bob"), "imported") == []
    result = app.test_cli_runner().invoke(args=["webflow", "search-index"])
    assert result.exit_code == 0 and "Indexed 1 processes." in result.output
    assert task_of(process, "approve").id in found(people("bob"), "imported")


def test_a_word_in_very_many_documents_ranks_the_newest_matches(app, people, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Past ``CANDIDATES`` matches, only the newest that many are ranked (a word in every
    document costs what a common word does); below it, the best match wins whatever its age."""
    from webflow.core import search

    strong = hello("pears pears pears pears")                 # the best match, but the oldest
    weak = [hello(f"pears and many other words, number {n}") for n in range(3)]
    everything = search_tasks(db.session(), "pears", db.true(), kinds=["HUMAN"], cap=2)
    assert everything.tasks[0].id == task_of(strong, "approve").id and everything.capped
    monkeypatch.setattr(search, "CANDIDATES", 3)               # the three newest are ranked
    newest = search_tasks(db.session(), "pears", db.true(), kinds=["HUMAN"], cap=2)
    assert newest.capped and newest.total == 3
    assert {t.id for t in newest.tasks} <= {task_of(p, "approve").id for p in weak}
    monkeypatch.setattr("webflow.blueprints.search.RESULT_CAP", 2)   # the page asks the same
    page = found(people("bob"), "pears")
    assert page and {db.session.get(Task, i).process_id for i in page} <= {p.id for p in weak}
    monkeypatch.setattr(search, "CANDIDATES", 1)               # never fewer than the cap + 1
    assert search_tasks(db.session(), "pears", db.true(), kinds=["HUMAN"], cap=2).total == 3


def test_the_starter_finds_their_process_and_no_one_elses(app, people) -> None:  # type: ignore[no-untyped-def]
    """carol may do nothing in the flow: she sees a process only because she started it (the
    visibility rule's starter ground, read per matched process)."""
    mine, theirs = hello("plums for carol"), hello("plums for alice")
    mine.created_by_id = user("carol").id                     # (carol may not start one herself)
    db.session.commit()
    carol = people("carol")
    for query in ("plums", "carol"):
        listed = found(carol, query)
        assert task_of(mine, "approve").id in listed
        assert {db.session.get(Task, i).process_id for i in listed} == {mine.id}
    assert task_of(theirs, "approve").id in found(people("bob"), "plums")


def test_a_search_past_its_last_page_shows_the_last_page(app, people) -> None:  # type: ignore[no-untyped-def]
    """``?page=9`` of a two-page search said "No task you may see matches" although it had
    matches on the pages before."""
    app.config["WEBFLOW_PAGE_SIZE"] = 2
    for n in range(3):
        hello(f"pallet {n}")
    bob = people("bob")
    first = bob.get("/search/?q=pallet").get_data(as_text=True)
    pages = int(re.search(r"Page 1 of (\d+)", first).group(1))  # type: ignore[union-attr]
    assert pages >= 2
    last = bob.get(f"/search/?q=pallet&page={pages}").get_data(as_text=True)
    response = bob.get("/search/?q=pallet&page=9")
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "No task you may see matches" not in html
    assert f"Page {pages} of {pages}" in html and "Page 9" not in html
    listed = [int(n) for n in re.findall(r'id="row-task-(\d+)"', html)]
    assert listed and listed == [int(n) for n in re.findall(r'id="row-task-(\d+)"', last)]
