"""Draw a flow: Graphviz DOT text from the same edge table validation and the engine use.

``to_dot(flow)`` labels each node with its id and type, each edge with its branch (``options.2``,
``success``, ``rules.0.next``...); nodes that wait for the caller are drawn as boxes with a double
border, terminal nodes as ellipses filled grey. ``dot -Tsvg`` renders it.
"""
from __future__ import annotations

import json

from .model import AgentNode, EndNode, Flow, TransferNode, edges, waits_for_caller


def _quote(text: str) -> str:
    # A JSON string literal is a DOT quoted string: \" and \n mean the same in both.
    return json.dumps(text, ensure_ascii=False)


def to_dot(flow: Flow) -> str:
    lines = [f"digraph {_quote(flow.name)} {{", "  rankdir=LR;", "  node [fontsize=10];"]
    for node_id, node in flow.nodes.items():
        kind = node.__struct_config__.tag
        label = f"{node_id}\n({kind})"
        style = ""
        if waits_for_caller(node):
            style = ", shape=box, peripheries=2"
        elif isinstance(node, (AgentNode, TransferNode, EndNode)):
            style = ", style=filled, fillcolor=lightgrey"
        lines.append(f"  {_quote(node_id)} [label={_quote(label)}{style}];")
    for node_id, node in flow.nodes.items():
        for branch, target in edges(node):
            lines.append(f"  {_quote(node_id)} -> {_quote(target)} [label={_quote(branch)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"
