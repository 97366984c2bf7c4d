"""An elementwise formula as NumPy calls that write into one array: `np.subtract(1, h1, out=d_a1)`,
`d_a1 *= h1`, `d_a1 *= d_h1` for d_a1 = d_h1*h1*(1 - h1). The training step's in-place form
(codegen/in_place.py) computes every formula it can this way into an array made once, instead of a new
array for every operation. A formula is written so only when every operation of it has one operand
computed before it and the others are variables or numbers (a chain); any other shape gives None, and
the line keeps its ordinary form.
"""
from __future__ import annotations

import sympy as sp

from .derivatives import sigmoid
from .functions import expm1, log1p
from .printing import numpy_text

UFUNCS = {sp.exp: "exp", sp.log: "log", sp.tanh: "tanh", sp.sinh: "sinh", sp.cosh: "cosh", sp.sin: "sin",
          sp.cos: "cos", sp.tan: "tan", sp.atan: "arctan", sp.asin: "arcsin", sp.Abs: "absolute",
          sp.sign: "sign", log1p: "log1p", expm1: "expm1"}
POWERS = {-1: "reciprocal", 2: "square", sp.Rational(1, 2): "sqrt"}


def in_place_lines(formula: sp.Expr, out: str) -> list[str] | None:
    """The lines computing `formula` into the existing array `out` (which no operand may be), or None
    when the formula is a bare operand or not a chain of operations NumPy can write into one array."""
    if _operand(formula) is not None:
        return None
    return _into(formula, out)


def _operand(expr: sp.Expr, masks: bool = False) -> str | None:
    """The text of a variable or a number; with `masks` (a factor of a product), also of a 0/1 mask
    (relu's derivative), which NumPy multiplies as it is. None for an operation."""
    if expr.is_Symbol or expr.is_Number:
        return numpy_text(expr)
    mask = _mask(expr) if masks else None
    return f"({numpy_text(mask)})" if mask is not None else None


def _mask(expr: sp.Expr) -> sp.Basic | None:
    """The condition of Piecewise((1, c), (0, True)): multiplied as it is, NumPy reads it as 0/1."""
    if isinstance(expr, sp.Piecewise) and len(expr.args) == 2 and expr.args[0][0] == 1 \
            and expr.args[1] == (0, sp.true):
        return expr.args[0][1]
    return None


def _into(expr: sp.Expr, out: str) -> list[str] | None:
    if isinstance(expr, sp.Add):
        return _chain(expr.args, out, _signed, "add", "subtract", "+=", "-=")
    if isinstance(expr, sp.Mul):
        return _product(expr, out)
    if isinstance(expr, sp.Pow):
        return _power(expr, out)
    if isinstance(expr, sigmoid):
        return _applied(expr.args[0], out, lambda x: f"_sigmoid_into({x}, {out})")
    if isinstance(expr, sp.Max) and len(expr.args) == 2 and 0 in expr.args:
        other = _operand(expr.args[1] if expr.args[0] == 0 else expr.args[0])
        return None if other is None else [f"np.maximum({other}, 0, out={out})"]
    if isinstance(expr, sp.Piecewise) and len(expr.args) == 2 and expr.args[1] == (0, sp.true) \
            and expr.args[0][0] != 1:  # (a mask alone is no operation on numbers)
        value, condition = expr.args[0]  # a masked value: value * (condition), as relu's derivative
        if condition == (value > 0) and _operand(value) is not None:  # relu itself
            return [f"np.maximum({_operand(value)}, 0, out={out})"]
        return _product(sp.Mul(value, sp.Piecewise((1, condition), (0, True)), evaluate=False), out)
    function = UFUNCS.get(type(expr))
    if function is not None and len(expr.args) == 1:
        return _applied(expr.args[0], out, lambda x: f"np.{function}({x}, out={out})")
    return None


def _applied(argument: sp.Expr, out: str, call) -> list[str] | None:
    """A function of one operand: on it directly, or on `out` once the operand is computed there."""
    operand = _operand(argument)
    if operand is not None:
        return [call(operand)]
    lines = _into(argument, out)
    return None if lines is None else lines + [call(out)]


