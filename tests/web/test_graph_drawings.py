"""The process page's two drawings of a flow: left to right, and top to bottom for phones."""

from __future__ import annotations

import re

from webflow.demo.helloworld import HelloWorldFlow
from webflow.demo.shipment import ShipmentFlow
from webflow.graph_svg import flow_svg, process_graph


def boxes(svg: str) -> list[tuple[float, float, float, float]]:
    """Every task box of a drawing: x, y, width, height."""
    return [tuple(map(float, m)) for m in re.findall(  # type: ignore[misc]
        r'<rect class="wf-shape" x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)"', svg)]


def test_the_page_gets_both_drawings_with_ids_of_their_own() -> None:
    links = {"approve": "/t/1/", "start": "/t/0/"}
    page = str(process_graph(HelloWorldFlow, {"start": "done", "approve": "active"}, links))
    wide, down = page.split("</svg>")[:2]
    ids = re.findall(r'id="([^"]+)"', page)
    assert len(ids) == len(set(ids))                                   # no id twice on one page
    assert 'id="wf-node-approve"' in wide and 'id="wf-down-node-approve"' in down
    assert 'class="wf-graph wf-graph-down"' in down and "url(#wf-down-arrow)" in down
    for drawing in (wide, down):
        assert 'role="group"' in drawing                               # links inside: not an img
        assert '<a href="/t/1/" aria-label="Approve (active)">' in drawing
    assert 'role="img"' in str(flow_svg(HelloWorldFlow))                # no links: a picture


def test_the_top_down_drawing_is_narrow_and_keeps_every_node_inside() -> None:
    wide, down = str(flow_svg(ShipmentFlow)), str(flow_svg(ShipmentFlow, down=True))
    size = {name: tuple(map(float, re.search(r'viewBox="0 0 ([\d.]+) ([\d.]+)"', svg).groups()))  # type: ignore[union-attr]
            for name, svg in (("wide", wide), ("down", down))}
    assert size["down"][0] < 420 < size["wide"][0]                    # fits a phone without shrinking much
    assert size["down"][1] > size["wide"][1]
    width, height = size["down"]
    for x, y, w, h in boxes(down):
        assert 0 <= x and x + w <= width and 0 <= y and y + h <= height
    centres = [float(c) for c in re.findall(r'<circle class="wf-shape" cx="[\d.]+" cy="([\d.]+)"', down)]
    assert centres[0] < centres[-1]                                     # Start above End
