"""The functions users call to build graphs: `gc.sigmoid(a)`, `gc.sum(x, axis=0)`, ...

Each is one line over the op table; operators (`+ - * / ** @`) live on `Node`.
"""
from __future__ import annotations

import builtins
import itertools
import math
import numbers
from typing import Any

from ..errors import GraphError, ShapeError
from ..ir import Node, apply, as_node, format_shape, inferred_shape
from ..ops.indexing import as_ids
from ..ops.norm import batch_norm_axes, running_attrs, standardized
from .matrices import cholesky, det, diag, einsum, eye_like, hessian, inv, jacobian, logdet, solve, trace

Axis = Any  # None, an int, or a tuple of ints
_DRAWS = itertools.count()

__all__ = [
    "exp", "log", "sqrt", "abs", "sigmoid", "tanh", "relu", "leaky_relu", "softplus", "softsign", "maximum",
    "minimum",
    "matmul", "transpose", "sum", "mean", "max", "min", "reshape", "flatten", "concat", "stop_gradient", "zeros_like",
    "take",
    "conv2d", "max_pool2d", "dropout",
    "layer_norm", "batch_norm", "gelu", "causal_mask", "attention",
    "trace", "diag", "eye_like", "det", "logdet", "inv", "solve", "cholesky", "einsum",
    "sign",  # the forward of a straight-through estimator (gc.custom_op)
    "sin", "cos", "tan", "arcsin", "arctan", "sinh", "cosh", "log1p", "expm1", "square",
    "equal", "not_equal", "where", "clip",
    "jacobian", "hessian",
]


def exp(x: Node) -> Node:
    return apply("exp", x)


def log(x: Node) -> Node:
    return apply("log", x)


def sigmoid(x: Node) -> Node:
    """σ(x) = 1 / (1 + e^(-x))."""
    return apply("sigmoid", x)


def tanh(x: Node) -> Node:
    return apply("tanh", x)


def relu(x: Node) -> Node:
    """max(0, x); its derivative at 0 is taken as 0."""
    return apply("relu", x)


def leaky_relu(x: Node, slope: float = 0.01) -> Node:
    """x for x > 0, slope·x otherwise; its derivative at 0 is taken as slope."""
    return apply("leaky_relu", x, slope=_real("leaky_relu", slope=slope))


def softplus(x: Node) -> Node:
    """log(1 + e^x), computed without overflow."""
    return apply("softplus", x)


def softsign(x: Node) -> Node:
    """x / (1 + |x|)."""
    return apply("softsign", x)


def sqrt(x: Node) -> Node:
    return apply("sqrt", x)


def abs(x: Node) -> Node:  # noqa: A001 - mirrors np.abs
    """|x|; its derivative at 0 is taken as 0."""
    return apply("abs", x)


def maximum(a: Node, b: Node) -> Node:
    """Elementwise max; at a tie the whole gradient goes to b (the Max module of the lecture notes on layers as modules)."""
    return apply("maximum", a, b)


def minimum(a: Node, b: Node) -> Node:
    """Elementwise min; at a tie the whole gradient goes to b."""
    return apply("minimum", a, b)


def matmul(a: Node, b: Node) -> Node:
    return apply("matmul", a, b)


def sum(x: Node, axis: Axis = None, keepdims: bool = False) -> Node:  # noqa: A001 - mirrors np.sum
    return apply("sum", x, axis=_axis(axis), keepdims=_flag("sum", keepdims=keepdims))


def mean(x: Node, axis: Axis = None, keepdims: bool = False) -> Node:
    return apply("mean", x, axis=_axis(axis), keepdims=_flag("mean", keepdims=keepdims))


def _axis(axis: Axis) -> Axis:
    # Attrs must be hashable: lists become tuples.
    return tuple(axis) if isinstance(axis, list) else axis


def max(x: Node, axis: Axis = None, keepdims: bool = False) -> Node:  # noqa: A001 - mirrors np.max
    """Largest element; the gradient goes to the maximal positions, shared equally at ties."""
    return apply("max", x, axis=_axis(axis), keepdims=_flag("max", keepdims=keepdims))


def min(x: Node, axis: Axis = None, keepdims: bool = False) -> Node:  # noqa: A001 - mirrors np.min
    """Smallest element; the gradient goes to the minimal positions, shared equally at ties."""
    return apply("min", x, axis=_axis(axis), keepdims=_flag("min", keepdims=keepdims))


