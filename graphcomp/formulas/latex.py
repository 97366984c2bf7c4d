"""Formulas in LaTeX: the grouping and operator conventions of every printed formula (operands grouped
by precedence, positive terms first, cases as indicators 1[c], ⊙ for products of tensors)."""
from __future__ import annotations

import re

import sympy as sp
from sympy.printing.latex import LatexPrinter
from sympy.printing.precedence import PRECEDENCE

from .printing import factored, positive_first, sums_last

_ATOMIC_LATEX = re.compile(r"(\\bar\{\\dot\{[^{}]*\}\}|\\dot\{[^{}]*\}|\\bar\{[^{}]*\}|\\overline\{\\mathrm\{\w+\}\}|\\mathrm\{\w+\}|\\hat\{\w\}|\\?[A-Za-z]+"
                           r"|-?\d+(\.\d+)?)(_\{[^{}]*\})?(\^\{\([^{}]*\)\})?(\^\\top|\^\{\\top\})?")


def group(text: str | int | float) -> str:
    """A LaTeX operand as one factor: names and numbers bare, anything compound in parentheses."""
    text = text if isinstance(text, str) else latex_number(text)
    if _ATOMIC_LATEX.fullmatch(text) or _balanced_call(text) or _single_fraction(text) or _transposed_group(text):
        return text
    return rf"\left({text}\right)"


def _transposed_group(text: str) -> bool:
    r"""\left( ... \right)^\top, one pair of parentheses around the whole base: one factor."""
    if not (text.startswith(r"\left(") and text.endswith(r"\right)^\top")):
        return False
    depth = 0
    for match in re.finditer(r"\\(left|right)\W", text):
        depth += 1 if match.group(1) == "left" else -1
        if depth == 0:
            return match.end() == len(text) - len(r"^\top")
    return False


def transposed(text: str | int | float) -> str:
    """text^T, in parentheses where text already carries a superscript (no x^T^T in LaTeX) or is a
    fraction (whose bar the T would sit on: (x/16)^T, not x/16^T)."""
    grouped = group(text)
    fraction = grouped.startswith(r"\frac")
    if fraction or re.search(r"\^(\\top|\{[^{}]*\})$", grouped) and not grouped.endswith(r"\right)"):
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

    _print_Add = positive_first

    def __init__(self, settings: dict | None = None) -> None:
        super().__init__(settings)
        # a number's power of ten is a product of numbers: 1.0 \cdot 10^{-5}, never with the formula's ⊙
        self._settings["mul_symbol_latex_numbers"] = r" \cdot "

    def _print_Mul(self, expr: sp.Mul) -> str:
        """A product with no division puts a sum after the factor it is made of, as a person writes
        it: σ(a) (1 - σ(a)), where SymPy's own order puts the sum first, (1 - σ(a)) σ(a)."""
        ordered = sums_last(expr)
        if ordered is None:
            return super()._print_Mul(expr)
        coefficient, factors = ordered
        text = self._settings["mul_symbol_latex"].join(self.parenthesize(f, PRECEDENCE["Mul"], strict=True)
                                                      for f in factors)
        if coefficient == 1:
            return text
        return ("- " if coefficient == -1 else self._print(coefficient) + self._settings["mul_symbol_latex"]) + text

    def _print_Pow(self, expr: sp.Pow) -> str:
        """A power of a function as (tanh(x W))², never \\tanh^{2}{x W}, where the argument's grouping is lost."""
        base, exponent = expr.args
        if (isinstance(base, sp.Function) and not isinstance(base, sp.exp) and exponent.is_Integer
                and exponent > 0):
            return rf"\left({self._print(base)}\right)^{{{self._print(exponent)}}}"
        return super()._print_Pow(expr)

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
    text = re.sub(r"(?<![\w}])(\d+(?:\.\d+)?(?: \\cdot 10\^\{-?\d+\})?) \\odot ", r"\1 ", text)  # 2 h, not 2 ⊙ h
    for count in sorted({names.get(s, s.name) for s in expr.free_symbols if s.is_positive}):  # N h̄, not N ⊙ h̄
        text = re.sub(rf"(?<![\\\w{{]){re.escape(count)} \\odot ", f"{count} ", text)
    return text


# The batch size in a formula: a mean over the batch divides by it (README: "N is the batch size").
BATCH = sp.Symbol("N", positive=True)


def over_batch(expr: sp.Expr) -> tuple[sp.Expr, sp.Expr] | None:
    """(e, d) with expr = e / d, where expr divides by the batch size and d is the number times N it
    divides by (N, 3 N); None where it does not divide by N."""
    if not expr.is_Mul or sp.Pow(BATCH, -1) not in expr.args:
        return None
    coefficient = expr.as_coeff_Mul()[0]
    divisor = BATCH * (coefficient.q if coefficient.is_Rational else 1)
    return expr * divisor, divisor


def formula_latex(expr: sp.Expr, names: dict[sp.Symbol, str], tensor: bool) -> str:
    """An elementwise formula over operands shown as `names`, a division by the batch size N taken
    outside as a person writes it: \\frac{p - y}{N}, \\frac{1}{N} \\frac{p - y}{p (1 - p)}, - \\frac{y}{N}."""
    expr = factored(expr)
    split = over_batch(expr)
    if split is None:
        return elementwise_latex(expr, {**names, BATCH: "N"}, tensor)
    inner, divisor = split
    sign = ""
    if inner.as_coeff_Mul()[0].is_negative:
        sign, inner = "- ", -inner
    top = elementwise_latex(inner, names, tensor)
    bottom = elementwise_latex(divisor, {BATCH: "N"}, tensor=False)
    if _single_fraction(top):
        return rf"{sign}\frac{{1}}{{{bottom}}} {top}"
    return rf"{sign}\frac{{{top}}}{{{bottom}}}"
