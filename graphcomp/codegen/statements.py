"""The lines of a generated function: each node's NumPy text, in topological order, with cheap views
used once written inside the line that uses them, and the repeated parts of a fused formula computed
once each. Forward and backward lines are kept apart, and backward lines carry their comment.
"""
from __future__ import annotations

from typing import Iterable

import sympy as sp

from ..diff.reverse import Backward
from ..formulas.printing import number_text, numpy_text, sympy_number
from ..formulas.simplify import placeholder
from ..ir import Node, toposort
from ..ops import OPS, scalar_expr
from .comments import comment, literal
from .listing import Statement
from .names import CodeNames


class Statements:
    """Plans the statements of `forward` and `gradients`; a node's text is made once and shared by both,
    so that both name its parts alike."""

    def __init__(self, names: CodeNames, backward: Backward | None, dtype: str, inline: bool = True) -> None:
        self.names, self.backward, self.dtype = names, backward, dtype
        self.inline = inline  # False: every value gets a line (and a name), as a traced derivation needs
        self.uses: dict[Node, int] = {}  # how often each value is read: set before planning
        self.statement_of: dict[Node, list[Statement]] = {}
        self._cse: dict[Node, tuple[list[tuple[str, str]], str]] = {}
        self._emitted: dict[Node, str] = {}
        # values the code computes as Python numbers (counts of examples, formulas of counts and constants),
        # which the standard's functions refuse: filled in topological order as statements are planned
        self._numbers: dict[Node, bool] = {}

    def operand(self, node: Node, inlined: dict[Node, str]) -> str | int | float:
        if node.op == "const":
            return node.attr("value")
        return inlined.get(node) or self.names.name(node)

    def plan(self, roots: Iterable[Node]) -> tuple[list[Statement], list[Statement], dict[Node, str]]:
        """Forward and backward statements computing `roots`, and the text of inlined nodes."""
        order = [n for n in toposort(roots) if not n.is_leaf]
        forward, backward, inlined = [], [], {}
        for node in order:
            self._numbers[node] = node.op == "count" or (OPS[node.op].elementwise and all(
                x.op == "const" or self._numbers.get(x, False) for x in node.inputs))
            args = tuple(self.operand(x, inlined) for x in node.inputs)
            if OPS[node.op].transparent and node not in self.names:
                inlined[node] = literal(args[0])
                continue
            if node not in self._emitted:  # forward() and gradients() both emit the forward nodes
                self._emitted[node] = _constant_text(node) or OPS[node.op].emit(
                    node, tuple(_operand_text(node, a, self.dtype) for a in args))
            expr = self._emitted[node]
            if self._inlined(node):
                inlined[node] = expr
                continue
            shared, expr = self._common_parts(node, args, expr)
            if self._numbers[node]:  # a line of its own is read by functions too: an array, not an int
                expr = f"xp.asarray({expr}, dtype=xp.{self.dtype})"
            name = self.names.name(node)
            self.statement_of[node] = [Statement(part, text) for part, text in shared] + [Statement(name, expr)]
            if node in self.names.forward_nodes:
                forward.extend(self.statement_of[node])
            else:
                note = comment(node, self.backward, self.names.name, lambda x: self.operand(x, inlined))
                backward.extend(Statement(line.target, line.expr, note) for line in self.statement_of[node])
        return forward, backward, inlined

    def _common_parts(self, node: Node, args: tuple, expr: str) -> tuple[list[tuple[str, str]], str]:
        """A fused formula's repeated subexpressions, computed once each (sympy.cse): ([(name, text)], main text).

        Cached per node, so `forward` and `gradients` give them the same names.
        """
        if node.op != "elementwise":
            return [], expr
        if node not in self._cse:
            bound = scalar_expr(node).xreplace({
                placeholder(i): sympy_number(a) if not isinstance(a, str) else sp.Symbol(a, real=True)
                for i, a in enumerate(args)})
            replacements, (reduced,) = sp.cse(bound, symbols=sp.numbered_symbols("_part", real=True), order="none")
            kept, conditions = _without_conditions(replacements)
            names = {symbol: sp.Symbol(self.names.fresh_temporary(), real=True) for symbol, _ in kept}
            reduced = reduced.xreplace(conditions).xreplace(names)
            numbers = {sp.Symbol(a, real=True) for a, x in zip(args, node.inputs) if isinstance(a, str) and self._numbers.get(x)}
            parts = []
            for symbol, part in kept:
                text = numpy_text(part.xreplace(names))
                if part.free_symbols <= numbers:  # from counts of examples alone: a Python number, made an array
                    numbers.add(symbol)
                    text = f"xp.asarray({text}, dtype=xp.{self.dtype})"
                parts.append((str(names[symbol]), text))
            self._cse[node] = (parts, numpy_text(reduced) if kept else expr)
        return self._cse[node]

    def _inlined(self, node: Node) -> bool:
        """A cheap view used once, with no name of its own to show: written inside its user's line.

        The same decision holds in `forward` and `gradients`, so temporaries keep one numbering.
        """
        has_adjoint = self.backward is not None and node in self.backward.adjoints
        return (self.inline and OPS[node.op].inlined and self.uses.get(node) == 1 and not has_adjoint
                and node not in self.names)


def _without_conditions(replacements: list) -> tuple[list, dict]:
    """sympy.cse's parts without the conditions, which stay inside the formula that tests them (a mask
    takes its dtype from a number): (kept parts, {condition's symbol: condition})."""
    conditions: dict[sp.Symbol, sp.Basic] = {}
    kept = []
    for symbol, part in replacements:
        part = part.xreplace(conditions)
        if isinstance(part, sp.logic.boolalg.Boolean):
            conditions[symbol] = part
        else:
            kept.append((symbol, part))
    return kept, conditions


def _constant_text(node: Node) -> str | None:
    """An elementwise op of numbers alone (exp(1) as the user wrote it) as its value, computed here."""
    if not OPS[node.op].elementwise or not node.inputs or any(x.op != "const" for x in node.inputs):
        return None
    return numpy_text(scalar_expr(node).xreplace({placeholder(i): sympy_number(x.attr("value"))
                                                  for i, x in enumerate(node.inputs)}))


def _operand_text(node: Node, arg: str | int | float, dtype: str) -> str:
    """A variable name, or a number; a number read by an array method (reshape, .T, ...) is an array."""
    if isinstance(arg, str) or OPS[node.op].elementwise or OPS[node.op].number_operands:
        return literal(arg)
    return f"xp.asarray({number_text(arg)}, dtype=xp.{dtype})"
