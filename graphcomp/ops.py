"""The op table: every op of the IR, each declared once.

An `Op` says how many operands it takes, its shape rule, its NumPy emission,
its derivative rule (VJP), and how it reads as a formula (text and LaTeX).
Adding an op is one entry here, plus the user-facing function in `dsl.py`.

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

import math
from dataclasses import dataclass
from typing import Callable, Optional

import sympy as sp

from .errors import DifferentiationError, ShapeError
from .graph import Node, Shape, apply, constant, format_shape, shapes_text
from .printing import (axis_subscript, elementwise_latex, group, latex_operator, latex_shape, number_text,
                       numpy_text, operand_symbol, plain_text, sympy_number, transposed)
from .simplify import G, Y, local_derivative, placeholder, placeholders, sigmoid, softplus

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


OPS: dict[str, Op] = {}


def register(op: Op) -> Op:
    if op.name in OPS:
        raise ValueError(f"op {op.name!r} is declared twice")
    OPS[op.name] = op
    return op


# ---------------------------------------------------------------- shapes

def broadcast_shapes(shapes: tuple, what: str = "elementwise op") -> Shape:
    """NumPy broadcasting, where the batch dimension None only meets None or 1."""
    ndim = max((len(s) for s in shapes), default=0)
    result = []
    for axis in range(ndim):
        dims = {s[axis - ndim + len(s)] for s in shapes if axis - ndim + len(s) >= 0} - {1}
        if len(dims) > 1:
            raise ShapeError(f"{what}: shapes {shapes_text(shapes)} do not broadcast together")
        result.append(dims.pop() if dims else 1)
    return tuple(result)


def normalize_axes(axis, ndim: int, what: str) -> tuple[int, ...]:
    """Axes as a sorted tuple of non-negative ints; None means every axis."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    out = set()
    for a in axes:
        if not isinstance(a, int) or isinstance(a, bool) or not -ndim <= a < ndim:
            raise ShapeError(f"{what}: axis {a!r} is out of range for {ndim} dimension(s)")
        out.add(a % ndim)
    return tuple(sorted(out))


def axis_text(axes: tuple[int, ...]) -> str:
    return str(axes[0]) if len(axes) == 1 else str(tuple(axes))


# ---------------------------------------------------------------- elementwise

def scalar_expr(node: Node) -> sp.Expr:
    """The node's formula over placeholders x0, x1, ... of its inputs."""
    op = OPS[node.op]
    return op.scalar(*placeholders(len(node.inputs)), **dict(node.attrs))


def in_terms_of(expr: sp.Expr, node: Node, operand: Callable[[Node], sp.Expr]) -> sp.Expr:
    """A formula over `node`'s placeholders (x0, x1, ... and y, its output) with each replaced
    by `operand(value)`; constant operands become their numbers."""
    binding = {placeholder(i): sympy_number(x.attr("value")) if x.op == "const" else operand(x)
               for i, x in enumerate(node.inputs)}
    binding[Y] = operand(node)
    return expr.xreplace(binding)


def _bound(node: Node, args: tuple, symbol: Callable[[str], sp.Expr]) -> sp.Expr:
    """The node's formula with placeholders replaced by its operands."""
    binding = {placeholder(i): (symbol(a) if isinstance(a, str) else sympy_number(a))
               for i, a in enumerate(args)}
    return scalar_expr(node).xreplace(binding)


def _default_emit(node: Node, args: tuple) -> str:
    return numpy_text(_bound(node, args, lambda name: sp.Symbol(name, real=True)))


def _default_latex(node: Node, args: tuple) -> str:
    """The formula in LaTeX, its operands being LaTeX already; ⊙ marks products of tensors."""
    dummies = {i: operand_symbol(f"a{i}", a) for i, a in enumerate(args) if isinstance(a, str)}
    expr = scalar_expr(node).xreplace({placeholder(i): dummies[i][0] if i in dummies else sympy_number(a)
                                       for i, a in enumerate(args)})
    return elementwise_latex(expr, dict(dummies.values()), tensor=node.shape != ())


