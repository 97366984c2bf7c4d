"""Names as LaTeX symbols, one scheme for the code's listing, the formulas and the pictures:
W1 prints W_{1}, yhat \\hat{y}, a word \\mathrm{loss}; adjoints get a bar, and tangents (forward mode)
a dot: dot_x1 prints \\dot{x}_{1}.
"""
from __future__ import annotations

from functools import lru_cache

import sympy as sp
from sympy.printing.conventions import split_super_sub


def symbol(name: str) -> str:
    """A user's name as a LaTeX symbol: W1 -> W_{1}, b_1 -> b_{1}, yhat -> \\hat{y}, loss -> \\mathrm{loss},
    dot_x1 (a tangent) -> \\dot{x}_{1}."""
    if name.startswith(TANGENT_PREFIX) and dot(name[len(TANGENT_PREFIX):]).startswith(r"\dot"):
        return dot(name[len(TANGENT_PREFIX):])
    base, sups, subs = split_super_sub(name)
    return _scripted(_base_latex(base), sups, subs)


TANGENT_PREFIX = "dot_"  # the tangent of x in forward mode: dot_x, printed ẋ


def dot(name: str) -> str:
    """The tangent of a value: x1 -> \\dot{x}_{1}, t3 -> \\dot{t}_{3}; a word (loss) keeps its name in an
    upright dot_: \\mathrm{dot\\_loss}, since a dot over a word reads as nothing."""
    base, sups, subs = split_super_sub(name)
    text = _base_latex(base)
    if text.startswith(r"\mathrm") or not name:
        return rf"\mathrm{{dot\_{name}}}"
    return _scripted(rf"\dot{{{text}}}", sups, subs)


def bar(name: str) -> str:
    """The adjoint of a value: W1 -> \\bar{W}_{1}, loss -> \\overline{\\mathrm{loss}}, dot_x -> \\bar{\\dot{x}}."""
    dotted = name.startswith(TANGENT_PREFIX) and dot(name[len(TANGENT_PREFIX):]).startswith(r"\dot")
    base, sups, subs = split_super_sub(name[len(TANGENT_PREFIX):] if dotted else name)
    text = rf"\dot{{{_base_latex(base)}}}" if dotted else _base_latex(base)
    return _scripted(rf"\overline{{{text}}}" if text.startswith(r"\mathrm") else rf"\bar{{{text}}}", sups, subs)


@lru_cache(maxsize=4096)
def _base_latex(base: str) -> str:
    """A name's letters in LaTeX (made once per base: t of t1, t2, ... t5000)."""
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
