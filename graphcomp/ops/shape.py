"""Ops that move, repeat or pick values without computing new ones: broadcasting and its undoing
(broadcast_like, expand, sum_to), reshape, indexing and its adjoint, concat, and the markers alias,
zeros_like, stop_gradient and one_hot.
"""
from __future__ import annotations

import math

from ..errors import ShapeError
from ..formulas.latex import axis_subscript, group, latex_operator, latex_shape
from ..formulas.printing import axis_argument, subscript_text, tuple_text
from ..ir.graph import Node, apply
from ..ir.shapes import Shape, broadcast_shapes, format_shape, shapes_text
from .indexing import integer_input
from .batching import WHOLE, all_batched, batch_size, lifted, materialized, reshaped
from .table import Op, axes_canonical, like, linear_in, not_differentiable, register


def _broadcast_like_shape(shapes: tuple, attrs: dict) -> Shape:
    g, ref = shapes
    if attrs.get("axis") is not None:
        g = list(g)
        for a in attrs["axis"]:
            g.insert(a, 1)
    broadcast_shapes((tuple(g), ref), "broadcast_like")
    return ref


def _broadcast_like_emit(node: Node, args: tuple) -> str:
    g = args[0]
    if node.inputs[0].op == "const":  # the seed ∂loss/∂loss: an array of the ref's own dtype
        return f"xp.ones_like({args[1]})" if node.inputs[0].attr("value") == 1 else f"xp.full_like({args[1]}, {g})"
    axis = node.attr("axis")
    if axis is not None and axis != tuple(range(len(node.shape))):
        g = f"{g}[{subscript_text('None' if i in axis else ':' for i in range(len(node.shape)))}]"
    return f"xp.broadcast_to({g}, {args[1]}.shape)"


def _broadcast_like_vjp(node: Node, g: Node) -> tuple:
    axis = node.attr("axis")
    source = node.inputs[0]
    if axis is not None:
        return apply("sum", g, axis=axis), None
    return sum_to(g, source.shape), None


def _broadcast_like_latex(node: Node, args: tuple) -> str:
    """1_x (ones shaped like x) for the seed, c 1_x for a constant, broadcast_x(g) otherwise."""
    like = args[1] if node.attr("axis") is None else f"{args[1]},\\ {axis_subscript(node.attr('axis'))}"
    if node.inputs[0].op == "const":
        ones = f"\\mathbf{{1}}_{{{args[1]}}}"
        return ones if node.inputs[0].attr("value") == 1 else f"{group(args[0])} {ones}"
    return latex_operator("broadcast", args[:1], like)


# g repeated to the run-time shape of ref (after re-inserting reduced `axis`): adjoint of a reduction.
def _broadcast_like_text(node: Node, args: tuple) -> str:
    """A number spread over an array reads as the number (1/N, the mean's gradient); an array as broadcast(...)."""
    return str(args[0]) if node.inputs[0].op == "const" else f"broadcast({args[0]}, like={args[1]})"


def _spread(value: Node, refs: tuple) -> Node:
    """A batched value (k, ...) lined up with the rank of its batched result, broadcast to the shapes
    of `refs` (only their shapes are read) under its batch axis."""
    full = (value.shape[0],) + broadcast_shapes(tuple(x.shape for x in refs), "expand")
    return value if tuple(value.shape) == full else apply("expand", value, value, *refs)


def _broadcast_like_batch(node: Node, operands: tuple) -> Node | None:
    """k adjoints spread at once: each gets its size-1 axes back (or is lined up), then is broadcast."""
    g, ref = node.inputs
    gb = operands[0]
    if gb is None:  # only the reference is batched: the value does not depend on it
        return None
    axis = node.attr("axis")
    if axis is None:
        return _spread(lifted(gb, ref.ndim), (ref,))
    dims = iter(gb.shape[1:])
    shape = tuple(1 if i in axis else next(dims) for i in range(ref.ndim))
    return _spread(reshaped(gb, (gb.shape[0],) + shape), (ref,))


register(Op(name="broadcast_like", arity=2, shape=_broadcast_like_shape, emit=_broadcast_like_emit,
            vjp=_broadcast_like_vjp, jvp=linear_in(0), batch=_broadcast_like_batch, text=_broadcast_like_text,
            latex=_broadcast_like_latex, inlined=True, number_operands=True, scalar_identity=True))


def _expand_emit(node: Node, args: tuple) -> str:
    value, refs = args[0], args[1:]
    shape = f"{refs[0]}.shape" if len(refs) == 1 else f"np.broadcast_shapes({', '.join(r + '.shape' for r in refs)})"
    if node.inputs[0].op == "const":
        return f"xp.full_like({refs[0]}, {value})" if len(refs) == 1 else f"xp.full({shape}, {value}, dtype={refs[0]}.dtype)"
    return f"xp.broadcast_to({value}, {shape})"


