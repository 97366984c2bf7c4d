"""The graph as a networkx MultiDiGraph, and from there DOT, GraphML, JSON or a picture (SVG, PNG, PDF).

The IR stays the core store; this view is made on demand. Each value is a node keyed by its name
(t1, t2, ... for unnamed ones, as in the formulas) carrying its op, role, shape and formula; each use
of a value is one edge, keyed by its operand position, so y = x·x has two edges x → y. Given the
leaves' values a node also carries its value and the loss's gradient, and each edge the local
derivative of its use and the share of the gradient that flowed back along it: the shares of a
value's edges add up to its gradient. `backward_view` draws the derivative graph of the lecture
slides: one box per gradient, its formula in math, edges following the chain rule.
"""
from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Mapping

import networkx as nx
import numpy as np
import sympy as sp

from ..codegen import GeneratedModule, generate, loss_name
from ..codegen.names import gradient_name
from ..errors import GraphcompError
from ..files import write_atomic
from ..formulas.latex import group, short_number
from ..formulas.derivatives import local_derivative
from ..ir import DISPLAYS, Graph, Node, format_shape, toposort
from ..ops import OPS, scalar_expr
from .derivation import Derivation, derivation, local_latex, local_text, local_value
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
    shown_nodes = _shown(graph, nodes, fold)
    view = nx.MultiDiGraph(name=graph.name)
    texts: dict[Node, str] = {}
    for node in nodes:
        operands = [_operand(node, k, x, notation, texts, shown_nodes) for k, x in enumerate(node.inputs)]
        texts[node] = notation.name(node) if node.is_leaf else OPS[node.op].text(node, tuple(operands))
        if node not in shown_nodes:
            continue
        name = notation.name(node)
        formula = "" if node.is_leaf else f"{name} = {texts[node]}"
        view.add_node(name, op=node.op, role=_role(graph, node, loss), shape=format_shape(node.shape),
                      shape_text=shape_text(node.shape), formula=formula,
                      label_formula=re.sub(r"\bNone\b", "N", formula),  # reshape(p, (N, 200)), as specs write it
                      latex="" if node.is_leaf else f"{notation.value(node)} = {notation.formula(node)}",
                      output=node in graph.outputs.values(), cluster=_cluster(graph, node, notation))
        for index, x in enumerate(node.inputs):
            for source in _shown_sources(x, shown_nodes):
                view.add_edge(notation.name(source), name, key=index, operand=index)
    if at is not None or derived is not None:
        if loss is None:
            raise ExportError("values and gradients need a loss: say which output it is")
        _add_values(view, graph, notation, loss, derived or derivation(generate(graph, wrt, loss, simplify=False), at))
    return view


def shape_text(shape: tuple) -> str:
    """A shape as a slide shows it: nothing for a scalar, N for the batch axis."""
    return "" if shape == () else format_shape(shape).replace("None", "N")


# Layers keep a box of their own even unnamed: folded, a CNN would be one line of nested calls.
UNFOLDED_OPS = ("conv2d", "max_pool2d", "dropout_mask")


def _shown(graph: Graph, nodes: list[Node], fold: bool) -> set[Node]:
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


def _cluster(graph: Graph, node: Node, notation: Notation) -> str:
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
            _put(data, "value", derived.values[name])
        if gradient.get(name) is not None:
            _put(data, "gradient", gradient[name])
            data["gradient_label"] = f"∂{loss}/∂{name}" if scalar else gradient_name(name)
    backward, node_values = derived.backward, derived.node_values
    for source, target, data in view.edges(data=True):
        user, index = notation.by_name[target], data["operand"]
        if (user, index) not in backward.paths:
            continue
        uses = user.inputs.count(user.inputs[index])
        scale = _magnitude(gradient.get(source))
        if scalar:
            local = local_derivative(scalar_expr(user), index) if OPS[user.op].has_formula else sp.Integer(1)
            slope = local_value(local, user, node_values)
            which = f" (use {user.inputs[:index + 1].count(user.inputs[index])} of {uses})" if uses > 1 else ""
            data["local_text"] = f"∂{target}/∂{source}{which} = {local_text(local, user, notation)}"
            if data["local_text"].split(" = ")[-1] != short_number(slope):
                data["local_text"] += f" = {short_number(slope)}"
            _put(data, "flow", slope * gradient[target], scale)
        elif backward.paths[(user, index)] in node_values:
            _put(data, "flow", node_values[backward.paths[(user, index)]], scale)
        if "flow_text" in data:
            data["flow_text"] = f"adds {data['flow_text']}"


