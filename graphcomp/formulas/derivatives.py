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

from .functions import expm1, log1p

# Placeholders of elementwise formulas: inputs x0, x1, ..., output y, incoming adjoint g.
Y = sp.Symbol("y", real=True)
G = sp.Symbol("g", real=True)


class sigmoid(sp.Function):  # noqa: N801 - named like SymPy's own functions (exp, tanh), as it prints
    """σ(x) = 1/(1 + e^(-x)), kept whole so that it can be printed in a form that never overflows."""

    is_real = True

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sigmoid(self.args[0]) * (1 - sigmoid(self.args[0]))

    def _eval_rewrite_as_exp(self, arg, **hints):
        return 1 / (1 + sp.exp(-arg))

    def _eval_evalf(self, prec):
        return self.rewrite(sp.exp)._eval_evalf(prec)

    def _latex(self, printer, exp=None) -> str:
        power = "" if exp is None else f"^{{{exp}}}"
        return rf"\sigma{power}\left({printer._print(self.args[0])}\right)"


class softplus(sp.Function):  # noqa: N801 - see sigmoid
    """softplus(x) = log(1 + e^x), kept whole for the same reason (printed as logaddexp(0, x))."""

    is_real = True

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sigmoid(self.args[0])

    def _eval_rewrite_as_exp(self, arg, **hints):
        return sp.log(1 + sp.exp(arg))

    def _eval_evalf(self, prec):
        return self.rewrite(sp.exp)._eval_evalf(prec)

    def _latex(self, printer, exp=None) -> str:
        power = "" if exp is None else f"^{{{exp}}}"
        return rf"\operatorname{{softplus}}{power}\left({printer._print(self.args[0])}\right)"


def _exp_plus_one(expr: sp.Expr) -> sp.Expr | None:
    """u where expr is 1 + e^u."""
    if expr.is_Add and len(expr.args) == 2 and sp.S.One in expr.args:
        other = expr.args[0] if expr.args[1] == 1 else expr.args[1]
        if isinstance(other, sp.exp):
            return other.args[0]
    return None


def _whole_function(expr: sp.Expr) -> sp.Expr | None:
    """The stable whole function that `expr` itself spells out, or None:
    (e^u - 1)/(e^u + 1) = tanh(u/2), e^u/(1 + e^u) = σ(u), 1/(1 + e^u) = σ(-u),
    log(1 + e^u) = softplus(u), log σ(u) = -softplus(-u), log(1 - σ(u)) = -softplus(u)."""
    if isinstance(expr, sp.log):
        (arg,) = expr.args
        u = _exp_plus_one(arg)
        if u is not None:
            return softplus(u)
        if isinstance(arg, sigmoid):
            return -softplus(-arg.args[0])
        if arg.is_Add and len(arg.args) == 2 and sp.S.One in arg.args:
            other = arg - 1
            if isinstance(-other, sigmoid):
                return -softplus((-other).args[0])
        return None
    if expr.is_Pow and expr.exp == -1:
        u = _exp_plus_one(expr.base)
        return None if u is None else sigmoid(-u)
    if expr.is_Mul:
        factors = list(expr.args)
        for f in factors:
            u = _exp_plus_one(f.base) if f.is_Pow and f.exp == -1 else None
            if u is None:
                continue
            for partner, whole in ((sp.exp(u), sigmoid(u)), (sp.exp(u) - 1, sp.tanh(u / 2))):
                if partner in factors:
                    rest = list(factors)
                    rest.remove(f)
                    rest.remove(partner)
                    return sp.Mul(whole, *rest)
    return None


@lru_cache(maxsize=4096)
def stable_form(expr: sp.Expr) -> sp.Expr:
    """`expr` with sigmoid, softplus and tanh written as themselves, and log σ as -softplus.

    A walk from the root down, so that e^u/(1 + e^u) is seen whole before its 1/(1 + e^u);
    hand-written recognisers, because SymPy's pattern matching takes seconds on large formulas.
    """
    if expr.is_Atom:
        return expr
    whole = _whole_function(expr)
    if whole is not None:
        return stable_form(whole)
    args = tuple(stable_form(arg) for arg in expr.args)
    return expr if args == expr.args else expr.func(*args)


