"""The matrix functions users call: matrix calculus (graphcomp/ops/matrix.py, ops/einsum.py) on square
matrices (n, n) or stacks of them (..., n, n), and whole derivative matrices, gc.jacobian and gc.hessian
(diff/jacobian.py). Listed in `dsl.__all__` with the other functions over the op table.
"""
from __future__ import annotations

from typing import Any

from ..diff.jacobian import hessian_value, jacobian_value
from ..errors import ShapeError
from ..ir import Node, apply, as_node, format_shape


def trace(x: Node) -> Node:
    """tr X, the sum of the diagonal; one number per matrix of a stack."""
    return apply("trace", x)


def diag(x: Node) -> Node:
    """The diagonal (..., n) of a square matrix (..., n, n); of a vector (n,), the diagonal matrix (n, n)."""
    return apply("diag_embed", x) if as_node(x).ndim == 1 else apply("diagonal", x)


def eye_like(x: Node) -> Node:
    """The identity matrix I_n beside a square matrix x (n, n): Σ = L Lᵀ + ε I is L @ L.T + eps * eye_like(L)."""
    if as_node(x).ndim != 2:
        raise ShapeError(f"eye_like: expects one square matrix (n, n), got shape {format_shape(as_node(x).shape)}")
    return apply("scaled_identity", 1, x)


def det(x: Node) -> Node:
    """det X (its gradient det X · X^{-T} needs X invertible)."""
    return apply("det", x)


def logdet(x: Node) -> Node:
    """log det X through slogdet, stable where det X overflows; NaN where det X < 0, as torch.logdet."""
    return apply("logdet", x)


def inv(x: Node) -> Node:
    """X^{-1}."""
    return apply("inv", x)


def solve(a: Node, b: Node) -> Node:
    """A^{-1} b without forming A^{-1}: b a vector (n,) beside A (n, n), or matrices (..., n, k) beside (..., n, n)."""
    return apply("solve", a, b)


def cholesky(a: Node) -> Node:
    """The lower-triangular L with L Lᵀ = A, for A symmetric positive definite (only its lower triangle is
    read); the gradient is the symmetric one, as torch.linalg.cholesky's."""
    return apply("cholesky", a)


def einsum(*args: Any, spec: str | None = None) -> Node:
    """A sum of products over named indices with an explicit output, einsum("ij,jk->ik", A, B); also
    einsum(A, B, spec="ij,jk->ik"), the form spec files write (their expressions take text only by keyword)."""
    operands = args
    if spec is None and args and not isinstance(args[0], Node):
        spec, operands = args[0], args[1:]
    return apply("einsum", *operands, spec=spec)


def jacobian(y: Node, x: Node, mode: str | None = None) -> Node:
    """∂y/∂x whole, of shape y.shape + x.shape: entry [i..., j...] is ∂y[i...]/∂x[j...]. Computed without a
    loop over its entries: reverse mode batched over y's elements, or forward mode batched over x's when
    x has fewer (mode=None; or "forward", "reverse"; diff/jacobian.py)."""
    return apply("jacobian", jacobian_value(y, x, mode), y, x, order=1)


def hessian(loss: Node, x: Node) -> Node:
    """∂²loss/∂x² whole, of shape x.shape + x.shape, for a scalar loss: the Jacobian of its gradient."""
    return apply("jacobian", hessian_value(loss, x), loss, x, order=2)
