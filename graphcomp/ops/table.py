"""The op table's rule signature and registry: every op of the IR is declared once, by `register`.

An `Op` is one keyword-built row that says everything about an op: how many operands it takes, its
shape rule, its NumPy emission, its derivative rule (VJP), how it reads as a formula (text and LaTeX),
and every property the compiler asks of it (inlined in the line that uses it, reads plain numbers,
transparent, an identity on scalars). Adding an op is one row in the module of its family
(pointwise.py, linalg.py, shape.py, nn.py), plus the user-facing function in `frontend/dsl.py`.

Elementwise ops are declared by a SymPy formula over scalar placeholders; their
shape rule (broadcasting), derivative rule (`sympy.diff`, through the forward
output where cheaper), formula and default emission all follow from it.
Tensor ops (matmul, reductions, reshapes) carry closed-form VJP rules.

Rule signatures, fixed for every op:
    shape(input_shapes, attrs) -> shape
    emit(node, args) -> NumPy expression text   (args: variable names or number literals)
    vjp(node, g) -> one Node or None per input  (g: adjoint of node, same shape)
    jvp(node, tangents) -> Node or None          (tangents: one Node or None per input; the node's tangent)
    batch(node, operands) -> Node or None        (operands: per input, its batched value (leading axis k) or
                                                  None where it is not batched; the node's batched value)
    text(node, args) / latex(node, args) -> formula
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import sympy as sp

from ..errors import ShapeError
from ..formulas.printing import number_text
from ..ir.graph import OPS, Node, apply
from ..ir.shapes import Shape, normalize_axes

ShapeRule = Callable[[tuple, dict], Shape]
Emit = Callable[[Node, tuple], str]
Vjp = Callable[[Node, Node], tuple]
Jvp = Callable[[Node, tuple], Optional[Node]]


@dataclass(frozen=True, kw_only=True)
class Op:
    """One row of the op table; every field is given by keyword."""

    name: str
    """The op's name in the IR (`Node.op`) and in `apply(name, ...)`."""
    arity: Optional[int]
    """How many operands it takes; None for any number (concat, fused formulas)."""
    shape: ShapeRule
    """shape(input_shapes, attrs) -> the output's shape; raises ShapeError for operands that do not fit."""
    emit: Emit
    """emit(node, args) -> the NumPy expression computing the node from its operands' texts."""
    vjp: Optional[Vjp]
    """vjp(node, g) -> one node or None per operand: g carried back to it. None: the op has no derivative
    rule, and differentiating through it is an error naming the op."""
    jvp: Optional[Jvp] = None
    """jvp(node, tangents) -> the node's tangent (forward mode), given one tangent node or None (zero) per
    operand; None when it is zero. Ops declared by a formula need none (the formula's derivatives give it);
    for the others without one, forward mode transposes the op's vjp, which is linear in its adjoint."""
    text: Emit
    """text(node, args) -> the formula as plain text (comments, the terminal)."""
    latex: Emit
    """latex(node, args) -> the formula as LaTeX."""
    scalar: Optional[Callable[..., sp.Expr]] = None
    """Elementwise ops: the SymPy formula over scalar placeholders of the operands (and the attrs)."""
    canonical: Optional[Callable[[dict, tuple], dict]] = None
    """canonical(attrs, input_shapes) -> the same attrs written one way (axes counted from 0 and sorted,
    defaults filled in), applied by `apply` before structural sharing: equal computations are one node."""
    inlined: bool = False
    """A cheap view (transpose, reshape) that reads better inside the line using it, `d_z @ W.T`, when
    that line is its only user."""
    number_operands: bool = False
    """The emitted code takes a plain number as an operand; other ops call array methods on theirs."""
    transparent: bool = False
    """Matters only to differentiation: the value is its operand's, under the operand's name."""
    scalar_identity: bool = False
    """Leaves a scalar unchanged: a scalar graph may use it and still have a closed-form gradient."""
    selects: Optional[Callable[[Node], object]] = None
    """One result of a value that is a tuple of arrays (a loop's): selects(node) -> which one. Reverse mode
    hands its adjoint to that value's rule, which gets {result: adjoint} for all its results at once."""
    into: Optional[Callable[[Node, tuple, str], Optional[str]]] = None
    """into(node, args, out) -> NumPy code writing the node's value into the existing array `out` of its
    shape (`np.matmul(a, b, out=out)`), for the training step's in-place form (codegen/in_place.py); None:
    the op keeps its ordinary line there. Ops declared by a formula need none (formulas/in_place.py)."""
    batch: Optional[Callable[[Node, tuple], Optional[Node]]] = None
    """batch(node, operands) -> the node computed for k values at once (diff/batching.py, the way whole
    Jacobians are built): each operand is given as its batched value, with one extra leading axis of size
    k, or as None where it is not batched (the node's own operand serves every one of the k); the result
    has shape (k,) + node.shape, or is None where the value does not depend on the batched operands (a
    shape reference). Ops declared by a formula need none (broadcasting does it); for the others without
    one, the batch is computed by a loop over its k values."""

    @property
    def has_formula(self) -> bool:
        """Declared by a scalar formula (`pointwise` ops and the fused `formula` op): applied at every
        position, its local derivatives come from SymPy."""
        return self.scalar is not None