def fuse(expr: sp.Expr, binding: dict[sp.Symbol, Node], shape: Shape) -> Optional[Node]:
    """A node of `shape` computing `expr`, whose symbols stand for the nodes in `binding`;
    None when the formula is 0 (no contribution).

    Constants are folded into the formula, symbols bound to the same node share a
    placeholder, and a formula that is just one of its operands returns that node.
    A formula that no longer mentions the operands that gave `shape` (x - x + 1 is 1
    for an x of shape (N, 3)) keeps that shape through `expand`: a folded value never
    silently shrinks to a scalar.
    """
    expr, binding = _spreads_as_numbers(expr, binding, shape)
    expr = expr.xreplace({s: sympy_number(n.attr("value")) for s, n in binding.items() if n.op == "const"})
    if expr == 0:
        return None
    operands: list[Node] = []
    renaming = {}
    for symbol in sorted(expr.free_symbols, key=lambda s: _symbol_rank(s, binding)):
        node = binding[symbol]
        if node not in operands:
            operands.append(node)
        renaming[symbol] = placeholder(operands.index(node))
    expr = expr.xreplace(renaming)
    if expr == 0:
        return None
    used = [x for i, x in enumerate(operands) if placeholder(i) in expr.free_symbols]
    if len(used) < len(operands):  # x - x cancelled: renumber the placeholders that are left
        expr = expr.xreplace({placeholder(operands.index(x)): placeholder(k) for k, x in enumerate(used)})
    if not used:
        value = constant(_number(expr))
    elif expr == placeholder(0):
        value = used[0]
    else:
        value = apply("elementwise", *used, expr=expr)
    return expand(value, shape, [x for x in binding.values() if x.op != "const"])


def _spreads_as_numbers(expr: sp.Expr, binding: dict, shape: Shape) -> tuple[sp.Expr, dict]:
    """A number spread over an array (the gradient of a sum or mean: ones, or ones / N) taken as
    the number itself where the formula's other operands already have its shape: (p - y) / N
    rather than ones_like(t) / N * (p - y)."""
    used = {s: n for s, n in binding.items() if s in expr.free_symbols}
    for symbol, node in used.items():
        spread = _spread(node)
        others = [n.shape for s, n in used.items() if s is not symbol and n.op != "const"]
        if spread is None or not others or broadcast_shapes(tuple(others)) != tuple(shape):
            continue
        value, divisor = spread
        if divisor is None:
            expr = expr.xreplace({symbol: value})
        else:
            count = sp.Symbol(f"{symbol.name}_count", real=True)
            expr = expr.xreplace({symbol: value / count})
            binding = {**binding, count: divisor}
    return expr, binding


def _spread(node: Node) -> tuple[sp.Expr, Node | None] | None:
    """(c, None) where node is c spread over an array, (c, n) where it is that divided by n."""
    if node.op == "broadcast_like" and node.inputs[0].op == "const":
        return sympy_number(node.inputs[0].attr("value")), None
    if node.op == "reshape":
        return _spread(node.inputs[0])
    if node.op == "div" and node.inputs[1].op in ("count", "const") and node.inputs[1].shape == ():
        top = _spread(node.inputs[0])
        if top is not None and top[1] is None:
            return top[0], node.inputs[1]
    return None


def _number(expr: sp.Expr) -> int | float:
    """A constant formula as a Python number; ±inf for ±oo, and nan where SymPy's answer has no
    sign (1/0 is zoo: NumPy would give inf or nan, depending on the operands' signs)."""
    if expr.is_Integer:
        return int(expr)
    value = sp.N(expr)
    if value.is_real and value.is_finite:
        return float(value)
    return {sp.oo: math.inf, -sp.oo: -math.inf}.get(value, math.nan)


def expand(value: Node, shape: Shape, refs: list[Node]) -> Node:
    """`value` broadcast to `shape`, the broadcast shape of `value` and some of `refs`."""
    if tuple(value.shape) == tuple(shape):
        return value
    full = [x for x in refs if tuple(x.shape) == tuple(shape)]
    needed = full[:1] or list(dict.fromkeys(refs))
    if broadcast_shapes(tuple(x.shape for x in [value] + needed)) != tuple(shape):
        raise DifferentiationError(f"internal: cannot broadcast shape {format_shape(value.shape)} "
                                   f"to {format_shape(shape)}")
    return apply("expand", value, *needed)


def _symbol_rank(symbol: sp.Symbol, binding: dict) -> int:
    return list(binding).index(symbol)


