"""The op table: one entry per op — shape rule, NumPy emission, derivative rule (VJP), text, LaTeX.

`table` holds the rule signature and `register`; one module per family declares its ops:
`pointwise` (ops declared by a SymPy formula each, the fused `formula` op, and `fuse`), `linalg` (matmul, reductions), `shape`
(broadcasting, reshape, indexing, concat), `indexing` (take: rows picked by integer ids) and `nn` (convolution, pooling, dropout, the softmax
family), `norm` (batch norm and layer norm), `attention` (GELU, the causal mask), `elementwise` (sin, cos, ..., log1p, expm1,
square; comparisons, where, clip), `matrix` and `einsum` (matrix calculus), `custom` and `steps` (users' own rules, sign) and
`batching` (what the batching rules share; the identity `eye` and the `jacobian` mark of whole derivatives). Importing this
package registers every op. It may import `ir` and `formulas`.
"""
from . import attention, batching, indexing, linalg, nn, norm, pointwise, scan, shape  # noqa: F401 - each registers its ops
from . import einsum, matrix  # noqa: F401 - matrix calculus: trace, det, logdet, inv, solve, cholesky, einsum
from . import custom, steps  # noqa: F401 - users' own rules (custom), sign (steps)
from . import elementwise  # noqa: F401 - sin, cos, ..., square, compare, where, clip
from .pointwise import expand, formula_vjp, fuse, in_terms_of, scalar_expr
from .linalg import reduced_count, swap_last
from .nn import cross_entropy
from .shape import reshape, sum_to
from .table import OPS, Emit, Op, ShapeRule, register

__all__ = [
    "formula_vjp", "expand", "fuse", "in_terms_of", "scalar_expr", "reduced_count", "swap_last",
    "cross_entropy", "reshape", "sum_to", "OPS", "Emit", "Op", "ShapeRule", "register"
]
