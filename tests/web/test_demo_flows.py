"""The demo a fresh install loads, clicked through over HTTP by its demo users."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from app_support import in_app_context, make_test_app
from flask import Flask
from web_support import AuthActions, task_of, task_url

from webflow import STATUS, db
from webflow.demo.users import load_demo
from webflow.models import Process


@pytest.fixture
def demo_app(db_url: str) -> Iterator[Flask]:
    """The app as `flask webflow demo` leaves it: the demo flows and users (jobs inline)."""
    # The demo's label job waits seconds (for the status polling to show): not in tests.
    with in_app_context(make_test_app(db_url, None, {}, "", WEBFLOW_DEMO_JOB_SECONDS=0)) as app:
        load_demo()
        yield app


def test_the_shipment_demo_runs_to_the_end(demo_app: Flask) -> None:
    alice, bob = AuthActions(demo_app).enter_as("alice"), AuthActions(demo_app).enter_as("bob")
    flows = alice.get("/flows/").get_data(as_text=True)
    assert "/flows/shipment/start/start/" in flows and "/flows/hello_world/start/start/" in flows

    alice.get("/flows/shipment/start/start/")
    started = alice.post("/flows/shipment/start/start/",
                         {"customer": "Ada", "address": "1 Loop Road", "items": "3", "insured": "y"})
    assert started.status_code == 303
    db.session.commit()
    process = db.session.scalars(sa.select(Process).order_by(Process.id.desc())).first()
    carrier = task_of(process, "set_carrier")
    assert started.headers["Location"] == task_url(carrier)      # straight to her own task
    assert carrier.owner.username == "alice"

    alice.get(task_url(carrier))
    assert alice.post(task_url(carrier), {"carrier": "courier"}).status_code == 303
    label = task_of(process, "print_label")
    assert label.status == STATUS.DONE                           # the job ran after the commit
    insurance = task_of(process, "take_insurance")
    assert insurance.status == STATUS.ASSIGNED and insurance.owner.username == "alice"
    alice.get(task_url(insurance))
    assert alice.post(task_url(insurance), {"policy": "P-42"}).status_code == 303

    packing = task_of(process, "package_goods")
    assert packing.status == STATUS.NEW                          # in the warehouse's queue
    assert task_url(packing) in bob.get("/queue/").get_data(as_text=True)
    assert bob.post("/queue/", {"take": packing.id}).status_code == 303
    bob.get(task_url(packing))
    assert bob.post(task_url(packing), {"packages": "2"}).status_code == 303

    # Notifying the customer fails the first time (on purpose): the admin sees it and retries.
    notify = task_of(process, "notify")
    assert notify.status == STATUS.ERROR
    admin = AuthActions(demo_app).enter_as("admin")
    overview = admin.get("/admin/").get_data(as_text=True)
    assert "mail server did not answer" in overview and "Tasks in ERROR <strong>1</strong>" in overview
    assert admin.post(task_url(notify, "retry/")).status_code == 303
    db.session.commit()
    db.session.expire_all()
    process = db.session.get(Process, process.id)
    assert process.status == STATUS.DONE
    assert process.data["notified"] is True and process.data["carrier"] == "courier"
    assert process.data["policy"] == "P-42" and process.data["packages"] == 2
    assert sorted(t.node_name for t in process.tasks) == sorted([
        "start", "split_work", "set_carrier", "split_paperwork", "print_label", "take_insurance",
        "join_paperwork", "package_goods", "join_work", "notify", "end"])
    listed = alice.get("/flows/shipment/").get_data(as_text=True)
    assert "Ada, 3 items to 1 Loop Road" in listed
    page = alice.get(f"/flows/shipment/{process.id}/").get_data(as_text=True)
    assert "1 Loop Road" in page and "P-42" in page


def start_purchase(alice: AuthActions, reviewers: str) -> Process:
    alice.get("/flows/purchase_request/start/start/")
    started = alice.post("/flows/purchase_request/start/start/",
                         {"item": "Laptop", "amount": "1200", "reviewers": reviewers})
    assert started.status_code == 303, started.get_data(as_text=True)
    db.session.commit()
    return db.session.scalars(sa.select(Process).order_by(Process.id.desc())).first()


def review_tasks(process: Process) -> dict[str, object]:
    db.session.commit()
    db.session.expire_all()
    return {t.data["item"]: t for t in db.session.get(Process, process.id).tasks if t.node_name == "review"}


def test_the_purchase_demo_two_approvals_and_a_purchasing_subprocess(demo_app: Flask) -> None:
    alice, bob, admin = (AuthActions(demo_app).enter_as(name) for name in ("alice", "bob", "admin"))
    process = start_purchase(alice, "alice, bob, admin")
    reviews = review_tasks(process)
    assert {name: t.owner.username for name, t in reviews.items()} == {n: n for n in ("alice", "bob", "admin")}
    page = alice.get(task_url(reviews["alice"])).get_data(as_text=True)
    assert "For <strong>alice</strong>" in page and "item 1 of a parallel fan-out" in page
    assert alice.post(task_url(reviews["alice"]), {"approved": "y", "comment": "fine"}).status_code == 303
    bob.get(task_url(reviews["bob"]))
    assert bob.post(task_url(reviews["bob"]), {"approved": "y"}).status_code == 303
    reviews = review_tasks(process)
    assert reviews["admin"].status == STATUS.CANCELED  # two were enough
    purchase = task_of(process, "purchase")
    assert purchase.status == STATUS.STARTED
    page = admin.get(f"/flows/purchase_request/{process.id}/").get_data(as_text=True)
    assert "Subprocesses" in page and "Purchasing #" in page
    child = db.session.scalars(sa.select(Process).where(Process.parent_task_id == purchase.id)).one()
    order = task_of(child, "place_order")
    assert task_url(order) in bob.get("/queue/").get_data(as_text=True)
    assert bob.post("/queue/", {"take": order.id}).status_code == 303
    bob.get(task_url(order))
    assert bob.post(task_url(order), {"supplier": "Acme", "reference": "PO-7"}).status_code == 303
    child_page = bob.get(f"/flows/purchasing/{child.id}/").get_data(as_text=True)
    assert f"Purchase request #{process.id}" in child_page  # a link back to the parent
    db.session.commit()
    db.session.expire_all()
    assert db.session.get(Process, child.id).status == STATUS.DONE
    parent = db.session.get(Process, process.id)
    assert parent.status == STATUS.DONE
    assert task_of(parent, "purchase").data["result"]["supplier"] == "Acme"
    svg = admin.get("/flows/purchase_request/graph.svg").get_data(as_text=True)
    for mark in ("wf-multi", "wf-partial", "wf-terminate", "wf-subprocess"):
        assert mark in svg


def test_the_purchase_demo_stops_on_a_rejection(demo_app: Flask) -> None:
    alice, bob = (AuthActions(demo_app).enter_as(name) for name in ("alice", "bob"))
    process = start_purchase(alice, "bob, alice, bob")
    reviews = review_tasks(process)
    assert sorted(reviews) == ["alice", "bob"]  # each reviewer once
    bob.get(task_url(reviews["bob"]))
    assert bob.post(task_url(reviews["bob"]), {"comment": "too expensive"}).status_code == 303
    reviews = review_tasks(process)
    assert reviews["alice"].status == STATUS.CANCELED
    db.session.expire_all()
    parent = db.session.get(Process, process.id)
    assert parent.status == STATUS.DONE
    assert task_of(parent, "rejected").status == STATUS.DONE
    assert task_of(parent, "purchase") is None


def test_the_hello_world_demo_is_approved_by_somebody_else(demo_app: Flask) -> None:
    alice, bob = AuthActions(demo_app).enter_as("alice"), AuthActions(demo_app).enter_as("bob")
    alice.get("/flows/hello_world/start/start/")
    assert alice.post("/flows/hello_world/start/start/", {"text": "Hi"}).status_code == 303
    db.session.commit()
    process = db.session.scalars(sa.select(Process).order_by(Process.id.desc())).first()
    approve = task_of(process, "approve")
    # alice wrote it: it is not in her queue and she may not take it; bob may.
    assert task_url(approve) not in alice.get("/queue/").get_data(as_text=True)
    assert alice.post(task_url(approve, "assign/")).status_code == 403
    assert task_url(approve) in bob.get("/queue/").get_data(as_text=True)
    assert bob.post(task_url(approve, "assign/")).status_code == 303
    bob.get(task_url(approve))
    assert bob.post(task_url(approve), {"approved": "y"}).status_code == 303
    db.session.commit()
    db.session.expire_all()
    assert db.session.get(Process, process.id).status == STATUS.DONE