def textbook_form(expr: sp.Expr) -> sp.Expr:
    """expr as a person writes it on a slide: the shorter of expr and its factored form, with signs
    tidied ((p - y)/(p(1 - p)), not (y - p)/(p(p - 1))) and σ, tanh and softplus whole. For formulas
    put together from several lines of code (the binary cross-entropy's two paths into p); bounded
    like every SymPy step: above NORMAL_LIMIT, or with floats (factor would write 0.2(x + 5.0 y)),
    nothing is factored."""
    candidates = [expr]
    if sp.count_ops(expr) <= NORMAL_LIMIT and not expr.has(sp.Float, sp.Piecewise):
        try:
            candidates.append(sp.factor(expr))
        except Exception:  # noqa: BLE001 - SymPy's factor fails in many ways; then expr stays as it is
            pass
    forms = [stable_form(signs_tidied(c)) for c in candidates]
    return min(forms, key=sp.count_ops)  # the first of equally short forms: the formula as it was


def _flipped(factor: sp.Expr) -> sp.Expr | None:
    """-(base)**e, for a factor (base)**e with an odd integer e; None otherwise."""
    base, exponent = factor.as_base_exp()
    if not (base.is_Add and exponent.is_Integer and exponent % 2 == 1):
        return None
    return (-base) ** exponent


def signs_tidied(expr: sp.Expr) -> sp.Expr:
    """A product whose sums read with positive constants (1 - p, not p - 1) and, where the product is
    negative, a numerator sum turned round instead (p - y, not -(y - p))."""
    if not expr.is_Mul:
        return expr
    coefficient, factors = expr.as_coeff_mul()
    factors = list(factors)
    for k, factor in enumerate(factors):
        base = factor.as_base_exp()[0]
        constant = base.as_coeff_Add()[0] if base.is_Add else sp.S.Zero
        flipped = _flipped(factor)
        if flipped is not None and constant.is_Number and constant < 0:
            factors[k], coefficient = flipped, -coefficient
    if coefficient.is_Number and coefficient < 0:
        for k, factor in enumerate(factors):
            flipped = _flipped(factor)
            if flipped is not None and factor.as_base_exp()[1] > 0:
                factors[k], coefficient = flipped, -coefficient
                break
    return sp.Mul(coefficient, *factors)


@lru_cache(maxsize=None)
def placeholder(i: int) -> sp.Symbol:
    return sp.Symbol(f"x{i}", real=True)


@lru_cache(maxsize=None)
def placeholders(n: int) -> tuple[sp.Symbol, ...]:
    return tuple(placeholder(i) for i in range(n))


_SAMPLES = (0.37, -0.81, 1.29, -1.73, 0.093, 2.21, -0.46)


def in_exponentials(expr: sp.Expr) -> sp.Expr:
    """expr with tanh, σ and softplus written through exp (powers are left alone)."""
    return expr.rewrite([sp.tanh, sigmoid, softplus], sp.exp)


@lru_cache(maxsize=4096)
def local_derivative(expr: sp.Expr, i: int) -> sp.Expr:
    """∂expr/∂xi in its cheapest verified form, possibly in terms of the output `y`."""
    x = placeholder(i)
    plain = _tidy(sp.diff(expr, x))
    best, best_cost = plain, sp.count_ops(plain)
    if best_cost == 0:  # a number or one symbol: no candidate can be cheaper
        return best
    raw = in_exponentials(plain)
    candidates = ([stable_form(plain), stable_form(raw), _sigmoid_of_positive(plain)]
                  + _through_output(expr, x, plain) + _sign_of_output(plain))
    if stable_form(expr) != expr:  # typed out as e.g. (e^(2a) - 1)/(e^(2a) + 1): invert tanh a
        candidates += _through_output(stable_form(expr), x, plain)
    for candidate in candidates:
        cost = sp.count_ops(candidate)
        if cost < best_cost and _no_new_poles(candidate, raw) and _agrees(candidate, raw, expr):
            best, best_cost = candidate, cost
    return best


