"""A handler fails in a user's web request; an administrator fixes the data and retries."""

from __future__ import annotations

import processes
from admin_flows import RepairFlow

from webflow import STATUS


def test_failed_handler_is_repaired_from_the_admin_pages(app, login) -> None:  # type: ignore[no-untyped-def]
    process = RepairFlow.start.run(card="expired")
    review = processes.task(process, "review")
    clerk = login("clerk")
    base = f"/flows/repair/{process.id}/review/{review.id}/"
    assert clerk.post(f"{base}assign/").status_code in (302, 303)
    response = clerk.post(base, data={"approved": "y"})
    assert response.status_code in (302, 303), response.get_data(as_text=True)
    assert processes.task(process, "review").status == STATUS.DONE   # the clerk's task is done
    charge = processes.task(process, "charge")
    assert charge.status == STATUS.ERROR

    admin = login("manager")
    overview = admin.get("/admin/").get_data(as_text=True)
    assert "card &#39;expired&#39; was refused by the bank" in overview and "Traceback" in overview
    processes.fix_card(process)
    assert admin.get(f"/admin/confirm/repair/{process.id}/charge/{charge.id}/retry/").status_code == 200
    assert admin.post(f"/flows/repair/{process.id}/charge/{charge.id}/retry/").status_code in (302, 303)
    assert processes.snapshot(process)[0] == STATUS.DONE

    page = admin.get(f"/flows/repair/{process.id}/").get_data(as_text=True)
    trail = page[page.index("Audit trail"):]
    steps = ["done", "assign", "done", "error", "retry", "perform"]
    position = 0
    for step in steps:
        position = trail.index(f'wf-event-transition">{step}<', position) + 1
    assert "clerk" in trail and "manager" in trail
    assert "No task is in ERROR." in admin.get("/admin/").get_data(as_text=True)
