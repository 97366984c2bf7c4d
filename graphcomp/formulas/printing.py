"""Printing scalar SymPy expressions and numbers as NumPy source text.

Only elementwise formulas go through SymPy; tensor ops format their own text
in the op table. The printer is strict: a SymPy function it does not know is an
error, never a silently wrong line of code.
"""
from __future__ import annotations

import re

import sympy as sp
from sympy.printing.latex import LatexPrinter
from sympy.printing.numpy import NumPyPrinter
from sympy.printing.precedence import PRECEDENCE
from sympy.printing.precedence import precedence
from sympy.printing.str import StrPrinter

from ..errors import DifferentiationError
from .simplify import sigmoid


def _positive_first(self, expr: sp.Add, order=None) -> str:
    """A sum with its positive terms first, as a person writes it: σ(z) - y, not -y + σ(z)."""
    terms = sorted(self._as_ordered_terms(expr, order=order), key=lambda t: t.could_extract_minus_sign())
    text = self._print(terms[0])
    for term in terms[1:]:
        if term.could_extract_minus_sign():
            text += " - " + self.parenthesize(-term, PRECEDENCE["Add"])
        else:
            text += " + " + self.parenthesize(term, PRECEDENCE["Add"], strict=True)
    return text


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

    _print_Add = _positive_first

    def _print_Heaviside(self, expr: sp.Heaviside) -> str:
        # H(0) is part of the expression: graphcomp builds step functions as Heaviside(x, 0).
        value_at_zero = expr.args[1] if len(expr.args) > 1 else sp.S.Half
        x = self._print(expr.args[0])
        return f"xp.where({x} > 0, 1.0, xp.where({x} == 0, {self._print(sp.Float(value_at_zero))}, 0.0))"

    def _print_Pow(self, expr: sp.Pow, rational: bool = False) -> str:
        # Arrays are always float here, so negative integer powers are safe to print as
        # `1/x` or `x**(-2)`, not as SymPy's float workaround `x**(-1.0)`.
        return self._hprint_Pow(expr, rational=False, sqrt="numpy.sqrt")

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
        return f"_sigmoid(xp, {self._print(expr.args[0])})"

    def _print_softplus(self, expr) -> str:
        return f"xp.logaddexp(0, {self._print(expr.args[0])})"

    def _print_Abs(self, expr: sp.Abs) -> str:
        return f"xp.abs({self._print(expr.args[0])})"


class TextPrinter(StrPrinter):
    """Formulas as plain text for comments and the terminal: where(c, a, b) for piecewise."""

    _print_Add = _positive_first

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
    return _TEXT.doprint(factored(expr))


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
        return _PRINTER.doprint(factored(expr))
    except Exception as error:  # SymPy raises PrintMethodNotImplementedError and friends
        raise DifferentiationError(f"cannot print {expr} as NumPy code: {error}") from error


def helpers_in(expr: sp.Expr) -> tuple[str, ...]:
    """Helper functions of the generated module that the printed `expr` calls."""
    return ("sigmoid",) if expr.has(sigmoid) else ()


def number_text(value: int | float) -> str:
    """A Python literal that reads back to exactly `value`; negatives in parentheses."""
    text = repr(value) if isinstance(value, float) else str(int(value))
    if text in ("inf", "-inf", "nan"):
        text = {"inf": "xp.inf", "-inf": "-xp.inf", "nan": "xp.nan"}[text]
    return f"({text})" if text.startswith("-") else text


def sympy_number(value: int | float) -> sp.Expr:
    return sp.Integer(value) if isinstance(value, int) else sp.Float(value)


# ---------------------------------------------------------------- LaTeX of tensor formulas
# The notation (README, "Reading the formulas"): juxtaposition is the matrix product, ⊙ the
# elementwise one, a b^T of two vectors their outer product, 1^T A the sum over the first axis,
# named operators carry their axis or shape as a subscript. tests/latex_reader.py evaluates it.

_ATOMIC_LATEX = re.compile(r"(\\bar\{[^{}]*\}|\\overline\{\\mathrm\{\w+\}\}|\\mathrm\{\w+\}|\\hat\{\w\}|\\?[A-Za-z]+"
                           r"|-?\d+(\.\d+)?)(_\{[^{}]*\})?(\^\{\([^{}]*\)\})?(\^\\top|\^\{\\top\})?")