def not_differentiable(node: Node, g: Node) -> tuple:
    """The derivative rule of an op no gradient flows through (labels, masks, counts, stop_gradient):
    None for every operand. Unlike `vjp=None`, differentiating through it is no error."""
    return (None,) * len(node.inputs)


def linear_in(*operands: int) -> Jvp:
    """The forward-mode rule of an op linear in each of `operands` (the others give shapes, ids or
    settings): the op applied with one operand replaced by its tangent, summed over those that have
    one. transpose(x)' = transpose(ẋ); (A B)' = Ȧ B + A Ḃ."""
    def jvp(node: Node, tangents: tuple) -> Optional[Node]:
        terms = []
        for i in operands:
            if tangents[i] is not None:
                args = list(node.inputs)
                args[i] = tangents[i]
                terms.append(apply(node.op, *args, **dict(node.attrs)))
        total = terms[0] if terms else None
        for term in terms[1:]:
            total = apply("add", total, term)
        return total
    return jvp


def like(operand: int) -> ShapeRule:
    """The shape rule of an op whose value has the shape of its operand number `operand`."""
    return lambda shapes, attrs: shapes[operand]


def axes_canonical(what: str, keepdims: bool = False, one: bool = False) -> Callable[[dict, tuple], dict]:
    """The canonical hook of an op over axes of its first operand: an axis counted from 0, several
    sorted (one as an int, the same computation as the tuple of it), None for every axis; with
    `keepdims`, keepdims filled as True or False. `one`: exactly one axis is allowed."""
    def canonical(attrs: dict, shapes: tuple) -> dict:
        axis = attrs.get("axis")
        if axis is not None or one:
            axes = normalize_axes(axis, len(shapes[0]), what)
            if one and len(axes) != 1:
                raise ShapeError(f"{what}: axis must be one axis, got {axis!r}")
            axis = axes[0] if len(axes) == 1 else axes
        return {**attrs, "axis": axis, **({"keepdims": bool(attrs.get("keepdims", False))} if keepdims else {})}
    return canonical


def reduced_axes(axis: int | tuple[int, ...] | None, ndim: int) -> tuple[int, ...]:
    """The axes a canonical `axis` attr names, as a tuple: None is every axis."""
    return tuple(range(ndim)) if axis is None else (axis,) if isinstance(axis, int) else axis


def register(op: Op) -> Op:
    if op.name in OPS:
        raise ValueError(f"op {op.name!r} is declared twice")
    OPS[op.name] = op
    return op


def attr_texts(node: Node) -> dict[str, str]:
    """The node's attributes as text, for the format strings of emission and text rules."""
    return {k: number_text(v) if isinstance(v, (int, float)) else str(v) for k, v in node.attrs}