def _signed(term: sp.Expr) -> tuple[sp.Expr, bool]:
    """(term without its minus sign, whether it had one): a sum adds or subtracts each term."""
    if isinstance(term, sp.Mul) and term.args[0] == -1:
        return sp.Mul(*term.args[1:]), True
    if term.is_Number and term < 0:
        return -term, True
    return term, False


def _inverted(factor: sp.Expr) -> tuple[sp.Expr, bool]:
    """(factor, whether it divides): a product multiplies or divides by each factor."""
    if isinstance(factor, sp.Pow) and factor.exp == -1 and _operand(factor.base) is not None:
        return factor.base, True
    return factor, False


def _product(expr: sp.Mul, out: str) -> list[str] | None:
    coefficient, factors = expr.as_coeff_mul()
    if len(factors) == 1 and _operand(factors[0]) is not None:  # c x
        x = _operand(factors[0])
        return [f"np.negative({x}, out={out})" if coefficient == -1 else f"np.multiply({x}, {numpy_text(coefficient)}, out={out})"]
    lines = _chain(factors, out, _inverted, "multiply", "divide", "*=", "/=")
    if lines is None or coefficient == 1:
        return lines
    return lines + ([f"np.negative({out}, out={out})"] if coefficient == -1 else [f"{out} *= {numpy_text(coefficient)}"])


def _chain(terms, out: str, split, first: str, inverse: str, apply: str, unapply: str) -> list[str] | None:
    """A sum or a product into `out`: its one term that is an operation first (or the first two operands
    combined), then every operand added to it (multiplied) or subtracted (divided) in place; a term
    subtracted (a divisor) that is an operation, from the first operand added (multiplied): 1 - x**2 is
    `np.square(x, out=out)`, `np.subtract(1, out, out=out)`."""
    masks = first == "multiply"
    parts = [split(term) for term in terms]
    computed = [(term, undo) for term, undo in parts if _operand(term, masks) is None]
    if len(computed) > 1:
        return None
    operands = sorted(((_operand(term, masks), undo) for term, undo in parts if _operand(term, masks) is not None),
                      key=lambda pair: pair[1])  # the terms added first: 1 - h, not -h + 1
    if computed:
        lines = _into(computed[0][0], out)
        if lines is None or not computed[0][1]:
            return lines and lines + [f"{out} {unapply if undo else apply} {text}" for text, undo in operands]
        if operands and not operands[0][1]:
            (a, _), *operands = operands
            lines.append(f"np.{inverse}({a}, {out}, out={out})")
        else:
            lines.append(f"np.{'negative' if first == 'add' else 'reciprocal'}({out}, out={out})")
        return lines + [f"{out} {unapply if undo else apply} {text}" for text, undo in operands]
    if len(operands) < 2:  # a mask alone
        return None
    (a, undo_a), (b, undo_b), *operands = operands
    if undo_a:  # every term subtracted (divided): their sum (product), negated (inverted)
        lines = [f"np.{first}({a}, {b}, out={out})", f"np.{'negative' if first == 'add' else 'reciprocal'}({out}, out={out})"]
        return lines + [f"{out} {unapply} {text}" for text, _ in operands]
    lines = [f"np.{inverse if undo_b else first}({a}, {b}, out={out})"]
    return lines + [f"{out} {unapply if undo else apply} {text}" for text, undo in operands]


def _power(expr: sp.Pow, out: str) -> list[str] | None:
    function = POWERS.get(expr.exp)
    if expr.exp in (3, 4) and _operand(expr.base) is not None:  # x*x*x: NumPy's power takes ~30 times as long
        base = _operand(expr.base)
        return [f"np.square({base}, out={out})", f"{out} *= {base}" if expr.exp == 3 else f"np.square({out}, out={out})"]
    if function is not None:
        return _applied(expr.base, out, lambda x: f"np.{function}({x}, out={out})")
    base, exponent = _operand(expr.base), _operand(expr.exp)
    if base is None or exponent is None:
        return None
    return [f"np.power({base}, {exponent}, out={out})"]
