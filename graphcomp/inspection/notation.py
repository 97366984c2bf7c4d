"""The graph as written, as readers see it: each value's name and LaTeX symbol (handed out by the one
naming authority, `codegen.names.ValueNames`) and each node's formula over its operands; and the small
number and operand formats that the equations, derivations and the report share.
"""
from __future__ import annotations

import re

from ..codegen.names import ValueNames
from ..formulas.latex import latex_number, short_number
from ..ir import Graph, Node
from ..ops import OPS


class Notation:
    """The values of one graph as written (every value the outputs depend on but the numbers), with
    temporaries numbered in the graph's topological order."""

    def __init__(self, graph: Graph) -> None:
        self.names = ValueNames.as_written(graph)
        self.nodes = [node for node in graph.nodes() if node.op != "const"]
        self._shown = set(self.nodes)
        self.by_name = {self.names.label(node): node for node in self.nodes}

    def __contains__(self, node: Node) -> bool:
        return node in self._shown

    def name(self, node: Node) -> str:
        """The value's name: the user's, or its temporary (t3)."""
        return self.names.label(node)

    def value(self, node: Node) -> str:
        """The value in LaTeX: its symbol, or the number it is."""
        if node.op == "const":
            return latex_number(node.attr("value"))
        return self.names.symbol(node)

    def gradient(self, node: Node, plain: bool = False) -> str:
        """The value's gradient: \\bar{t}_{3} in LaTeX, d_t3 as plain text."""
        return self.names.gradient_label(node) if plain else self.names.gradient_symbol(node)

    def formula(self, node: Node) -> str:
        """The node's own formula over its operands' names."""
        return OPS[node.op].latex(node, tuple(self._operand(x) for x in node.inputs))

    def text(self, node: Node) -> str:
        """The node's own formula as plain text: u + v."""
        args = tuple(short_number(x.attr("value")) if x.op == "const" else self.name(x) for x in node.inputs)
        return OPS[node.op].text(node, args)

    def _operand(self, node: Node) -> str | int | float:
        return node.attr("value") if node.op == "const" else self.value(node)


def signed(value: float) -> str:
    text = latex_number(value)
    return rf"\left({text}\right)" if value < 0 else text


def grouped_text(text: str) -> str:
    """Parenthesise a compound plain-text operand; names, positive numbers and calls such as f(x) stay bare."""
    call = re.fullmatch(r"[A-Za-z_]\w*\((.*)\)", text)
    number = re.fullmatch(r"\d+(\.\d*)?(e[+-]?\d+)?", text)
    if text.isidentifier() or number or (call and _balanced(call.group(1))):
        return text
    return f"({text})"


def _balanced(text: str) -> bool:
    depth = 0
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0


def signed_text(value: float) -> str:
    return f"({short_number(value)})" if value < 0 else short_number(value)
