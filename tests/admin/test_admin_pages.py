"""The overview, the process page, the confirmation pages and the graph, by permission."""

from __future__ import annotations

import processes
from admin_flows import OtherFlow

from webflow import STATUS


def test_overview_refuses_users_who_manage_no_flow(app, login) -> None:  # type: ignore[no-untyped-def]
    assert login("clerk").get("/admin/").status_code == 403
    assert app.test_client().get("/admin/").status_code in (302, 401)


def test_overview_shows_processes_errors_and_job_mode(app, login) -> None:  # type: ignore[no-untyped-def]
    ok, failed = processes.review_new(), processes.charge_error()
    OtherFlow.start.run()  # not managed by the manager: not listed
    page = login("manager").get("/admin/").get_data(as_text=True)
    assert f"#{ok.id}</a>" in page and f"#{failed.id}</a>" in page
    assert "Other business" not in page
    assert "ValueError: card &#39;expired&#39; was refused by the bank" in page  # the summary line
    assert "Traceback (most recent call last)" in page                          # and the traceback
    assert "in the web process, in the request, right after each commit (no REDIS_URL set)" in page
    assert "No job or timer is stuck." in page


def test_overview_filters(app, login) -> None:  # type: ignore[no-untyped-def]
    ok, failed, done = processes.review_new(), processes.charge_error(), processes.finished()
    client = login("manager")
    page = client.get("/admin/?has_error=1").get_data(as_text=True)
    assert f"#{failed.id}</a>" in page and f"#{ok.id}</a></td>" not in page
    page = client.get("/admin/?status=DONE").get_data(as_text=True)
    assert f"#{done.id}</a></td>" in page and f"#{ok.id}</a></td>" not in page
    page = client.get("/admin/?started_from=2000-01-01&started_to=2000-01-02").get_data(as_text=True)
    assert "No processes match." in page
    fragment = client.get("/admin/?flow=repair", headers={"HX-Request": "true"})
    assert "<html" not in fragment.get_data(as_text=True) and "HX-Request" in fragment.headers["Vary"]
    assert client.get("/admin/?flow=other").status_code == 404


def test_overview_pages(app, login) -> None:  # type: ignore[no-untyped-def]
    app.config["WEBFLOW_PAGE_SIZE"] = 2
    for _ in range(3):
        processes.review_new()
    client = login("manager")
    assert 'rel="next"' in client.get("/admin/").get_data(as_text=True)
    assert "Page 2 of 2" in client.get("/admin/?page=2").get_data(as_text=True)


def test_process_page_for_manager_viewer_and_other_flow(app, login) -> None:  # type: ignore[no-untyped-def]
    process = processes.charge_error()
    url = f"/flows/repair/{process.id}/"
    page = login("manager").get(url).get_data(as_text=True)
    charge = processes.task(process, "charge")
    assert f"/admin/confirm/repair/{process.id}/charge/{charge.id}/retry/" in page
    assert f"/admin/confirm/repair/{process.id}/charge/{charge.id}/undo/" in page
    assert f"/flows/repair/{process.id}/cancel/" in page
    assert 'class="wf-node wf-node-handler wf-error"' in page
    assert 'class="wf-node wf-node-human wf-done"' in page
    assert "Audit trail" in page and "clerk" in page
    viewer = login("clerk").get(url)
    assert viewer.status_code == 200 and "/admin/confirm/" not in viewer.get_data(as_text=True)
    assert login("outsider").get(url).status_code == 403
    assert login("outsider").get(f"/flows/other/{process.id}/").status_code == 404


def test_confirmation_page_offers_a_user_picker_and_refuses_what_is_not_allowed(app, login) -> None:  # type: ignore[no-untyped-def]
    process = processes.review_new()
    review = processes.task(process, "review")
    client = login("manager")
    page = client.get(f"/admin/confirm/repair/{process.id}/review/{review.id}/assign/")
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and 'name="user_id"' in text and ">clerk2</option>" in text
    assert f'action="/flows/repair/{process.id}/review/{review.id}/assign/"' in text
    refused = client.get(f"/admin/confirm/repair/{process.id}/review/{review.id}/undo/")
    assert refused.status_code == 409 and "in status NEW" in refused.get_data(as_text=True)
    assign = f"/admin/confirm/repair/{process.id}/review/{review.id}/assign/"
    assert login("clerk").get(assign).status_code == 403
    assert client.get(f"/admin/confirm/other/{process.id}/review/{review.id}/assign/").status_code == 404
    assert client.get(f"/admin/confirm/repair/{process.id}/charge/{review.id}/assign/").status_code == 404


def test_flow_graph_svg(app, login) -> None:  # type: ignore[no-untyped-def]
    response = login("clerk").get("/flows/repair/graph.svg")
    assert response.status_code == 200 and response.mimetype == "image/svg+xml"
    body = response.get_data(as_text=True)
    for node in ("start", "review", "charge", "end"):
        assert f'data-node="{node}"' in body
    assert login("outsider").get("/flows/repair/graph.svg").status_code == 403
    assert login("clerk").get("/flows/nope/graph.svg").status_code == 404


def test_process_cancel_by_manager_is_recorded(app, login) -> None:  # type: ignore[no-untyped-def]
    process = processes.review_assigned()
    client = login("manager")
    assert client.get(f"/flows/repair/{process.id}/cancel/").status_code == 200
    response = client.post(f"/flows/repair/{process.id}/cancel/")
    assert response.status_code == 303
    assert processes.snapshot(process)[0] == STATUS.CANCELED
    page = client.get(f"/flows/repair/{process.id}/").get_data(as_text=True)
    assert "cancel_process" in page and "unassign" in page and "manager" in page


def test_process_cancel_refusals_change_nothing(app, login) -> None:  # type: ignore[no-untyped-def]
    process = processes.review_new()
    before = processes.snapshot(process)
    assert login("clerk").post(f"/flows/repair/{process.id}/cancel/").status_code == 403
    assert login("outsider").post(f"/flows/other/{process.id}/cancel/").status_code == 404
    assert login("manager").post(f"/flows/repair/{process.id + 999}/cancel/").status_code == 404
    assert processes.snapshot(process) == before
    done = processes.finished()
    before = processes.snapshot(done)
    response = login("manager").post(f"/flows/repair/{done.id}/cancel/")
    assert response.status_code == 409 and f"process {done.id} is DONE" in response.get_data(as_text=True)
    assert processes.snapshot(done) == before


def test_process_cancel_needs_the_csrf_token(csrf_app) -> None:  # type: ignore[no-untyped-def]
    from admin_support import Actions, csrf_token

    process = processes.review_new()
    client = csrf_app.test_client()
    Actions(client).login("manager")
    assert client.post(f"/flows/repair/{process.id}/cancel/").status_code == 400
    assert processes.snapshot(process)[0] == STATUS.NEW
    page = client.get(f"/flows/repair/{process.id}/cancel/").get_data(as_text=True)
    response = client.post(f"/flows/repair/{process.id}/cancel/", data={"csrf_token": csrf_token(page)})
    assert response.status_code == 303 and processes.snapshot(process)[0] == STATUS.CANCELED
