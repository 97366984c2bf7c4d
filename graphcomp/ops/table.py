"""The op table's rule signature and registry: every op of the IR is declared once, by `register`.

An `Op` says how many operands it takes, its shape rule, its NumPy emission,
its derivative rule (VJP), and how it reads as a formula (text and LaTeX).
Adding an op is one entry in the module of its family (elementwise.py, linalg.py, shape.py, nn.py),
plus the user-facing function in `frontend/dsl.py`.

Elementwise ops are declared by a SymPy formula over scalar placeholders; their
shape rule (broadcasting), derivative rule (`sympy.diff`, through the forward
output where cheaper), formula and default emission all follow from it.
Tensor ops (matmul, reductions, reshapes) carry closed-form VJP rules.

Rule signatures, fixed for every op:
    shape(input_shapes, attrs) -> shape
    emit(node, args) -> NumPy expression text   (args: variable names or number literals)
    vjp(node, g) -> one Node or None per input  (g: adjoint of node, same shape)
    text(node, args) / latex(node, args) -> formula
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import sympy as sp

from ..formulas.printing import number_text
from ..ir.graph import OPS, Node
from ..ir.shapes import Shape

ShapeRule = Callable[[tuple, dict], Shape]
Emit = Callable[[Node, tuple], str]
Vjp = Callable[[Node, Node], tuple]


@dataclass(frozen=True)
class Op:
    name: str
    arity: Optional[int]
    shape: ShapeRule
    emit: Emit
    vjp: Optional[Vjp]
    text: Emit
    latex: Emit
    scalar: Optional[Callable[..., sp.Expr]] = None  # elementwise ops: formula of placeholders
    helpers: tuple[str, ...] = ()  # functions of templates/helpers.py.j2 the emitted code calls

    @property
    def elementwise(self) -> bool:
        return self.scalar is not None


def register(op: Op) -> Op:
    if op.name in OPS:
        raise ValueError(f"op {op.name!r} is declared twice")
    OPS[op.name] = op
    return op


def attr_texts(node: Node) -> dict[str, str]:
    """The node's attributes as text, for the format strings of emission and text rules."""
    return {k: number_text(v) if isinstance(v, (int, float)) else str(v) for k, v in node.attrs}