def _times_adjoint(local: sp.Expr) -> sp.Expr:
    """g · local, with g taken into the cases of a piecewise local derivative (relu' → g where x > 0,
    printed as a mask). Built by hand: sympy.piecewise_fold simplifies the conditions, which can
    take seconds."""
    if isinstance(local, sp.Piecewise):
        return sp.Piecewise(*((G * value, condition) for value, condition in local.args), evaluate=False)
    return G * local


def elementwise_vjp(node: Node, g: Node) -> tuple:
    """g · ∂y/∂xi for each input, summed back to the input's shape."""
    expr = scalar_expr(node)
    pieces = []
    for i, x in enumerate(node.inputs):
        if x.op == "const":
            pieces.append(None)
            continue
        binding = {G: g, **{placeholder(j): v for j, v in enumerate(node.inputs)}, Y: node}
        piece = fuse(_times_adjoint(local_derivative(expr, i)), binding, node.shape)
        pieces.append(None if piece is None else sum_to(piece, x.shape))
    return tuple(pieces)


def elementwise(name: str, formula: Callable[..., sp.Expr], arity: int = 1,
                emit: str | None = None, text: str | None = None, helpers: tuple[str, ...] = ()) -> Op:
    """Declare an elementwise op from its SymPy formula.

    `emit` and `text` are format strings over the operands ({0}, {1}); without
    `emit` the formula itself is printed, without `text` it reads `name(x)`.
    """
    def emit_rule(node: Node, args: tuple) -> str:
        return emit.format(*args, **_attr_texts(node)) if emit else _default_emit(node, args)

    def text_rule(node: Node, args: tuple) -> str:
        return text.format(*args, **_attr_texts(node)) if text else f"{name}({', '.join(map(str, args))})"

    return register(Op(name, arity, lambda shapes, attrs: broadcast_shapes(shapes, name),
                       emit_rule, elementwise_vjp, text_rule, _default_latex, scalar=formula, helpers=helpers))


def _attr_texts(node: Node) -> dict[str, str]:
    return {k: number_text(v) if isinstance(v, (int, float)) else str(v) for k, v in node.attrs}


elementwise("add", lambda a, b: a + b, 2, emit="{0} + {1}", text="{0} + {1}")
elementwise("sub", lambda a, b: a - b, 2, emit="{0} - {1}", text="{0} - {1}")
elementwise("mul", lambda a, b: a * b, 2, emit="{0} * {1}", text="{0} * {1}")
elementwise("div", lambda a, b: a / b, 2, emit="{0} / {1}", text="{0} / {1}")
elementwise("pow", lambda a, b: a ** b, 2, emit="{0} ** {1}", text="{0} ** {1}")
elementwise("neg", lambda a: -a, emit="-{0}", text="-{0}")
elementwise("exp", sp.exp, emit="np.exp({0})")
elementwise("log", sp.log, emit="np.log({0})")
elementwise("tanh", sp.tanh, emit="np.tanh({0})")
# The generated _sigmoid computes (1 + tanh(a/2)) / 2: exactly σ, and it never overflows.
elementwise("sigmoid", sigmoid, emit="_sigmoid({0})", helpers=("sigmoid",))
# Ties, following seed 001's Max module: d max(a, b)/da = 1 if a > b else 0, so at a tie the
# gradient goes to b; relu'(0) = 0 and leaky_relu'(0) = slope for the same reason.
elementwise("relu", lambda a: sp.Piecewise((a, a > 0), (0, True)), emit="np.maximum({0}, 0)")
elementwise("leaky_relu", lambda a, slope: sp.Piecewise((a, a > 0), (sympy_number(slope) * a, True)),
            emit="np.where({0} > 0, {0}, {slope} * {0})", text="leaky_relu({0}, slope={slope})")
elementwise("maximum", lambda a, b: sp.Piecewise((a, a > b), (b, True)), 2, emit="np.maximum({0}, {1})")
elementwise("minimum", lambda a, b: sp.Piecewise((a, a < b), (b, True)), 2, emit="np.minimum({0}, {1})")
elementwise("sqrt", sp.sqrt, emit="np.sqrt({0})")
elementwise("abs", sp.Abs, emit="np.abs({0})")
# softplus(a) = log(1 + e^a), computed as logaddexp(0, a) so that it never overflows.
elementwise("softplus", softplus, emit="np.logaddexp(0, {0})")


def _generic_text(node: Node, args: tuple) -> str:
    return plain_text(_bound(node, args, lambda name: sp.Symbol(name, real=True)))


