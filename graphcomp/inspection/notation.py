"""The LaTeX names of one graph's values, and the small number and operand formats that the
equations, derivations and the report share.
"""
from __future__ import annotations

import re

from ..formulas.latex import latex_number, short_number
from ..formulas.symbols import symbol
from ..ir import Graph, Node
from ..ops import OPS


class Notation:
    """Names of the values of one graph, in LaTeX."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.names: dict[Node, str] = {}
        nodes = graph.nodes()
        taken = {symbol(n) for n in map(graph.name_of, nodes) if n is not None}  # a user's t_2 is not t2
        count = 0
        for node in nodes:
            name = graph.name_of(node)
            if name is None and node.op != "const":
                count += 1
                while symbol(f"t{count}") in taken:
                    count += 1
                name = f"t{count}"
            if name is not None:
                self.names[node] = name

    def value(self, node: Node) -> str:
        if node.op == "const":
            return latex_number(node.attr("value"))
        return symbol(self.names[node])

    def formula(self, node: Node) -> str:
        """The node's own formula over its operands' names."""
        return OPS[node.op].latex(node, tuple(self._operand(x) for x in node.inputs))

    def text(self, node: Node) -> str:
        """The node's own formula as plain text: u + v."""
        args = tuple(short_number(x.attr("value")) if x.op == "const" else self.names[x] for x in node.inputs)
        return OPS[node.op].text(node, args)

    def _operand(self, node: Node) -> str | int | float:
        return node.attr("value") if node.op == "const" else self.value(node)


def signed(value: float) -> str:
    text = latex_number(value)
    return rf"\left({text}\right)" if value < 0 else text


def grouped_text(text: str) -> str:
    """Parenthesise a compound plain-text operand; names and calls such as f(x) stay bare."""
    call = re.fullmatch(r"[A-Za-z_]\w*\((.*)\)", text)
    if text.isidentifier() or (call and _balanced(call.group(1))):
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
