"""Local derivatives of elementwise formulas, re-expressed through forward values.

For y = f(x0, x1, ...), the derivative ∂y/∂xi comes from `sympy.diff`. When f can
be solved for xi, the derivative is also tried as a function of y itself; the
cheaper of the two (by SymPy's operation count) wins, so the backward pass reuses
the forward value: σ' = y(1-y), tanh' = 1-y², exp' = y. Nothing is looked up by the
name of the function: a user who writes 1/(1+exp(-a)) by hand gets y(1-y) too.
Every rewrite is checked numerically against the plain derivative before use.
"""
from __future__ import annotations

from functools import lru_cache

import sympy as sp

# Placeholders of elementwise formulas: inputs x0, x1, ..., output y, incoming adjoint g.
Y = sp.Symbol("y", real=True)
G = sp.Symbol("g", real=True)


def placeholder(i: int) -> sp.Symbol:
    return sp.Symbol(f"x{i}", real=True)


def placeholders(n: int) -> tuple[sp.Symbol, ...]:
    return tuple(placeholder(i) for i in range(n))


_SAMPLES = (0.37, -0.81, 1.29, -1.73, 0.093, 2.21, -0.46)


@lru_cache(maxsize=None)
def local_derivative(expr: sp.Expr, i: int) -> sp.Expr:
    """∂expr/∂xi in its cheapest verified form, possibly in terms of the output `y`."""
    x = placeholder(i)
    plain = _tidy(sp.diff(expr, x))
    best, best_cost = plain, sp.count_ops(plain)
    for candidate in _through_output(expr, x, plain):
        cost = sp.count_ops(candidate)
        if cost < best_cost and _agrees(candidate, plain, expr):
            best, best_cost = candidate, cost
    return best


def _tidy(derivative: sp.Expr) -> sp.Expr:
    # A step's value at 0 is part of graphcomp's tie convention (relu'(0) = 0).
    return derivative.replace(lambda e: isinstance(e, sp.Heaviside),
                              lambda e: sp.Heaviside(e.args[0], 0))


def _through_output(expr: sp.Expr, x: sp.Symbol, plain: sp.Expr) -> list[sp.Expr]:
    """The derivative with x replaced by each solution of y = expr, in a few normal forms."""
    if not plain.has(x) or expr.has(sp.Piecewise):  # a piecewise formula has no inverse to solve for
        return []
    # SymPy's solver and simplifier fail in many ways (NotImplementedError, TypeError, ...) on
    # formulas they cannot invert; a failure only means that no rewrite is offered.
    try:
        solutions = sp.solve(sp.Eq(expr.rewrite(sp.exp), Y), x)
    except Exception:  # noqa: BLE001 - see above
        return []
    candidates = []
    for solution in solutions:
        try:
            substituted = plain.rewrite(sp.exp).subs(x, solution)
            forms = [_tidy(normal_form(substituted)) for normal_form in (sp.simplify, sp.factor, sp.expand)]
        except Exception:  # noqa: BLE001 - see above
            continue
        candidates.extend(form for form in forms if not form.has(x) and form.has(Y))
    return sorted(set(candidates), key=sp.default_sort_key)


def _agrees(candidate: sp.Expr, plain: sp.Expr, expr: sp.Expr) -> bool:
    """True when candidate(y=expr) equals the plain derivative at every sample point where both are real."""
    symbols = sorted(expr.free_symbols | plain.free_symbols, key=lambda s: s.name)
    checked = 0
    for k in range(len(_SAMPLES)):
        point = {s: sp.Float(_SAMPLES[(k + j) % len(_SAMPLES)]) for j, s in enumerate(symbols)}
        want = sp.N(plain.subs(point))
        got = sp.N(candidate.subs(Y, expr).subs(point))
        if not (want.is_real and want.is_finite):
            continue
        if not (got.is_real and got.is_finite) or abs(got - want) > 1e-9 * (1 + abs(want)):
            return False
        checked += 1
    return checked >= 3
