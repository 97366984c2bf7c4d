"""Linear algebra and reductions: matmul, outer, transpose, sum/mean/max/min over axes, and the
helpers their derivatives use (tie_share, count), each with a closed-form derivative rule.
"""
from __future__ import annotations

import math

from ..errors import ShapeError
from ..formulas.latex import axis_subscript, group, latex_operator, transposed
from ..formulas.printing import axis_argument, subscript_text, tuple_text
from ..formulas.derivatives import G, placeholder
from ..ir.graph import OPS, Node, apply, constant
from ..ir.shapes import Shape, broadcast_shapes, format_shape, shapes_text
from .batching import batch_size, lifted, over_axes, reshaped
from .pointwise import fuse
from .shape import reshape, sum_to
from .table import Emit, Op, ShapeRule, axes_canonical, like, linear_in, not_differentiable, reduced_axes, register


def _matmul_shape(shapes: tuple, attrs: dict) -> Shape:
    a, b = shapes
    if not a or not b:
        raise ShapeError(f"matmul: operands must have at least one dimension, got shapes {shapes_text(shapes)}")
    a2 = (1,) + a if len(a) == 1 else a
    b2 = b + (1,) if len(b) == 1 else b
    if a2[-1] != b2[-2]:  # None meets None: a sum over the batch, as in the weight gradient hᵀ g
        raise ShapeError(f"matmul: shapes {shapes_text(shapes)} do not fit: "
                         f"inner dimensions {a2[-1]} and {b2[-2]} differ")
    batch = broadcast_shapes((a2[:-2], b2[:-2]), "matmul (batch axes)")
    out = batch + (a2[-2], b2[-1])
    if len(a) == 1:
        out = out[:-2] + out[-1:]
    if len(b) == 1:
        out = out[:-1]
    return out


def swap_last(x: Node) -> Node:
    """xᵀ over the last two axes."""
    if x.ndim == 2:
        return apply("transpose", x, axes=None)
    axes = tuple(range(x.ndim - 2)) + (x.ndim - 1, x.ndim - 2)
    return apply("transpose", x, axes=axes)


def _matmul_vjp(node: Node, g: Node) -> tuple:
    """dA = g Bᵀ, dB = Aᵀ g, with vectors treated as 1-row / 1-column matrices."""
    a, b = node.inputs
    if a.ndim == 1 and b.ndim == 1:  # inner product: da = g b, db = g a
        return fuse(G * placeholder(0), {G: g, placeholder(0): b}, b.shape), fuse(G * placeholder(0), {G: g, placeholder(0): a}, a.shape)
    if a.ndim == 2 and b.ndim == 1:  # matrix · vector: dA = g bᵀ (outer), dB = Aᵀ g
        return apply("outer", g, b), apply("matmul", swap_last(a), g)
    if a.ndim == 1 and b.ndim == 2:  # vector · matrix: dA = B g, dB = a gᵀ (outer)
        return apply("matmul", b, g), apply("outer", a, g)
    a2 = reshape(a, (1,) + a.shape) if a.ndim == 1 else a
    b2 = reshape(b, b.shape + (1,)) if b.ndim == 1 else b
    g2 = g
    if a.ndim == 1:
        g2 = reshape(g2, g2.shape[:-1] + (1,) + g2.shape[-1:] if b.ndim > 1 else g2.shape + (1,))
    if b.ndim == 1:
        g2 = reshape(g2, g2.shape + (1,))
    da = reshape(sum_to(apply("matmul", g2, swap_last(b2)), a2.shape), a.shape)
    if by_rows(a, b):  # a weight's gradient: one product over all rows, not a stack of products summed
        return da, apply("rows_matmul", a, g)
    db = reshape(sum_to(apply("matmul", swap_last(a2), g2), b2.shape), b.shape)
    return da, db


