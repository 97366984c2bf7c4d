"""Elementwise ops, each declared by a SymPy formula over scalar placeholders: broadcasting, the
derivative rule (`sympy.diff`, through the forward output where cheaper), the formula's text and LaTeX
and the default NumPy emission all follow from it. Also `fuse`, which turns a formula over nodes into
one `formula` node: the way every derivative rule builds its elementwise parts.
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import sympy as sp

from ..errors import DifferentiationError, GraphError
from ..formulas.printing import numpy_text, plain_text, sympy_number
from ..formulas.latex import elementwise_latex, operand_symbol
from ..formulas.derivatives import G, Y, local_derivative, placeholder, placeholders, sigmoid, softplus
from ..ir.graph import Node, apply, constant
from ..ir.shapes import Shape, broadcast_shapes, format_shape
from .shape import sum_to
from .table import OPS, Op, attr_texts, register


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
    constants = {s: sympy_number(n.attr("value")) for s, n in binding.items() if n.op == "const"}
    expr = expr.xreplace(constants) if constants else expr  # (each xreplace walks the whole formula)
    if expr == 0:
        return None
    operands: list[Node] = []
    renaming = {}
    for symbol in sorted(expr.free_symbols, key=lambda s: _symbol_rank(s, binding)):
        node = binding[symbol]
        if node not in operands:
            operands.append(node)
        renaming[symbol] = placeholder(operands.index(node))
    if any(symbol != stand_in for symbol, stand_in in renaming.items()):
        expr = expr.xreplace(renaming)
    if expr == 0:
        return None
    free = expr.free_symbols
    used = [x for i, x in enumerate(operands) if placeholder(i) in free]
    if len(used) < len(operands):  # x - x cancelled: renumber the placeholders that are left
        expr = expr.xreplace({placeholder(operands.index(x)): placeholder(k) for k, x in enumerate(used)})
    if not used:
        value = constant(_number(expr))
    elif expr == placeholder(0):
        value = used[0]
    else:
        value = apply("formula", *used, expr=expr)
    return expand(value, shape, [x for x in binding.values() if x.op != "const"])


def _spreads_as_numbers(expr: sp.Expr, binding: dict, shape: Shape) -> tuple[sp.Expr, dict]:
    """A number spread over an array (the gradient of a sum or mean: ones, or ones / N) taken as
    the number itself where the formula's other operands already have its shape: (p - y) / N
    rather than ones_like(t) / N * (p - y)."""
    free = expr.free_symbols  # (SymPy walks the formula for it each time it is asked)
    used = {s: n for s, n in binding.items() if s in free}
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


def _times_adjoint(local: sp.Expr, factor: sp.Expr = G) -> sp.Expr:
    """g · local, with g taken into the cases of a piecewise local derivative (relu' → g where x > 0,
    printed as a mask). Built by hand: sympy.piecewise_fold simplifies the conditions, which can
    take seconds."""
    if isinstance(local, sp.Piecewise):
        return sp.Piecewise(*((factor * value, condition) for value, condition in local.args), evaluate=False)
    return factor * local


def formula_vjp(node: Node, g: Node) -> tuple:
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


def formula_jvp(node: Node, tangents: tuple) -> Optional[Node]:
    """Forward mode: ẏ = Σ_i ∂y/∂xi · ẋi, one formula over the operands, the output and their tangents
    (sin(a)' = cos(a)·ȧ; σ(a)' = σ(a)(1 − σ(a))·ȧ, through the forward value as the reverse rule)."""
    expr = scalar_expr(node)
    binding = {**{placeholder(j): v for j, v in enumerate(node.inputs)}, Y: node}
    total = sp.Integer(0)
    for i, (x, tangent) in enumerate(zip(node.inputs, tangents)):
        if tangent is None or x.op == "const":
            continue
        dot = sp.Symbol(f"dot{i}", real=True)
        binding[dot] = tangent
        total += _times_adjoint(local_derivative(expr, i), dot)
    return fuse(total, binding, node.shape)


def pointwise(name: str, formula: Callable[..., sp.Expr], arity: int = 1,
              emit: str | None = None, text: str | None = None) -> Op:
    """Declare an elementwise op from its SymPy formula: one row, everything else follows from it.

    Without `emit` the formula itself is printed as NumPy code, without `text` it reads `name(x)`;
    either may be a format string over the operands ({0}, {1}) and attrs ({slope}) where the printed
    formula would read worse (`a * b`, not `a*b`).
    """
    def emit_rule(node: Node, args: tuple) -> str:
        return emit.format(*args, **attr_texts(node)) if emit else _default_emit(node, args)

    def text_rule(node: Node, args: tuple) -> str:
        return text.format(*args, **attr_texts(node)) if text else f"{name}({', '.join(map(str, args))})"

    def shape_rule(shapes: tuple, attrs: dict) -> Shape:
        for key, value in attrs.items():  # numbers in the formula (leaky_relu's slope): nan or inf is no formula
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                raise GraphError(f"{name}: {key} must be a finite number, got {value!r}")
        return broadcast_shapes(shapes, name)

    return register(Op(name=name, arity=arity, shape=shape_rule, emit=emit_rule, vjp=formula_vjp,
                       jvp=formula_jvp, text=text_rule, latex=_default_latex, scalar=formula))


pointwise("add", lambda a, b: a + b, 2, emit="{0} + {1}", text="{0} + {1}")
pointwise("sub", lambda a, b: a - b, 2, emit="{0} - {1}", text="{0} - {1}")
pointwise("mul", lambda a, b: a * b, 2, emit="{0} * {1}", text="{0} * {1}")
pointwise("div", lambda a, b: a / b, 2, emit="{0} / {1}", text="{0} / {1}")
pointwise("pow", lambda a, b: a ** b, 2, emit="{0} ** {1}", text="{0} ** {1}")
pointwise("neg", lambda a: -a, emit="-{0}", text="-{0}")
pointwise("exp", sp.exp)
pointwise("log", sp.log)
pointwise("tanh", sp.tanh)
# The generated _sigmoid computes 1 / (1 + e^(-a)); e^(-a) overflowing to inf gives the limit 0, not a NaN.
pointwise("sigmoid", sigmoid)
# Ties, following the Max module of the lecture notes on layers as modules: d max(a, b)/da = 1 if a > b else 0, so at a tie the
# gradient goes to b; relu'(0) = 0 and leaky_relu'(0) = slope for the same reason.
pointwise("relu", lambda a: sp.Piecewise((a, a > 0), (0, True)))
pointwise("leaky_relu", lambda a, slope: sp.Piecewise((a, a > 0), (sympy_number(slope) * a, True)),
          emit="xp.where({0} > 0, {0}, {slope} * {0})", text="leaky_relu({0}, slope={slope})")
pointwise("maximum", lambda a, b: sp.Piecewise((a, a > b), (b, True)), 2, emit="xp.maximum({0}, {1})")
pointwise("minimum", lambda a, b: sp.Piecewise((a, a < b), (b, True)), 2, emit="xp.minimum({0}, {1})")
pointwise("sqrt", sp.sqrt)
pointwise("abs", sp.Abs)
# softplus(a) = log(1 + e^a), computed as logaddexp(0, a) so that it never overflows.
pointwise("softplus", softplus)
pointwise("softsign", lambda a: a / (1 + sp.Abs(a)))


def _generic_text(node: Node, args: tuple) -> str:
    return plain_text(_bound(node, args, lambda name: sp.Symbol(name, real=True)))


# A formula made by graphcomp itself (derivatives, fused chains): the formula is an attr.
register(Op(name="formula", arity=None, shape=lambda shapes, attrs: broadcast_shapes(shapes),
            emit=_default_emit, vjp=formula_vjp, jvp=formula_jvp, text=_generic_text, latex=_default_latex,
            scalar=lambda *xs, expr: expr))