def transpose(x: Node, axes: Axis = None) -> Node:
    """Axes reversed (None), or permuted as `axes` says, as in np.transpose."""
    return apply("transpose", x, axes=None if axes is None else tuple(axes))


def reshape(x: Node, shape: Any) -> Node:
    """Same elements, new shape; None marks the batch axis, one -1 may be inferred (from the other
    axes: the batch axis stays, so (None, 2, 3) to (None, -1) is (None, 6))."""
    shape = (shape,) if isinstance(shape, int) and not isinstance(shape, builtins.bool) else shape
    if not isinstance(shape, (tuple, list)) or not all(
            d is None or (isinstance(d, int) and not isinstance(d, builtins.bool)) for d in shape):
        raise GraphError(f"reshape: the shape must be a tuple of ints (None for the batch axis), got {shape!r}")
    if any(d is not None and d < 1 and d != -1 for d in shape):
        raise GraphError(f"reshape: sizes must be positive (or -1 to infer one, None for the batch axis), got {shape!r}")
    x = as_node(x)  # a number too: gc.reshape(2, (1, 1))
    return apply("reshape", x, shape=inferred_shape(x.shape, tuple(shape)))


def flatten(x: Node) -> Node:
    """Every axis after the first merged into one: (N, C, H, W) -> (N, C*H*W)."""
    if x.ndim <= 2:
        return x
    if None in x.shape[1:]:
        raise ShapeError(f"flatten: shape {format_shape(x.shape)} has a batch-sized axis (None) after the first")
    return reshape(x, (x.shape[0], math.prod(x.shape[1:])))


def concat(xs: Any, axis: int = -1) -> Node:
    """Join along an existing axis, as np.concatenate."""
    xs = tuple(xs)
    if not xs:
        raise GraphError("concat needs at least one value")
    if not isinstance(axis, int) or isinstance(axis, builtins.bool):
        raise GraphError(f"concat: axis must be one int, got {axis!r}")
    return apply("concat", *xs, axis=axis)


def stop_gradient(x: Node) -> Node:
    """The same value, treated as a constant by differentiation."""
    return apply("stop_gradient", x)


def zeros_like(value: Node) -> Node:
    """Zeros of `value`'s shape: its values are not read and no gradient flows into it. The state a loop
    starts from, e.g. zeros_like(x[:, 0, :] @ Wx) for an (N, H) hidden state."""
    if not isinstance(value, Node):
        raise TypeError(f"zeros_like: expected a graph value, got {value!r}")
    return apply("expand", 0, value)


def take(table: Node, ids: Node) -> Node:
    """The rows of `table` (its first axis) picked by the integer `ids`: shape ids.shape + table.shape[1:],
    as NumPy's table[ids]. Its gradient adds each position's gradient into the row it picked (a row
    picked twice gets both); the ids, an input declared with dtype="int64", get none."""
    return apply("take", table, as_ids(ids, "take"))


def conv2d(x: Node, w: Node, b: Node | None = None, stride: int = 1, padding: int = 0) -> Node:
    """2-d cross-correlation, NCHW: x (N, C, H, W), w (out, C, kh, kw), optional bias b (out,)."""
    _positive_int("conv2d", stride=stride)
    _positive_int("conv2d", padding=padding, minimum=0)
    out = apply("conv2d", x, w, stride=stride, padding=padding)
    if b is None:
        return out
    if b.shape != (w.shape[0],):
        raise ShapeError(f"conv2d: bias of shape {format_shape(b.shape)} must have shape ({w.shape[0]},)")
    return out + reshape(b, (w.shape[0], 1, 1))


def max_pool2d(x: Node, size: int = 2, stride: int = 2) -> Node:
    """The max of each size x size window (NCHW); the gradient goes to the max, shared at ties."""
    _positive_int("max_pool2d", size=size, stride=stride)
    return apply("max_pool2d", x, size=size, stride=stride)


def dropout(x: Node, rate: float) -> Node:
    """Inverted dropout: in training, zero each value with probability `rate` and scale the rest by
    1/(1 - rate); in `forward` and `gradients` it is the identity."""
    if not (isinstance(rate, (int, float)) and not isinstance(rate, builtins.bool) and 0 <= rate < 1):
        raise GraphError(f"dropout: rate must be in [0, 1), got {rate!r}")
    if rate == 0:
        return x
    # Each dropout draws its own mask: a fresh `draw` number keeps two of them from being shared.
    return x * apply("dropout_mask", x, rate=float(rate), draw=next(_DRAWS))


