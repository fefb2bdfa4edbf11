"""Flows and state machines as Graphviz DOT."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .fsm import state_machine_dot

if TYPE_CHECKING:
    from .flow import Flow

__all__ = ["flow_dot", "state_machine_dot", "flow_edges"]

SHAPES = {
    "START": "circle", "END": "doublecircle", "HUMAN": "box", "FUNCTION": "box",
    "HANDLER": "box", "JOB": "box3d", "IF": "diamond", "SWITCH": "diamond",
    "SPLIT": "diamond", "JOIN": "diamond", "SUBPROCESS": "box", "TIMER": "doublecircle", "TIMEOUT": "circle",
}


def boundary_host(node: object) -> str | None:
    """The node a boundary timer (View.OnTimeout) sits on, or None for other nodes."""
    host = getattr(node, "host", None) if getattr(node, "task_type", "") == "TIMEOUT" else None
    return getattr(host, "name", None)


def flow_edges(flow_class: type[Flow]) -> list[tuple[str, str, str]]:
    """(source node, target node, label) for every edge of the flow."""
    return [(node.name, target.name, label)
            for node in flow_class.nodes() for target, label in node.outgoing()]


def flow_dot(flow_class: type[Flow]) -> str:
    """The flow's nodes and edges as DOT."""
    lines = [f'digraph "{flow_class.flow_label}" {{', "    rankdir=LR;"]
    for node in flow_class.nodes():
        shape = SHAPES.get(node.task_type, "box")
        extra = ""
        if node.fan_out:
            extra = ', xlabel="|||"'  # BPMN's parallel multi-instance marker
        elif node.task_type == "SUBPROCESS":
            extra = ', peripheries=2, xlabel="+"'
        elif node.task_type == "JOIN" and getattr(node, "until", None) is not None:
            extra = ', xlabel="*"'  # a partial (complex) join
        elif getattr(node, "terminate", False):
            extra = ', style=filled, penwidth=3'
        clock = "\u23f1 " if node.task_type in ("TIMER", "TIMEOUT") else ""  # BPMN's clock mark
        lines.append(f'    {node.name} [label="{clock}{node.title}", shape={shape}{extra}];')
        host = boundary_host(node)
        if host is not None:  # a boundary timer: attached to its task, not a step after it
            lines.append(f"    {host} -> {node.name} [style=dotted, arrowhead=none];")
    for source, target, label in flow_edges(flow_class):
        attrs = f' [label="{label}"]' if label else ""
        lines.append(f"    {source} -> {target}{attrs};")
    lines.append("}")
    return "\n".join(lines)