def by_rows(a: Node, b: Node) -> bool:
    """Whether a @ b is a stack (N, T, ..., K) times a matrix of known shape (K, M) (a weight): computed as
    one 2-D product over all N·T·... rows of a, where NumPy's matmul multiplies the stack matrix by matrix."""
    return a.ndim >= 3 and b.ndim == 2 and all(isinstance(n, int) and not isinstance(n, bool) for n in b.shape)


def _matmul_emit(node: Node, args: tuple) -> str:
    if by_rows(*node.inputs):
        return f"_matmul_rows(xp, {args[0]}, {args[1]})"
    return f"{args[0]} @ {args[1]}"


def _rows_times(rows: Node, matrix: Node) -> Node:
    """rows @ matrix; the matrix itself where the rows are those of the identity (a Jacobian's basis)."""
    return matrix if rows.op == "eye" and rows.shape == matrix.shape[:1] * 2 else apply("matmul", rows, matrix)


def _matmul_batch(node: Node, operands: tuple) -> Node:
    """k products at once. A batched operand times a fixed matrix is one product (k, ..., K) @ (K, M),
    which the emission's by-rows path computes as one 2-D product; a fixed matrix times k vectors is the
    vectors as rows times its transpose; otherwise vectors become 1-row / 1-column matrices, a batched
    operand gets axes of size 1 after its batch axis up to the other's rank, and matmul's broadcasting
    over leading axes does the rest."""
    a, b = node.inputs
    ab, bb = operands
    k = batch_size(operands)
    if bb is None and b.ndim == 2:
        return _rows_times(ab, b)
    if ab is None and a.ndim == 2 and b.ndim == 1:
        return _rows_times(bb, swap_last(a))
    a2, b2 = (reshape(a, (1,) + a.shape) if a.ndim == 1 else a), (reshape(b, b.shape + (1,)) if b.ndim == 1 else b)
    rank = max(a2.ndim, b2.ndim)
    if ab is not None:
        a2 = lifted(reshaped(ab, (k,) + a2.shape), rank)
    if bb is not None:
        b2 = lifted(reshaped(bb, (k,) + b2.shape), rank)
    return reshaped(apply("matmul", a2, b2), (k,) + node.shape)


def _matmul_into(node: Node, args: tuple, out: str) -> str | None:
    return None if by_rows(*node.inputs) else f"np.matmul({args[0]}, {args[1]}, out={out})"


register(Op(name="matmul", arity=2, shape=_matmul_shape, into=_matmul_into,
            emit=_matmul_emit, vjp=_matmul_vjp, jvp=linear_in(0, 1), batch=_matmul_batch,
            text=lambda node, args: f"{args[0]} @ {args[1]}",
            latex=lambda node, args: f"{group(args[0])} {group(args[1])}"))


def _rows_matmul_shape(shapes: tuple, attrs: dict) -> Shape:
    a, g = shapes
    if len(a) < 2 or len(g) != len(a) or a[:-1] != g[:-1]:
        raise ShapeError(f"rows_matmul: shapes {shapes_text(shapes)} must be (..., K) and (..., M) over the same rows")
    return (a[-1], g[-1])


def _rows_matmul_emit(node: Node, args: tuple) -> str:
    a, g = node.inputs
    return f"xp.reshape({args[0]}, (-1, {a.shape[-1]})).T @ xp.reshape({args[1]}, (-1, {g.shape[-1]}))"


def _rows_matmul_latex(node: Node, args: tuple) -> str:
    """As the same sum is written for a stack: 1ᵀ (aᵀ ḡ) summed over the leading axes."""
    a, g = node.inputs
    t = swap_last(a)
    product = apply("matmul", t, g)
    total = sum_to(product, node.shape)
    inner = OPS["matmul"].latex(product, (OPS["transpose"].latex(t, (args[0],)), args[1]))
    return OPS["sum_to"].latex(total, (inner,))