def _expand_vjp(node: Node, g: Node) -> tuple:
    return (sum_to(g, node.inputs[0].shape),) + (None,) * (len(node.inputs) - 1)


# A value repeated to the broadcast shape of some reference values (only their shapes are read):
# a fused formula that cancelled its operands, like x - x + 1, still has x's shape.
register(Op(name="expand", arity=None, shape=lambda shapes, attrs: broadcast_shapes(shapes, "expand"),
            emit=_expand_emit, vjp=_expand_vjp,
            jvp=linear_in(0), batch=lambda node, operands: None if operands[0] is None else _spread(
                lifted(operands[0], node.ndim), node.inputs[1:]),
            text=lambda node, args: f"broadcast({args[0]}, like={', '.join(map(str, args[1:]))})",
            latex=lambda node, args: (f"\\mathbf{{1}}_{{{', '.join(args[1:])}}}" if args[0] == 1
                                      else latex_operator("broadcast", args[:1], ", ".join(args[1:]))),
            number_operands=True))


def _sum_to_axes(source: Shape, target: Shape) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(axes summed with keepdims, leading axes summed away) to bring `source` to `target`."""
    lead = len(source) - len(target)
    kept = tuple(lead + i for i, d in enumerate(target) if d == 1 and source[lead + i] != 1)
    return kept, tuple(range(lead))


def _sum_to_shape(shapes: tuple, attrs: dict) -> Shape:
    (source,) = shapes
    target = attrs["shape"]
    if len(target) > len(source) or broadcast_shapes((source, target), "sum_to") != source:
        raise ShapeError(f"sum_to: cannot sum shape {format_shape(source)} down to {format_shape(target)}")
    return target


def _sum_to_emit(node: Node, args: tuple) -> str:
    kept, leading = _sum_to_axes(node.inputs[0].shape, node.shape)
    text = args[0]
    if kept:
        text = f"xp.sum({text}, axis={axis_argument(kept)}, keepdims=True)"
    if leading:
        text = f"xp.sum({text}, axis={axis_argument(leading)})"
    return text


def _sum_to_into(node: Node, args: tuple, out: str) -> str | None:
    """One sum written into `out` (Op.into); None for two (axes kept and axes summed away)."""
    kept, leading = _sum_to_axes(node.inputs[0].shape, node.shape)
    if kept and leading:
        return None
    return f"np.add.reduce({args[0]}, axis={axis_argument(kept or leading)}{', keepdims=True' if kept else ''}, out={out})"


def _sum_to_latex(node: Node, args: tuple) -> str:
    kept, leading = _sum_to_axes(node.inputs[0].shape, node.shape)
    if leading == (0,) and not kept:
        return rf"\mathbf{{1}}^\top {group(args[0])}"  # a bias gradient: the batch rows summed
    return latex_operator("sum", args, rf"\to {latex_shape(node.shape)}")


def _sum_to_text(node: Node, args: tuple) -> str:
    """The sum over the axes broadcasting added: sum(d_z, axis=0) for a bias's gradient."""
    kept, leading = _sum_to_axes(node.inputs[0].shape, node.shape)
    axes = leading + kept
    axis = axes[0] if len(axes) == 1 else axes
    return f"sum({args[0]}, axis={axis}" + (", keepdims=True)" if kept and not leading else ")")


# Undo broadcasting: sum an adjoint over the axes its operand was broadcast along.
def _sum_to_batch(node: Node, operands: tuple) -> Node:
    """k sums at once: the axes that were 1 summed keeping them, then the leading ones, after the batch axis."""
    kept, leading = _sum_to_axes(node.inputs[0].shape, node.shape)
    x = operands[0]
    if kept:
        x = apply("sum", x, axis=tuple(a + 1 for a in kept), keepdims=True)
    if leading:
        x = apply("sum", x, axis=tuple(a + 1 for a in leading))
    return x


register(Op(name="sum_to", arity=1, shape=_sum_to_shape, emit=_sum_to_emit, into=_sum_to_into,
            vjp=lambda node, g: (apply("broadcast_like", g, node.inputs[0], axis=None),),
            jvp=linear_in(0), batch=_sum_to_batch,
            text=_sum_to_text, latex=_sum_to_latex, scalar_identity=True))


def sum_to(x: Node, shape: Shape) -> Node:
    """x summed down to `shape`; x itself when the shapes already agree."""
    return x if tuple(x.shape) == tuple(shape) else apply("sum_to", x, shape=tuple(shape))


