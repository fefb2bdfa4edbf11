"""Regression tests of issue 15's defects on the administrators' pages."""

from __future__ import annotations

import re

import processes


def test_admin_status_counters_count_the_processes(app, login) -> None:  # type: ignore[no-untyped-def]
    processes.review_new(), processes.review_new(), processes.finished()
    page = login("manager").get("/admin/").get_data(as_text=True)
    counters = dict(re.findall(r'status=(\w+)">\w+\s*<strong>(\d+)</strong>', page))
    assert counters == {"NEW": "2", "DONE": "1", "CANCELED": "0"}
    # The navigation's own counts still show (the manager's inbox and queue are empty).
    assert 'id="nav-inbox-count"' in page and 'id="nav-queue-count"' in page


def test_admin_filter_from_after_to_says_why(app, login) -> None:  # type: ignore[no-untyped-def]
    processes.review_new()
    response = login("manager").get("/admin/?started_from=2030-01-02&started_to=2030-01-01")
    assert response.status_code == 422
    assert "The “from” date is after the “to” date" in response.get_data(as_text=True)