def _positive_int(what: str, minimum: int = 1, **values: Any) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, builtins.bool) or value < minimum:
            raise GraphError(f"{what}: {name} must be an int >= {minimum}, got {value!r}")


def _real(what: str, **values: Any) -> float:
    """An attribute given as a number (not a string such as "nan", not True), as a float; the op's
    own rule then refuses one that is not finite."""
    ((name, value),) = values.items()
    if not isinstance(value, numbers.Real) or isinstance(value, builtins.bool):
        raise GraphError(f"{what}: {name} must be a number, got {value!r}")
    return float(value)


def _flag(what: str, **values: Any) -> bool:
    """An attribute that is True or False: a string such as "no" is refused, not taken as true."""
    ((name, value),) = values.items()
    if value not in (True, False):
        raise GraphError(f"{what}: {name} must be True or False, got {value!r}")
    return builtins.bool(value)


# ---------------------------------------------------------------- normalisation, GELU, attention

def layer_norm(x: Node, gamma: Node, beta: Node, *, axis: int = -1, eps: float = 1e-5) -> Node:
    """γ ⊙ (x - μ)/sqrt(var + eps) + β with μ and the biased variance over the axes from `axis` to the
    last (PyTorch's layer_norm over x.shape[axis:]); γ and β have the shape of those axes."""
    if not isinstance(axis, int) or isinstance(axis, builtins.bool) or not -x.ndim <= axis < x.ndim:
        raise GraphError(f"layer_norm: axis must be an axis of shape {format_shape(x.shape)}, got {axis!r}")
    axes = tuple(range(axis % x.ndim, x.ndim))
    xhat, sigma = standardized(x, axes, _positive_real("layer_norm", eps=eps), "layer_norm")
    return apply("layer_norm", x, gamma, beta, xhat, sigma, axis=axes)


def batch_norm(x: Node, gamma: Node, beta: Node, *, axis: int = 0, eps: float = 1e-5, momentum: float = 0.1,
               name: str | None = None) -> Node:
    """Batch normalisation as PyTorch's BatchNorm1d, with the channels last. In training (gradients, train)
    it normalises with the batch's statistics: μ and the biased variance per channel, over the batch axis
    (`axis`, 0) and every later axis but the last ((N, C): axis 0; (N, T, C): axes 0 and 1); γ and β have shape
    (C,). It also keeps running statistics, two buffers of shape (C,) named `<name>_running_mean` (zeros)
    and `<name>_running_var` (ones), `name` defaulting to gamma's name: train() blends each step's mean
    and unbiased variance into them, running = (1 - momentum) running + momentum batch, and forward()
    normalises with them unless called with training=True."""
    if not isinstance(axis, int) or isinstance(axis, builtins.bool) or not -x.ndim <= axis < x.ndim - 1 or axis == -1:
        raise GraphError(f"batch_norm: axis must be an axis before the channels (the last) of shape "
                         f"{format_shape(x.shape)}, got {axis!r}")
    if axis % x.ndim:  # statistics over later axes only would be one per example: no running statistics
        raise GraphError(f"batch_norm: the statistics are taken over the batch axis 0 and the axes after it but "
                         f"the channels; axis={axis} of shape {format_shape(x.shape)} leaves the batch axis out "
                         f"(one mean per example): normalise each example with gc.layer_norm")
    axes = batch_norm_axes(x.shape, 0)
    eps = _positive_real("batch_norm", eps=eps)
    running = running_attrs(gamma, name, momentum)
    xhat, sigma = standardized(x, axes, eps, "batch_norm")
    return apply("batch_norm", x, gamma, beta, xhat, sigma, axis=axes, eps=eps, **running)


def _positive_real(what: str, **values: Any) -> float:
    value = _real(what, **values)
    if not (math.isfinite(value) and value > 0):
        raise GraphError(f"{what}: {next(iter(values))} must be a positive number, got {value!r}")
    return value


def gelu(x: Node, approximate: str = "tanh") -> Node:
    """GELU as GPT-2 computes it, 0.5 x (1 + tanh(√(2/π)(x + 0.044715 x³))); with approximate="none" the
    exact x Φ(x) = 0.5 x (1 + erf(x/√2)), as PyTorch's two forms."""
    if approximate == "none":
        return 0.5 * x * (1 + apply("erf", x * math.sqrt(0.5)))
    if approximate != "tanh":
        raise GraphError(f"gelu: approximate must be \"tanh\" (GPT-2's form) or \"none\" (the exact erf form), "
                         f"got {approximate!r}")
    return apply("gelu", x)