def group(text: str | int | float) -> str:
    """A LaTeX operand as one factor: names and numbers bare, anything compound in parentheses."""
    text = text if isinstance(text, str) else latex_number(text)
    if _ATOMIC_LATEX.fullmatch(text) or _balanced_call(text) or _single_fraction(text):
        return text
    return rf"\left({text}\right)"


def transposed(text: str | int | float) -> str:
    """text^T, in parentheses where text already carries a superscript (no x^T^T in LaTeX)."""
    grouped = group(text)
    if re.search(r"\^(\\top|\{[^{}]*\})$", grouped) and not grouped.endswith(r"\right)"):
        grouped = rf"\left({grouped}\right)"
    return grouped + r"^\top"


def _balanced_call(text: str) -> bool:
    """`\\operatorname{f}_{...}^{...}\\left(...\\right)` or `\\mathbf{1}_{x}` as a whole: one factor."""
    head = re.match(r"\\operatorname\{\w+\}|\\log \\operatorname\{\w+\}|\\mathbf\{1\}", text)
    if not head:
        return False
    k = head.end()
    for mark in ("_", "^"):
        if text.startswith(mark + "{", k):
            k = _closing_brace(text, k + 1)
            if k is None:
                return False
    if k == len(text):
        return text.startswith(r"\mathbf{1}")
    return text.startswith(r"\left(", k) and _matching(text, k) == len(text) - len(r"\right)")


def _closing_brace(text: str, at: int) -> int | None:
    """The index just past the } that closes the { at `at`."""
    depth = 0
    for k in range(at, len(text)):
        depth += {"{": 1, "}": -1}.get(text[k], 0)
        if depth == 0:
            return k + 1
    return None


class _Compound(sp.Symbol):
    """A symbol standing for a compound LaTeX operand (X w, a + b): SymPy's printer puts it in
    parentheses inside products and powers, as it would a sum, and not inside sums or f(...)."""

    precedence = PRECEDENCE["Add"]


def operand_symbol(name: str, text: str) -> tuple[sp.Symbol, str]:
    """A placeholder for a LaTeX operand in an elementwise formula, and the text to print for it: a
    factor as it is; a product (X w) as a compound that SymPy parenthesises inside products; a sum
    in parentheses always (-(a + b) must not print as -a + b)."""
    if _ATOMIC_LATEX.fullmatch(text) or _balanced_call(text) or _single_fraction(text):
        return sp.Symbol(name, real=True), text
    if _has_top_level_sum(text):
        return sp.Symbol(name, real=True), rf"\left({text}\right)"
    return _Compound(name, real=True), text


def _has_top_level_sum(text: str) -> bool:
    depth = 0
    for k, char in enumerate(text):
        if text.startswith((r"\left", "{"), k):
            depth += 1
        elif text.startswith((r"\right", "}"), k):
            depth -= 1
        elif depth == 0 and char in "+-":  # a leading minus too: a + -b would read oddly
            return True
    return False


def _single_parentheses(text: str) -> str:
    """\\left(\\left(a + b\\right)\\right) as \\left(a + b\\right)."""
    start = 0
    while True:
        k = text.find(r"\left(\left(", start)
        if k < 0:
            return text
        inner_end = _matching(text, k + len(r"\left("))
        if inner_end is not None and text.startswith(r"\right)", inner_end + len(r"\right)")):
            outer_end = inner_end + len(r"\right)")
            if _matching(text, k) == outer_end:
                text = text[:k] + text[k + len(r"\left("):outer_end] + text[outer_end + len(r"\right)"):]
                continue
        start = k + 1


def _matching(text: str, at: int) -> int | None:
    """Where the \\right) closing the \\left( at `at` starts."""
    depth = 0
    for match in re.finditer(r"\\left\(|\\right\)", text[at:]):
        depth += 1 if match.group() == r"\left(" else -1
        if depth == 0:
            return at + match.start()
    return None


