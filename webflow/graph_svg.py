"""Draw a flow as SVG, with no Graphviz: a small layered layout, left to right.

Layers come from the longest path from the start nodes (edges that close a loop are set
aside first and drawn as arcs below the graph); nodes are ordered within a layer by the
mean position of their neighbours, a few sweeps each way. Node states in a process are
CSS classes (``wf-done``, ``wf-active``, ``wf-error``, ``wf-canceled``) styled by
``static/css/graph.css``: the pages link it, and the SVG file names it in an
``xml-stylesheet`` instruction (no inline styles, so the Content-Security-Policy holds).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from markupsafe import Markup, escape

from .core.graph import boundary_host, flow_edges
from .core.status import STATUS

if TYPE_CHECKING:
    from .core.flow import Flow
    from .core.models import Task

COLUMN_GAP = 70
ROW_GAP = 34
MARGIN = 24
CIRCLE_R = 18
DIAMOND = 22
BOX_H = 46
CHAR_W = 7.0
LOOP_DROP = 36
BOUNDARY_R = 11  # a boundary timer: a small clock circle on its task's lower border
SIDE_GAP = 18    # the top-down drawing (narrow screens): between nodes of a layer
DOWN_GAP = 46    # ... and between layers (room for a caption and an arrow)

GATEWAYS = {"IF": "×", "SWITCH": "×", "SPLIT": "+", "JOIN": "+"}
STATES = ("done", "active", "error", "canceled")



@dataclass
class Box:
    """A node's place in the drawing."""

    name: str
    title: str
    kind: str
    layer: int = 0
    order: float = 0.0
    x: float = 0.0
    y: float = 0.0
    w: float = 0.0
    h: float = 0.0
    lines: list[str] = field(default_factory=list)
    #: BPMN markers: "multi" (a fan-out's branch: three bars), "partial" (a join with
    #: until: the complex gateway's asterisk), "terminate" (a filled, thick End),
    #: "subprocess" (a box with a plus).
    marks: tuple[str, ...] = ()

    @property
    def left(self) -> float:
        return self.x - self.w / 2

    @property
    def right(self) -> float:
        return self.x + self.w / 2


def node_states(tasks: Iterable[Task]) -> dict[str, str]:
    """The state class of each node from a process's tasks (its latest task decides)."""
    latest: dict[str, Task] = {}
    for task in sorted(tasks, key=lambda t: t.id or 0):
        latest[task.node_name] = task
    states: dict[str, str] = {}
    for name, task in latest.items():
        if task.status == STATUS.ERROR:
            states[name] = "error"
        elif task.status == STATUS.DONE:
            states[name] = "done"
        elif task.status == STATUS.CANCELED:
            states[name] = "canceled"
        else:
            states[name] = "active"
    return states


def _wrap(title: str, width: int = 18) -> list[str]:
    """Split a title into at most two lines of about ``width`` characters."""
    words, lines, line = title.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    lines.append(line)
    if len(lines) > 2:
        lines = [lines[0], " ".join(lines[1:])]
    return lines


def _boxes(flow_class: type[Flow]) -> dict[str, Box]:
    boxes: dict[str, Box] = {}
    for node in flow_class.nodes():
        marks = (("multi",) * bool(node.fan_out)
                 + ("partial",) * (node.task_type == "JOIN" and getattr(node, "until", None) is not None)
                 + ("terminate",) * bool(getattr(node, "terminate", False))
                 + ("subprocess",) * (node.task_type == "SUBPROCESS"))
        box = Box(node.name, node.title, node.task_type, marks=marks)
        if box.kind in ("START", "END", "TIMER"):
            box.w = box.h = 2 * CIRCLE_R
        elif box.kind == "TIMEOUT":
            box.w = box.h = 2 * BOUNDARY_R
        elif box.kind in GATEWAYS:
            box.w = box.h = 2 * DIAMOND
        else:
            box.lines = _wrap(box.title)
            box.w = max(104.0, max(len(line) for line in box.lines) * CHAR_W + 24)
            box.h = BOX_H if len(box.lines) == 1 else BOX_H + 12
        boxes[node.name] = box
    return boxes


