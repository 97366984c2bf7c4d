"""Whole derivative matrices as graph values: the Jacobian ∂y/∂x, of shape y.shape + x.shape, and the
Hessian of a scalar, of shape x.shape + x.shape.

One derivative pass computes one row (reverse mode: a vector-Jacobian product, the gradient of ⟨y, s⟩
for an adjoint s) or one column (forward mode: a Jacobian-vector product); the whole matrix is that
pass batched (diff/batching.py) over every row of an identity, so the generated code computes it with
the array operations of one pass, one axis wider, instead of a loop over its entries.

The mode rule (as JAX advises between jacfwd and jacrev): reverse mode when y has no more elements than
x (m rows of n entries, m ≤ n: a scalar loss is one row), forward mode when x has fewer elements than y
(or y has a batch axis, whose size only the run knows). A Hessian is the Jacobian of the gradient:
forward mode over the reverse-mode gradient (its n columns, each a Hessian-vector product computed
alongside the gradient, as jax.hessian does).
"""
from __future__ import annotations

import math

from ..errors import DifferentiationError
from ..ir import Node, apply, format_shape
from ..ops.batching import materialized, reshaped
from ..ops.scan import placeholder
from .batching import batch
from .forward import forward_mode
from .reverse import pullback, reverse_mode

MODES = ("forward", "reverse")


def jacobian_value(y: Node, x: Node, mode: str | None = None, what: str = "gc.jacobian") -> Node:
    """∂y/∂x as a value of shape y.shape + x.shape: entry [i..., j...] is ∂y[i...]/∂x[j...]. `mode`:
    "forward", "reverse", or None for the mode rule (`jacobian_mode`)."""
    _check(y, x, what)
    mode = jacobian_mode(y, x) if mode is None else mode
    if mode not in MODES:
        raise DifferentiationError(f"{what}: mode must be 'forward', 'reverse' or None, got {mode!r}")
    if mode == "reverse" and None in y.shape:  # as many rows as examples: only columns can be batched
        raise DifferentiationError(f"{what}: the Jacobian of a value of shape {format_shape(y.shape)}, which has a "
                                   "batch axis, is computed by forward mode (mode='forward', or mode=None)")
    if mode == "forward" and None in x.shape:
        raise DifferentiationError(f"{what}: the derivative with respect to a value of shape {format_shape(x.shape)}, "
                                   "which has a batch axis, is computed by reverse mode (mode='reverse', or mode=None)")
    return _forward(y, x) if mode == "forward" else _reverse(y, x)


def hessian_value(loss: Node, x: Node, what: str = "gc.hessian") -> Node:
    """∂²loss/∂x² as a value of shape x.shape + x.shape: the Jacobian of the gradient."""
    if not isinstance(loss, Node) or not isinstance(x, Node):
        raise DifferentiationError(f"{what} takes a graph value and the graph value to differentiate it by")
    if loss.shape != ():
        raise DifferentiationError(f"{what}: the Hessian needs a scalar, but the value has shape "
                                   f"{format_shape(loss.shape)}; reduce it first (gc.sum, gc.mean), or take "
                                   "gc.jacobian of its gradient")
    _check(loss, x, what)
    _check(x, x, what)
    gradient = reverse_mode(loss, [x]).gradients[x]
    return jacobian_value(gradient, x, mode="forward", what=what)


def jacobian_mode(y: Node, x: Node) -> str:
    """"forward" when x has fewer elements than y (a batch axis counts as more than any number), else
    "reverse"."""
    return "forward" if _elements(x.shape) < _elements(y.shape) else "reverse"


def _elements(shape: tuple) -> float:
    return math.inf if any(not isinstance(d, int) for d in shape) else math.prod(shape)


def _check(y: Node, x: Node, what: str) -> None:
    """Graph values, x not integer ids, and y.shape + x.shape a shape a value may have: fixed sizes, but
    for the batch axis None as its first axis."""
    if not isinstance(y, Node) or not isinstance(x, Node):
        raise DifferentiationError(f"{what} takes a graph value and the graph value to differentiate it by")
    if x.is_integer_input:
        raise DifferentiationError(f"{what}: input {x.name!r} holds integer ids, which have no derivative; "
                                   "differentiate with respect to what they pick (the table)")
    shape = tuple(y.shape) + tuple(x.shape)
    if any(isinstance(d, str) for d in shape) or None in shape[1:]:
        raise DifferentiationError(
            f"{what}: the derivative of a value of shape {format_shape(y.shape)} with respect to one of shape "
            f"{format_shape(x.shape)} would have shape {format_shape(shape)}, but only the first axis of a value "
            "may be the batch axis (None), and none a run-time length; differentiate with respect to values of "
            "fixed sizes (a param, one example's input), or differentiate a scalar (e.g. gc.sum or gc.mean of it)")


def _reverse(y: Node, x: Node) -> Node:
    """Reverse mode: the pullback of an adjoint s of y's shape, batched over s = each row of the identity
    (m = y's elements), gives the m rows ∂y_i/∂x, which are the Jacobian laid out as y.shape + x.shape."""
    seed = placeholder(y.shape, "seed")
    (gradient,) = pullback([(y, seed)], [x])
    m = math.prod(y.shape)
    basis = reshaped(apply("eye", x, size=m), (m,) + tuple(y.shape))
    (rows,) = batch([gradient], {seed: basis}) if gradient is not None else (None,)
    if rows is None:  # y does not depend on x
        rows = materialized(apply("zeros_like", x), m)
    return reshaped(rows, tuple(y.shape) + tuple(x.shape))


def _forward(y: Node, x: Node) -> Node:
    """Forward mode: the tangent of y for a tangent t of x's shape, batched over t = each row of the
    identity (n = x's elements), gives the n columns ∂y/∂x_j, moved behind y's axes."""
    tangent = placeholder(x.shape, "tangent")
    found = forward_mode([y], {x: tangent})
    n = math.prod(x.shape)
    basis = reshaped(apply("eye", x, size=n), (n,) + tuple(x.shape))
    (columns,) = batch([found[y]], {tangent: basis}) if y in found else (None,)
    if columns is None:  # y does not depend on x
        columns = materialized(apply("zeros_like", y), n)
    last = apply("transpose", columns, axes=tuple(range(1, y.ndim + 1)) + (0,)) if y.ndim else columns
    return reshaped(last, tuple(y.shape) + tuple(x.shape))