def _single_fraction(text: str) -> bool:
    if not text.startswith(r"\frac{"):
        return False
    depth, groups = 0, 0
    for k, char in enumerate(text[len(r"\frac"):]):
        depth += {"{": 1, "}": -1}.get(char, 0)
        if depth == 0 and char == "}":
            groups += 1
            if groups == 2:
                return k == len(text) - len(r"\frac") - 1
    return False


def short_number(value: int | float) -> str:
    """A number as a person reads it: 4, 0.25, 1.5e-07 (six significant digits)."""
    value = float(value)
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:.6g}"


def latex_number(value: int | float) -> str:
    r"""A number in LaTeX: 4, 0.25, 1.5 \cdot 10^{-7}."""
    text = short_number(value)
    if "e" in text:
        mantissa, exponent = text.split("e")
        return rf"{mantissa} \cdot 10^{{{int(exponent)}}}"
    return text


def latex_shape(shape: tuple) -> str:
    """(None, 3) as (N, 3)."""
    dims = ["N" if d is None else str(d) for d in shape]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


def latex_operator(name: str, args, subscript: str = "", superscript: str = "") -> str:
    """\\operatorname{name}_{subscript}^{superscript}\\left(a, b\\right)."""
    text = rf"\operatorname{{{name}}}"
    if subscript:
        text += f"_{{{subscript}}}"
    if superscript:
        text += f"^{{{superscript}}}"
    return text + r"\left(" + ", ".join(a if isinstance(a, str) else latex_number(a) for a in args) + r"\right)"


def axis_subscript(axes, keepdims: bool = False) -> str:
    """The subscript of a reduction: `\\text{axis } 1`, `\\text{axes } 0, 2`, with `keepdims`."""
    parts = []
    if axes is not None:
        axes = (axes,) if isinstance(axes, int) else tuple(axes)
        parts.append((r"\text{axis } " if len(axes) == 1 else r"\text{axes } ") + ", ".join(map(str, axes)))
    if keepdims:
        parts.append(r"\text{keepdims}")
    return r",\ ".join(parts)


class TensorLatexPrinter(LatexPrinter):
    """SymPy's LaTeX printer for elementwise formulas of tensors: a piecewise formula reads as
    values times indicators, v ⊙ 1[c], which the formula reader can evaluate."""

    _print_Add = _positive_first

    def _print_ITE(self, expr) -> str:
        condition, then, otherwise = expr.args
        return self._print(sp.Or(sp.And(condition, then), sp.And(sp.Not(condition), otherwise)))

    def _print_Piecewise(self, expr: sp.Piecewise) -> str:
        if len(expr.args) == 2 and expr.args[1] == (0, True) and expr.args[0][1] == (expr.args[0][0] > 0):
            return rf"\max\left({self._print(expr.args[0][0])}, 0\right)"  # relu
        terms, previous = [], []
        for value, condition in expr.args:
            full = sp.And(condition, *[sp.Not(c) for c in previous]) if previous else condition
            previous.append(condition)
            if value == 0 or full is sp.false:
                continue
            indicator = "" if full is sp.true else rf"\mathbb{{1}}\left[{self._print(full)}\right]"
            if not indicator:
                terms.append(self._print(value))
            elif value == 1:
                terms.append(indicator)
            else:
                terms.append(self.parenthesize(value, PRECEDENCE["Mul"]) + self._settings["mul_symbol_latex"] + indicator)
        if not terms:
            return "0"
        # a sum of cases is one factor: -(a 1[c] + b 1[¬c]) must not read as -a 1[c] + b 1[¬c]
        return terms[0] if len(terms) == 1 else r"\left(" + " + ".join(terms) + r"\right)"


def elementwise_latex(expr: sp.Expr, names: dict[sp.Symbol, str], tensor: bool) -> str:
    """An elementwise formula over symbols shown as `names`; ⊙ between tensor factors."""
    printer = TensorLatexPrinter({"symbol_names": names, "mul_symbol": r" \odot " if tensor else None})
    text = _single_parentheses(printer.doprint(factored(expr)))
    text = re.sub(r"\}\{\\left\(([^{}()]*?)\\right\)\}", r"}{\1}", text)  # \frac{1}{3 N}: no parentheses
    return re.sub(r"(?<![\w}])(\d+(?:\.\d+)?) \\odot ", r"\1 ", text)  # 2 h, not 2 ⊙ h