def _split_loops(names: list[str], starts: list[str], edges: list[tuple[str, str]]
                 ) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Separate edges into forward ones and the ones closing a cycle (depth-first)."""
    out: dict[str, list[str]] = {n: [] for n in names}
    for source, target in edges:
        out[source].append(target)
    state: dict[str, int] = {}
    back: set[tuple[str, str]] = set()
    roots = starts + [n for n in names if n not in starts]
    for root in roots:
        if root in state:
            continue
        stack = [(root, iter(out[root]))]
        state[root] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
            elif state.get(child) == 1:
                back.add((node, child))
            elif child not in state:
                state[child] = 1
                stack.append((child, iter(out[child])))
    forward = [e for e in edges if e not in back and e[0] != e[1]]
    return forward, [e for e in edges if e in back or e[0] == e[1]]


def _layer(boxes: dict[str, Box], forward: list[tuple[str, str]], lower: frozenset[str] = frozenset()
           ) -> tuple[list[list[Box]], dict[tuple[str, str], list[Box]]]:
    """Longest-path layering, a waypoint per layer an edge skips, barycentre ordering."""
    incoming: dict[str, list[str]] = {n: [] for n in boxes}
    outgoing: dict[str, list[str]] = {n: [] for n in boxes}
    for source, target in forward:
        incoming[target].append(source)
        outgoing[source].append(target)
    pending = {n: len(incoming[n]) for n in boxes}
    ready = [n for n in boxes if pending[n] == 0]
    while ready:
        name = ready.pop(0)
        for target in outgoing[name]:
            boxes[target].layer = max(boxes[target].layer, boxes[name].layer + 1)
            pending[target] -= 1
            if pending[target] == 0:
                ready.append(target)
    # Long edges get a waypoint in every layer they cross, so they are ordered (and drawn)
    # around the nodes there instead of through them.
    everything = dict(boxes)
    ins = {n: list(v) for n, v in incoming.items()}
    outs = {n: list(v) for n, v in outgoing.items()}
    waypoints: dict[tuple[str, str], list[Box]] = {}
    for source, target in forward:
        chain, previous = [], source
        for layer in range(boxes[source].layer + 1, boxes[target].layer):
            point = Box(f"{source}>{target}@{layer}", "", "WAYPOINT", layer=layer, w=8, h=8)
            everything[point.name] = point
            ins[point.name], outs[point.name] = [previous], []
            outs[previous] = [point.name if n == target else n for n in outs[previous]]
            chain.append(point)
            previous = point.name
        if chain:
            outs[previous] = [target]
            ins[target] = [previous if n == source else n for n in ins[target]]
            waypoints[(source, target)] = chain
    layers: list[list[Box]] = [[] for _ in range(max(b.layer for b in boxes.values()) + 1)]
    for index, box in enumerate(everything.values()):
        box.order = index
        layers[box.layer].append(box)
    for row in layers:
        row.sort(key=lambda b: b.order)
    for sweep in range(6):
        neighbours = ins if sweep % 2 == 0 else outs
        sequence = layers[1:] if sweep % 2 == 0 else layers[-2::-1]
        for row in sequence:
            for box in row:
                near = [everything[n].order for n in neighbours[box.name]]
                if near:
                    # ``lower``: reached from a boundary timer on a task's lower border, so
                    # placed below the task's other successors (their edges do not cross).
                    box.order = (sum(near) / len(near) + box.order * 1e-3
                                 + (0.5 if box.name in lower else 0))
            row.sort(key=lambda b: b.order)
            for index, box in enumerate(row):
                box.order = index
    return layers, waypoints


def _place(layers: list[list[Box]]) -> tuple[float, float]:
    """Give every box its centre; return the drawing's width and height."""
    heights = [sum(b.h for b in layer) + ROW_GAP * (len(layer) - 1) for layer in layers]
    tallest = max(heights)
    x: float = MARGIN
    for layer, height in zip(layers, heights, strict=True):
        width = max(b.w for b in layer)
        y = MARGIN + (tallest - height) / 2
        for box in layer:
            box.x = x + width / 2
            box.y = y + box.h / 2
            y += box.h + ROW_GAP
            if box.kind == "WAYPOINT":
                box.w = width
        x += width + COLUMN_GAP
    return x - COLUMN_GAP + MARGIN, tallest + 2 * MARGIN + 14


