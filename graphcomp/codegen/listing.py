"""The statements of a generated module as data: what the template lays out, and what the formulas
and `graphcomp grad` read to name values as the code does."""
from __future__ import annotations

from dataclasses import dataclass

from ..ir import Node


@dataclass(frozen=True)
class Statement:
    target: str
    expr: str
    comment: str = ""
    check: str = ""  # with check_shapes: the line after it that checks the shape it computed


@dataclass
class Listing:
    """What the generated gradients() computes, node by node, under the names the code uses:
    the formulas (inspection/equations.py) and `graphcomp grad` read it, so that they name values as the code does."""

    names: dict[Node, str]                  # node -> its variable
    symbols: dict[Node, str]                # node -> its LaTeX symbol (W_{1}, t_{3}, \bar{h}, ...)
    inlined: dict[Node, str]                # node -> the code text written inside its user's line
    statements: dict[Node, list[Statement]]  # node -> the lines computing it (common parts first)
    order: list[Node]                       # the nodes with lines of their own, in the order of gradients()