def _magnitude(value) -> float | None:
    """The largest magnitude of a value (the scale its shares' float noise is judged against)."""
    if value is None:
        return None
    array = np.abs(np.asarray(value, dtype=float))
    return float(array.max()) if array.size and np.isfinite(array).all() else None


def _put(data: dict, key: str, value, scale: float | None = None) -> None:
    """A number as a number and as text; an array as text only (GraphML and JSON keep both readable).
    Float noise relative to `scale` (or to the value itself) reads 0 (numbers.cleaned)."""
    array = np.asarray(value, dtype=float)
    if array.ndim == 0:
        data[key] = float(array)
    data[f"{key}_text"] = box_text(array, scale)


# ------------------------------------------------------------------ the derivative graph

def backward_view(model: GeneratedModule, at: Mapping[str, object] | None = None, fold: bool | None = None,
                  derived: Derivation | None = None) -> nx.MultiDiGraph:
    """The derivative graph of the lecture slides, in math: one box per gradient of a value of the graph
    as written (∂f/∂x for a graph of scalars, x̄ for tensors) with its chain-rule formula, one edge from
    ū to x̄ per use of x by u; with `at`, each box's value and each edge's share. Read off the
    derivation (`derived`, or made at `at`), not differentiated again. fold: as `to_networkx`, a large
    or tensor graph gives a box only to named values, leaves and values used more than once, and
    writes the others' gradients inside the formulas that use them."""
    if model.backward is None:
        raise ExportError(f"model {model.graph.name!r} has no scalar loss, so no backward pass to draw")
    derived = derived or derivation(model, at)
    graph, loss, backward = model.graph, derived.loss, derived.backward
    notation, loss_node = Notation(graph), graph.outputs[derived.loss]
    scalar = is_scalar_graph(loss_node)
    nodes = [n for n in graph.nodes() if n.op != "const"]
    if fold is None:
        fold = sum(not n.is_leaf for n in nodes) > FOLD_ABOVE or any(n.shape != () for n in nodes)
    boxed = _shown(graph, nodes, fold)
    steps = {notation.by_name[step.target]: step for step in derived.steps}
    uses = _uses(loss_node, backward)
    latex = _GradientLatex(steps, uses, boxed)
    view = nx.MultiDiGraph(name=f"{graph.name} (derivative graph)", derivative=True)
    for node, step in steps.items():
        if node not in boxed:
            continue
        formula = latex.formula(node)
        lhs, rhs = math_text(step.lhs), math_text(formula)
        view.add_node(_key(node, notation), op=node.op, role="loss" if node is loss_node else "gradient",
                      shape=format_shape(node.shape), shape_text=shape_text(node.shape), title=lhs,
                      formula=f"{lhs} = {rhs}", label_formula=f"{lhs} = {rhs}", latex=f"{step.lhs} = {formula}",
                      output=node.is_leaf, leaf=node.is_leaf,
                      cluster=_cluster(graph, node, notation))
        if at is not None or derived.node_values:
            value = step.value if step.array is None else step.array
            if value is not None:
                _put(view.nodes[_key(node, notation)], "value", value)
    for node, step in steps.items():
        if node not in boxed:
            continue
        for k, (user, index) in enumerate(uses.get(node, [])):
            source = user
            while source not in boxed:  # a folded value is used once: its gradient comes from its user's
                source = uses[source][0][0]
            data = {"operand": index, "user": notation.name(user), "backward": True}
            if scalar and source is user and OPS[user.op].has_formula:
                data["local_text"] = f"· {math_text(local_latex(local_derivative(scalar_expr(user), index), user, notation))}"
            if k < len(step.path_values):
                _put(data, "flow", step.path_values[k], _magnitude(step.value))
            elif (user, index) in backward.paths and backward.paths[(user, index)] in derived.node_values:
                _put(data, "flow", derived.node_values[backward.paths[(user, index)]], _magnitude(step.array))
            if "flow_text" in data:
                data["flow_text"] = f"adds {data['flow_text']}"
            view.add_edge(_key(source, notation), _key(node, notation), key=f"{notation.name(user)}/{index}", **data)
    return view


