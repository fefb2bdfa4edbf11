"""Managers repair the new nodes from the web: cancel a subprocess task (its child goes
too), retry one whose child was canceled, undo a partial join; each answer says what
happened, and what the engine refuses is a 409 that changes nothing."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from app_support import in_app_context, make_test_app
from flask import Flask
from web_support import PASSWORD, AuthActions, snapshot, task_of, task_url

from webflow import STATUS, Flow, db, flow, this
from webflow.models import Process


class SupplyFlow(Flow):
    """Supply"""

    start = flow.StartFunction().Next(this.deliver)
    deliver = flow.View().Permission(auto_create=True).Next(this.end)
    end = flow.End()


class BuyFlow(Flow):
    """Buy

    Three quotes, the first two answers decide, then a supply process."""

    start = flow.StartFunction().Next(this.quotes)
    quotes = flow.Split().Each(this.quote, items=lambda act: ["a", "b", "c"])
    quote = flow.View().Permission(auto_create=True).Next(this.pick)
    pick = flow.Join(until=lambda act: len(act.arrived) >= 2, cancel_rest=True).Next(this.supply)
    supply = flow.Subprocess(SupplyFlow.start).Next(this.end)
    end = flow.End()


@pytest.fixture
def app(db_url: str) -> Iterator[Flask]:
    perms = ["buy.manage", "supply.manage", "buy.can_quote", "supply.can_deliver"]
    with in_app_context(make_test_app(db_url, [BuyFlow, SupplyFlow], {"boss": perms}, PASSWORD)) as app:
        yield app


def child(task) -> Process:  # type: ignore[no-untyped-def]
    db.session.commit()
    return db.session.scalars(sa.select(Process).where(Process.parent_task_id == task.id)
                              .order_by(Process.id.desc())).first()


def answer_two_quotes(boss: AuthActions, process: Process) -> None:
    for item in ("a", "b"):
        quote = next(t for t in process.tasks if t.node_name == "quote" and t.data["item"] == item)
        assert boss.post(task_url(quote, "assign/")).status_code == 303
        boss.get(task_url(quote))
        assert boss.post(task_url(quote), {}).status_code == 303
        db.session.expire_all()


def test_cancel_a_subprocess_task_cancels_its_child(app: Flask) -> None:
    boss = AuthActions(app).enter_as("boss")
    process = BuyFlow.start.run()
    answer_two_quotes(boss, process)
    supply = task_of(process, "supply")
    assert supply.status == STATUS.STARTED
    page = boss.get(task_url(supply)).get_data(as_text=True)
    assert "Runs" in page and f"Supply #{child(supply).id}" in page
    response = boss.post(task_url(supply, "cancel/"), hx=True)
    assert response.status_code == 200
    assert child(supply).status == STATUS.CANCELED
    assert task_of(process, "supply").status == STATUS.CANCELED


def test_retry_after_the_child_was_canceled_and_refusals_change_nothing(app: Flask) -> None:
    boss = AuthActions(app).enter_as("boss")
    process = BuyFlow.start.run()
    answer_two_quotes(boss, process)
    supply = task_of(process, "supply")
    first = child(supply)
    assert boss.post(f"/flows/supply/{first.id}/cancel/").status_code == 303
    supply = task_of(process, "supply")
    assert supply.status == STATUS.ERROR and "was canceled" in supply.comments
    before = snapshot(process)
    refused = boss.post(task_url(supply, "activate_next/"))
    assert refused.status_code == 409 and snapshot(process) == before
    assert boss.post(task_url(supply, "retry/")).status_code == 303
    second = child(supply)
    assert second.id != first.id and second.status == STATUS.NEW
    deliver = task_of(second, "deliver")
    assert boss.post(task_url(deliver, "assign/")).status_code == 303
    boss.get(task_url(deliver))
    assert boss.post(task_url(deliver), {}).status_code == 303
    db.session.commit()  # end the test's read snapshot
    assert db.session.get(Process, process.id).status == STATUS.DONE


def test_undo_a_partial_join_from_the_admin_page(app: Flask) -> None:
    boss = AuthActions(app).enter_as("boss")
    process = BuyFlow.start.run()
    answer_two_quotes(boss, process)
    pick = task_of(process, "pick")
    assert boss.post(task_url(pick, "undo/")).status_code == 409  # the subprocess it led to runs
    supply = task_of(process, "supply")
    assert boss.post(task_url(supply, "cancel/")).status_code == 303
    page = boss.get(f"/flows/buy/{process.id}/").get_data(as_text=True)
    assert f"/admin/confirm/buy/{process.id}/pick/{pick.id}/undo/" in page
    assert boss.post(task_url(pick, "undo/")).status_code == 303
    assert task_of(process, "pick").status == STATUS.NEW


class SupplyEachFlow(Flow):
    """Supply each

    A supply process per item."""

    start = flow.StartFunction().Next(this.supplies)
    supplies = flow.Split().Each(this.supply, items=lambda act: act.process.data["items"])
    supply = flow.Subprocess(SupplyFlow.start).Next(this.done)
    done = flow.Join().Next(this.end)
    end = flow.End()


@pytest.fixture
def each_app(db_url: str) -> Iterator[Flask]:
    perms = ["supply_each.manage", "supply.manage", "supply.can_deliver"]
    with in_app_context(make_test_app(db_url, [SupplyEachFlow, SupplyFlow], {"boss": perms}, PASSWORD)) as app:
        yield app


def test_a_fan_out_of_subprocesses_names_the_first_and_counts_them(each_app: Flask,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The page names the first children, oldest first, and says how many there are (a
    Subprocess over thousands of items starts thousands); each is on its task's page."""
    from webflow.blueprints import flows

    monkeypatch.setattr(flows, "CHILDREN_NAMED", 3)
    boss = AuthActions(each_app).enter_as("boss")
    process = SupplyEachFlow.start.run(items=list(range(5)))  # type: ignore[attr-defined]
    small = SupplyEachFlow.start.run(items=[1, 2])  # type: ignore[attr-defined]
    db.session.commit()
    children = list(db.session.scalars(sa.select(Process.id).where(Process.parent_task_id.in_(
        [t.id for t in process.tasks if t.node_name == "supply"])).order_by(Process.id)))
    assert len(children) == 5
    html = boss.get(f"/flows/supply_each/{process.id}/").get_data(as_text=True)
    named = [int(n) for n in re.findall(r'href="/flows/supply/(\d+)/"', html.split("Subprocesses")[1])]
    assert named[:3] == children[:3] and children[3] not in named
    assert "The first 3 of 5; each is linked from the page of the task that started it." in html
    supply = next(t for t in process.tasks if t.node_name == "supply" and t.data["index"] == 4)
    assert f'href="/flows/supply/{children[4]}/"' in boss.get(task_url(supply)).get_data(as_text=True)
    html = boss.get(f"/flows/supply_each/{small.id}/").get_data(as_text=True)
    assert "Subprocesses" in html and "The first" not in html
