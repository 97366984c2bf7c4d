"""What the batching rules of the op table share (the `batch` column, diff/batching.py): a batched value
carries one extra leading axis of size k, so a rule lines its operands up under that axis (`lifted`),
makes an operand that is not batched into one that is where the op needs every operand alike
(`materialized`), and counts axes one further (`shifted`). Also the two ops whole derivative matrices
add: `eye`, the identity whose rows are the basis a Jacobian is batched over, and `jacobian`, the mark
that a value is ∂y/∂x, so that formulas show it as its defining fraction.
"""
from __future__ import annotations

from typing import Any, Sequence

from ..errors import ShapeError
from ..formulas.latex import group
from ..ir.graph import Node, apply
from ..ir.shapes import Shape
from .table import Op, not_differentiable, reduced_axes, register

WHOLE = ("slice", None, None, None)  # an index entry that takes an axis whole


def batch_size(operands: Sequence[Node | None]) -> int:
    """k: the leading axis of the batched operands (at least one is batched)."""
    return next(b for b in operands if b is not None).shape[0]


def reshaped(x: Node, shape: Shape) -> Node:
    """x with the same elements in `shape`; x itself when it has it already."""
    return x if tuple(x.shape) == tuple(shape) else apply("reshape", x, shape=tuple(shape))


def lifted(batched: Node, ndim: int) -> Node:
    """A batched value (k, *s) as (k, 1, ..., 1, *s) of rank 1 + ndim: under broadcasting, its leading
    axis then meets the batch axis k of the others, not one of their own axes."""
    k, shape = batched.shape[0], batched.shape[1:]
    return reshaped(batched, (k,) + (1,) * (ndim - len(shape)) + tuple(shape))


def materialized(x: Node, k: int) -> Node:
    """A value that is not batched, repeated k times along a new leading axis (a broadcast view)."""
    ones = apply("index", apply("eye", x, size=k), index=(WHOLE, ("int", 0)))  # (k,): gives the size k
    flat = reshaped(x, (1,) + tuple(x.shape))
    return apply("expand", flat, flat, reshaped(ones, (k,) + (1,) * x.ndim))


def all_batched(node: Node, operands: Sequence[Node | None]) -> list[Node]:
    """Every operand batched: as given, or repeated k times."""
    k = batch_size(operands)
    return [materialized(x, k) if b is None else b for x, b in zip(node.inputs, operands)]


def shifted(axis: Any, ndim: int) -> Any:
    """A canonical `axis` attr of an operand of rank ndim, counted in its batched value: None (every
    axis) becomes every axis but the batch axis."""
    axes = tuple(a + 1 for a in reduced_axes(axis, ndim))
    return axes[0] if isinstance(axis, int) else axes


def over_axes(node: Node, operands: Sequence[Node | None]) -> Node:
    """The rule of an op over axes of its first operand (reductions, the softmax family): the same op on
    the batched operands, its axes counted one further."""
    attrs = dict(node.attrs)
    if not reduced_axes(attrs.get("axis"), node.inputs[0].ndim):  # a reduction of a scalar: the scalar
        return operands[0]
    attrs["axis"] = shifted(attrs.get("axis"), node.inputs[0].ndim)
    return apply(node.op, *all_batched(node, operands), **attrs)


def _eye_shape(shapes: tuple, attrs: dict) -> Shape:
    size = attrs["size"]
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ShapeError(f"eye: size must be a positive int, got {size!r}")
    return (size, size)


# The identity matrix of `size`, in the dtype of its operand (which gives nothing else): the basis a
# Jacobian is batched over, one row per output (reverse mode) or per input (forward mode).
register(Op(name="eye", arity=1, shape=_eye_shape,
            emit=lambda node, args: f"xp.eye({node.attr('size')}, dtype={args[0]}.dtype)",
            vjp=not_differentiable, batch=lambda node, operands: None,
            text=lambda node, args: f"eye({node.attr('size')})",
            latex=lambda node, args: rf"\mathbf{{I}}_{{{node.attr('size')}}}"))


def _jacobian_latex(node: Node, args: tuple) -> str:
    """∂y/∂x, or ∂²f/∂x² for a Hessian: the value's definition, over the names of y and x."""
    of, wrt = args[1], args[2]
    if node.attr("order") == 2:
        return rf"\frac{{\partial^{{2}} {group(of)}}}{{\partial {{{wrt}}}^{{2}}}}"
    return rf"\frac{{\partial {group(of)}}}{{\partial {wrt}}}"


def _jacobian_text(node: Node, args: tuple) -> str:
    name = "hessian" if node.attr("order") == 2 else "jacobian"
    return f"{name}({args[1]}, {args[2]})"


# The value of operand 0, marked as the whole derivative of operand 1 with respect to operand 2 (which
# are read by nothing but the formulas): gc.jacobian and gc.hessian return it.
register(Op(name="jacobian", arity=3, shape=lambda shapes, attrs: shapes[0],
            emit=lambda node, args: str(args[0]),
            vjp=lambda node, g: (g, None, None), jvp=lambda node, tangents: tangents[0],
            batch=lambda node, operands: operands[0],
            text=_jacobian_text, latex=_jacobian_latex, number_operands=True))