def _key(node: Node, notation: Notation) -> str:
    """A gradient box's name: the code's name of that gradient (d_x), so every view agrees."""
    return notation.gradient(node, plain=True)


def _uses(loss: Node, backward) -> dict[Node, list[tuple[Node, int]]]:
    """(user, operand index) of each use of each value the gradient flows back through, in the order
    the derivation writes a step's terms (its users in topological order, operands in order)."""
    found: dict[Node, list[tuple[Node, int]]] = {}
    for node in toposort([loss]):
        if node.is_leaf or node not in backward.adjoints:
            continue
        for index, x in enumerate(node.inputs):
            if x in backward.adjoints:
                found.setdefault(x, []).append((node, index))
    return found


class _GradientLatex:
    """Each boxed gradient's formula: the derivation's terms, one per use, with the gradient of a
    folded (unboxed) user replaced by its own formula, so every symbol left names a box."""

    def __init__(self, steps: dict, uses: dict, boxed: set[Node]) -> None:
        self.steps, self.uses, self.boxed = steps, uses, boxed
        self.folded = [n for n in steps if n not in boxed]
        self.made: dict[Node, str] = {}

    def formula(self, node: Node) -> str:
        if node not in self.made:
            terms = self.steps[node].terms or ["1"]
            text = " + ".join(terms)
            for other in self.folded:  # LaTeX symbols end in a brace: \bar{t}_{1} is not in \bar{t}_{12}
                if other is not node and self.steps[other].lhs in text:
                    text = _substituted(text, self.steps[other].lhs, self.formula(other))
            self.made[node] = text
        return self.made[node]


def _substituted(text: str, symbol: str, formula: str) -> str:
    """`text` with `symbol` replaced by `formula`, in parentheses only where it is a factor of more."""
    if text == symbol:
        return formula
    return text.replace(symbol, formula if _enclosed(formula) else group(formula))


def _enclosed(latex: str) -> bool:
    """Whether one pair of \\left( ... \\right) holds the whole formula."""
    depth = 0
    for match in re.finditer(r"\\(left|right)\W", latex):
        depth += 1 if match.group(1) == "left" else -1
        if depth == 0:
            return match.end() == len(latex) and latex.startswith(r"\left(")
    return False


# ------------------------------------------------------------------ LaTeX as plain math

_SYMBOLS = {"odot": "⊙", "cdot": "·", "sigma": "σ", "sum": "Σ", "partial": "∂", "times": "×", "top": "ᵀ",
            "to": "→", "leq": "≤", "geq": "≥", "le": "≤", "ge": "≥", "neq": "≠", "infty": "∞", "pi": "π",
            "cdots": "⋯", "ldots": "…", "dots": "…", "mid": "|", "quad": " ", ",": " ", ";": " ", " ": " ",
            "!": "", "{": "{", "}": "}", "\\": "; ", "max": "max", "min": "min", "log": "log", "exp": "exp",
            "tanh": "tanh", "ln": "ln", "right": "", "left": ""}
_SUB = str.maketrans("0123456789+-=()", "₀₁₂₃₄₅₆₇₈₉₊₋₌₍₎")
_SUP = str.maketrans("0123456789+-=()n", "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁼⁽⁾ⁿ")
_WORD = re.compile(r"[^\W\d_]")


def math_text(latex: str) -> str:
    """A formula printed by graphcomp's LaTeX rules as plain math for a picture: t̄₁₂ = hᵀ ȳ ⊙ σ(a),
    fractions with a slash, sums as Σ, [t₃ > 0] for an indicator; no array library's names."""
    text, _ = _parse(latex, 0)
    text = re.sub(r"\s+", " ", text.replace("-", "−")).strip()
    text = re.sub(r"\+ −\s?", "− ", text)
    text = re.sub(r"(^|[(\[]|= |, )− (?=\S)", r"\1−", text)  # a leading minus sign binds to what follows
    text = re.sub(r"\(((?:exp|log|tanh|σ)\([^()]*\))\)", r"\1", text)  # (exp(x)): exp(x)
    return _single_parentheses(text.replace("( ", "(").replace(" )", ")"))


