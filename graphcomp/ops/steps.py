"""Step functions: `sign`, the forward of a straight-through estimator (a custom op whose rule passes
the gradient through). Its derivative is 0 wherever it is defined, and taken as 0 at the step too, as
every autodiff tool does (SymPy's 2δ(x) is dropped by `formulas.derivatives`), so on its own no
gradient flows through it.
"""
from __future__ import annotations

import sympy as sp

from .pointwise import pointwise

pointwise("sign", sp.sign)