# A formula made by graphcomp itself (derivatives, fused chains): the formula is an attr.
register(Op("elementwise", None, lambda shapes, attrs: broadcast_shapes(shapes),
            _default_emit, elementwise_vjp, _generic_text, _default_latex,
            scalar=lambda *xs, expr: expr))


# ---------------------------------------------------------------- tensor ops

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
    db = reshape(sum_to(apply("matmul", swap_last(a2), g2), b2.shape), b.shape)
    return da, db


register(Op("matmul", 2, _matmul_shape,
            lambda node, args: f"{args[0]} @ {args[1]}", _matmul_vjp,
            lambda node, args: f"{args[0]} @ {args[1]}",
            lambda node, args: f"{group(args[0])} {group(args[1])}"))


def _outer_shape(shapes: tuple, attrs: dict) -> Shape:
    a, b = shapes
    if len(a) != 1 or len(b) != 1:
        raise ShapeError(f"outer: operands must be vectors, got shapes {shapes_text(shapes)}")
    return a + b


# a bᵀ of two vectors (the weight gradient of a matrix-vector product, seed 001's Linear).
register(Op("outer", 2, _outer_shape, lambda node, args: f"np.outer({args[0]}, {args[1]})",
            lambda node, g: (apply("matmul", g, node.inputs[1]), apply("matmul", node.inputs[0], g)),
            lambda node, args: f"outer({args[0]}, {args[1]})",
            lambda node, args: f"{group(args[0])} {transposed(args[1])}"))


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


register(Op("transpose", 1, _transpose_shape,
            lambda node, args: f"{args[0]}.T" if node.attr("axes") is None
            else f"np.transpose({args[0]}, {node.attr('axes')})",
            _transpose_vjp,
            lambda node, args: f"transpose({args[0]})",
            lambda node, args: transposed(args[0]) if node.attr("axes") is None
            else latex_operator("transpose", args, str(tuple(node.attr("axes"))))))


def _reduce_shape(name: str) -> ShapeRule:
    def rule(shapes: tuple, attrs: dict) -> Shape:
        (x,) = shapes
        axes = normalize_axes(attrs.get("axis"), len(x), name)
        if attrs.get("keepdims"):
            return tuple(1 if i in axes else d for i, d in enumerate(x))
        return tuple(d for i, d in enumerate(x) if i not in axes)
    return rule


def _reduce_emit(function: str) -> Emit:
    def emit(node: Node, args: tuple) -> str:
        x = node.inputs[0]
        axes = normalize_axes(node.attr("axis"), x.ndim, function)
        options = "" if axes == tuple(range(x.ndim)) else f", axis={axis_text(axes)}"
        if node.attr("keepdims"):
            options += ", keepdims=True"
        return f"np.{function}({args[0]}{options})"
    return emit


def _unreduce(node: Node, g: Node) -> Node:
    """g spread back over the axes the reduction `node` removed."""
    x = node.inputs[0]
    axes = None if node.attr("keepdims") else normalize_axes(node.attr("axis"), x.ndim, node.op)
    return apply("broadcast_like", g, x, axis=axes)


def reduced_count(x: Node, axes: tuple[int, ...]) -> Node:
    """How many elements one reduction over `axes` of x sums: a number, or a run-time node."""
    if any(x.shape[a] is None for a in axes):
        return apply("count", x, axis=axes)
    return constant(math.prod(x.shape[a] for a in axes))


def _sum_vjp(node: Node, g: Node) -> tuple:
    return (_unreduce(node, g),)


def _mean_vjp(node: Node, g: Node) -> tuple:
    x = node.inputs[0]
    return (apply("div", _unreduce(node, g), reduced_count(x, normalize_axes(node.attr("axis"), x.ndim, "mean"))),)


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
    axes = None if axis is None else normalize_axes(axis, node.inputs[0].ndim, node.op)
    return axis_subscript(axes, bool(node.attr("keepdims")))


register(Op("sum", 1, _reduce_shape("sum"), _reduce_emit("sum"), _sum_vjp, _reduction_text("sum"),
            _reduction_latex("sum", r"\sum")))
register(Op("mean", 1, _reduce_shape("mean"), _reduce_emit("mean"), _mean_vjp, _reduction_text("mean"),
            _reduction_latex("mean")))


