"""The process graph in a real browser: node colours by task status, and a screenshot."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from app_support import SCREENSHOTS, make_test_app, serving

from webflow import Context, Flow, db, flow, this
from webflow.models import User

pytestmark = pytest.mark.browser


def refuse(activation: Any) -> None:
    raise RuntimeError("stock service is down")


class OrderFlow(Flow):
    """Order fulfilment

    Approve, then pack and label in parallel; the stock check fails."""

    start = flow.StartFunction().Next(this.approve)
    approve = flow.View().Permission(auto_create=True).Next(this.is_large)
    is_large = flow.If(lambda act: act.process.data.get("large")).Then(this.split).Else(this.end)
    split = flow.Split().Next(this.pack).Next(this.check_stock).Next(this.gift_wrap)
    pack = flow.View().Permission(auto_create=True).Next(this.join)
    check_stock = flow.Handler(refuse).Next(this.join)
    gift_wrap = flow.View().Permission(auto_create=True).Next(this.join)
    join = flow.Join().Next(this.end)
    end = flow.End()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """The app served on 127.0.0.1 in a thread, with one process in every state."""
    app = make_test_app(f"sqlite:///{tmp_path / 'b.sqlite'}", [OrderFlow], {"admin": []}, "pw")
    with app.app_context():
        admin = db.session.scalar(sa.select(User).where(User.username == "admin"))
        admin.is_superuser = True
        db.session.commit()
        process = OrderFlow.start.run(large=True)
        with Context(propagate_exception=False, user=admin):
            approve = process.get_task(OrderFlow.approve).activate()
            approve.assign(admin)
            approve.prepare(data={"approved": True}, user=admin)
            approve.done()
            process.get_task(OrderFlow.gift_wrap).activate().cancel()
        process_id = process.id
        db.session.remove()
    with serving(app) as url:
        yield url, process_id


def test_process_graph_colours_nodes_by_status(browser: Any, server: tuple[str, int]) -> None:
    base, process_id = server
    page = browser.new_page(viewport={"width": 1100, "height": 700})
    page.goto(f"{base}/login")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", "pw")
    page.click("button[type=submit]")
    page.goto(f"{base}/flows/order/{process_id}/")
    fills = page.evaluate("""() => Object.fromEntries(
        [...document.querySelectorAll('svg.wf-graph .wf-node')].map(g =>
            [g.dataset.node, getComputedStyle(g.querySelector('.wf-shape')).fill]))""")
    assert fills["approve"] == fills["start"] == fills["is_large"] == "rgb(211, 242, 220)"  # done
    assert fills["pack"] == "rgb(219, 234, 254)"                                              # active
    assert fills["check_stock"] == "rgb(253, 226, 225)"                                       # error
    assert fills["gift_wrap"] == "rgb(236, 239, 243)"                                         # canceled
    assert fills["end"] == "rgb(255, 255, 255)"                                           # not reached
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.locator(".wf-graph-figure").screenshot(path=str(SCREENSHOTS / "process-graph.png"))
    page.click("#wf-node-check_stock a")
    assert "check_stock" in page.url or "#task-" in page.url


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