def _place_down(layers: list[list[Box]]) -> tuple[float, float]:
    """Like ``_place``, top to bottom: layers are rows, a layer's nodes side by side."""
    for layer in layers:
        for box in layer:
            if _captioned(box):  # the caption under a circle or diamond needs its width
                box.w = max(box.w, len(box.title) * CHAR_W * 0.85 + 8)
    widths = [sum(b.w for b in layer) + SIDE_GAP * (len(layer) - 1) for layer in layers]
    widest = max(widths)
    y: float = MARGIN
    for layer, width in zip(layers, widths, strict=True):
        height = max(b.h for b in layer)
        x = MARGIN + (widest - width) / 2
        for box in layer:
            box.x = x + box.w / 2
            box.y = y + height / 2
            x += box.w + SIDE_GAP
            if box.kind == "WAYPOINT":
                box.h = height
        y += height + DOWN_GAP
    return widest + 2 * MARGIN, y - DOWN_GAP + MARGIN + 16


def _captioned(box: Box) -> bool:
    return box.kind in ("START", "END", "TIMER", *GATEWAYS)


def _clock(x: float, y: float, r: float) -> str:
    """BPMN's timer mark: a clock face with two hands."""
    return (f'<circle class="wf-inner-ring" cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}"/>'
            f'<line class="wf-clock-hand" x1="{x:.1f}" y1="{y:.1f}" x2="{x:.1f}" y2="{y - r * 0.7:.1f}"/>'
            f'<line class="wf-clock-hand" x1="{x:.1f}" y1="{y:.1f}" x2="{x + r * 0.5:.1f}" y2="{y:.1f}"/>')


def _shape(box: Box) -> str:
    if box.kind == "TIMEOUT":
        return (f'<circle class="wf-shape" cx="{box.x:.1f}" cy="{box.y:.1f}" r="{BOUNDARY_R}"/>'
                + _clock(box.x, box.y, BOUNDARY_R - 3))
    if box.kind == "TIMER":
        return (f'<circle class="wf-shape" cx="{box.x:.1f}" cy="{box.y:.1f}" r="{CIRCLE_R}"/>'
                + _clock(box.x, box.y, CIRCLE_R - 4)
                + f'<text class="wf-caption" x="{box.x:.1f}" y="{box.y + CIRCLE_R + 14:.1f}">'
                f"{escape(box.title)}</text>")
    if box.kind in ("START", "END"):
        inner = (f'<circle class="wf-inner" cx="{box.x:.1f}" cy="{box.y:.1f}" r="{CIRCLE_R - 4}"/>'
                 if box.kind == "END" else "")
        return (f'<circle class="wf-shape" cx="{box.x:.1f}" cy="{box.y:.1f}" r="{CIRCLE_R}"/>{inner}'
                f'<text class="wf-caption" x="{box.x:.1f}" y="{box.y + CIRCLE_R + 14:.1f}">'
                f"{escape(box.title)}</text>")
    if box.kind in GATEWAYS:
        x, y, d = box.x, box.y, DIAMOND
        points = f"{x:.1f},{y - d:.1f} {x + d:.1f},{y:.1f} {x:.1f},{y + d:.1f} {x - d:.1f},{y:.1f}"
        symbol = "✱" if "partial" in box.marks else GATEWAYS[box.kind]
        return (f'<polygon class="wf-shape" points="{points}"/>'
                f'<text class="wf-symbol" x="{x:.1f}" y="{y:.1f}">{symbol}</text>'
                f'<text class="wf-caption" x="{x:.1f}" y="{y + d + 14:.1f}">{escape(box.title)}</text>')
    text_y = box.y - 8 * (len(box.lines) - 1)
    labels = "".join(
        f'<text class="wf-label" x="{box.x:.1f}" y="{text_y + 16 * i:.1f}">{escape(line)}</text>'
        for i, line in enumerate(box.lines))
    return (f'<rect class="wf-shape" x="{box.left:.1f}" y="{box.y - box.h / 2:.1f}" '
            f'width="{box.w:.1f}" height="{box.h:.1f}" rx="9"/>{labels}{_marks(box)}')


def _marks(box: Box) -> str:
    """BPMN's markers at the bottom of a task box."""
    bottom, parts = box.y + box.h / 2, []
    if "multi" in box.marks:  # parallel multi-instance: three vertical bars
        parts += [f'<path class="wf-mark wf-mark-multi" d="M{box.x + dx:.1f},{bottom - 13:.1f} '
                  f'v9"/>' for dx in (-5, 0, 5)]
    if "subprocess" in box.marks:  # collapsed subprocess: a small square with a plus
        x, y = box.x - 6, bottom - 15
        parts.append(f'<rect class="wf-mark wf-mark-subprocess" x="{x:.1f}" y="{y:.1f}" width="12" '
                     f'height="12"/><path class="wf-mark" d="M{box.x:.1f},{y + 3:.1f} v6 '
                     f'M{box.x - 3:.1f},{y + 6:.1f} h6"/>')
    return "".join(parts)