def _extremum_vjp(node: Node, g: Node) -> tuple:
    """The gradient goes to the positions that reach the max (min); tied positions share it equally."""
    share = apply("tie_share", node.inputs[0], node, axis=node.attr("axis"), keepdims=node.attr("keepdims"))
    return (apply("mul", share, _unreduce(node, g)),)


register(Op("max", 1, _reduce_shape("max"), _reduce_emit("max"), _extremum_vjp, _reduction_text("max"),
            _reduction_latex("max", r"\max")))
register(Op("min", 1, _reduce_shape("min"), _reduce_emit("min"), _extremum_vjp, _reduction_text("min"),
            _reduction_latex("min", r"\min")))


def _tie_share_emit(node: Node, args: tuple) -> str:
    x, extremum = node.inputs
    axes = normalize_axes(node.attr("axis"), x.ndim, "max")
    reached = args[1]
    if not node.attr("keepdims") and axes != tuple(range(x.ndim)):
        reached = f"np.expand_dims({reached}, {axis_text(axes)})"
    hit = f"({args[0]} == {reached})"
    options = "" if axes == tuple(range(x.ndim)) else f"axis={axis_text(axes)}, "
    return f"{hit} / np.sum({hit}, {options}keepdims=True, dtype={args[0]}.dtype)"


# 1/k where x reaches the reduced extremum (k: how many positions tie for it), 0 elsewhere.
register(Op("tie_share", 2, lambda shapes, attrs: shapes[0], _tie_share_emit, lambda node, g: (None, None),
            lambda node, args: f"argmax_share({args[0]})",
            lambda node, args: latex_operator("ties", args, _axes_latex(node))))


def _count_emit(node: Node, args: tuple) -> str:
    x = node.inputs[0]
    axes = node.attr("axis")
    known = math.prod(x.shape[a] for a in axes if x.shape[a] is not None)
    factors = [f"{args[0]}.shape[{a}]" for a in axes if x.shape[a] is None] + ([str(known)] if known != 1 else [])
    return factors[0] if len(factors) == 1 else "(" + " * ".join(factors) + ")"


def _count_latex(node: Node, args: tuple) -> str:
    x = node.inputs[0]
    known = math.prod(x.shape[a] for a in node.attr("axis") if x.shape[a] is not None)
    batches = sum(1 for a in node.attr("axis") if x.shape[a] is None)
    return " ".join(([str(known)] if known != 1 or not batches else []) + ["N"] * batches)


# The run-time number of elements over some axes (a mean over the batch divides by it).
register(Op("count", 1, lambda shapes, attrs: (), _count_emit, lambda node, g: (None,),
            lambda node, args: f"count({args[0]})", _count_latex))


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
        return f"np.ones_like({args[1]})" if node.inputs[0].attr("value") == 1 else f"np.full_like({args[1]}, {g})"
    axis = node.attr("axis")
    if axis is not None and axis != tuple(range(len(node.shape))):
        g = f"np.expand_dims({g}, {axis_text(axis)})"
    return f"np.broadcast_to({g}, {args[1]}.shape)"


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
register(Op("broadcast_like", 2, _broadcast_like_shape, _broadcast_like_emit, _broadcast_like_vjp,
            lambda node, args: f"broadcast({args[0]}, like={args[1]})", _broadcast_like_latex))


def _expand_emit(node: Node, args: tuple) -> str:
    value, refs = args[0], args[1:]
    shape = f"{refs[0]}.shape" if len(refs) == 1 else f"np.broadcast_shapes({', '.join(r + '.shape' for r in refs)})"
    if node.inputs[0].op == "const":
        return f"np.full_like({refs[0]}, {value})" if len(refs) == 1 else f"np.full({shape}, {value}, dtype=DTYPE)"
    return f"np.broadcast_to({value}, {shape})"


def _expand_vjp(node: Node, g: Node) -> tuple:
    return (sum_to(g, node.inputs[0].shape),) + (None,) * (len(node.inputs) - 1)


