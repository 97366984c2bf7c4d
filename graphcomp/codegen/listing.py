"""The statements of a generated module as data: what the template lays out, and what the formulas
and `graphcomp grad` read to name values as the code does."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from ..ir import Node
from .names import ValueNames


@dataclass(frozen=True)
class Statement:
    target: str
    expr: str
    comment: str = ""
    check: str = ""  # with check_shapes: the line after it that checks the shape it computed
    block: tuple["Statement", ...] = ()  # a `for` loop: `expr` is its header, `block` the lines it repeats
    # (node, its operands' texts): the value this line computes, read by check_finite (codegen/finite.py)
    computes: tuple = field(default=(), compare=False)

    @property
    def line(self) -> str:
        """The statement as one line: an assignment, a bare call (`expr` alone), a comment alone, a header."""
        code = f"{self.target} = {self.expr}" if self.target else self.expr
        note = f"# {self.comment}" if self.comment else ""
        return f"{code}  {note}" if code and note else code or note

    def nested(self, depth: int = 0):
        """(depth, statement) for this statement and, one level deeper, every line of its block."""
        yield depth, self
        for inner in self.block:
            yield from inner.nested(depth + 1)
            if inner.check:  # with check_shapes: the line checking what it computed
                yield depth + 1, Statement("", inner.check)


@dataclass
class FunctionCode:
    """The lines of one generated function (forward, or _gradients), under the module's names."""

    names: ValueNames
    forward_lines: list[Statement] = field(default_factory=list)   # the forward pass
    backward_lines: list[Statement] = field(default_factory=list)  # the gradients, each with its comment
    inlined: dict[Node, str] = field(default_factory=dict)   # node -> its text, written inside its user's line
    order: list[Node] = field(default_factory=list)          # the nodes with lines of their own, in order
    comment_parts: dict = field(default_factory=dict, repr=False, compare=False)  # (node, ...) -> a part of a comment, made once

    def operand(self, node: Node) -> str | int | float:
        """How this function's code reads a value: a number, the text written in its place, or its variable."""
        if node.op == "const":
            return node.attr("value")
        return self.inlined.get(node) or self.names.variable(node)


@dataclass
class Listing:
    """What the generated gradients() computes, node by node, under the names the code uses:
    the formulas (inspection/equations.py) and `graphcomp grad` read it, so that they name values as the code does."""

    names: Mapping[Node, str]               # node -> its variable (the module's `ValueNames`)
    symbols: Mapping[Node, str]             # node -> its LaTeX symbol (W_{1}, t_{3}, \bar{h}, ...)
    inlined: dict[Node, str]                # node -> the code text written inside its user's line
    statements: dict[Node, list[Statement]]  # node -> the lines computing it (common parts first)
    order: list[Node]                       # the nodes with lines of their own, in the order of gradients()
