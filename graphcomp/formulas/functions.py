"""log(1 + x) and e^x - 1 as functions of their own, kept whole so that the code computes them with
log1p and expm1 (exact for small x, where log(1 + x) loses every digit of x below 1e-16) and so that
expm1's derivative reads through its output: (e^x - 1)' = e^x = y + 1."""
from __future__ import annotations

import sympy as sp


class log1p(sp.Function):  # noqa: N801 - named like SymPy's own functions, as it prints
    """log(1 + x), printed as xp.log1p and, on a slide, as log(1 + x)."""

    @classmethod
    def eval(cls, arg):
        if arg.is_zero:
            return sp.S.Zero
        if isinstance(arg, expm1):  # log(1 + e^u - 1) = u for every real u
            return arg.args[0]
        return None

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return 1 / (1 + self.args[0])

    def _eval_rewrite_as_exp(self, arg, **hints):
        return sp.log(1 + arg)

    def _eval_evalf(self, prec):
        return sp.log(1 + self.args[0])._eval_evalf(prec)

    def _latex(self, printer, exp=None) -> str:
        power = "" if exp is None else f"^{{{exp}}}"
        return rf"\log{power}\left(1 + {printer._print(self.args[0])}\right)"


class expm1(sp.Function):  # noqa: N801 - see log1p
    """e^x - 1, printed as xp.expm1 and, on a slide, as (e^x - 1). Its derivative e^x is written
    expm1(x) + 1, so that through its output it is y + 1, as a textbook reuses the forward value."""

    @classmethod
    def eval(cls, arg):
        if arg.is_zero:
            return sp.S.Zero
        if isinstance(arg, log1p):  # e^log(1 + y) - 1 = y, where log(1 + y) is defined
            return arg.args[0]
        return None

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return expm1(self.args[0]) + 1

    def _eval_rewrite_as_exp(self, arg, **hints):
        return sp.exp(arg) - 1

    def _eval_evalf(self, prec):
        return (sp.exp(self.args[0]) - 1)._eval_evalf(prec)

    def _latex(self, printer, exp=None) -> str:
        text = rf"\left(e^{{{printer._print(self.args[0])}}} - 1\right)"
        return text if exp is None else f"{text}^{{{exp}}}"
