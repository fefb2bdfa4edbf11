"""WEBFLOW_REQUEST_TIMEOUT_MS: how long a page waits for an HTMX answer (README: Configuration)."""

from __future__ import annotations

import pytest

from webflow.config import from_environment


def test_the_request_timeout_comes_from_the_environment_and_bad_values_are_refused(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    assert from_environment()["WEBFLOW_REQUEST_TIMEOUT_MS"] == 30000
    monkeypatch.setenv("WEBFLOW_REQUEST_TIMEOUT_MS", "5000")
    assert from_environment()["WEBFLOW_REQUEST_TIMEOUT_MS"] == 5000
    for bad in ("0", "-1", "soon", "1.5", "nan"):
        monkeypatch.setenv("WEBFLOW_REQUEST_TIMEOUT_MS", bad)
        with pytest.raises(ValueError, match="WEBFLOW_REQUEST_TIMEOUT_MS"):
            from_environment()


def test_the_page_tells_htmx_the_configured_timeout(app, people) -> None:  # type: ignore[no-untyped-def]
    app.config["WEBFLOW_REQUEST_TIMEOUT_MS"] = 4321
    html = people("bob").get("/inbox/").get_data(as_text=True)
    assert '"timeout": 4321' in html