def causal_mask(scores: Node) -> Node:
    """The scores with every entry above the diagonal of the last two axes set to -inf, so that a
    softmax after it gives position i weight on positions j <= i only. The last two axes must be one
    length (a number, or the same run-time name such as "T")."""
    return apply("causal_mask", scores, fill=-math.inf)


def attention(q: Node, k: Node, v: Node, causal: bool = True) -> Node:
    """Scaled dot-product attention softmax(q kᵀ/√d) v over the last two axes (any leading axes, such
    as (N, H, T, d) for several heads), with the causal mask before the softmax unless causal=False.
    A composite: its gradient is the softmax's, matmul's and transpose's."""
    _flag("attention", causal=causal)
    if q.ndim < 2 or not isinstance(q.shape[-1], int):
        raise ShapeError(f"attention: q must be (..., T, d) with a known d, got {format_shape(q.shape)}")
    swapped = tuple(range(k.ndim - 2)) + (k.ndim - 1, k.ndim - 2)
    scores = matmul(q, transpose(k, swapped)) / math.sqrt(q.shape[-1])
    if causal:
        scores = causal_mask(scores)
    return matmul(apply("softmax", scores, axis=-1), v)


# ---------------------------------------------------------------- steps

def sign(x: Node) -> Node:
    """-1, 0 or 1 by the sign of x. Its derivative is 0 (taken as 0 at the step too), so no gradient
    flows through it: the forward of a straight-through estimator, whose rule gc.custom_op gives."""
    return apply("sign", x)

# ---------------------------------------------------------------- elementwise functions, conditions

def sin(x: Node) -> Node:
    return apply("sin", x)


def cos(x: Node) -> Node:
    return apply("cos", x)


def tan(x: Node) -> Node:
    return apply("tan", x)


def arcsin(x: Node) -> Node:
    return apply("arcsin", x)


def arctan(x: Node) -> Node:
    return apply("arctan", x)


def sinh(x: Node) -> Node:
    return apply("sinh", x)


def cosh(x: Node) -> Node:
    return apply("cosh", x)


def log1p(x: Node) -> Node:
    """log(1 + x), exact for small x."""
    return apply("log1p", x)


def expm1(x: Node) -> Node:
    """e^x - 1, exact for small x."""
    return apply("expm1", x)


def square(x: Node) -> Node:
    return apply("square", x)


def equal(a: Node, b: Node) -> Node:
    """1 where a == b, 0 elsewhere (a mask; `a == b` on nodes is Python's identity). x > 0, <, >=, <= are masks too."""
    return compare(a, b, "==")


def not_equal(a: Node, b: Node) -> Node:
    """1 where a != b, 0 elsewhere."""
    return compare(a, b, "!=")


def compare(a: Any, b: Any, relation: str) -> Node:
    """The mask a relation (">", "<", ">=", "<=", "==", "!=") gives; what x > 0 and spec comparisons build."""
    if not isinstance(a, Node) and not isinstance(b, Node):
        raise GraphError(f"a comparison {a!r} {relation} {b!r} of numbers alone: compare graph values")
    return apply("compare", a, b, relation=relation)


def where(condition: Node, a: Node, b: Node) -> Node:
    """a where the condition holds, b elsewhere, as np.where. The condition is a comparison (x > 0,
    gc.equal(x, y), ...) or any value, true where it is not 0. The gradient goes to a where the condition
    holds and to b elsewhere (as PyTorch's); none flows into the condition."""
    if not isinstance(condition, Node):
        raise GraphError(f"where: the condition must be a graph value (such as x > 0), got {condition!r}")
    if not isinstance(a, Node) and not isinstance(b, Node) and not all(
            isinstance(v, numbers.Real) and not isinstance(v, builtins.bool) for v in (a, b)):
        raise GraphError(f"where: a and b must be graph values or numbers, got {a!r} and {b!r}")
    if condition.op == "compare":
        return apply("where", a, b, *condition.inputs, relation=condition.attr("relation"))
    return apply("where", a, b, condition, 0, relation="!=")


def clip(x: Node, lo: float | None = None, hi: float | None = None) -> Node:
    """min(max(x, lo), hi) with numbers lo <= hi (either may be None), as np.clip; its gradient passes where
    lo <= x <= hi, the bounds included (as torch.clamp)."""
    bounds = {key: None if value is None else _real("clip", **{key: value}) for key, value in (("lo", lo), ("hi", hi))}
    return apply("clip", x, **bounds)
