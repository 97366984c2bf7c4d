"""Printing scalar SymPy expressions and numbers as NumPy source text.

Only elementwise formulas go through SymPy; tensor ops format their own text
in the op table. The printer is strict: a SymPy function it does not know is an
error, never a silently wrong line of code.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Iterable

import sympy as sp
from sympy.printing.numpy import NumPyPrinter
from sympy.printing.precedence import PRECEDENCE
from sympy.printing.precedence import precedence
from sympy.printing.str import StrPrinter

from ..errors import DifferentiationError
from .derivatives import constants_evaluated
from .renaming import renaming


def positive_first(self, expr: sp.Add, order=None) -> str:
    """A sum with its positive terms first, as a person writes it: σ(z) - y, not -y + σ(z)."""
    # could_extract_minus_sign is slow on large terms: asked once per term
    terms = sorted(((t, t.could_extract_minus_sign()) for t in self._as_ordered_terms(expr, order=order)),
                   key=lambda pair: pair[1])
    text = self._print(terms[0][0])
    for term, negative in terms[1:]:
        if negative:
            text += " - " + self.parenthesize(-term, PRECEDENCE["Add"])
        else:
            text += " + " + self.parenthesize(term, PRECEDENCE["Add"], strict=True)
    return text


def _repeated_product(expr) -> bool:
    """Whether the NumPy printer writes `expr` as a product: a variable to the power 3 or 4 (x*x*x,
    x*x*x*x; a longer base would be computed again for each factor)."""
    return isinstance(expr, sp.Pow) and expr.base.is_Symbol and expr.exp.is_Integer and 3 <= int(expr.exp) <= 4


class NumPyCodePrinter(NumPyPrinter):
    """SymPy's NumPy printer, writing `xp.` (the namespace of the arrays at run time: NumPy, or any
    library of the Array API standard) and exact float literals; only functions of the standard."""

    def __init__(self) -> None:
        super().__init__({"strict": True, "fully_qualified_modules": True})

    def _module_format(self, fqn: str, register: bool = True) -> str:
        text = super()._module_format(fqn, register)
        return "xp." + text[len("numpy."):] if text.startswith("numpy.") else text

    def _print_Float(self, expr: sp.Float) -> str:
        return repr(float(expr))

    _print_Add = positive_first

    def _print_Heaviside(self, expr: sp.Heaviside) -> str:
        # H(0) is part of the expression: graphcomp builds step functions as Heaviside(x, 0).
        value_at_zero = expr.args[1] if len(expr.args) > 1 else sp.S.Half
        x = self._print(expr.args[0])
        return f"xp.where({x} > 0, 1.0, xp.where({x} == 0, {self._print(sp.Float(value_at_zero))}, 0.0))"

    def _print_Pow(self, expr: sp.Pow, rational: bool = False) -> str:
        # Arrays are always float here, so negative integer powers are safe to print as
        # `1/x` or `x**(-2)`, not as SymPy's float workaround `x**(-1.0)`.
        if _repeated_product(expr):  # x**3 is x*x*x: NumPy's power takes ~30 times as long (x**2 it squares)
            return "*".join([self.parenthesize(expr.base, PRECEDENCE["Mul"], strict=False)] * int(expr.exp))
        return self._hprint_Pow(expr, rational=False, sqrt="numpy.sqrt")

    def parenthesize(self, item, level: int, strict: bool = False) -> str:
        """A power printed as a product is parenthesised wherever it is an operand (y/(x*x*x), never
        y/x*x*x: SymPy asks a negative product's factors at the level of a sum), except as a term of a sum."""
        if _repeated_product(item):
            return self._print(item) if strict and level == PRECEDENCE["Add"] else f"({self._print(item)})"
        return super().parenthesize(item, level, strict)

    def _print_Max(self, expr: sp.Max) -> str:
        return self._pairwise("xp.maximum", expr.args)

    def _print_Min(self, expr: sp.Min) -> str:
        return self._pairwise("xp.minimum", expr.args)

    def _pairwise(self, function: str, args) -> str:
        text = self._print(args[0])
        for arg in args[1:]:
            text = f"{function}({text}, {self._print(arg)})"
        return text

    def _print_Piecewise(self, expr: sp.Piecewise) -> str:
        # Piecewise((a, c1), (b, c2), (z, True)) -> xp.where(c1, a, xp.where(c2, b, z))
        *branches, (last, condition) = expr.args
        if condition is not sp.true:
            raise DifferentiationError(f"piecewise formula {expr} has no default branch")
        if len(branches) == 1 and last == 0:
            value, cond = branches[0]
            if cond == (value > 0):
                return f"xp.maximum({self._print(value)}, 0)"  # relu
            # a masked value, as in relu's derivative: the mask as numbers of the operand's dtype (the
            # standard does not mix booleans with numbers), 5x faster than np.where at 256x512
            reference = sorted(cond.free_symbols, key=str)[0]
            mask = f"xp.astype({self._print(cond)}, {self._print(reference)}.dtype)"
            return f"{self.parenthesize(value, precedence(sp.Mul(2, value, evaluate=False)))} * {mask}"
        text = self._print(last)
        for value, cond in reversed(branches):
            chosen = self._print(value)
            if value.is_Number:  # the standard's where takes one Python number at most, and the other
                # branch may be one at run time (1/N): this one becomes an array shaped like the condition
                chosen = f"xp.full_like({self._print(sorted(cond.free_symbols, key=str)[0])}, {chosen})"
            text = f"xp.where({self._print(cond)}, {chosen}, {text})"
        return text

    def _print_Relational(self, expr: sp.core.relational.Relational) -> str:
        return f"{self._print(expr.lhs)} {expr.rel_op} {self._print(expr.rhs)}"

    # Conditions combine with & and |, which broadcast arrays of different shapes (SymPy's default
    # np.logical_and.reduce((a, b)) stacks its operands and fails on them).
    def _print_And(self, expr: sp.And) -> str:
        return " & ".join(self._condition(arg) for arg in expr.args)

    def _print_Or(self, expr: sp.Or) -> str:
        return " | ".join(self._condition(arg) for arg in expr.args)

    def _condition(self, arg) -> str:
        return self._print(arg) if arg.is_Symbol else f"({self._print(arg)})"  # & binds before >

    def _print_Not(self, expr: sp.Not) -> str:
        return f"xp.logical_not({self._print(expr.args[0])})"

    def _print_ITE(self, expr) -> str:
        return "xp.where({}, {}, {})".format(*(self._print(arg) for arg in expr.args))

    def _print_BooleanTrue(self, expr) -> str:
        return "True"

    def _print_BooleanFalse(self, expr) -> str:
        return "False"

    def _print_sign(self, expr: sp.sign) -> str:
        return f"xp.sign({self._print(expr.args[0])})"

    def _print_sigmoid(self, expr) -> str:
        if expr.args[0].is_Number:  # σ of a constant is a constant
            return self._print(sp.Float(sp.N(1 / (1 + sp.exp(-expr.args[0])), 17)))
        return f"_sigmoid(xp, {self._print(expr.args[0])})"

    def _print_softplus(self, expr) -> str:
        return f"xp.logaddexp(0, {self._print(expr.args[0])})"

    def _print_Abs(self, expr: sp.Abs) -> str:
        return f"xp.abs({self._print(expr.args[0])})"

    # The standard's names (NumPy's arcsin is asin there), and log1p / expm1, exact near 0.
    def _print_asin(self, expr: sp.asin) -> str:
        return f"xp.asin({self._print(expr.args[0])})"

    def _print_atan(self, expr: sp.atan) -> str:
        return f"xp.atan({self._print(expr.args[0])})"

    def _print_log1p(self, expr) -> str:
        return f"xp.log1p({self._print(expr.args[0])})"

    def _print_expm1(self, expr) -> str:
        return f"xp.expm1({self._print(expr.args[0])})"


class TextPrinter(StrPrinter):
    """Formulas as plain text for comments and the terminal: where(c, a, b) for piecewise."""

    _print_Add = positive_first

    def _print_Mul(self, expr: sp.Mul) -> str:
        """A sum after the factor it is made of, as the LaTeX prints it: sigmoid(a)*(1 - sigmoid(a))."""
        ordered = sums_last(expr)
        if ordered is None:
            return super()._print_Mul(expr)
        coefficient, factors = ordered
        text = "*".join(self.parenthesize(f, PRECEDENCE["Mul"], strict=False) for f in factors)
        return text if coefficient == 1 else ("-" if coefficient == -1 else f"{coefficient}*") + text

    def _print_ITE(self, expr) -> str:
        return "where({}, {}, {})".format(*(self._print(arg) for arg in expr.args))

    def _print_Piecewise(self, expr: sp.Piecewise) -> str:
        *branches, (last, _) = expr.args
        text = self._print(last)
        for value, cond in reversed(branches):
            text = f"where({self._print(cond)}, {self._print(value)}, {text})"
        return text


def sums_last(expr: sp.Mul) -> tuple[sp.Expr, list] | None:
    """(coefficient, factors with the sums after the others) for a product with an integer coefficient,
    no division, and a sum that holds another factor SymPy's order puts after it: (1 - σ(a)) σ(a)
    reads better as σ(a) (1 - σ(a)); (1 - y) softplus(z) stays as it is (None: print as SymPy does)."""
    coefficient, rest = expr.as_coeff_Mul()
    factors = list(rest.as_ordered_factors()) if rest.is_Mul else [rest]
    if not coefficient.is_Integer or any(f.is_Pow and f.exp.is_negative for f in factors):
        return None
    if not any(f.is_Add and any(not other.is_Add and f.has(other) for other in factors[k + 1:])
               for k, f in enumerate(factors)):
        return None
    return coefficient, [f for f in factors if not f.is_Add] + [f for f in factors if f.is_Add]


_PRINTER = NumPyCodePrinter()
_TEXT = TextPrinter()


def plain_text(expr: sp.Expr) -> str:
    """A formula as a person types it: h*(1 - h), where(a > 0, 1, 0)."""
    return _printed_once(expr, "text")


def factored(expr: sp.Expr) -> sp.Expr:
    """Common numeric factors taken out of sums, as a person writes them: 2(ŷ - y), not 2ŷ - 2y."""
    return sp.factor_terms(expr) if _common_factor(expr) and sp.count_ops(expr) <= 40 else expr


def _common_factor(expr: sp.Expr) -> bool:
    """Whether some sum in expr has terms whose numeric coefficients share a factor other than ±1."""
    for node in sp.preorder_traversal(expr):
        if node.is_Add:
            coefficients = [abs(term.as_coeff_Mul()[0]) for term in node.args]
            if all(c.is_Rational and c != 0 for c in coefficients) and sp.gcd(coefficients) not in (0, 1):
                return True
    return False


def numpy_text(expr: sp.Expr) -> str:
    """NumPy source for a scalar expression whose symbols are variable names."""
    try:
        return _printed_once(expr, "numpy")
    except Exception as error:  # SymPy raises PrintMethodNotImplementedError and friends
        raise DifferentiationError(f"cannot print {expr} as NumPy code: {error}") from error


def _printed_once(expr: sp.Expr, kind: str) -> str:
    """`expr` printed by the printer `kind`, once per shape of formula: its variables are renamed to
    stand-ins that sort as their names do (formulas.renaming), so that the thousands of formulas of a
    long chain that differ in their variables' names only are printed once each, and read the same."""
    symbols = expr.free_symbols
    stand_ins = None
    if all(type(s) is sp.Symbol and s == _real(s.name) and s.name not in _PRINTER.reserved_words for s in symbols):
        stand_ins = renaming([(s, s.name) for s in symbols], split=None)
    if stand_ins is None:
        return _printed(expr, kind)
    return stand_ins.named_back(_printed(expr.xreplace(stand_ins.symbols), kind))


@lru_cache(maxsize=8192)
def _printed(expr: sp.Expr, kind: str) -> str:
    if kind == "text":
        return _TEXT.doprint(factored(expr))
    return _PRINTER.doprint(factored(constants_evaluated(expr)))


@lru_cache(maxsize=8192)
def _real(name: str) -> sp.Symbol:
    return sp.Symbol(name, real=True)


def number_text(value: int | float) -> str:
    """A Python literal that reads back to exactly `value`; negatives in parentheses."""
    text = repr(value) if isinstance(value, float) else str(int(value))
    if text in ("inf", "-inf", "nan"):
        text = {"inf": "xp.inf", "-inf": "-xp.inf", "nan": "xp.nan"}[text]
    return f"({text})" if text.startswith("-") else text


def sympy_number(value: int | float) -> sp.Expr:
    if isinstance(value, (int, float)) and value != 0 and math.isfinite(value):
        return _number(type(value), value)
    return sp.Integer(value) if isinstance(value, int) else sp.Float(value)


@lru_cache(maxsize=4096)
def _number(kind: type, value: int | float) -> sp.Expr:
    """A number as SymPy's, made once: the passes fold the same constants into formula after formula
    (the type is part of the key: 1 and 1.0 are different numbers to SymPy)."""
    return sp.Float(value) if issubclass(kind, float) else sp.Integer(value)


# ---------------------------------------------------------------- tuples as code
# Every tuple, shape and index the emitted code writes is printed here: Python reads `(a)` as `a`
# itself, so a one-element tuple printed by joining its items loses its meaning without an error
# (`xp.concat((t1), axis=1)` joined the rows of t1).

def tuple_text(items: Iterable[object]) -> str:
    """A tuple literal of items already printed as code: `()`, `(a,)`, `(a, b)`."""
    texts = [str(item) for item in items]
    return "(" + ", ".join(texts) + ("," if len(texts) == 1 else "") + ")"


def subscript_text(items: Iterable[object]) -> str:
    """What goes between the brackets of `x[...]`: `a, b`; one item needs no comma there (`x[a]` is
    `x[a,]`, and a slice cannot be parenthesised), and no item at all is the empty tuple `()`."""
    texts = [str(item) for item in items]
    return ", ".join(texts) if texts else "()"


def axis_argument(axes: Iterable[int]) -> str:
    """An `axis=` argument: one axis as an int, none or several as a tuple."""
    axes = tuple(axes)
    return str(axes[0]) if len(axes) == 1 else tuple_text(axes)


# ---------------------------------------------------------------- LaTeX of tensor formulas
# The notation (README, "Reading the formulas"): juxtaposition is the matrix product, ⊙ the
# elementwise one, a b^T of two vectors their outer product, 1^T A the sum over the first axis,
# named operators carry their axis or shape as a subscript. tests/latex_reader.py evaluates it.
