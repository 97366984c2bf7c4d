"""Ops of transformer blocks: GELU (GPT-2's tanh form), erf (for the exact GELU) and the causal mask of
attention scores.

Attention itself is a composite of matmul, transpose, softmax and this mask (`gc.attention`), so its
derivative needs no rule of its own: the softmax's rule prints S̄ = P ⊙ (P̄ - Σ(P̄ ⊙ P)), and the
mask passes the gradient of the entries it keeps.
"""
from __future__ import annotations

import math

import sympy as sp

from ..errors import ShapeError
from ..formulas.derivatives import G, placeholder
from ..formulas.latex import latex_number, latex_operator
from ..ir.graph import Node, apply
from ..ir.shapes import Shape, format_shape
from .pointwise import fuse, pointwise
from .table import Op, like, register

# √(2/π), the constant of GPT-2's GELU, as the number the code uses (SymPy's exact √2/√π would be
# printed as a constant line of its own).
_GELU_SCALE = sp.Float(math.sqrt(2 / math.pi), 17)

# GELU as GPT-2 computes it: 0.5 x (1 + tanh(√(2/π)(x + 0.044715 x³))). Its derivative is SymPy's.
pointwise("gelu", lambda a: a * (1 + sp.tanh(_GELU_SCALE * (a + sp.Float("0.044715") * a ** 3))) / 2,
          emit="0.5 * {0} * (1 + xp.tanh(0.7978845608028654 * ({0} + 0.044715 * {0} ** 3)))")


def _erf_vjp(node: Node, g: Node) -> tuple:
    """erf'(x) = 2/√π exp(-x²)."""
    x = node.inputs[0]
    return (fuse(G * sp.Float(2 / math.sqrt(math.pi), 17) * sp.exp(-placeholder(0) ** 2),
                 {G: g, placeholder(0): x}, x.shape),)


# The error function, for the exact GELU x Φ(x) = 0.5 x (1 + erf(x/√2)): a row of its own rather than a
# formula, since its code is a helper of the runtime (`_erf`, float64-accurate without SciPy).
register(Op(name="erf", arity=1, shape=like(0), emit=lambda node, args: f"_erf(xp, {args[0]})", vjp=_erf_vjp,
            text=lambda node, args: f"erf({args[0]})",
            latex=lambda node, args: latex_operator("erf", args)))


def _causal_shape(shapes: tuple, attrs: dict) -> Shape:
    """The scores' shape, once their last two axes are a square matrix (T, T) of queries by keys."""
    (scores,) = shapes
    if len(scores) < 2 or scores[-1] != scores[-2] or scores[-1] is None:
        raise ShapeError(f"causal_mask: the scores {format_shape(scores)} must end in a square matrix (T, T) of "
                         "queries by keys, the same length on both of the last two axes")
    return scores


def _fill_text(node: Node) -> str:
    """The fill argument where it is not -inf (the mask of a gradient fills 0)."""
    return "" if node.attr("fill") == -math.inf else f", fill={node.attr('fill')!r}"


# Entries above the diagonal of the last two axes replaced by `fill`: -inf for scores before a softmax,
# so that position i attends to positions j <= i only. The derivative of a masked entry is 0, so the
# gradient is the same mask filling 0 (which is its own derivative rule); in attention it changes
# nothing, the masked probabilities being 0, but the op is right wherever it is used.
register(Op(name="causal_mask", arity=1, shape=_causal_shape,
            emit=lambda node, args: f"_causal_mask(xp, {args[0]}{_fill_text(node)})",
            vjp=lambda node, g: (apply("causal_mask", g, fill=0.0),),
            text=lambda node, args: f"causal_mask({args[0]}{_fill_text(node)})",
            latex=lambda node, args: latex_operator("causal", args, "" if node.attr("fill") == -math.inf
                                                    else latex_number(node.attr("fill")))))
