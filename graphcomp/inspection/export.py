"""The graph as a networkx DiGraph, and from there DOT, GraphML, JSON or a PNG picture.

The IR stays the core store; this view is made on demand. Each node carries its op,
shape and formula (plain and LaTeX), and, for a graph of scalars evaluated at given
leaf values, its value and the loss's gradient with respect to it.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Mapping

import networkx as nx

from ..errors import GraphcompError
from ..ir import Graph, format_shape
from ..ops import OPS
from .derivation import derivation
from .notation import Notation

FORMATS = ("dot", "graphml", "json", "png")


class ExportError(GraphcompError):
    """A graph that cannot be written in the format asked for (e.g. no Graphviz for PNG)."""


def to_networkx(graph: Graph, loss: str | None = None, wrt: tuple[str, ...] = (),
                at: Mapping[str, float] | None = None) -> nx.DiGraph:
    """The graph's values as nodes (keyed by name, t1, t2, ... for unnamed ones), operands as edges."""
    notation = Notation(graph)
    view = nx.DiGraph(name=graph.name)
    names = notation.names
    for node in graph.nodes():
        if node.op == "const":
            continue
        operands = [str(x.attr("value")) if x.op == "const" else names[x] for x in node.inputs]
        view.add_node(names[node], op=node.op, shape=format_shape(node.shape),
                      formula="" if node.is_leaf else f"{names[node]} = {OPS[node.op].text(node, tuple(operands))}",
                      latex="" if node.is_leaf else f"{notation.value(node)} = {notation.formula(node)}",
                      output=node in graph.outputs.values())
        for index, x in enumerate(node.inputs):
            if x.op != "const":
                view.add_edge(names[x], names[node], operand=index)
    if at is not None:
        if loss is None:
            raise ExportError("values and gradients need a loss: say which output it is")
        steps = derivation(graph, loss, wrt, at)
        for name, value in steps.values.items():
            view.nodes[name]["value"] = value
        for step in steps.steps:
            view.nodes[step.target]["gradient"] = step.value
    return view


def write(view: nx.DiGraph, fmt: str, path: str | Path) -> Path:
    """Write the view as dot, graphml, json or png."""
    path = Path(path)
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "json":
        path.write_text(json.dumps(nx.node_link_data(view, edges="edges"), indent=2) + "\n", encoding="utf-8")
    elif fmt == "graphml":
        nx.write_graphml(view, path)
    elif fmt == "dot":
        path.write_text(to_dot(view), encoding="utf-8")
    else:
        _png(view, path)
    return path


def to_dot(view: nx.DiGraph) -> str:
    """Graphviz DOT text: one box per value with its formula, shape and (if known) value and gradient."""
    lines = [f"digraph {_quote(view.graph.get('name', 'graph'))} {{", "  rankdir=LR;",
             '  node [shape=box, style="rounded", fontname="Helvetica"];']
    for name, data in view.nodes(data=True):
        label = [data["formula"] or f"{name} ({data['op']})", f"shape {data['shape']}"]
        if "value" in data:
            label.append(f"value {data['value']:.6g}")
        if data.get("gradient") is not None:
            label.append(f"gradient {data['gradient']:.6g}")
        style = ', peripheries=2' if data.get("output") else ""
        lines.append(f"  {_quote(name)} [label={_quote(chr(10).join(label))}{style}];")
    for source, target in view.edges():
        lines.append(f"  {_quote(source)} -> {_quote(target)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _quote(text: str) -> str:
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _png(view: nx.DiGraph, path: Path) -> None:
    dot = shutil.which("dot")
    if dot is None:
        raise ExportError("PNG needs Graphviz's `dot` program, which is not installed "
                          "(Debian/Ubuntu: apt-get install graphviz); --format dot writes the text instead")
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "graph.dot"
        source.write_text(to_dot(view), encoding="utf-8")
        result = subprocess.run([dot, "-Tpng", str(source), "-o", str(path)], capture_output=True, text=True)
    if result.returncode != 0:
        raise ExportError(f"Graphviz failed: {result.stderr.strip()}")
