"""Working together, from code: comments and mentions, delegation, out of office, drafts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from webflow import STATUS, Context, Flow, flow, this
from webflow.core import PermissionDenied, signals
from webflow.core.away import clear_away, set_away
from webflow.core.comments import MAX_COMMENT, comments_of, mentioned_names, post_comment
from webflow.core.drafts import MAX_FIELD, clear_draft, draft_of, save_draft
from webflow.core.exceptions import InputRejected
from webflow.core.models import Comment, TaskDraft, TaskEvent, utcnow
from webflow.models import Process, Task, User


class DeskFlow(Flow):
    """Desk"""

    start = flow.StartFunction().Next(this.review)
    review = flow.View().Permission("desk.can_review").Next(this.end)
    end = flow.End()


class RoutedFlow(Flow):
    """Routed: the review goes to bob when it is created."""

    start = flow.StartFunction().Next(this.review)
    review = flow.View().Permission("routed.can_review").Assign(username="bob").Next(this.end)
    end = flow.End()


@pytest.fixture
def team(session: Any) -> dict[str, User]:
    """alice, bob and carol review desks and routed tasks; dave may not; vera sees desks."""
    perms = ["desk.can_review", "routed.can_review"]
    people = {name: User(username=name, permissions=list(perms)) for name in ("alice", "bob", "carol")}
    people["dave"] = User(username="dave", permissions=[])
    people["vera"] = User(username="vera", permissions=["desk.view"])
    session.add_all(people.values())
    session.commit()
    return people


def review_of(process: Process) -> Task:
    return process.get_task(process.flow_class.review)


def assigned_review(team: dict[str, User], owner: str = "alice") -> Task:
    process = DeskFlow.start.run()
    task = review_of(process)
    task.activate().assign(team[owner])
    return task


def trail(session: Any, task: Task) -> list[tuple[str, str | None]]:
    return [(e.transition, e.comments) for e in session.scalars(
        sa.select(TaskEvent).where(TaskEvent.task_id == task.id).order_by(TaskEvent.id))]


class Received:
    """What a signal sent, recorded with the ids the receiver saw."""

    def __init__(self, signal: Any) -> None:
        self.signal, self.calls = signal, []

    def __enter__(self) -> list[dict[str, Any]]:
        self.signal.connect(self.receive)
        return self.calls

    def receive(self, sender: Any, **kwargs: Any) -> None:
        self.calls.append(kwargs)

    def __exit__(self, *exc: object) -> None:
        self.signal.disconnect(self.receive)


# -- comments and mentions -------------------------------------------------------------------


def test_mentions_are_parsed_from_words_that_start_with_an_at():
    assert mentioned_names("@bob, ask @carol.  mail@dave.org (@erin). @bob again @") == ["bob", "carol", "erin"]


def test_a_comment_mentions_only_existing_users_who_see_the_task(session, team):
    task = assigned_review(team)
    with Received(signals.comment_posted) as calls:
        comment = post_comment(session, task.process, team["alice"],
                               "@bob @dave @nobody <b>@alice</b> look", task=task)
    assert comment.id is not None and comment.mentions == ["bob"]  # dave cannot see it; alice wrote it
    (call,) = calls
    assert call["comment"] is comment and call["task"] is task and call["mentions"] == [team["bob"]]
    assert comments_of(session, task.process, task)[0].text == "@bob @dave @nobody <b>@alice</b> look"


def test_a_process_comment_mentions_those_who_see_the_process(session, team):
    process = DeskFlow.start.run()
    comment = post_comment(session, process, team["vera"], "cc @alice @bob @vera")
    assert comment.task_id is None and comment.mentions == []  # reviewers do not see the process
    assert [c.id for c in comments_of(session, process)] == [comment.id]


def test_bad_comments_are_refused_and_store_nothing(session, team):
    task = assigned_review(team)
    for text in ["", "   \n ", "a\x00b", "x" * (MAX_COMMENT + 1)]:
        with pytest.raises(InputRejected):
            post_comment(session, task.process, team["alice"], text, task=task)
        session.rollback()
    assert session.scalar(sa.select(sa.func.count()).select_from(Comment)) == 0


def test_who_cannot_see_the_task_cannot_comment_on_it(session, team):
    task = assigned_review(team)
    with pytest.raises(PermissionDenied):
        post_comment(session, task.process, team["dave"], "let me in", task=task)
    session.rollback()
    assert session.scalar(sa.select(sa.func.count()).select_from(Comment)) == 0


def test_comments_stay_when_the_task_is_undone(session, team):
    task = assigned_review(team)
    post_comment(session, task.process, team["alice"], "looks fine", task=task)
    activation = task.activate()
    activation.prepare(user=team["alice"])
    activation.done()
    end = task.process.get_task(DeskFlow.end)
    end.activate().undo()
    end.activate().cancel()
    task.activate().undo()
    assert task.status == STATUS.NEW
    assert [c.text for c in comments_of(session, task.process, task)] == ["looks fine"]


# -- delegation --------------------------------------------------------------------------------


def test_the_owner_delegates_to_a_colleague_with_a_note(session, team):
    task = assigned_review(team)
    with Received(signals.task_delegated) as delegated, Received(signals.task_assigned) as assigned:
        with Context(user=team["alice"]):
            task.activate().delegate(team["bob"], note="you know this customer")
    assert task.owner == team["bob"] and task.status == STATUS.ASSIGNED
    assert trail(session, task)[-1] == ("reassign", "alice delegated to bob: you know this customer")
    assert delegated == [{"process": task.process, "task": task, "user": team["bob"], "by": team["alice"],
                          "note": "you know this customer"}]
    assert [(c["user"], c["by"], c["reason"]) for c in assigned] == [(team["bob"], team["alice"], "delegate")]


def test_delegation_is_refused_to_the_wrong_people(session, team, stored):
    """To someone without the permission, by someone who does not own the task, to oneself."""
    task = assigned_review(team)
    before = stored()
    for actor, target in [("alice", "dave"), ("bob", "carol"), ("alice", "alice")]:
        with pytest.raises(PermissionDenied), Context(user=team[actor]):
            task.activate().delegate(team[target], note="here")
        assert stored() == before


def test_delegation_from_code_checks_the_colleague_too(session, team, stored):
    task = assigned_review(team)
    before = stored()
    with pytest.raises(PermissionDenied):
        task.activate().delegate(team["dave"])
    assert stored() == before


@pytest.mark.parametrize("with_context", [True, False])
def test_delegation_to_someone_away_that_would_come_back_is_refused_by_the_engine(
        session, team, stored, with_context):
    """bob is away with alice as his substitute: alice delegating to bob would hand the
    task back to alice; the engine refuses it (not only the web page), draft and all kept."""
    task = assigned_review(team)
    save_draft(session, task, team["alice"], {"verdict": "half done"}, ["verdict"])
    set_away(session, team["bob"], team["alice"])
    session.commit()
    before = stored()
    with pytest.raises(PermissionDenied, match="would come back to alice"):
        if with_context:
            with Context(user=team["alice"]):
                task.activate().delegate(team["bob"], note="yours")
        else:
            task.activate().delegate(team["bob"], note="yours")
    session.rollback()
    assert stored() == before
    assert draft_of(session, task, team["alice"]) is not None


def test_delegation_is_the_owners_reassign_in_the_rule_book(session, team):
    """No edge of its own: the reference's reassign, which the rule book lets the owner run
    towards a colleague who may do the task (and a manager towards anyone who may)."""
    task = assigned_review(team)
    activation = task.activate()
    reassign = activation.transitions()["reassign"]
    assert reassign.allows(activation, team["alice"], {"user": team["bob"]})
    assert not reassign.allows(activation, team["alice"], {"user": team["dave"]})
    assert not reassign.allows(activation, team["bob"], {"user": team["carol"]})
    assert not reassign.allows(activation, team["alice"], {"user": team["alice"]})
    names = [t.name for t in activation.get_available_transitions()]
    assert "reassign" in names and "delegate" not in names


def test_the_owners_reassign_is_a_delegation(session, team):
    task = assigned_review(team)
    with Received(signals.task_delegated) as delegated, Context(user=team["alice"]):
        task.activate().reassign(team["bob"], note="over to you")
    assert task.owner == team["bob"]
    assert trail(session, task)[-1] == ("reassign", "alice delegated to bob: over to you")
    assert [(d["by"], d["note"]) for d in delegated] == [(team["alice"], "over to you")]


# -- out of office ----------------------------------------------------------------------------------


def test_a_task_assigned_at_creation_goes_to_the_substitute(session, team):
    set_away(session, team["bob"], team["carol"])
    with Received(signals.task_assigned) as assigned:
        process = RoutedFlow.start.run()
    task = review_of(process)
    assert task.owner == team["carol"]
    assert ("assign", "assigned to carol, substituting for bob") in trail(session, task)
    assert [(c["user"], c["reason"]) for c in assigned] == [(team["carol"], "substitute")]


def test_assign_and_reassign_go_to_the_substitute_while_away(session, team):
    set_away(session, team["bob"], team["carol"], until=utcnow() + timedelta(days=3))
    process = DeskFlow.start.run()
    task = review_of(process)
    task.activate().assign(team["bob"])  # code names no acting user: bob is not taking it himself
    assert task.owner == team["carol"]
    task.activate().reassign(team["alice"])
    assert task.owner == team["alice"]
    with Received(signals.task_assigned) as assigned, Context(user=team["alice"]):
        task.activate().delegate(team["bob"], note="yours")
    assert task.owner == team["carol"]
    assert [(c["user"], c["reason"]) for c in assigned] == [(team["carol"], "substitute")]  # told once
    assert trail(session, task)[-1] == ("reassign", "alice delegated to bob: yours; "
                                                    "assigned to carol, substituting for bob")


def test_no_substitution_without_permission_after_the_end_or_when_taking_it_yourself(session, team):
    process = DeskFlow.start.run()
    task = review_of(process)
    set_away(session, team["bob"], team["dave"])  # dave may not review: it stays with bob
    task.activate().assign(team["bob"])
    assert task.owner == team["bob"]
    task.activate().unassign()
    with Context(user=team["bob"]):
        task.activate().assign(team["bob"])  # bob takes it himself: he is here
    assert task.owner == team["bob"]
    task.activate().unassign()
    set_away(session, team["bob"], team["carol"], until=utcnow() + timedelta(seconds=30))
    session.execute(sa.text("UPDATE out_of_office SET until = :past"), {"past": utcnow() - timedelta(days=1)})
    session.commit()
    task.activate().assign(team["bob"])  # the absence is over
    assert task.owner == team["bob"]
    clear_away(session, team["bob"])


def test_substitutes_of_substitutes_never_go_round_in_circles(session, team):
    set_away(session, team["bob"], team["carol"])
    set_away(session, team["carol"], team["alice"])
    set_away(session, team["alice"], team["bob"])
    process = RoutedFlow.start.run()
    assert review_of(process).owner in (team["alice"], team["bob"], team["carol"])
    assert review_of(process).owner == team["alice"]  # bob -> carol -> alice, and not back to bob


def test_bad_out_of_office_settings_are_refused(session, team, stored):
    before = stored()
    past = utcnow() - timedelta(hours=1)
    for substitute, until in [(team["bob"], None), (team["carol"], past), (None, None)]:
        with pytest.raises(InputRejected):
            set_away(session, team["bob"], substitute, until)
    assert stored() == before


# -- drafts --------------------------------------------------------------------------------------


def test_a_draft_is_the_owners_and_never_reaches_process_data(session, team):
    task = assigned_review(team)
    fields = ["amount", "note"]
    save_draft(session, task, team["alice"], {"amount": ["12x"], "note": ["half done"], "evil": ["1"]}, fields)
    draft = draft_of(session, task, team["alice"])
    assert draft is not None and draft.data == {"amount": ["12x"], "note": ["half done"]}
    assert draft_of(session, task, team["bob"]) is None
    assert task.process.data == {}
    activation = task.activate()
    activation.prepare(data={"amount": 12}, user=team["alice"])
    activation.done()
    assert task.process.data == {"amount": 12}
    assert session.get(TaskDraft, task.id) is None  # completing drops it


@pytest.mark.parametrize("step", ["unassign", "reassign", "delegate", "cancel"])
def test_handing_the_task_on_drops_the_draft(session, team, step):
    task = assigned_review(team)
    save_draft(session, task, team["alice"], {"note": ["mine"]}, ["note"])
    activation = task.activate()
    if step == "cancel":
        activation.unassign()
        save_draft_row = session.get(TaskDraft, task.id)
        assert save_draft_row is None
        task.activate().cancel()
    elif step == "unassign":
        activation.unassign()
    else:
        getattr(activation, step)(team["bob"])
    session.expire_all()
    assert session.get(TaskDraft, task.id) is None


def test_a_draft_by_anyone_but_the_owner_is_refused(session, team, stored):
    task = assigned_review(team)
    before = stored()
    with pytest.raises(PermissionDenied):
        save_draft(session, task, team["bob"], {"note": ["not mine"]}, ["note"])
    session.rollback()
    assert stored() == before


def test_an_oversized_draft_is_refused(session, team):
    task = assigned_review(team)
    with pytest.raises(InputRejected):
        save_draft(session, task, team["alice"], {"note": ["x" * (MAX_FIELD + 1)]}, ["note"])
    session.rollback()
    assert session.get(TaskDraft, task.id) is None
    clear_draft(session, task)  # nothing to drop: no error


def test_the_rule_book_alone_refuses_a_hand_over_that_would_come_back(session, team):
    """Who may be handed a task is asked of the rule once, about the colleague named and
    the substitute who would really get it: the buttons and the engine read the same
    answer. alice owns the task and also manages the flow; bob is away with alice as his
    substitute: the reassign rule refuses alice -> bob (a delegation, owner or manager),
    allows alice -> carol, and carol (a manager who is not the owner) -> bob is still
    allowed: the task goes to bob's substitute alice, who may do it."""
    team["alice"].permissions = [*team["alice"].permissions, "desk.manage"]
    team["carol"].permissions = [*team["carol"].permissions, "desk.manage"]
    task = assigned_review(team)
    set_away(session, team["bob"], team["alice"])
    session.commit()
    activation = task.activate()
    reassign = activation.transitions()["reassign"]
    assert not reassign.allows(activation, team["alice"], {"user": team["bob"]})
    assert reassign.allows(activation, team["alice"], {"user": team["carol"]})
    assert reassign.allows(activation, team["carol"], {"user": team["bob"]})
    with Context(user=team["alice"]), pytest.raises(PermissionDenied, match="would come back to alice"):
        task.activate().reassign(team["bob"])
    session.rollback()
    with Context(user=team["carol"]):
        task.activate().reassign(team["bob"])
    session.commit()
    assert task.owner_id == team["alice"].id  # bob's substitute
