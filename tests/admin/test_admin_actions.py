"""Each repair action through the web app's transition endpoint, by who asks and when."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import processes
import pytest
from admin_support import user

from webflow import STATUS
from webflow.models import Process

# transition, node, setup where it is allowed, what it changes, setup where it is refused
ACTIONS: list[tuple[str, str, Callable[[], Process], Callable[[Process], Any], Callable[[], Process]]] = [
    ("assign", "review", processes.review_new,
     lambda p: processes.task(p, "review").owner_id == user("clerk2").id, processes.review_assigned),
    ("reassign", "review", processes.review_assigned,
     lambda p: processes.task(p, "review").owner_id == user("clerk2").id, processes.review_new),
    ("cancel", "review", processes.review_new,
     lambda p: processes.task(p, "review").status == STATUS.CANCELED, processes.review_assigned),
    ("undo", "charge", processes.charge_error,
     lambda p: processes.task(p, "charge").status == STATUS.NEW, processes.finished),
    ("perform", "charge", processes.charge_new,
     lambda p: processes.snapshot(p)[0] == STATUS.DONE, processes.charge_error),
    ("retry", "charge", processes.charge_fixed,
     lambda p: processes.snapshot(p)[0] == STATUS.DONE, processes.finished),
    # activate_next only where the next task is gone; while it exists (here in ERROR) it is
    # refused, so no step is ever duplicated.
    ("activate_next", "review", processes.charge_canceled,
     lambda p: [t[2] for t in processes.snapshot(p)[2] if t[1] == "charge"] == [STATUS.CANCELED, STATUS.DONE],
     processes.charge_error),
]
IDS = [a[0] for a in ACTIONS]


def _post(client, process: Process, node: str, transition: str, flow: str = "repair") -> Any:  # type: ignore[no-untyped-def]
    task = processes.task(process, node)
    return client.post(f"/flows/{flow}/{process.id}/{node}/{task.id}/{transition}/",
                       data={"user_id": user("clerk2").id})


@pytest.mark.parametrize(("transition", "node", "allowed", "changed", "refused"), ACTIONS, ids=IDS)
def test_manager_runs_the_action_and_the_audit_trail_names_them(  # type: ignore[no-untyped-def]
        app, login, transition, node, allowed, changed, refused) -> None:
    process = allowed()
    response = _post(login("manager"), process, node, transition)
    assert response.status_code in (200, 204, 302, 303), response.get_data(as_text=True)
    assert changed(process)
    page = login("manager").get(f"/flows/repair/{process.id}/").get_data(as_text=True)
    event = f'<span class="wf-event-user">manager</span>\n    <span class="wf-event-transition">{transition}'
    assert event in page


@pytest.mark.parametrize(("transition", "node", "allowed", "changed", "refused"), ACTIONS, ids=IDS)
def test_refusals_change_nothing(  # type: ignore[no-untyped-def]
        app, login, transition, node, allowed, changed, refused) -> None:
    process = allowed()
    before = processes.snapshot(process)
    assert _post(login("viewer"), process, node, transition).status_code == 403
    assert _post(login("outsider"), process, node, transition, flow="other").status_code == 404
    assert processes.snapshot(process) == before
    late = refused()
    before = processes.snapshot(late)
    response = _post(login("manager"), late, node, transition)
    assert response.status_code in (409, 302, 303)
    if response.status_code != 409:
        follow = login("manager").get(response.headers["Location"]).get_data(as_text=True)
        assert "not allowed" in follow
    assert processes.snapshot(late) == before