def _reshape_shape(shapes: tuple, attrs: dict) -> Shape:
    (x,) = shapes
    target = tuple(attrs["shape"])
    if -1 in target:  # one unknown size, as in NumPy, when everything else is known
        if target.count(-1) > 1 or None in x or None in target:
            raise ShapeError(f"reshape: cannot infer -1 in {format_shape(target)} from shape {format_shape(x)}")
        rest = math.prod(d for d in target if d != -1)
        if math.prod(x) % rest:
            raise ShapeError(f"reshape: cannot infer -1 in {format_shape(target)} from shape {format_shape(x)}")
        target = tuple(math.prod(x) // rest if d == -1 else d for d in target)
    if x.count(None) > 1 or target.count(None) > 1:  # x @ x.T is (None, None): only 1-axes may come or go
        if _without_ones(x) != _without_ones(target):
            raise ShapeError(f"reshape: {format_shape(x)} to {format_shape(target)}: with several batch-sized "
                             "axes (None), a reshape may only add or remove axes of size 1")
        return target
    if (None in x) != (None in target):
        raise ShapeError(f"reshape: {format_shape(x)} to {format_shape(target)} must keep the batch dimension None")
    if math.prod(d for d in x if d is not None) != math.prod(d for d in target if d is not None):
        raise ShapeError(f"reshape: cannot reshape {format_shape(x)} to {format_shape(target)}")
    return target


def _without_ones(shape: Shape) -> Shape:
    return tuple(d for d in shape if d != 1)


def _reshape_emit(node: Node, args: tuple) -> str:
    if node.shape.count(None) > 1:  # only size-1 axes come or go: drop them all, then put the new ones in
        x = node.inputs[0]
        text = args[0]
        ones = tuple(i for i, d in enumerate(x.shape) if d == 1)
        if ones:
            text = f"xp.squeeze({text}, axis={axis_argument(ones)})"
        new_ones = tuple(i for i, d in enumerate(node.shape) if d == 1)
        return f"{text}[{subscript_text('None' if i in new_ones else ':' for i in range(len(node.shape)))}]" if new_ones else text
    return f"xp.reshape({args[0]}, {tuple_text(-1 if d is None else d for d in node.shape)})"


register(Op(name="reshape", arity=1, shape=_reshape_shape, emit=_reshape_emit,
            vjp=lambda node, g: (reshape(g, node.inputs[0].shape),),
            jvp=linear_in(0), batch=lambda node, operands: reshaped(operands[0], (batch_size(operands),) + node.shape),
            text=lambda node, args: f"reshape({args[0]}, {format_shape(node.shape)})",
            latex=lambda node, args: latex_operator("reshape", args, latex_shape(node.shape)),
            inlined=True, scalar_identity=True))


def reshape(x: Node, shape: Shape) -> Node:
    return x if tuple(x.shape) == tuple(shape) else apply("reshape", x, shape=tuple(shape))


# A zero gradient for a leaf the loss does not depend on.
register(Op(name="zeros_like", arity=1, shape=like(0),
            emit=lambda node, args: f"xp.zeros_like({args[0]})", vjp=not_differentiable, batch=lambda node, operands: None,
            text=lambda node, args: "0", latex=lambda node, args: "0"))


# The same value under a new name: an adjoint that equals a forward value reads `d_t1 = w`.
register(Op(name="alias", arity=1, shape=like(0), emit=lambda node, args: str(args[0]),
            vjp=lambda node, g: (g,), jvp=linear_in(0), batch=lambda node, operands: operands[0], text=lambda node, args: str(args[0]), latex=lambda node, args: str(args[0]),
            number_operands=True, scalar_identity=True))


def _index_shape(shapes: tuple, attrs: dict) -> Shape:
    (x,) = shapes
    out = []
    for axis, d in enumerate(x):
        entry = attrs["index"][axis] if axis < len(attrs["index"]) else ("slice", None, None, None)
        if entry[0] == "slice":
            size = d if d is None or isinstance(d, str) else len(range(d)[slice(*entry[1:])])  # N, "T": whole
            if size == 0:
                raise ShapeError(f"index: the slice {_index_text(attrs['index'])} of shape {format_shape(x)} is empty")
            out.append(size)
    return tuple(out)


def _code_index(index: tuple, ndim: int) -> str:
    """The index as code: every axis it leaves out is taken whole by a trailing `...`, which the Array
    API standard asks for (NumPy assumes it)."""
    return subscript_text([_entry_text(entry) for entry in index] + ["..."] * (len(index) < ndim))


def _index_text(index: tuple) -> str:
    return ", ".join(_entry_text(entry) for entry in index)


def _entry_text(entry: tuple) -> str:
    """One axis of an index: `2`, `1:3`, `::2`."""
    if entry[0] == "int":
        return str(entry[1])
    start, stop, step = entry[1:]
    text = f"{'' if start is None else start}:{'' if stop is None else stop}"
    return text if step is None else f"{text}:{step}"


register(Op(name="index", arity=1, shape=_index_shape,
            emit=lambda node, args: f"{args[0]}[{_code_index(node.attr('index'), node.inputs[0].ndim)}]",
            vjp=lambda node, g: (apply("unindex", g, node.inputs[0], index=node.attr("index")),),
            jvp=linear_in(0), batch=lambda node, operands: apply("index", operands[0], index=(WHOLE,) + node.attr("index")),
            text=lambda node, args: f"{args[0]}[{_index_text(node.attr('index'))}]",
            latex=lambda node, args: f"{group(args[0])}\\left[{_index_text(node.attr('index'))}\\right]"))

def _unindex_batch(node: Node, operands: tuple) -> Node | None:
    """k adjoints placed at once, into zeros shaped like k copies of x."""
    if operands[0] is None:
        return None
    like = materialized(node.inputs[1], batch_size(operands)) if operands[1] is None else operands[1]
    return apply("unindex", operands[0], like, index=(WHOLE,) + node.attr("index"))


# The adjoint of x[index]: g placed at index in an array of zeros shaped like x.
register(Op(name="unindex", arity=2, shape=like(1),
            emit=lambda node, args: f"_unindex(xp, {args[0]}, {args[1]}, np.s_[{_code_index(node.attr('index'), node.ndim)}])",
            vjp=lambda node, g: (apply("index", g, index=node.attr("index")), None),
            jvp=linear_in(0), batch=_unindex_batch,
            text=lambda node, args: f"unindex({args[0]})",
            latex=lambda node, args: latex_operator("place", args, f"[{_index_text(node.attr('index'))}]")))


def _concat_shape(shapes: tuple, attrs: dict) -> Shape:
    first = shapes[0]
    axis = attrs["axis"]
    for other in shapes[1:]:
        if len(other) != len(first) or any(a != b for k, (a, b) in enumerate(zip(first, other)) if k != axis):
            raise ShapeError(f"concat: shapes {shapes_text(shapes)} differ outside axis {attrs['axis']}")
    if any(s[axis] is None for s in shapes):
        raise ShapeError(f"concat: cannot join along the batch axis (shapes {shapes_text(shapes)})")
    return first[:axis] + (sum(s[axis] for s in shapes),) + first[axis + 1:]


def _concat_vjp(node: Node, g: Node) -> tuple:
    axis = node.attr("axis")
    pieces, start = [], 0
    for x in node.inputs:
        index = (("slice", None, None, None),) * axis + (("slice", start, start + x.shape[axis], None),)
        pieces.append(apply("index", g, index=index))
        start += x.shape[axis]
    return tuple(pieces)


register(Op(name="concat", arity=None, canonical=axes_canonical("concat", one=True), shape=_concat_shape,
            emit=lambda node, args: f"xp.concat({tuple_text(args)}, axis={node.attr('axis')})",
            vjp=_concat_vjp,
            batch=lambda node, operands: apply("concat", *all_batched(node, operands), axis=node.attr("axis") + 1),
            text=lambda node, args: f"concat({', '.join(args)}, axis={node.attr('axis')})",
            latex=lambda node, args: latex_operator("concat", args, axis_subscript((node.attr("axis"),)))))


# Blocks the gradient: the value is used as a constant (e.g. the max subtracted inside logsumexp).
register(Op(name="stop_gradient", arity=1, shape=like(0), emit=lambda node, args: str(args[0]),
            vjp=not_differentiable, batch=lambda node, operands: apply("stop_gradient", operands[0]), text=lambda node, args: f"stop_gradient({args[0]})",
            latex=lambda node, args: args[0], transparent=True, scalar_identity=True))


def _one_hot_emit(node: Node, args: tuple) -> str:
    return f"xp.astype({args[0]}[..., None] == xp.arange({node.attr('classes')}, dtype={args[0]}.dtype), {args[0]}.dtype)"


def _one_hot_into(node: Node, args: tuple, out: str) -> str | None:
    """The rows written into `out` as the comparison's 0s and 1s (Op.into); integer labels keep their own
    dtype's rows, as the functional line makes them."""
    if integer_input(node.inputs[0]) is not None:
        return None
    return f"np.equal({args[0]}[..., None], np.arange({node.attr('classes')}, dtype={args[0]}.dtype), out={out})"


# Integer class labels (stored as floats) -> one-hot rows; labels get no gradient.
register(Op(name="one_hot", arity=1, shape=lambda shapes, attrs: shapes[0] + (attrs["classes"],), emit=_one_hot_emit,
            into=_one_hot_into,
            vjp=not_differentiable, text=lambda node, args: f"one_hot({args[0]}, {node.attr('classes')})",
            latex=lambda node, args: latex_operator("onehot", args, str(node.attr("classes")))))