def _single_parentheses(text: str) -> str:
    """((a + b)) as (a + b): a substituted formula already in parentheses inside a call's."""
    opened, pairs = [], {}
    for at, char in enumerate(text):
        if char == "(":
            opened.append(at)
        elif char == ")" and opened:
            pairs[opened.pop()] = at
    drop = {k for start, end in pairs.items() if pairs.get(start + 1) == end - 1 for k in (start + 1, end - 1)}
    return "".join(char for at, char in enumerate(text) if at not in drop)


def _parse(s: str, i: int, closing: str = "}") -> tuple[str, int]:
    out = ""
    while i < len(s):
        char = s[i]
        if char == closing:
            return out, i + 1
        if char == "{":
            inner, i = _parse(s, i + 1)
            out += inner
        elif char == "\\":
            i, out = _macro(s, i + 1, out)
        elif char in "_^":
            argument, i = _argument(s, i + 1)
            out = _subscript(out, argument) if char == "_" else _superscript(out, argument)
        elif char == "&":
            out += " if "
            i += 1
        else:
            out += char
            i += 1
    return out, i


def _argument(s: str, i: int) -> tuple[str, int]:
    """One macro argument: a {group}, a \\macro, or a single character."""
    while i < len(s) and s[i] == " ":
        i += 1
    if i >= len(s):
        return "", i
    if s[i] == "{":
        return _parse(s, i + 1)
    if s[i] == "\\":
        i, text = _macro(s, i + 1, "")
        return text, i
    return s[i], i + 1


def _macro(s: str, i: int, out: str) -> tuple[int, str]:
    name = re.match(r"[A-Za-z]+|.", s[i:]).group(0)
    i += len(name)
    if name == "partial":  # ∂f, not ∂ f
        return i + len(s[i:]) - len(s[i:].lstrip(" ")), out + "∂"
    if name in ("left", "right"):  # \left( ... \right): the delimiter itself, \left. nothing
        delimiter = s[i] if s[i] != "\\" else s[i + 1]
        return i + (1 if s[i] != "\\" else 2), out + ("" if delimiter == "." else delimiter)
    if name in ("frac", "dfrac"):
        top, i = _argument(s, i)
        bottom, i = _argument(s, i)
        return i, out + f"{_factor(top)}/{_factor(bottom)}"
    if name in ("bar", "overline", "hat", "mathrm", "mathbf", "mathbb", "operatorname", "text", "sqrt", "mathit"):
        argument, i = _argument(s, i)
        if name in ("bar", "overline"):
            return i, out + _barred(argument)
        if name == "hat":
            return i, out + argument + "\u0302"
        if name == "sqrt":
            return i, out + "√" + _factor(argument)
        if name == "mathbb" and argument == "1":  # 1[t > 0] is the Iverson bracket [t > 0]
            return i, out
        if name == "mathbf" and argument == "1" and s[i:i + 1] == "_":  # ones shaped like a value: 1
            _, i = _argument(s, i + 1)
        if name == "operatorname" and argument == "sum":
            argument = "Σ"
        return i, out + argument
    if name in ("begin", "end"):
        environment, i = _argument(s, i)
        return i, out + ({"begin": "{", "end": "}"}[name] if environment == "cases" else "")
    return i, out + _SYMBOLS.get(name, name)


def _factor(text: str) -> str:
    """A piece of a fraction: bare when it is one symbol, else in parentheses."""
    text = text.strip()
    if re.fullmatch(r"[^\s+\-−⊙·/()]*(\((?:[^()]|\([^()]*\))*\))?", text):
        return text
    return f"({text})"


def _barred(text: str) -> str:
    """x̄ for one letter, a combining overline over each letter of a longer name."""
    text = text.strip()
    return text + "\u0304" if len(text) == 1 else "".join(c + "\u0305" for c in text)


def _subscript(out: str, text: str) -> str:
    text = text.strip()
    if text and text.translate(_SUB) != text and all(c in "0123456789+-=()" for c in text):
        return out + text.translate(_SUB)
    if re.fullmatch(r"\w+", text):
        return out + "_" + text
    return out + f"[{text}]"


def _superscript(out: str, text: str) -> str:
    text = text.strip()
    if text == "ᵀ":
        return out + "ᵀ"
    if re.search(r"(^|[^\w\u0300-\u036f])e$", out):  # e^{x}: exp(x)
        return out[:-1] + f"exp({text})"
    if text and all(c in "0123456789+-=()n" for c in text):
        return out + text.translate(_SUP)
    return out + f"^{_factor(text)}"


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
