"""Audit 3: what managers and people see of fan-outs, partial joins, terminating Ends and
subprocesses on the pages, and the actions they run there (both databases)."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from admin_support import PASSWORD, Actions
from app_support import in_app_context, make_test_app
from flask import Flask
from flask.testing import FlaskClient
from flask_wtf import FlaskForm
from wtforms import BooleanField, StringField

from webflow import STATUS, Flow, db, flow, this
from webflow.core.checks import FlowCheckWarning
from webflow.models import Process, Task


class KidFlow(Flow):
    """Kid errand"""

    start = flow.StartFunction().Next(this.work)
    work = flow.View().Permission(auto_create=True).Next(this.end)
    end = flow.End()


class FanFlow(Flow):
    """Fan"""

    start = flow.StartFunction().Next(this.fan)
    fan = flow.Split().Each(this.sub, items=lambda act: act.process.data["items"])
    sub = flow.Subprocess(KidFlow.start).Next(this.join)
    join = flow.Join().Next(this.end)
    end = flow.End()


USERS = {"boss": ["fan.view", "fan.manage", "kid.view", "kid.manage", "kid.can_work"]}


@pytest.fixture
def parent_only(db_url: str) -> Iterator[Flask]:
    """An app whose WEBFLOW_FLOWS names the parent flow only."""
    app = make_test_app(db_url, [FanFlow], USERS, PASSWORD, WTF_CSRF_ENABLED=False)
    with in_app_context(app):
        yield app


def client(app: Flask, name: str) -> FlaskClient:
    logged_in = app.test_client()
    Actions(logged_in).login(name)
    return logged_in


def tasks(process: Process) -> list[Task]:
    db.session.expire_all()
    return sorted(process.tasks, key=lambda t: t.id)


def test_the_child_of_a_flow_not_listed_in_webflow_flows_can_be_opened_and_worked_on(parent_only):
    """The app lists FanFlow only; its subprocess starts KidFlow. The parent's page linked
    to the child and the link was a 404, as was the child's task: nobody could do the
    work or repair it, and the parent waited for ever. The flows a served flow's
    subprocesses start are served with it."""
    boss = client(parent_only, "boss")
    process = FanFlow.start.run(items=["x"])
    (sub,) = [t for t in tasks(process) if t.node_name == "sub"]
    child = db.session.scalar(db.select(Process).where(Process.parent_task_id == sub.id))
    page = boss.get(f"/flows/fan/{process.id}/").get_data(as_text=True)
    assert f'href="/flows/kid/{child.id}/"' in page
    assert boss.get(f"/flows/kid/{child.id}/").status_code == 200
    (work,) = [t for t in tasks(child) if t.node_name == "work"]
    base = f"/flows/kid/{child.id}/work/{work.id}/"
    assert boss.get(base).status_code == 200
    assert boss.post(f"{base}assign/", data={"user": ""}).status_code in (302, 303)
    assert boss.post(base, data={}).status_code in (302, 303)
    db.session.expire_all()
    assert child.status == STATUS.DONE and process.status == STATUS.DONE
    assert re.search(r"Kid errand", boss.get("/flows/").get_data(as_text=True))



class NoteForm(FlaskForm):
    index = StringField("Index card")
    item = StringField("Item")
    note = StringField("Note")


with warnings.catch_warnings():
    warnings.simplefilter("ignore", FlowCheckWarning)  # the checker's error is the point

    class NoteFlow(Flow):
        """Notes"""

        start = flow.StartFunction().Next(this.fan)
        fan = flow.Split().Each(this.note, items=lambda act: ["alpha", "beta"])
        note = flow.View(form=NoteForm).Permission(auto_create=True).Next(this.join)
        join = flow.Join().Next(this.end)
        end = flow.End()


def test_a_branch_form_with_fields_named_item_and_index_keeps_the_branch_and_its_page(db_url):
    """A fan-out View's answers are stored beside the branch's item and index in task.data:
    fields of those names replaced them, and the task page was a 500 (a TypeError adding
    1 to the text typed as the index). The branch keeps its item and index, the page says
    which item it was for, and the flow checker calls such a field an error."""
    perms = ["note.view", "note.manage", "note.can_note"]
    app = make_test_app(db_url, [NoteFlow], {"boss": perms}, PASSWORD, WTF_CSRF_ENABLED=False)
    with in_app_context(app):
        boss = client(app, "boss")
        process = NoteFlow.start.run()
        task = [t for t in tasks(process) if t.node_name == "note"][0]
        base = f"/flows/note/{process.id}/note/{task.id}/"
        assert boss.post(f"{base}assign/", data={"user": ""}).status_code in (302, 303)
        assert boss.post(base, data={"index": "A-7", "item": "stapler", "note": "ok"}).status_code in (302, 303)
        page = boss.get(base)
        assert page.status_code == 200
        assert "For <strong>alpha</strong>" in page.get_data(as_text=True)
        db.session.expire_all()
        assert task.status == STATUS.DONE
        assert task.data == {"item": "alpha", "index": 0, "note": "ok"}
    assert [str(f) for f in NoteFlow.check_findings if "Each branch" in f.message] == [
        "error: note: the form's field 'index', 'item' has the name of what a Split().Each branch keeps "
        "in task.data (item, index): rename it, or its answer is lost"]


def enough(act: Any) -> bool:
    return sum(bool(t.data.get("approved")) for t in act.arrived) >= act.process.data["needed"]


class VoteForm(FlaskForm):
    approved = BooleanField("Approved")


class VoteFlow(Flow):
    """Vote"""

    start = flow.StartFunction().Next(this.fan)
    fan = flow.Split().Each(this.review, items=lambda act: ["a", "b", "c"])
    review = flow.View(form=VoteForm).Permission(auto_create=True).Next(this.join)
    join = flow.Join(until=enough, cancel_rest=True).Next(this.after)
    after = flow.View().Permission(auto_create=True).Next(this.end)
    end = flow.End()


def test_retry_of_a_failed_partial_join_from_the_page_waits_for_the_other_reviewers(db_url):
    """The until failed on the first approval (``needed`` missing); the manager mends the
    data and presses Retry on the join's page: the join waits again and the two open
    reviews stay open (Retry fired it at once and canceled them)."""
    perms = ["vote.view", "vote.manage", "vote.can_review", "vote.can_after"]
    app = make_test_app(db_url, [VoteFlow], {"boss": perms}, PASSWORD, WTF_CSRF_ENABLED=False)
    with in_app_context(app):
        boss = client(app, "boss")
        process = VoteFlow.start.run()
        first = [t for t in tasks(process) if t.node_name == "review"][0]
        base = f"/flows/vote/{process.id}/review/{first.id}/"
        assert boss.post(f"{base}assign/", data={"user": ""}).status_code in (302, 303)
        assert boss.post(base, data={"approved": "y"}).status_code in (302, 303)
        (join,) = [t for t in tasks(process) if t.node_name == "join"]
        assert join.status == STATUS.ERROR
        process.data = {**process.data, "needed": 2}
        db.session.commit()
        assert boss.get(f"/admin/confirm/vote/{process.id}/join/{join.id}/retry/").status_code == 200
        answer = boss.post(f"/flows/vote/{process.id}/join/{join.id}/retry/", follow_redirects=True)
        assert answer.status_code == 200
        assert [(t.node_name, t.status.value) for t in tasks(process)][2:] == [
            ("review", "DONE"), ("review", "NEW"), ("review", "NEW"), ("join", "STARTED")]