def _sigmoid_of_positive(expr: sp.Expr) -> sp.Expr:
    """σ(-u) written as 1 - σ(u), then expanded: the binary cross-entropy of σ(z) differentiates to
    -y σ(-z) + (1 - y) σ(z), which this turns into σ(z) - y."""
    flipped = expr.replace(lambda e: isinstance(e, sigmoid) and e.args[0].could_extract_minus_sign(),
                           lambda e: 1 - sigmoid(-e.args[0]))
    return sp.expand(flipped) if flipped != expr else expr


def _sign_of_output(plain: sp.Expr) -> list[sp.Expr]:
    """For a piecewise derivative with conditions u > 0 (relu, leaky relu, ... of a formula u), the same
    derivative with y > 0 in their place, which reuses the output; kept only where it agrees."""
    conditions = {c for c in plain.atoms(sp.core.relational.Relational) if c.rhs == 0 and c.lhs != Y}
    if not conditions:
        return []
    return [plain.xreplace({c: c.func(Y, 0) for c in conditions})]


def _no_new_poles(candidate: sp.Expr, plain: sp.Expr) -> bool:
    """A rewrite may not divide by anything the plain derivative does not divide by: y·σ(z) gives
    ∂/∂z = out·(y - out)/y through its output, which is 0/0 wherever y = 0."""
    new = sp.denom(sp.together(candidate)).free_symbols
    return new <= (sp.denom(sp.together(plain)).free_symbols - {Y}) and Y not in new


def _tidy(derivative: sp.Expr) -> sp.Expr:
    # A step's value at 0 is part of graphcomp's tie convention (relu'(0) = 0), and the derivative
    # of a step (sign' = 2δ, as in the second derivative of |x|) is 0, as in every autodiff tool.
    derivative = derivative.replace(lambda e: isinstance(e, sp.DiracDelta), lambda e: sp.S.Zero)
    return derivative.replace(lambda e: isinstance(e, sp.Heaviside),
                              lambda e: sp.Heaviside(e.args[0], 0))


# Work limits that keep SymPy fast and the result deterministic (operation counts, not seconds):
# formulas above them keep the plain derivative.
INVERT_LIMIT = 20     # count_ops of a formula we try to solve for one operand
NORMAL_LIMIT = 30     # count_ops of a substituted derivative that factor / cancel / expand may work on


def invert(expr: sp.Expr, x: sp.Symbol, y: sp.Expr) -> sp.Expr | None:
    """x such that expr(x) = y, peeling one layer at a time, where x occurs once in `expr`;
    None when a layer has no inverse here. Deterministic and instant, unlike sympy.solve."""
    while expr != x:
        if expr.is_Add or expr.is_Mul:
            inner = next(arg for arg in expr.args if arg.has(x))
            rest = expr.func(*(arg for arg in expr.args if arg is not inner))
            y, expr = (y - rest, inner) if expr.is_Add else (y / rest, inner)
        elif expr.is_Pow and not expr.exp.has(x):
            y, expr = y ** (1 / expr.exp), expr.base
        elif expr.is_Pow and not expr.base.has(x):
            y, expr = sp.log(y) / sp.log(expr.base), expr.exp
        elif isinstance(expr, sp.exp):
            y, expr = sp.log(y), expr.args[0]
        elif isinstance(expr, sp.log):
            y, expr = sp.exp(y), expr.args[0]
        elif isinstance(expr, sp.tanh):
            y, expr = sp.atanh(y), expr.args[0]
        elif isinstance(expr, sigmoid):
            y, expr = sp.log(y / (1 - y)), expr.args[0]
        elif isinstance(expr, softplus):
            y, expr = sp.log(sp.exp(y) - 1), expr.args[0]
        elif isinstance(expr, sp.tan):  # tan' = 1 + tan² reads 1 + y²
            y, expr = sp.atan(y), expr.args[0]
        elif isinstance(expr, expm1):
            y, expr = log1p(y), expr.args[0]
        else:
            return None
    return y


