"""What the explorer's panel shows for each value of the picture: its formula as its box reads it, its
numbers, the code lines that compute it, and one line per use of it with its local derivative — x·x reads
x twice, so x gets two lines, each with its share; a use inside a box that writes single-use values in
itself (a folded picture) shows the gradient sent back along that route, over names the picture shows.
"""
from __future__ import annotations

import html

import networkx as nx

from ..codegen.names import assigns_value_or_gradient
from ..formulas.derivatives import local_derivative
from ..formulas.latex import group, short_number
from ..ir import Node
from ..ops import OPS, scalar_expr
from .derivation import AdjointRenderer, Derivation, local_text, local_value
from .mathml import math_html
from .notation import Notation


def panel_values(view: nx.DiGraph, notation: Notation, code: list[str], derived: Derivation | None,
                 with_values: bool) -> dict[str, dict]:
    """What the panel shows for each value, by name."""
    uses = Uses(view, notation, derived, with_values)
    values = {}
    for name, data in view.nodes(data=True):
        node = notation.by_name[name]
        latex = notation.value(node) if node.is_leaf else f"{notation.value(node)} = {_folded_latex(node, view, notation)}"
        values[name] = {
            "role": data["role"], "formula": math_html(latex), "shape": data.get("shape_text", ""),
            "value": data.get("value_text", ""), "gradient": data.get("gradient_text", ""),
            "gradient_label": data.get("gradient_label", ""),
            "locals": [html.escape(text) for text in uses.lines(name)],
            "lines": [number for number, line in enumerate(code) if assigns_value_or_gradient(line, name)],
        }
    return values


def _folded_latex(node: Node, view: nx.DiGraph, notation: Notation) -> str:
    """A value's formula in LaTeX as its box reads it: values written inside the box (a folded picture)
    are spelled out, the others named."""
    args = tuple(x.attr("value") if x.op == "const" else notation.value(x) if notation.name(x) in view
                 else group(_folded_latex(x, view, notation)) for x in node.inputs)
    return OPS[node.op].latex(node, args)


class Uses:
    """The panel's local derivatives: one line per use of a value by a box of the picture — x·x reads x
    twice, so x gets two lines, each with its share. The edges of the view say which boxes use a value
    (one edge per use, or one per pair of boxes: either way each use gets its line); a use through values
    written inside the user's box (a folded picture) shows the gradient sent back along that route."""

    def __init__(self, view: nx.DiGraph, notation: Notation, derived: Derivation | None, with_values: bool) -> None:
        self.view, self.notation = view, notation
        self.backward = derived.backward if derived is not None else None
        self.renderer = AdjointRenderer(notation, self.backward, plain=True) if self.backward is not None else None
        self.node_values = derived.node_values if derived is not None and with_values else None
        self.gradients = {step.target: step.value for step in derived.steps} if derived is not None else {}
        self.folded: dict[Node, str] = {}  # values written inside a box, spelled out as the box writes them
        for node in notation.nodes:
            if not self._shown(node):
                self.folded[node] = OPS[node.op].text(node, tuple(
                    short_number(x.attr("value")) if x.op == "const" else self.folded.get(x, notation.name(x))
                    for x in node.inputs))

    def lines(self, name: str) -> list[str]:
        source, edges = self.notation.by_name[name], {}
        for _, user_name, data in self.view.out_edges(name, data=True):
            edges.setdefault(user_name, []).append(data)
        found = []
        for user_name, datas in edges.items():
            user = self.notation.by_name[user_name]
            by_operand = {data.get("operand"): data for data in datas}
            for index, x in enumerate(user.inputs):
                if self._reaches(x, source):
                    found += self._use(name, source, user_name, user, index, by_operand.get(index, {}))
        return found

    def _shown(self, node: Node) -> bool:
        return node in self.notation and self.notation.name(node) in self.view

    def _reaches(self, x: Node, source: Node) -> bool:
        if x is source:
            return True
        if x.op == "const" or self._shown(x):
            return False
        return any(self._reaches(y, source) for y in x.inputs)

    def _use(self, name: str, source: Node, user_name: str, user: Node, index: int, data: dict) -> list[str]:
        flow = f" ({data['flow_text']})" if data.get("flow_text") else ""
        if user.inputs[index] is source and data.get("local_text"):
            return [data["local_text"] + flow]
        if user.inputs[index] is source and OPS[user.op].has_formula:
            local = local_derivative(scalar_expr(user), index)
            text = f"∂{user_name}/∂{name} = {local_text(local, user, self.notation)}"
            if self.node_values and not flow and self.gradients.get(user_name) is not None:  # the edge's data
                slope = local_value(local, user, self.node_values)  # was another use's
                if text.split(" = ")[-1] != short_number(slope):
                    text += f" = {short_number(slope)}"
                flow = f" (adds {short_number(slope * self.gradients[user_name])})"
            return [text + flow]
        formula = self.view.nodes[user_name].get("formula") or user_name
        upstream = self.notation.gradient(user, plain=True)
        target = self.notation.gradient(source, plain=True)
        return [f"through {formula}: {target} += {_unwrapped(text)}{flow}"
                for text in self._routes(user, index, source, upstream)]

    def _routes(self, user: Node, index: int, source: Node, upstream: str) -> list[str]:
        """The gradient sent back from `user` along operand `index` to `source`, as text over names the
        picture shows: through each value written inside the user's box, one text per route."""
        piece = self.backward.paths.get((user, index)) if self.backward is not None else None
        if piece is None:
            return []
        adjoint = self.backward.adjoints.get(user)  # a loop has none of its own: its results have theirs
        text = self.renderer.render(piece, named={**self.folded, **({adjoint: upstream} if adjoint is not None else {})})
        x = user.inputs[index]
        if x is source:
            return [text]
        return [route for k, y in enumerate(x.inputs) if self._reaches(y, source)
                for route in self._routes(x, k, source, text)]


def _unwrapped(text: str) -> str:
    """Text without parentheses that only hold other parentheses: ((a + b)) is (a + b), and a text held
    whole by a pair loses it."""
    pairs, stack = {}, []
    for at, char in enumerate(text):
        if char == "(":
            stack.append(at)
        elif char == ")" and stack:
            pairs[stack.pop()] = at
    if stack:
        return text
    dropped = {at for opening, closing in pairs.items() for at in (opening, closing)
               if pairs.get(opening + 1) == closing - 1 or (opening == 0 and closing == len(text) - 1)}
    shorter = "".join(char for at, char in enumerate(text) if at not in dropped)
    return shorter if shorter == text else _unwrapped(shorter)