def _rows_matmul_batch(node: Node, operands: tuple) -> Node:
    """k sums over the rows at once: the products aᵀ g of the stacks' matrices (k, ..., K, M), summed over
    the axes between the batch axis and the matrices."""
    a, g = node.inputs
    ab, gb = operands
    product = apply("matmul", swap_last(a if ab is None else ab), g if gb is None else gb)
    axes = tuple(range(1, a.ndim - 1))
    return apply("sum", product, axis=axes) if axes else product


# Σ over every row of a (..., K) and g (..., M) of a_rowᵀ g_row, (K, M): the gradient of a weight W of
# a @ W for a stack a, computed as one product of the rows laid out as matrices (N·T, K)ᵀ (N·T, M).
register(Op(name="rows_matmul", arity=2, shape=_rows_matmul_shape, emit=_rows_matmul_emit,
            vjp=lambda node, h: (apply("matmul", node.inputs[1], swap_last(h)), apply("matmul", node.inputs[0], h)),
            jvp=linear_in(0, 1), batch=_rows_matmul_batch,
            text=lambda node, args: f"rows_matmul({args[0]}, {args[1]})", latex=_rows_matmul_latex))


def _outer_factors(node: Node, operands: tuple) -> tuple[Node, Node]:
    """a as a column and b as a row, each with its batch axis first: their product is the k outer products."""
    (a, b), (ab, bb) = node.inputs, operands
    column = reshape(a, a.shape + (1,)) if ab is None else reshaped(ab, ab.shape + (1,))
    return column, b if bb is None else reshaped(bb, (bb.shape[0], 1) + b.shape)


def _outer_shape(shapes: tuple, attrs: dict) -> Shape:
    a, b = shapes
    if len(a) != 1 or len(b) != 1:
        raise ShapeError(f"outer: operands must be vectors, got shapes {shapes_text(shapes)}")
    return a + b


# a bᵀ of two vectors (the weight gradient of a matrix-vector product, the Linear module of the lecture notes on layers as modules).
register(Op(name="outer", arity=2, shape=_outer_shape, emit=lambda node, args: f"{args[0]}[:, None] * {args[1]}",
            vjp=lambda node, g: (apply("matmul", g, node.inputs[1]), apply("matmul", node.inputs[0], g)),
            jvp=linear_in(0, 1), batch=lambda node, operands: apply("mul", *_outer_factors(node, operands)),
            text=lambda node, args: f"outer({args[0]}, {args[1]})",
            latex=lambda node, args: f"{group(args[0])} {transposed(args[1])}"))


def _transpose_axes(node: Node) -> tuple[int, ...]:
    axes = node.attr("axes")
    return tuple(reversed(range(node.inputs[0].ndim))) if axes is None else axes


def _transpose_shape(shapes: tuple, attrs: dict) -> Shape:
    (x,) = shapes
    axes = attrs.get("axes")
    if axes is None:
        return tuple(reversed(x))
    if sorted(axes) != list(range(len(x))):
        raise ShapeError(f"transpose: axes {axes} are not a permutation of the axes of shape {format_shape(x)}")
    return tuple(x[a] for a in axes)


def _transpose_vjp(node: Node, g: Node) -> tuple:
    axes = _transpose_axes(node)
    inverse = tuple(sorted(range(len(axes)), key=lambda k: axes[k]))
    return (apply("transpose", g, axes=None if node.attr("axes") is None else inverse),)


register(Op(name="transpose", arity=1, shape=_transpose_shape,
            emit=lambda node, args: f"{args[0]}.T" if node.attr("axes") is None and node.ndim == 2
            else f"xp.permute_dims({args[0]}, {tuple_text(_transpose_axes(node))})",
            vjp=_transpose_vjp,
            jvp=linear_in(0),
            batch=lambda node, operands: apply("transpose", operands[0],
                                               axes=(0,) + tuple(a + 1 for a in _transpose_axes(node))),
            text=lambda node, args: f"transpose({args[0]})",
            latex=lambda node, args: transposed(args[0]) if node.attr("axes") is None
            else latex_operator("transpose", args, str(tuple(node.attr("axes")))),
            inlined=True, scalar_identity=True))


