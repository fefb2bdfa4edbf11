"""The engine's rule book: who may run a transition, declared once and read by the pages."""

from __future__ import annotations

import pytest
from flask import Flask
from security_support import client_for, dump, label_process, task_of, user

from webflow.core.context import Context
from webflow.core.exceptions import PermissionDenied
from webflow.core.nodes.view import ViewActivation
from webflow.core.permissions import Rule


def test_every_transition_people_run_declares_a_rule_and_a_label() -> None:
    from webflow.core.activation import Activation

    def subclasses(cls: type) -> list[type]:
        return [cls, *[s for sub in cls.__subclasses__() for s in subclasses(sub)]]

    for cls in subclasses(Activation):
        for name, trans in cls.transitions().items():
            if trans.label is not None:
                assert isinstance(trans.permission, Rule), f"{cls.__name__}.{name} has a label, no rule"


def test_a_manager_without_the_task_permission_may_not_take_it_in_the_engine(app: Flask) -> None:
    process = label_process("queued")
    confirm = task_of(process, "confirm")
    manager, worker = user("manager"), user("worker")
    activation = confirm.activate()
    assert "assign" in [t.name for t in activation.get_available_transitions()]  # no user: status only
    assert "assign" not in [t.name for t in activation.get_available_transitions(manager)]
    assert [t.name for t in activation.get_available_transitions(worker)] == ["assign"]
    assert activation.assign.has_perm(manager, user=worker)  # a manager hands it to a worker
    before = dump()
    with Context(user=manager), pytest.raises(PermissionDenied):
        activation.assign(manager)
    assert dump() == before
    with Context(user=worker):
        confirm.activate().assign(worker)
    assert task_of(process, "confirm").owner_id == worker.id


def test_the_engine_checks_the_rule_of_outside_calls_only(app: Flask) -> None:
    """The cascade a permitted call sets off (the job, the handler) runs whoever called."""
    process = label_process("assigned")
    confirm = task_of(process, "confirm")
    owner = user("owner")
    activation = confirm.activate()
    assert isinstance(activation, ViewActivation)
    with Context(user=user("worker")), pytest.raises(PermissionDenied):
        activation.unassign()
    with Context(user=owner):
        activation.prepare(data={"amount": 5}, user=owner)
        activation.done()
    assert task_of(process, "end").status.value == "DONE"


def test_the_manager_assign_bug_is_refused_over_http_and_the_button_hidden(app: Flask) -> None:
    process = label_process("queued")
    confirm = task_of(process, "confirm")
    url = f"/flows/label/{process.id}/confirm/{confirm.id}/"
    manager = client_for(app, "manager")
    page = manager.get(url).get_data(as_text=True)
    assert "Assign to me" not in page and 'name="user_id"' in page  # may hand it to a worker
    before = dump()
    for hx in (False, True):
        assert manager.post(url + "assign/", {}, hx=hx).status_code == 403
    assert dump() == before
    assert "Assign to me" in client_for(app, "worker").get(url).get_data(as_text=True)
    response = manager.post(url + "assign/", {"user_id": user("worker").id})
    assert response.status_code == 303 and task_of(process, "confirm").owner_id == user("worker").id


@pytest.mark.parametrize("state", ["job_error", "handler_error"])
def test_only_managers_see_a_traceback(app: Flask, state: str) -> None:
    process = label_process(state)
    failed = task_of(process, {"job_error": "print_label", "handler_error": "check"}[state])
    secret = "printer on fire" if state == "job_error" else "amount 99 is refused"
    urls = [f"/flows/label/{process.id}/",
            f"/flows/label/{process.id}/{failed.node_name}/{failed.id}/"]
    for url in urls:
        starter = client_for(app, "starter").get(url)
        html = starter.get_data(as_text=True)
        assert starter.status_code == 200 and "A step failed. Ask manager" in html
        assert secret not in html and "Traceback" not in html and "/work/" not in html
        html = client_for(app, "manager").get(url).get_data(as_text=True)
        assert secret in html and "Traceback" in html
