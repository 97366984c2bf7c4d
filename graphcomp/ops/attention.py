"""Ops of transformer blocks: GELU (GPT-2's tanh form) and the causal mask of attention scores.

Attention itself is a composite of matmul, transpose, softmax and this mask (`gc.attention`), so its
derivative needs no rule of its own: the softmax's rule prints S̄ = P ⊙ (P̄ - Σ(P̄ ⊙ P)), and the
mask, being added, passes the gradient on unchanged (P is 0 where the mask is -inf, so S̄ is too).
"""
from __future__ import annotations

import math

import sympy as sp

from ..errors import ShapeError
from ..formulas.latex import latex_operator
from ..ir.graph import Node
from ..ir.shapes import Shape, format_shape
from .pointwise import pointwise
from .table import Op, not_differentiable, register

# √(2/π), the constant of GPT-2's GELU, as the number the code uses (SymPy's exact √2/√π would be
# printed as a constant line of its own).
_GELU_SCALE = sp.Float(math.sqrt(2 / math.pi), 17)

# GELU as GPT-2 computes it: 0.5 x (1 + tanh(√(2/π)(x + 0.044715 x³))). Its derivative is SymPy's.
pointwise("gelu", lambda a: a * (1 + sp.tanh(_GELU_SCALE * (a + sp.Float("0.044715") * a ** 3))) / 2,
          emit="0.5 * {0} * (1 + xp.tanh(0.7978845608028654 * ({0} + 0.044715 * {0} ** 3)))")


def _causal_shape(shapes: tuple, attrs: dict) -> Shape:
    """The mask of a square score matrix (the last two axes): (T, T); it broadcasts over leading axes."""
    (scores,) = shapes
    if len(scores) < 2 or scores[-1] != scores[-2] or scores[-1] is None:
        raise ShapeError(f"causal_mask: the scores {format_shape(scores)} must end in a square matrix (T, T) of "
                         "queries by keys, the same length on both of the last two axes")
    return tuple(scores[-2:])


# 0 on and below the diagonal of the last two axes, -inf above it: added to attention scores before a
# softmax, it lets position i attend to positions j <= i only. A constant of the scores' shape, so no
# gradient flows through it; the masked positions get none either, their probabilities being 0.
register(Op(name="causal_mask", arity=1, shape=_causal_shape,
            emit=lambda node, args: f"_causal_mask(xp, {args[0]})", vjp=not_differentiable,
            text=lambda node, args: f"causal_mask({args[0]})",
            latex=lambda node, args: latex_operator("causal", args)))