def _reduce_shape(name: str) -> ShapeRule:
    def rule(shapes: tuple, attrs: dict) -> Shape:
        (x,) = shapes
        axes = reduced_axes(attrs["axis"], len(x))
        if attrs.get("keepdims"):
            return tuple(1 if i in axes else d for i, d in enumerate(x))
        return tuple(d for i, d in enumerate(x) if i not in axes)
    return rule


_UFUNCS = {"sum": "add", "max": "maximum", "min": "minimum"}


def _reduce_emit(function: str, into: bool = False) -> Emit:
    """`xp.sum(x, axis=0)`; into: the in-place form, `np.add.reduce(x, axis=0, out=out)` (Op.into)."""
    def emit(node: Node, args: tuple, out: str = "") -> str:
        x = node.inputs[0]
        axes = reduced_axes(node.attr("axis"), x.ndim)
        options = "" if axes == tuple(range(x.ndim)) else f", axis={axis_argument(axes)}"
        if node.attr("keepdims"):
            options += ", keepdims=True"
        if into:  # the ufunc's own reduce (whose axis is 0 unless told): np.sum's checks cost more than a small sum
            every = ", axis=None" if axes == tuple(range(x.ndim)) else ""
            return f"np.{_UFUNCS[function]}.reduce({args[0]}{every}{options}, out={out})"
        return f"xp.{function}({args[0]}{options})"
    return emit


def _unreduce(node: Node, g: Node) -> Node:
    """g spread back over the axes the reduction `node` removed."""
    x = node.inputs[0]
    axes = None if node.attr("keepdims") else reduced_axes(node.attr("axis"), x.ndim)
    return apply("broadcast_like", g, x, axis=axes)


def reduced_count(x: Node, axes: tuple[int, ...]) -> Node:
    """How many elements one reduction over `axes` of x sums: a number, or a run-time node."""
    if any(not isinstance(x.shape[a], int) for a in axes):  # a batch axis, or a symbolic length ("T")
        return apply("count", x, axis=axes)
    return constant(math.prod(x.shape[a] for a in axes))


def _sum_vjp(node: Node, g: Node) -> tuple:
    return (_unreduce(node, g),)


def _mean_vjp(node: Node, g: Node) -> tuple:
    x = node.inputs[0]
    return (apply("div", _unreduce(node, g), reduced_count(x, reduced_axes(node.attr("axis"), x.ndim))),)


def _reduction_text(name: str) -> Emit:
    def text(node: Node, args: tuple) -> str:
        axis = node.attr("axis")
        return f"{name}({args[0]})" if axis is None else f"{name}({args[0]}, axis={axis})"
    return text


def _reduction_latex(name: str, whole: str | None = None) -> Emit:
    """Σ x over every axis; otherwise the operator with its axes (and keepdims) as a subscript."""
    def latex(node: Node, args: tuple) -> str:
        if node.attr("axis") is None and not node.attr("keepdims") and whole and (
                whole == r"\sum" or group(args[0]) == args[0]):  # \max(a, b) is SymPy's elementwise max
            return f"{whole} {group(args[0])}"
        return latex_operator(name, args, _axes_latex(node))
    return latex


def _axes_latex(node: Node) -> str:
    """The subscript of a reduction of node.inputs[0]: its axes, counted from 0, and keepdims."""
    axis = node.attr("axis")
    axes = None if axis is None else reduced_axes(axis, node.inputs[0].ndim)
    return axis_subscript(axes, bool(node.attr("keepdims")))


register(Op(name="sum", arity=1, shape=_reduce_shape("sum"), emit=_reduce_emit("sum"), vjp=_sum_vjp,
            into=_reduce_emit("sum", into=True),
            batch=over_axes,
            canonical=axes_canonical("sum", keepdims=True),
            jvp=linear_in(0), text=_reduction_text("sum"), latex=_reduction_latex("sum", r"\sum"),
            number_operands=True, scalar_identity=True))
