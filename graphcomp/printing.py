"""Printing scalar SymPy expressions and numbers as NumPy source text.

Only elementwise formulas go through SymPy; tensor ops format their own text
in the op table. The printer is strict: a SymPy function it does not know is an
error, never a silently wrong line of code.
"""
from __future__ import annotations

import sympy as sp
from sympy.printing.numpy import NumPyPrinter
from sympy.printing.precedence import precedence
from sympy.printing.str import StrPrinter

from .errors import DifferentiationError
from .simplify import sigmoid


class NumPyCodePrinter(NumPyPrinter):
    """SymPy's NumPy printer, writing `np.` and exact float literals."""

    def __init__(self) -> None:
        super().__init__({"strict": True, "fully_qualified_modules": True})

    def _module_format(self, fqn: str, register: bool = True) -> str:
        text = super()._module_format(fqn, register)
        return "np." + text[len("numpy."):] if text.startswith("numpy.") else text

    def _print_Float(self, expr: sp.Float) -> str:
        return repr(float(expr))

    def _print_Heaviside(self, expr: sp.Heaviside) -> str:
        # H(0) is part of the expression: graphcomp builds step functions as Heaviside(x, 0).
        value_at_zero = expr.args[1] if len(expr.args) > 1 else sp.S.Half
        return f"np.heaviside({self._print(expr.args[0])}, {self._print(sp.Float(value_at_zero))})"

    def _print_Pow(self, expr: sp.Pow, rational: bool = False) -> str:
        # Arrays are always float here, so negative integer powers are safe to print as
        # `1/x` or `x**(-2)`, not as SymPy's float workaround `x**(-1.0)`.
        return self._hprint_Pow(expr, rational=False, sqrt="numpy.sqrt")

    def _print_Max(self, expr: sp.Max) -> str:
        return self._pairwise("np.maximum", expr.args)

    def _print_Min(self, expr: sp.Min) -> str:
        return self._pairwise("np.minimum", expr.args)

    def _pairwise(self, function: str, args) -> str:
        text = self._print(args[0])
        for arg in args[1:]:
            text = f"{function}({text}, {self._print(arg)})"
        return text

    def _print_Piecewise(self, expr: sp.Piecewise) -> str:
        # Piecewise((a, c1), (b, c2), (z, True)) -> np.where(c1, a, np.where(c2, b, z))
        *branches, (last, condition) = expr.args
        if condition is not sp.true:
            raise DifferentiationError(f"piecewise formula {expr} has no default branch")
        if len(branches) == 1 and last == 0:
            value, cond = branches[0]
            if cond == (value > 0):
                return f"np.maximum({self._print(value)}, 0)"  # relu
            # a masked value, as in relu's derivative: several times faster than np.where
            return f"{self.parenthesize(value, precedence(sp.Mul(2, value, evaluate=False)))} * ({self._print(cond)})"
        text = self._print(last)
        for value, cond in reversed(branches):
            text = f"np.where({self._print(cond)}, {self._print(value)}, {text})"
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
        return f"np.logical_not({self._print(expr.args[0])})"

    def _print_ITE(self, expr) -> str:
        return "np.where({}, {}, {})".format(*(self._print(arg) for arg in expr.args))

    def _print_BooleanTrue(self, expr) -> str:
        return "True"

    def _print_BooleanFalse(self, expr) -> str:
        return "False"

    def _print_sign(self, expr: sp.sign) -> str:
        return f"np.sign({self._print(expr.args[0])})"

    def _print_sigmoid(self, expr) -> str:
        return f"_sigmoid({self._print(expr.args[0])})"

    def _print_softplus(self, expr) -> str:
        return f"np.logaddexp(0, {self._print(expr.args[0])})"

    def _print_Abs(self, expr: sp.Abs) -> str:
        return f"np.abs({self._print(expr.args[0])})"


class TextPrinter(StrPrinter):
    """Formulas as plain text for comments and the terminal: where(c, a, b) for piecewise."""

    def _print_ITE(self, expr) -> str:
        return "where({}, {}, {})".format(*(self._print(arg) for arg in expr.args))

    def _print_Piecewise(self, expr: sp.Piecewise) -> str:
        *branches, (last, _) = expr.args
        text = self._print(last)
        for value, cond in reversed(branches):
            text = f"where({self._print(cond)}, {self._print(value)}, {text})"
        return text


_PRINTER = NumPyCodePrinter()
_TEXT = TextPrinter()


def plain_text(expr: sp.Expr) -> str:
    """A formula as a person types it: h*(1 - h), where(a > 0, 1, 0)."""
    return _TEXT.doprint(expr)


def numpy_text(expr: sp.Expr) -> str:
    """NumPy source for a scalar expression whose symbols are variable names."""
    try:
        return _PRINTER.doprint(expr)
    except Exception as error:  # SymPy raises PrintMethodNotImplementedError and friends
        raise DifferentiationError(f"cannot print {expr} as NumPy code: {error}") from error


def helpers_in(expr: sp.Expr) -> tuple[str, ...]:
    """Helper functions of the generated module that the printed `expr` calls."""
    return ("sigmoid",) if expr.has(sigmoid) else ()


def number_text(value: int | float) -> str:
    """A Python literal that reads back to exactly `value`; negatives in parentheses."""
    text = repr(value) if isinstance(value, float) else str(int(value))
    if text in ("inf", "-inf", "nan"):
        text = {"inf": "np.inf", "-inf": "-np.inf", "nan": "np.nan"}[text]
    return f"({text})" if text.startswith("-") else text


def sympy_number(value: int | float) -> sp.Expr:
    return sp.Integer(value) if isinstance(value, int) else sp.Float(value)