# A value repeated to the broadcast shape of some reference values (only their shapes are read):
# a fused formula that cancelled its operands, like x - x + 1, still has x's shape.
register(Op("expand", None, lambda shapes, attrs: broadcast_shapes(shapes, "expand"), _expand_emit, _expand_vjp,
            lambda node, args: f"broadcast({args[0]}, like={', '.join(map(str, args[1:]))})",
            lambda node, args: (f"\\mathbf{{1}}_{{{', '.join(args[1:])}}}" if args[0] == 1
                                else latex_operator("broadcast", args[:1], ", ".join(args[1:])))))


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
        text = f"{text}.sum(axis={axis_text(kept)}, keepdims=True)"
    if leading:
        text = f"{text}.sum(axis={axis_text(leading)})"
    return text


def _sum_to_latex(node: Node, args: tuple) -> str:
    kept, leading = _sum_to_axes(node.inputs[0].shape, node.shape)
    if leading == (0,) and not kept:
        return rf"\mathbf{{1}}^\top {group(args[0])}"  # a bias gradient: the batch rows summed
    return latex_operator("sum", args, rf"\to {latex_shape(node.shape)}")


# Undo broadcasting: sum an adjoint over the axes its operand was broadcast along.
register(Op("sum_to", 1, _sum_to_shape, _sum_to_emit,
            lambda node, g: (apply("broadcast_like", g, node.inputs[0], axis=None),),
            lambda node, args: f"unbroadcast({args[0]})", _sum_to_latex))


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
            text = f"np.squeeze({text}, axis={axis_text(ones)})"
        new_ones = tuple(i for i, d in enumerate(node.shape) if d == 1)
        return f"np.expand_dims({text}, {axis_text(new_ones)})" if new_ones else text
    dims = tuple(-1 if d is None else d for d in node.shape)
    return f"{args[0]}.reshape({dims})" if len(dims) != 1 else f"{args[0]}.reshape({dims[0]})"


register(Op("reshape", 1, _reshape_shape, _reshape_emit,
            lambda node, g: (reshape(g, node.inputs[0].shape),),
            lambda node, args: f"reshape({args[0]}, {format_shape(node.shape)})",
            lambda node, args: latex_operator("reshape", args, latex_shape(node.shape))))


def reshape(x: Node, shape: Shape) -> Node:
    return x if tuple(x.shape) == tuple(shape) else apply("reshape", x, shape=tuple(shape))


# A zero gradient for a leaf the loss does not depend on.
register(Op("zeros_like", 1, lambda shapes, attrs: shapes[0],
            lambda node, args: f"np.zeros_like({args[0]})", lambda node, g: (None,),
            lambda node, args: "0", lambda node, args: "0"))


# The same value under a new name: an adjoint that equals a forward value reads `d_t1 = w`.
register(Op("alias", 1, lambda shapes, attrs: shapes[0], lambda node, args: str(args[0]),
            lambda node, g: (g,), lambda node, args: str(args[0]), lambda node, args: str(args[0])))


# ---------------------------------------------------------------- slicing and joining

def normalize_index(index, shape: Shape) -> tuple:
    """A basic index as a tuple of ("int", i) / ("slice", start, stop, step), one per leading axis."""
    if not isinstance(index, tuple):
        index = (index,)
    if sum(1 for k in index if k is Ellipsis) > 1:
        raise ShapeError("index: at most one '...' is allowed")
    if Ellipsis in index:
        at = index.index(Ellipsis)
        index = index[:at] + (slice(None),) * (len(shape) - len(index) + 1) + index[at + 1:]
    if len(index) > len(shape):
        raise ShapeError(f"index: {len(index)} indices for shape {format_shape(shape)}")
    out = []
    for axis, (k, d) in enumerate(zip(index, shape)):
        if isinstance(k, slice):
            if d is None:
                if k != slice(None):
                    raise ShapeError(f"index: the batch axis (axis {axis}) can only be taken whole with ':'")
                out.append(("slice", None, None, None))
                continue
            for part in (k.start, k.stop, k.step):
                if part is not None and (not isinstance(part, int) or isinstance(part, bool)):
                    raise ShapeError(f"index: slice bounds must be ints, got {part!r}")
            if k.step is not None and k.step < 1:
                raise ShapeError(f"index: slice steps must be positive, got {k.step}")
            out.append(("slice", k.start, k.stop, k.step))
        elif isinstance(k, int) and not isinstance(k, bool):
            if d is None:
                raise ShapeError(f"index: cannot pick one example of the batch axis (axis {axis})")
            if not -d <= k < d:
                raise ShapeError(f"index: {k} is out of range for axis {axis} of size {d}")
            out.append(("int", k % d))
        else:
            raise ShapeError(f"index: only ints, slices and '...' are supported, got {k!r}")
    return tuple(out)