register(Op(name="mean", arity=1, shape=_reduce_shape("mean"), emit=_reduce_emit("mean"), vjp=_mean_vjp,
            batch=over_axes,
            canonical=axes_canonical("mean", keepdims=True),
            jvp=linear_in(0), text=_reduction_text("mean"), latex=_reduction_latex("mean"),
            number_operands=True, scalar_identity=True))


def _extremum_vjp(node: Node, g: Node) -> tuple:
    """The gradient goes to the positions that reach the max (min); tied positions share it equally."""
    share = apply("tie_share", node.inputs[0], node, axis=node.attr("axis"), keepdims=node.attr("keepdims"))
    return (apply("mul", share, _unreduce(node, g)),)


register(Op(name="max", arity=1, shape=_reduce_shape("max"), emit=_reduce_emit("max"), vjp=_extremum_vjp,
            batch=over_axes, canonical=axes_canonical("max", keepdims=True),
            text=_reduction_text("max"), latex=_reduction_latex("max", r"\max"), scalar_identity=True))
register(Op(name="min", arity=1, shape=_reduce_shape("min"), emit=_reduce_emit("min"), vjp=_extremum_vjp,
            batch=over_axes, canonical=axes_canonical("min", keepdims=True),
            text=_reduction_text("min"), latex=_reduction_latex("min", r"\min"), scalar_identity=True))


def _tie_share_emit(node: Node, args: tuple) -> str:
    x, extremum = node.inputs
    axes = reduced_axes(node.attr("axis"), x.ndim)
    reached = args[1]
    if not node.attr("keepdims") and axes != tuple(range(x.ndim)):
        reached = f"{reached}[{subscript_text('None' if i in axes else ':' for i in range(x.ndim))}]"
    hit = f"xp.astype({args[0]} == {reached}, {args[0]}.dtype)"
    options = "" if axes == tuple(range(x.ndim)) else f"axis={axis_argument(axes)}, "
    return f"{hit} / xp.sum({hit}, {options}keepdims=True)"


# 1/k where x reaches the reduced extremum (k: how many positions tie for it), 0 elsewhere.
register(Op(name="tie_share", arity=2, shape=like(0), emit=_tie_share_emit,
            canonical=axes_canonical("tie_share", keepdims=True),
            vjp=not_differentiable, batch=over_axes,
            text=lambda node, args: f"argmax_share({args[0]})",
            latex=lambda node, args: latex_operator("ties", args, _axes_latex(node))))


def _count_emit(node: Node, args: tuple) -> str:
    x = node.inputs[0]
    axes = node.attr("axis")
    known = math.prod(x.shape[a] for a in axes if isinstance(x.shape[a], int))
    factors = [f"{args[0]}.shape[{a}]" for a in axes if not isinstance(x.shape[a], int)] + ([str(known)] if known != 1 else [])
    return factors[0] if len(factors) == 1 else "(" + " * ".join(factors) + ")"


def _count_latex(node: Node, args: tuple) -> str:
    x = node.inputs[0]
    known = math.prod(x.shape[a] for a in node.attr("axis") if isinstance(x.shape[a], int))
    batches = [x.shape[a] or "N" for a in node.attr("axis") if not isinstance(x.shape[a], int)]  # N, or a length's symbol
    return " ".join(([str(known)] if known != 1 or not batches else []) + batches)


# The run-time number of elements over some axes (a mean over the batch divides by it).
register(Op(name="count", arity=1, shape=lambda shapes, attrs: (), emit=_count_emit,
            vjp=not_differentiable, batch=lambda node, operands: None,
            text=lambda node, args: _count_latex(node, args).replace(" ", "*"), latex=_count_latex,
            inlined=True))
