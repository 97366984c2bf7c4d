"""The derivative graph of the lecture slides as a networkx view: one box per gradient of a value of
the graph as written (∂f/∂x for a graph of scalars, x̄ for tensors) with its chain-rule formula in
math, one edge from ū to x̄ per use of x by u, and given values, each box's value and each edge's
share. Drawn, written and exported like the forward view of `export.py`.
"""
from __future__ import annotations

import re
from typing import Mapping

import networkx as nx

from ..codegen import GeneratedModule
from ..formulas.derivatives import local_derivative
from ..formulas.latex import group
from ..ir import Node, format_shape
from ..ops import OPS, scalar_expr
from .derivation import Derivation, consumers, derivation, local_latex
from .equations import is_scalar_graph, plain_math
from .loop_steps import LoopStep
from .export import FOLD_ABOVE, ExportError, boxed_values, cluster_of, magnitude, put, shape_text
from .math_text import math_text
from .notation import Notation

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
    boxed = boxed_values(graph, nodes, fold)
    steps = {notation.by_name[step.target]: step for step in derived.steps}
    uses = consumers(loss_node, backward)
    latex = _GradientLatex(steps, uses, boxed)
    view = nx.MultiDiGraph(name=f"{graph.name} (derivative graph)", derivative=True)
    loops = {notation.by_name[loop.target]: loop for loop in derived.loops if loop.backward}
    keys = {node: _key(node, notation) for node in steps} | {node: f"{loop.target} backward" for node, loop in loops.items()}
    for node, step in steps.items():
        if node not in boxed:
            continue
        formula = latex.formula(node)
        lhs, rhs = _loop_math(plain_math(step.lhs)), _loop_math(plain_math(formula))
        view.add_node(keys[node], op=node.op, role="loss" if node is loss_node else "gradient",
                      shape=format_shape(node.shape), shape_text=shape_text(node.shape), title=lhs,
                      formula=f"{lhs} = {rhs}", label_formula=f"{lhs} = {rhs}", latex=f"{step.lhs} = {formula}",
                      output=node.is_leaf, leaf=node.is_leaf,
                      cluster=cluster_of(graph, node, notation))
        if at is not None or derived.node_values:
            value = step.value if step.array is None else step.array
            if value is not None:
                put(view.nodes[keys[node]], "value", value)
    for node, loop in loops.items():  # one box for each backward loop, its recursion written inside
        _add_loop_box(view, keys[node], loop)
    _add_edges(view, steps, uses, boxed, derived, notation, scalar, keys)
    formulas = [view.nodes[name]["latex"] for name in view.nodes] + [rhs for loop in loops.values() for _, rhs in loop.forward]
    definitions = [_loop_math(line) for loop in loops.values() for line in LoopStep.text(loop.forward)]
    definitions += _definitions(formulas, derived, graph, notation)
    if definitions:  # the unnamed forward values the formulas read, defined beside them
        text = "\n".join(definitions)
        view.add_node("where", op="note", role="definition", title="where", formula=text, label_formula=text,
                      latex="", shape="", shape_text="", output=False, leaf=False, cluster="")
    return view


def _definitions(formulas: list[str], derived: Derivation, graph, notation: Notation) -> list[str]:
    """'t₁ = x/16' for each unnamed forward value the formulas use, and for those these use in turn, in
    the order of the forward pass: no symbol of the picture is left undefined."""
    unnamed = [s for s in derived.forward
               if s.target in notation.by_name and graph.name_of(notation.by_name[s.target]) is None]
    used, pending = set(), list(formulas)
    while pending:
        text = pending.pop()
        for step in unnamed:
            if step.target not in used and re.search(rf"(?<![\\A-Za-z]){re.escape(step.lhs)}", text):
                used.add(step.target)
                pending.append(step.formula)
    return [f"{math_text(s.lhs)} = {math_text(s.formula)}" for s in unnamed if s.target in used]


def _add_loop_box(view: nx.MultiDiGraph, key: str, loop: LoopStep) -> None:
    """A backward loop's box, with a loop edge: the recursion runs once per step, as the forward one."""
    text = _loop_box_text(loop)
    view.add_node(key, op="scan", role="gradient", shape="", shape_text="", title=text.split("\n")[0],
                  formula=text, label_formula=text, latex=" \\\\ ".join(LoopStep.latex(loop.backward)),
                  output=False, leaf=False, cluster="")
    view.add_edge(key, key, key="loop", loop=True, backward=True, local_text="each step t")


def _loop_box_text(loop: LoopStep) -> str:
    """A backward loop's box: where it starts (h̄_T = h̄), then its step, as the lecture writes it:
    for t = T, …, 1: δ_t = h̄_t ⊙ (1 − h_t²), h̄_{t−1} = δ_t Whᵀ."""
    lines, spans = [f"backward loop of {loop.target}"], []
    for lhs, rhs in loop.backward:
        equation, _, span = rhs.partition(r"\qquad")
        if span.strip() and span.strip() not in spans:
            spans.append(span.strip())
        lines.append(_loop_math(plain_math(f"{lhs} = {equation.strip()}")))
    inside = [k for k, (lhs, _) in enumerate(loop.backward, 1) if "_{t" in lhs]
    if inside and spans:
        header = f"for {', '.join(_loop_math(plain_math(span)) for span in spans)}:"
        lines = lines[:inside[0]] + [header] + [f"  {line}" for line in lines[inside[0]:]]
    return "\n".join(lines)


def _loop_math(text: str) -> str:
    """Σ over the steps of a loop written as the lecture writes it: Σ_t."""
    return text.replace("Σ[t=1]^T ", "Σ_t ")


def _add_edges(view: nx.MultiDiGraph, steps: dict, uses: dict, boxed: set[Node], derived: Derivation,
               notation: Notation, scalar: bool, keys: dict[Node, str]) -> None:
    """One edge ū → x̄ per use of x by u (from the box that holds ū when u is folded; from the
    backward loop's box when u is a loop), with the local derivative of that use (scalar graphs) and,
    given values, the share of x̄ it brings; and one edge into each backward loop from the gradients
    of its loop's results."""
    backward = derived.backward
    for loop in (n for n in keys if n.op == "scan"):
        for user, _ in uses.get(loop, []):
            source = user
            while source not in boxed:
                source = uses[source][0][0]
            view.add_edge(keys[source], keys[loop], key=f"{notation.name(user)}/0", operand=0,
                          user=notation.name(user), backward=True)
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
                put(data, "flow", step.path_values[k], magnitude(step.value))
            elif (user, index) in backward.paths and backward.paths[(user, index)] in derived.node_values:
                put(data, "flow", derived.node_values[backward.paths[(user, index)]], magnitude(step.array))
            if "flow_text" in data:
                data["flow_text"] = f"adds {data['flow_text']}"
            view.add_edge(keys[source], keys[node], key=f"{notation.name(user)}/{index}", **data)


def _key(node: Node, notation: Notation) -> str:
    """A gradient box's name: the code's name of that gradient (d_x), so every view agrees."""
    return notation.gradient(node, plain=True)


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
