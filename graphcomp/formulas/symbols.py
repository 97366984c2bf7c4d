"""Names as LaTeX symbols, one scheme for the code's listing, the formulas and the pictures:
W1 prints W_{1}, yhat \\hat{y}, a word \\mathrm{loss}; adjoints get a bar.
"""
from __future__ import annotations

import sympy as sp
from sympy.printing.conventions import split_super_sub


def symbol(name: str) -> str:
    """A user's name as a LaTeX symbol: W1 -> W_{1}, b_1 -> b_{1}, yhat -> \\hat{y}, loss -> \\mathrm{loss}."""
    base, sups, subs = split_super_sub(name)
    return _scripted(_base_latex(base), sups, subs)


def bar(name: str) -> str:
    """The adjoint of a value: W1 -> \\bar{W}_{1}, loss -> \\overline{\\mathrm{loss}}."""
    base, sups, subs = split_super_sub(name)
    text = _base_latex(base)
    return _scripted(rf"\overline{{{text}}}" if text.startswith(r"\mathrm") else rf"\bar{{{text}}}", sups, subs)


def _base_latex(base: str) -> str:
    text = sp.latex(sp.Symbol(base))
    return rf"\mathrm{{{base}}}" if text == base and len(base) > 1 else text  # one word, not a product of letters


def _scripted(text: str, sups: list[str], subs: list[str]) -> str:
    if subs:
        text += "_{" + " ".join(subs) + "}"
    if sups:
        text += "^{" + " ".join(sups) + "}"
    return text


def partial(of: str, wrt: str) -> str:
    return rf"\frac{{\partial {of}}}{{\partial {wrt}}}"