def _index_shape(shapes: tuple, attrs: dict) -> Shape:
    (x,) = shapes
    out = []
    for axis, d in enumerate(x):
        entry = attrs["index"][axis] if axis < len(attrs["index"]) else ("slice", None, None, None)
        if entry[0] == "slice":
            size = d if d is None else len(range(d)[slice(*entry[1:])])
            if size == 0:
                raise ShapeError(f"index: the slice {_index_text(attrs['index'])} of shape {format_shape(x)} is empty")
            out.append(size)
    return tuple(out)


def _index_text(index: tuple) -> str:
    def one(entry):
        if entry[0] == "int":
            return str(entry[1])
        start, stop, step = entry[1:]
        text = f"{'' if start is None else start}:{'' if stop is None else stop}"
        return text if step is None else f"{text}:{step}"
    return ", ".join(one(e) for e in index)


register(Op("index", 1, _index_shape,
            lambda node, args: f"{args[0]}[{_index_text(node.attr('index'))}]",
            lambda node, g: (apply("unindex", g, node.inputs[0], index=node.attr("index")),),
            lambda node, args: f"{args[0]}[{_index_text(node.attr('index'))}]",
            lambda node, args: f"{group(args[0])}\\left[{_index_text(node.attr('index'))}\\right]"))

# The adjoint of x[index]: g placed at index in an array of zeros shaped like x.
register(Op("unindex", 2, lambda shapes, attrs: shapes[1],
            lambda node, args: f"_unindex({args[0]}, {args[1]}, np.s_[{_index_text(node.attr('index'))}])",
            lambda node, g: (apply("index", g, index=node.attr("index")), None),
            lambda node, args: f"unindex({args[0]})",
            lambda node, args: latex_operator("place", args, f"[{_index_text(node.attr('index'))}]"),
            helpers=("unindex",)))


def _concat_shape(shapes: tuple, attrs: dict) -> Shape:
    first = shapes[0]
    axis = normalize_axes(attrs["axis"], len(first), "concat")[0]
    for other in shapes[1:]:
        if len(other) != len(first) or any(a != b for k, (a, b) in enumerate(zip(first, other)) if k != axis):
            raise ShapeError(f"concat: shapes {shapes_text(shapes)} differ outside axis {attrs['axis']}")
    if any(s[axis] is None for s in shapes):
        raise ShapeError(f"concat: cannot join along the batch axis (shapes {shapes_text(shapes)})")
    return first[:axis] + (sum(s[axis] for s in shapes),) + first[axis + 1:]


def _concat_vjp(node: Node, g: Node) -> tuple:
    axis = normalize_axes(node.attr("axis"), node.ndim, "concat")[0]
    pieces, start = [], 0
    for x in node.inputs:
        index = (("slice", None, None, None),) * axis + (("slice", start, start + x.shape[axis], None),)
        pieces.append(apply("index", g, index=index))
        start += x.shape[axis]
    return tuple(pieces)


register(Op("concat", None, _concat_shape,
            lambda node, args: f"np.concatenate(({', '.join(args)}), axis={node.attr('axis')})",
            _concat_vjp,
            lambda node, args: f"concat({', '.join(args)}, axis={node.attr('axis')})",
            lambda node, args: latex_operator("concat", args, axis_subscript(normalize_axes(node.attr("axis"), node.ndim, "concat")))))


# Blocks the gradient: the value is used as a constant (e.g. the max subtracted inside logsumexp).
register(Op("stop_gradient", 1, lambda shapes, attrs: shapes[0], lambda node, args: str(args[0]),
            lambda node, g: (None,), lambda node, args: f"stop_gradient({args[0]})", lambda node, args: args[0]))


def _one_hot_emit(node: Node, args: tuple) -> str:
    return f"({args[0]}[..., None] == np.arange({node.attr('classes')})).astype({args[0]}.dtype)"


# Integer class labels (stored as floats) -> one-hot rows; labels get no gradient.
register(Op("one_hot", 1, lambda shapes, attrs: shapes[0] + (attrs["classes"],), _one_hot_emit,
            lambda node, g: (None,), lambda node, args: f"one_hot({args[0]}, {node.attr('classes')})",
            lambda node, args: latex_operator("onehot", args, str(node.attr("classes")))))
