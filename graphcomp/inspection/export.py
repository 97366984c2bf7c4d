"""The graph as a networkx MultiDiGraph, and from there DOT, GraphML, JSON or a picture (SVG, PNG, PDF).

The IR stays the core store; this view is made on demand. Each value is a node keyed by its name
(t1, t2, ... for unnamed ones, as in the formulas) carrying its op, role, shape and formula; each use
of a value is one edge, keyed by its operand position, so y = x·x has two edges x → y. Given the
leaves' values a node also carries its value and the loss's gradient, and each edge the local
derivative of its use and the share of the gradient that flowed back along it: the shares of a
value's edges add up to its gradient. `derivative_graph.backward_view` draws the derivative graph of
the lecture slides with the same boxes, and `write` writes either view.
"""
from __future__ import annotations

import io
from collections import Counter
import json
import re
from pathlib import Path
from typing import Mapping

import networkx as nx
import numpy as np
import sympy as sp

from ..codegen import generate, loss_name
from ..codegen.names import gradient_name
from ..errors import GraphcompError
from ..files import write_atomic
from ..formulas.latex import group, short_number
from ..formulas.derivatives import local_derivative
from ..ir import DISPLAYS, Graph, Node, format_shape
from ..ops import OPS, scalar_expr
from .derivation import Derivation, derivation, local_text, local_value
from .equations import is_scalar_graph
from .notation import Notation
from .numbers import box_text
from .pictures import DEFAULT_DPI, render, svg_text, to_dot

FORMATS = ("svg", "png", "pdf", "dot", "graphml", "json")
FOLD_ABOVE = 12  # operations: a larger graph writes unnamed single-use values inside their user's box


class ExportError(GraphcompError):
    """A graph that cannot be written in the format asked for."""


def to_networkx(graph: Graph, loss: str | None = None, wrt: tuple[str, ...] = (),
                at: Mapping[str, object] | None = None, fold: bool | None = None,
                derived: Derivation | None = None) -> nx.MultiDiGraph:
    """The graph's values as nodes, each use of an operand as an edge (keyed by its position); with `at` (the leaves' values), values and
    gradients (from `derived`, the derivation at those values, when the caller has it already). fold: write
    unnamed values used once inside their user's box (default: for tensor graphs and graphs of more than
    12 operations, never when values are shown)."""
    notation = Notation(graph)
    nodes = [n for n in graph.nodes() if n.op != "const"]
    if fold is None:  # a lecture's scalar graph shows every step; a network shows its named values
        fold = at is None and derived is None and (sum(not n.is_leaf for n in nodes) > FOLD_ABOVE or any(n.shape != () for n in nodes))
    shown_nodes = boxed_values(graph, nodes, fold)
    view = nx.MultiDiGraph(name=graph.name)
    texts: dict[Node, str] = {}
    for node in nodes:
        operands = [_operand(node, k, x, notation, texts, shown_nodes) for k, x in enumerate(node.inputs)]
        texts[node] = notation.name(node) if node.is_leaf else OPS[node.op].text(node, tuple(operands))
        if node not in shown_nodes:
            continue
        name = notation.name(node)
        formula = "" if node.is_leaf else f"{name} = {texts[node]}"
        if node.op == "scan":  # one box for the loop, its step written inside: what one turn computes
            formula = f"{name} = {texts[node]}\n" + "\n".join(loop_step_lines(node, graph, notation, texts))
        view.add_node(name, op=node.op, role=_role(graph, node, loss), shape=format_shape(node.shape),
                      shape_text=shape_text(node.shape), formula=formula,
                      label_formula=re.sub(r"\bNone\b", "N", formula),  # reshape(p, (N, 200)), as specs write it
                      latex="" if node.is_leaf else f"{notation.value(node)} = {notation.formula(node)}",
                      output=node in graph.outputs.values(), cluster=cluster_of(graph, node, notation))
        for index, x in enumerate(node.inputs):
            if node.op == "custom" and index == 0 and (x not in shown_nodes or x in node.inputs[1:]):
                continue  # a custom op's forward, folded: it reads only the op's inputs, drawn already
            for source in _shown_sources(x, shown_nodes):
                view.add_edge(notation.name(source), name, key=index, operand=index)
        if node.op == "scan":  # the carry goes round: a loop edge, as the slide draws a recurrence
            view.add_edge(name, name, key="loop", operand=None, loop=True, local_text="each step t")
    if at is not None or derived is not None:
        if loss is None:
            raise ExportError("values and gradients need a loss: say which output it is")
        _add_values(view, graph, notation, loss, derived or derivation(generate(graph, wrt, loss, simplify=False), at))
    return view


