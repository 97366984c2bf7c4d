"""The elementwise functions a user expects beyond the activations: trigonometric and hyperbolic
functions, log1p and expm1, square (one `pointwise` row each: their derivatives are SymPy's, read through
the forward value where a textbook does, tan' = 1 + y², expm1' = y + 1), and the ops of case
distinctions: comparisons (a 0/1 mask), `where` and `clip`.

Kinks follow PyTorch. `where(c, a, b)` passes the gradient to a where c holds and to b elsewhere, none to
the condition. `clip(x, lo, hi)` passes it where lo <= x <= hi, both bounds included (torch.clamp). These
three are not formulas: fusion never takes them into a larger formula, so the code always selects with
xp.where / xp.clip and never multiplies a value by a mask (0 · inf would be nan where the value is not
selected, as in where(x > 0, log(x), 0)).
"""
from __future__ import annotations

import math

import sympy as sp

from ..errors import GraphError
from ..formulas.derivatives import G, placeholder
from ..formulas.functions import expm1, log1p
from ..formulas.latex import elementwise_latex, latex_number, latex_operator, operand_symbol
from ..formulas.printing import number_text, sympy_number
from ..ir.graph import Node, apply
from ..ir.shapes import Shape, broadcast_shapes
from .pointwise import fuse, pointwise
from .shape import sum_to
from .table import Op, not_differentiable, register

pointwise("sin", sp.sin)
pointwise("cos", sp.cos)
pointwise("tan", sp.tan)
pointwise("arcsin", sp.asin)
pointwise("arctan", sp.atan)
pointwise("sinh", sp.sinh)
pointwise("cosh", sp.cosh)
pointwise("log1p", log1p)
pointwise("expm1", expm1)
pointwise("square", lambda a: a ** 2, emit="xp.square({0})")

# The relations a condition may use, as SymPy builds them and as LaTeX writes them.
RELATIONS = {">": sp.StrictGreaterThan, "<": sp.StrictLessThan, ">=": sp.GreaterThan, "<=": sp.LessThan,
             "==": sp.Eq, "!=": sp.Ne}
_RELATION_LATEX = {">": ">", "<": "<", ">=": r"\geq", "<=": r"\leq", "==": "=", "!=": r"\neq"}


def _operand(node: Node, k: int, arg) -> str:
    """Operand k as code: a name, or a number as a literal."""
    return number_text(node.inputs[k].attr("value")) if node.inputs[k].op == "const" else str(arg)


def _condition(node: Node, args: tuple, first: int) -> str:
    return f"{_operand(node, first, args[first])} {node.attr('relation')} {_operand(node, first + 1, args[first + 1])}"


def _relation_shape(what: str):
    def shape(shapes: tuple, attrs: dict) -> Shape:
        if attrs.get("relation") not in RELATIONS:
            raise GraphError(f"{what}: the relation must be one of {', '.join(RELATIONS)}, got {attrs.get('relation')!r}")
        return broadcast_shapes(shapes, what)
    return shape


def _condition_latex(node: Node, args: tuple, first: int) -> str:
    left, right = (a if isinstance(a, str) else latex_number(a) for a in args[first:first + 2])
    return f"{left} {_RELATION_LATEX[node.attr('relation')]} {right}"


# `a > b` (and <, >=, <=, ==, !=): 1 where the relation holds, 0 elsewhere, in the module's dtype; a mask
# no gradient flows through. gc.where reads a comparison as its condition.
register(Op(name="compare", arity=2, shape=_relation_shape("compare"),
            emit=lambda node, args: f"xp.astype({_condition(node, args, 0)}, _dtype(xp))",
            vjp=not_differentiable, jvp=lambda node, tangents: None,
            text=lambda node, args: f"({_condition(node, args, 0)})",
            latex=lambda node, args: rf"\mathbb{{1}}\left[{_condition_latex(node, args, 0)}\right]",
            number_operands=True))


def _where_emit(node: Node, args: tuple) -> str:
    """xp.where(left rel right, a, b); the standard takes one Python number at most among a and b."""
    a, b = _operand(node, 0, args[0]), _operand(node, 1, args[1])
    if node.inputs[0].op == "const" and node.inputs[1].op == "const":
        reference = next(args[k] for k in (2, 3) if node.inputs[k].op != "const")
        a = f"xp.full_like({reference}, {a}, dtype=_dtype(xp))"
    return f"xp.where({_condition(node, args, 2)}, {a}, {b})"


