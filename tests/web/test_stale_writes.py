"""A write based on data someone else changed meanwhile is refused with 409, never applied."""

from __future__ import annotations

from sqlalchemy.orm.exc import StaleDataError
from web_support import hello, snapshot, task_of, task_url, user

from webflow.core.exceptions import StaleData
from webflow.core.nodes.view import ViewActivation


def test_a_stale_write_answers_409_and_changes_nothing(app, people, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    process = hello("hi")
    task_of(process, "approve").activate().assign(user("bob"))
    approve = task_of(process, "approve")
    before = snapshot(process)
    bob = people("bob")
    bob.get(task_url(approve))
    for error in (StaleDataError("UPDATE statement on table 'process' expected to update 1 row(s)"),
                  StaleData("process.data['approved'] changed")):
        def stale(self, *args, error=error, **kwargs):  # type: ignore[no-untyped-def]
            raise error

        monkeypatch.setattr(ViewActivation, "run_transition", stale)
        for hx in (False, True):
            response = bob.post(task_url(approve), {"approved": "y"}, hx=hx)
            assert response.status_code == 409
            assert "changed this meanwhile" in response.get_data(as_text=True)
            assert response.headers.get("HX-Reswap") == ("none" if hx else None)
    assert snapshot(process) == before