def loop_step_lines(loop: Node, graph: Graph, notation: Notation, texts: dict[Node, str]) -> list[str]:
    """The step of a loop as the lines of one turn, over the picture's names: each carry by the name of
    the loop's final carry (t2 ← tanh(xs[t] @ W + t2 @ U)), each sequence's element and each
    per-step output indexed by t, the captured values by their names."""
    body = loop.attr("body")
    c, k = len(body.carries), len(body.xs)
    results = {n.attr("index"): n for n in graph.nodes() if n.op == "scan_result" and n.inputs[0] is loop}
    carried = [notation.name(results[i]) if i in results and results[i] in notation else f"carry{i + 1}"
               for i in range(c)]
    step = {slot: name for slot, name in zip(body.carries, carried)}
    step.update({slot: f"{texts.get(x) or notation.name(x)}[t]" for slot, x in zip(body.xs, loop.inputs[c:c + k])})
    step.update({slot: short_number(x.attr("value")) if x.op == "const" else texts.get(x) or notation.name(x)
                 for slot, x in zip(body.captured, loop.inputs[c + k:])})
    nodes = body.nodes()
    uses = Counter(x for node in nodes for x in node.inputs)
    lines = []
    lined: set[Node] = set(step)  # values read by name: the placeholders, and values given a line
    for node in nodes:
        if node not in step:
            step[node] = OPS[node.op].text(node, tuple(step[x] if x in lined else _operand(node, i, x, notation, step, set())
                                                       for i, x in enumerate(node.inputs)))
            if uses[node] > 1 or uses[node] and node in body.new_carries:  # a gate read twice, a new cell
                # that the new state reads too: a line of its own
                lines.append(f"  s{len(lines) + 1} = {step[node]}")
                step[node] = f"s{len(lines)}"
                lined.add(node)
    lines += [f"  {name} ← {step[new]}" for name, new in zip(carried, body.new_carries)]
    for j, y in enumerate(body.ys):
        out = results.get(c + j)
        target = notation.name(out) if out is not None and out in notation else f"y{j + 1}"
        lines.append(f"  {target}[t] = {carried[body.new_carries.index(y)] if y in body.new_carries else step[y]}")
    return lines


def shape_text(shape: tuple) -> str:
    """A shape as a slide shows it: nothing for a scalar, N for the batch axis."""
    return "" if shape == () else format_shape(shape).replace("None", "N")


# Layers keep a box of their own even unnamed: folded, a CNN would be one line of nested calls.
UNFOLDED_OPS = ("conv2d", "max_pool2d", "dropout_mask", "scan", "scan_result")  # a loop and its results: named as its step writes them


def boxed_values(graph: Graph, nodes: list[Node], fold: bool) -> set[Node]:
    if not fold:
        return set(nodes)
    uses: dict[Node, int] = {}
    for node in nodes:
        for x in node.inputs:
            uses[x] = uses.get(x, 0) + 1
    return {n for n in nodes if n.is_leaf or graph.name_of(n) is not None or uses.get(n, 0) != 1
            or n.op in UNFOLDED_OPS}


# How tightly the infix ops of the text rules bind (Python's order); other ops print as calls.
_BINDING = {"add": 1, "sub": 1, "mul": 2, "div": 2, "matmul": 2, "neg": 3, "pow": 4, "index": 5, "transpose": 5}


def _operand(user: Node, position: int, x: Node, notation: Notation, texts: dict[Node, str],
             shown_nodes: set[Node]) -> str:
    """An operand as its user's formula reads it: a name, a number, or a folded formula, in
    parentheses only where Python's order of operations needs them."""
    if x.op == "const":
        return short_number(x.attr("value"))
    if x in shown_nodes:
        return notation.name(x)
    if user.op not in _BINDING:  # relu(...), sum(...): the call's own parentheses hold it
        return texts[x]
    inner, outer = _BINDING.get(x.op, 9), _BINDING[user.op]
    right_side = position == 1 and user.op in ("sub", "div", "matmul", "pow")
    loose = inner < outer or (inner == outer and (right_side or user.op == "pow"))
    return f"({texts[x]})" if loose else texts[x]


def _shown_sources(x: Node, shown_nodes: set[Node]) -> list[Node]:
    """The boxes an operand's value comes from: itself, or (folded) the boxes its formula reads."""
    if x.op == "const":
        return []
    if x in shown_nodes:
        return [x]
    return list(dict.fromkeys(s for y in x.inputs for s in _shown_sources(y, shown_nodes)))


