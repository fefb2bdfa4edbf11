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
    with in_app_context(make_test_app(db_url, None, {}, "")) as app:
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