def _through_output(expr: sp.Expr, x: sp.Symbol, plain: sp.Expr) -> list[sp.Expr]:
    """The derivative with x replaced by the solution of y = expr, in a few normal forms.

    Tried only where x occurs once (σ(a + b), 1/(1 + e^(-a)), tanh a, e^a, log a, ...): there
    the formula inverts layer by layer (`invert`). Formulas with x in several places, such as
    x + e^x, seldom have a closed-form inverse; their derivatives keep the operands. Formulas
    and substituted derivatives above the work limits are left as they are.
    """
    if (not plain.has(x) or expr.has(sp.Piecewise) or expr.count(x) != 1
            or sp.count_ops(expr) > INVERT_LIMIT):
        return []
    solution = invert(expr, x, Y)
    if solution is None:
        return []
    candidates = []
    # tanh(atanh(y)) evaluates to y at once; in exponentials, atanh is better written as a log
    for form, inverse in ((plain, solution), (in_exponentials(plain), solution.rewrite(sp.log))):
        substituted = form.subs(x, inverse)
        size = sp.count_ops(substituted)
        # Rational normal forms only: sympy.simplify tries trigonometric rewrites that can take
        # a minute on a small formula, and finds nothing factor/cancel/expand would not.
        normal_forms = [lambda e: e] + ([sp.factor, sp.cancel, _expanded] if size <= NORMAL_LIMIT else [])
        for normal_form in normal_forms:
            # SymPy's simplifiers fail in many ways (NotImplementedError, TypeError, ...) on some
            # formulas; a failure only means that no rewrite is offered.
            try:
                candidates.append(_tidy(normal_form(substituted)))
            except Exception:  # noqa: BLE001 - see above
                continue
    return sorted({c for c in candidates if not c.has(x) and c.has(Y)}, key=sp.default_sort_key)


def _expanded(expr: sp.Expr) -> sp.Expr:
    """expr expanded, with common factors then taken out (y - y² as y(1 - y)) while it stays small."""
    expanded = sp.expand(expr)
    return sp.factor_terms(expanded) if sp.count_ops(expanded) <= NORMAL_LIMIT else expanded


def recomputes_functions(derivative: sp.Expr, allowed: tuple = ()) -> bool:
    """Whether a derivative evaluates exp, tanh, log, ... of its operands again rather than reusing
    the forward output y. Piecewise steps, signs and |x| are cheap, and so are the `allowed` ones."""
    cheap = (sp.Piecewise, sp.Heaviside, sp.sign, sp.Abs, sp.Max, sp.Min) + tuple(allowed)
    return any(not isinstance(f, cheap) for f in derivative.atoms(sp.Function))


def _agrees(candidate: sp.Expr, plain: sp.Expr, expr: sp.Expr) -> bool:
    """True when candidate(y=expr) equals the plain derivative at every sample point where both are real."""
    symbols = sorted(expr.free_symbols | plain.free_symbols, key=lambda s: s.name)
    plain_raw, candidate_raw = in_exponentials(plain), None  # rewritten once, evaluated at every point
    checked = 0
    for k in range(len(_SAMPLES)):
        point = {s: sp.Float(_SAMPLES[(k + j) % len(_SAMPLES)]) for j, s in enumerate(symbols)}
        try:
            want = sp.N(plain_raw.subs(point))
        except TypeError:  # a condition met a complex value (a power of a negative number): no test here
            continue
        if not (want.is_real and want.is_finite):
            continue
        try:
            candidate_raw = in_exponentials(candidate.subs(Y, expr)) if candidate_raw is None else candidate_raw
            got = sp.N(candidate_raw.subs(point))
        except TypeError:  # a condition compared a complex value: the candidate is not real here
            return False
        if not (got.is_real and got.is_finite) or abs(got - want) > 1e-9 * (1 + abs(want)):
            return False
        checked += 1
    return checked >= 3


def constants_evaluated(expr: sp.Expr) -> sp.Expr:
    """Functions of numbers alone as their values (log(2), softplus(0), e, sqrt(2)): the code computes
    nothing the compiler knows, and an Array API namespace's functions take arrays, not Python numbers."""
    values = {}
    for sub in sp.preorder_traversal(expr):
        constant = isinstance(sub, (sp.Function, sp.NumberSymbol)) or (sub.is_Pow and not sub.exp.is_Integer)
        if constant and not sub.free_symbols and sub not in values:
            value = sp.N(sub, 17)
            if value.is_real and value.is_finite:
                values[sub] = sp.Float(value, 17)
    return expr.xreplace(values) if values else expr