def _below(box: Box) -> float:
    """The lowest point of a node, its caption included."""
    return box.y + box.h / 2 + (16 if _captioned(box) else 0)


def _shape_top(box: Box) -> float:
    if box.kind in ("START", "END", "TIMER"):
        return box.y - CIRCLE_R
    if box.kind in GATEWAYS:
        return box.y - DIAMOND
    return box.y - box.h / 2


def _shape_right(box: Box) -> float:
    if box.kind in ("START", "END", "TIMER"):
        return box.x + CIRCLE_R
    if box.kind in GATEWAYS:
        return box.x + DIAMOND
    return box.right


def _through(points: list[tuple[float, float]], downwards: bool) -> str:
    """A path through ``points``: straight where two share the line the drawing runs along,
    else an S-bend that leaves and arrives in the drawing's direction (down or across)."""
    path = f"M{points[0][0]:.1f},{points[0][1]:.1f}"
    for (x1, y1), (x2, y2) in zip(points, points[1:], strict=False):
        if (x1 == x2) if downwards else (y1 == y2):
            path += f" L{x2:.1f},{y2:.1f}"
        elif downwards:
            bend = (y2 - y1) / 2
            path += f" C{x1:.1f},{y1 + bend:.1f} {x2:.1f},{y2 - bend:.1f} {x2:.1f},{y2:.1f}"
        else:
            bend = (x2 - x1) / 2
            path += f" C{x1 + bend:.1f},{y1:.1f} {x2 - bend:.1f},{y2:.1f} {x2:.1f},{y2:.1f}"
    return path


def _edge_down(source: Box, target: Box, label: str, via: list[Box], depth: float) -> str:
    """An edge of the top-down drawing; a loop goes as an arc out to the right (``depth``)."""
    if target.layer > source.layer:
        points = [(source.x, _below(source) + 2)]
        for point in via:
            points += [(point.x, point.y - point.h / 2), (point.x, point.y + point.h / 2)]
        points.append((target.x, _shape_top(target) - 2))
        path = _through(points, downwards=True)
        (x1, y1), (x2, _) = points[0], points[1]
        # Half-way along the first bend, so the labels of branches to either side stay apart.
        css, lx, ly = "wf-edge", (x1 + x2) / 2 + (6 if x2 >= x1 else -6), y1 + 14
        anchor = "start" if x2 >= x1 else "end"
    else:
        x1, y1 = _shape_right(source) + 2, source.y
        x2, y2 = _shape_right(target) + 4, target.y
        path = f"M{x1:.1f},{y1:.1f} C{depth:.1f},{y1:.1f} {depth:.1f},{y2:.1f} {x2:.1f},{y2:.1f}"
        css, lx, ly, anchor = "wf-edge wf-loop", depth - 20, (y1 + y2) / 2, "end"
    text = (f'<text class="wf-edge-label" x="{lx:.1f}" y="{ly:.1f}" text-anchor="{anchor}">'
            f"{escape(label)}</text>" if label else "")
    return (f'<path class="{css}" d="{path}" marker-end="url(#wf-down-arrow)" '
            f'data-source="{source.name}" data-target="{target.name}"/>{text}')


def _edge(source: Box, target: Box, label: str, via: list[Box], depth: float) -> str:
    """An edge path (and label); a loop goes as an arc down to ``depth`` and back."""
    if target.layer > source.layer:
        points = [(source.right, source.y)]
        for point in via:
            points += [(point.left, point.y), (point.right, point.y)]
        points.append((target.left - 2, target.y))
        path = _through(points, downwards=False)
        (x1, y1), (x2, y2) = points[0], points[1]
        css, lx, ly = "wf-edge", x1 + 8, (y1 - 6 if y2 <= y1 else y1 + 14)
    else:
        x1, y1 = source.x, _below(source) + 2
        x2, y2 = target.x, _below(target) + 4
        path = f"M{x1:.1f},{y1:.1f} C{x1:.1f},{depth:.1f} {x2:.1f},{depth:.1f} {x2:.1f},{y2:.1f}"
        css, lx, ly = "wf-edge wf-loop", (x1 + x2) / 2 + 4, depth - 24
    text = (f'<text class="wf-edge-label" x="{lx:.1f}" y="{ly:.1f}">{escape(label)}</text>'
            if label else "")
    return (f'<path class="{css}" d="{path}" marker-end="url(#wf-arrow)" '
            f'data-source="{source.name}" data-target="{target.name}"/>{text}')