def _role(graph: Graph, node: Node, loss: str | None) -> str:
    if node.op in ("input", "param"):
        return node.op
    if loss is not None and graph.outputs.get(loss) is node:
        return "loss"
    return "output" if node in graph.outputs.values() else "op"


def cluster_of(graph: Graph, node: Node, notation: Notation) -> str:
    """Values named with the same trailing number (a1, h1, W1, b1) share a cluster, labelled by their
    names; unnamed values and names without a number stay outside clusters."""
    group = _group(graph.name_of(node))
    if group is None:
        return ""
    members = sorted(name for name in notation.by_name if _group(name) == group and name in _named(graph))
    return ", ".join(members) if len(members) > 1 else ""


def _named(graph: Graph) -> set[str]:
    return set(graph.leaves) | set(graph.labels.values()) | set(graph.outputs)


def _group(name: str | None) -> str | None:
    match = re.fullmatch(r"[A-Za-z_]+?_?(\d+)", name or "")
    return match.group(1) if match else None


def _add_values(view: nx.MultiDiGraph, graph: Graph, notation: Notation, loss: str, derived: Derivation) -> None:
    """Each value and gradient on its box; each edge's local derivative and the share of the gradient
    that flowed back along it (the shares of a value's edges add up to its gradient)."""
    gradient = {step.target: step.value if step.array is None else step.array for step in derived.steps}
    scalar = is_scalar_graph(graph.outputs[loss])
    for name, data in view.nodes(data=True):
        if name in derived.values:
            put(data, "value", derived.values[name])
        if gradient.get(name) is not None:
            put(data, "gradient", gradient[name])
            data["gradient_label"] = f"∂{loss}/∂{name}" if scalar else gradient_name(name)
    backward, node_values = derived.backward, derived.node_values
    for source, target, data in view.edges(data=True):
        user, index = notation.by_name[target], data["operand"]
        if (user, index) not in backward.paths:
            continue
        uses = user.inputs.count(user.inputs[index])
        scale = magnitude(gradient.get(source))
        if scalar:
            local = local_derivative(scalar_expr(user), index) if OPS[user.op].has_formula else sp.Integer(1)
            slope = local_value(local, user, node_values)
            which = f" (use {user.inputs[:index + 1].count(user.inputs[index])} of {uses})" if uses > 1 else ""
            data["local_text"] = f"∂{target}/∂{source}{which} = {local_text(local, user, notation)}"
            if data["local_text"].split(" = ")[-1] != short_number(slope):
                data["local_text"] += f" = {short_number(slope)}"
            put(data, "flow", slope * gradient[target], scale)
        elif backward.paths[(user, index)] in node_values:
            put(data, "flow", node_values[backward.paths[(user, index)]], scale)
        if "flow_text" in data:
            data["flow_text"] = f"adds {data['flow_text']}"


def magnitude(value) -> float | None:
    """The largest magnitude of a value (the scale its shares' float noise is judged against)."""
    if value is None:
        return None
    array = np.abs(np.asarray(value, dtype=float))
    return float(array.max()) if array.size and np.isfinite(array).all() else None


def put(data: dict, key: str, value, scale: float | None = None) -> None:
    """A number as a number and as text; an array as text only (GraphML and JSON keep both readable).
    Float noise relative to `scale` (or to the value itself) reads 0 (numbers.cleaned)."""
    array = np.asarray(value, dtype=float)
    if array.ndim == 0:
        data[key] = float(array)
    data[f"{key}_text"] = box_text(array, scale)


def write(view: nx.MultiDiGraph, fmt: str, path: str | Path, rankdir: str = "auto", dpi: int = DEFAULT_DPI) -> Path:
    """Write the view as a picture (svg, png, pdf) or as data (dot, graphml, json). The whole file is
    made in memory first, then written atomically: a failed drawing or write leaves no partial file."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "json":
        content: str | bytes = json.dumps(nx.node_link_data(view, edges="edges"), indent=2) + "\n"
    elif fmt == "graphml":
        buffer = io.BytesIO()
        nx.write_graphml(view, buffer)
        content = buffer.getvalue()
    elif fmt == "dot":
        content = to_dot(view, rankdir)
    else:
        content = render(to_dot(view, rankdir), fmt, dpi)
    return write_atomic(path, content)


def graph_svg(graph: Graph) -> str | None:
    """A graph's picture as SVG text (what a notebook shows for a Graph); None without Graphviz."""
    if not graph.outputs:
        return None
    try:
        loss = loss_name(graph, None)
    except GraphcompError:
        loss = None
    return svg_text(to_dot(to_networkx(graph, loss)))


DISPLAYS["svg"] = graph_svg