def _where_vjp(node: Node, g: Node) -> tuple:
    """g to a where the condition holds, to b elsewhere; none to the condition's operands."""
    a, b, left, right = node.inputs
    relation = node.attr("relation")
    to_a = None if a.op == "const" else sum_to(apply("where", g, 0, left, right, relation=relation), a.shape)
    to_b = None if b.op == "const" else sum_to(apply("where", 0, g, left, right, relation=relation), b.shape)
    return to_a, to_b, None, None


def _where_jvp(node: Node, tangents: tuple) -> Node | None:
    ta, tb = tangents[:2]
    if ta is None and tb is None:
        return None
    left, right = node.inputs[2:]
    value = apply("where", 0 if ta is None else ta, 0 if tb is None else tb, left, right, relation=node.attr("relation"))
    return value if value.shape == node.shape else apply("expand", value, node)


def _where_latex(node: Node, args: tuple) -> str:
    """a 1[c] + b 1[¬c], the notation of every case distinction (a 0 term left out)."""
    dummies = {k: operand_symbol(f"w{k}", a) for k, a in enumerate(args) if isinstance(a, str)}
    symbols = [dummies[k][0] if k in dummies else sympy_number(a) for k, a in enumerate(args)]
    expr = sp.Piecewise((symbols[0], RELATIONS[node.attr("relation")](symbols[2], symbols[3])), (symbols[1], True),
                        evaluate=False)
    return elementwise_latex(expr, dict(dummies.values()), tensor=node.shape != ())


# where(left rel right, a, b): operands (a, b, left, right) and the relation; gc.where writes a comparison
# `x > 0` as its two sides, and any other condition c as c != 0 (NumPy's truth of a number).
register(Op(name="where", arity=4, shape=_relation_shape("where"), emit=_where_emit, vjp=_where_vjp, jvp=_where_jvp,
            text=lambda node, args: f"where({_condition(node, args, 2)}, {args[0]}, {args[1]})",
            latex=_where_latex, number_operands=True))


def _passed(x: sp.Symbol, lo: float | None, hi: float | None) -> sp.Expr:
    """Where clip passes the gradient: lo <= x <= hi, the bounds included (torch.clamp)."""
    parts = ([x >= _bound(lo)] if lo is not None else []) + ([x <= _bound(hi)] if hi is not None else [])
    return sp.And(*parts)


def _bound(value: float) -> sp.Expr:
    """A bound as the formula writes it: -1, not -1.0."""
    return sp.Integer(int(value)) if value.is_integer() else sp.Float(value)


def _clip_masked(node: Node, g: Node) -> Node | None:
    x = node.inputs[0]
    kept = sp.Piecewise((G, _passed(placeholder(0), node.attr("lo"), node.attr("hi"))), (0, True), evaluate=False)
    return fuse(kept, {G: g, placeholder(0): x}, node.shape)


def _clip_shape(shapes: tuple, attrs: dict) -> Shape:
    lo, hi = attrs.get("lo"), attrs.get("hi")
    for name, bound in (("lo", lo), ("hi", hi)):
        if bound is not None and (not isinstance(bound, float) or not math.isfinite(bound)):
            raise GraphError(f"clip: {name} must be a finite number or None, got {bound!r}")
    if lo is None and hi is None or lo is not None and hi is not None and lo > hi:
        raise GraphError(f"clip: needs lo <= hi, one of them at least, got lo={lo!r}, hi={hi!r}")
    return shapes[0]


def _bound_text(value: float | None) -> str:
    return "None" if value is None else number_text(value)


def _clip_latex(node: Node, args: tuple) -> str:
    r"""\operatorname{clip}(x, lo, hi); a one-sided clip as the max or min it is."""
    lo, hi = node.attr("lo"), node.attr("hi")
    if hi is None:
        return rf"\max\left({args[0]}, {latex_number(lo)}\right)"
    if lo is None:
        return rf"\min\left({args[0]}, {latex_number(hi)}\right)"
    return latex_operator("clip", [args[0], latex_number(lo), latex_number(hi)])


# clip(x, lo, hi) = min(max(x, lo), hi), each bound a number or None.
register(Op(name="clip", arity=1, shape=_clip_shape,
            emit=lambda node, args: f"xp.clip({args[0]}, {_bound_text(node.attr('lo'))}, {_bound_text(node.attr('hi'))})",
            vjp=lambda node, g: (_clip_masked(node, g),), jvp=lambda node, tangents: (
                None if tangents[0] is None else _clip_masked(node, tangents[0])),
            text=lambda node, args: f"clip({args[0]}, {_bound_text(node.attr('lo'))}, {_bound_text(node.attr('hi'))})",
            latex=_clip_latex))