def flow_svg(flow_class: type[Flow], states: Mapping[str, str] | None = None,
             links: Mapping[str, str] | None = None, down: bool = False) -> Markup:
    """The flow's graph as an SVG element; ``states`` colours nodes, ``links`` makes them links.

    ``down``: drawn top to bottom, for narrow screens (its ids start ``wf-down-``, so both
    drawings can be on one page)."""
    states, links = states or {}, links or {}
    prefix, arrow = ("wf-down-node-", "wf-down-arrow") if down else ("wf-node-", "wf-arrow")
    every_box = _boxes(flow_class)
    # Boundary timers sit on their task's border: laid out as if their edges left the task.
    hosts = {n.name: h for n in flow_class.nodes() if (h := boundary_host(n)) is not None}
    boxes = {name: box for name, box in every_box.items() if name not in hosts}
    starts = [n.name for n in flow_class.start_nodes()]
    edges = flow_edges(flow_class)
    laid = [(hosts.get(s, s), t) for s, t, _ in edges]
    forward, loops = _split_loops(list(boxes), starts, list(dict.fromkeys(laid)))
    lower = frozenset(t for s, t, _ in edges if s in hosts)
    layers, waypoints = _layer(boxes, forward, lower)
    width, height = _place_down(layers) if down else _place(layers)
    for n, (name, host) in enumerate(hosts.items()):
        box, on = every_box[name], boxes[host]
        earlier = sum(1 for other in list(hosts.values())[:n] if other == host)
        box.layer, box.x, box.y = on.layer, on.right - 16 - 26 * earlier, on.y + on.h / 2
    drawn_edges = []
    lowest = (max(b.right for b in every_box.values()) if down
              else max(_below(b) for b in every_box.values()))
    draw = _edge_down if down else _edge
    for (source, target, label), (via_source, _) in zip(edges, laid, strict=True):
        depth = lowest
        if (via_source, target) in loops:
            depth += LOOP_DROP * (1 + loops.index((via_source, target)))
        drawn_edges.append(draw(every_box[source], every_box[target], label,
                                waypoints.get((via_source, target), []), depth))
    if down:
        width += LOOP_DROP * len(loops)
    else:
        height += LOOP_DROP * len(loops)
    nodes = []
    for box in every_box.values():
        state = states.get(box.name)
        css = (f"wf-node wf-node-{box.kind.lower()}" + (f" wf-{state}" if state in STATES else "")
               + "".join(f" wf-{mark}" for mark in box.marks))
        title = f"{box.title} ({state})" if state else box.title
        inner = f"<title>{escape(title)}</title>{_shape(box)}"
        if box.name in links:
            inner = f'<a href="{escape(links[box.name])}" aria-label="{escape(title)}">{inner}</a>'
        nodes.append(f'<g class="{css}" id="{prefix}{box.name}" data-node="{box.name}" '
                     f'data-state="{state or ""}">{inner}</g>')
    # A picture with links in it is a group of links (an "img" may hold nothing focusable:
    # its children are presentational, so its links would be hidden from screen readers).
    role = "group" if links else "img"
    css = "wf-graph wf-graph-down" if down else "wf-graph"
    return Markup(
        f'<svg class="{css}" xmlns="http://www.w3.org/2000/svg" role="{role}" '
        f'aria-label="{escape(flow_class.process_title)} flow graph" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" height="{height:.0f}">'
        f'<defs><marker id="{arrow}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path class="wf-arrow" d="M0,0 L10,5 L0,10 z"/>'
        "</marker></defs>"
        f'<g class="wf-edges">{"".join(drawn_edges)}</g><g class="wf-nodes">{"".join(nodes)}</g></svg>'
    )


def process_graph(flow_class: type[Flow], states: Mapping[str, str], links: Mapping[str, str]) -> Markup:
    """Both drawings for a page: left to right, and top to bottom for narrow screens (the
    stylesheet shows one; the hidden one is out of the tab order and the accessibility tree)."""
    return flow_svg(flow_class, states, links) + flow_svg(flow_class, states, links, down=True)
