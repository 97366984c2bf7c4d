"""The softmax family and the classic losses: the functions users call.

The softmax family are ops of their own (graphcomp/ops/nn.py): each goes through a
logsumexp that takes the max out before exp, so inputs of ±800 stay finite,
and each has a one-line derivative rule. The losses are composites of ops;
each is a mean over the batch.
"""
from __future__ import annotations

from ..errors import GraphError, ShapeError
from ..ir import Node, apply, format_shape
from ..ops import cross_entropy
from ..ops.indexing import integer_input
from . import dsl

__all__ = [
    "logsumexp", "log_softmax", "softmax", "mse", "binary_cross_entropy",
    "binary_cross_entropy_with_logits", "softmax_cross_entropy", "nll", "one_hot",
]


def logsumexp(x: Node, axis: int = -1, keepdims: bool = False) -> Node:
    """log Σ exp(x) along one axis, computed as m + log Σ exp(x - m) with m = max(x)."""
    return apply("logsumexp", x, axis=_one_axis("logsumexp", axis), keepdims=bool(keepdims))


def log_softmax(x: Node, axis: int = -1) -> Node:
    """x - logsumexp(x): log-probabilities, finite for any finite logits."""
    return apply("log_softmax", x, axis=_one_axis("log_softmax", axis))


def softmax(x: Node, axis: int = -1) -> Node:
    """exp(x - logsumexp(x)): probabilities that sum to 1 along `axis`."""
    return apply("softmax", x, axis=_one_axis("softmax", axis))


def _one_axis(what: str, axis) -> int:
    """The axis as given, once it is one int: the op's canonical hook counts it from 0."""
    if not isinstance(axis, int) or isinstance(axis, bool):
        raise GraphError(f"{what}: axis must be one int, got {axis!r}")
    return axis


def one_hot(labels: Node, classes: int) -> Node:
    """Integer labels (an input of dtype int64, or any float array of whole numbers) as one-hot rows of
    length `classes`, in the module's float dtype: integer labels are made numbers first, since the
    Array API standard multiplies no int64 array into a float64 one."""
    if not isinstance(classes, int) or classes < 1:
        raise GraphError(f"one_hot: classes must be a positive int, got {classes!r}")
    if isinstance(labels, Node) and integer_input(labels) is not None:
        labels = apply("as_float", labels)
    return apply("one_hot", labels, classes=classes)


def mse(pred: Node, target: Node) -> Node:
    """Mean squared error, over every element: mean((pred - target)²); its derivative is 2(pred - y)/n."""
    _same_shape("mse", pred, target)
    return dsl.mean((pred - target) ** 2)


def binary_cross_entropy(p: Node, y: Node) -> Node:
    """mean(-y log p - (1 - y) log(1 - p)) for probabilities p; prefer the logits form when you have logits."""
    _same_shape("binary_cross_entropy", p, y)
    return dsl.mean(-(y * dsl.log(p) + (1 - y) * dsl.log(1 - p)))


def binary_cross_entropy_with_logits(z: Node, y: Node) -> Node:
    """The same loss for p = σ(z), as mean(softplus(z) - y z): finite for any z; derivative σ(z) - y."""
    _same_shape("binary_cross_entropy_with_logits", z, y)
    return dsl.mean(dsl.softplus(z) - y * z)


def softmax_cross_entropy(logits: Node, labels: Node) -> Node:
    """Cross-entropy of softmax(logits) against one-hot (or probability) rows or integer labels, the
    mean over every position: logits (N, V) with labels (N,), or a sequence's logits (N, T, V) with
    labels (N, T) (an input of dtype int64, or whole numbers as floats). One fused op: its gradient is
    (P - Y)/(number of positions), P = softmax(logits) and Y the one-hot rows of the labels."""
    targets = _as_one_hot("softmax_cross_entropy", logits, labels)
    per_example = cross_entropy(logits, targets, axis=logits.ndim - 1, normalized=targets.op == "one_hot")
    return dsl.mean(per_example)


def nll(log_probs: Node, labels: Node) -> Node:
    """Negative log-likelihood -Σ y · log_probs over the last axis, mean over the batch."""
    targets = _as_one_hot("nll", log_probs, labels)
    per_example = -dsl.sum(targets * log_probs, axis=-1)
    return dsl.mean(per_example)


def _as_one_hot(what: str, scores: Node, labels: Node) -> Node:
    """The labels as rows like `scores`: one-hot (or probability) rows as they are, integer labels (one
    per row of scores) made one-hot. Integer-typed labels can only be the latter."""
    if isinstance(labels, Node) and integer_input(labels) is not None and labels.shape != scores.shape[:-1]:
        raise ShapeError(f"{what}: integer labels of shape {format_shape(labels.shape)} do not fit logits of shape "
                         f"{format_shape(scores.shape)}: one label per row, shape {format_shape(scores.shape[:-1])}")
    if labels.shape == scores.shape:
        return labels
    if labels.shape == scores.shape[:-1]:
        return one_hot(labels, scores.shape[-1])
    raise ShapeError(f"{what}: labels of shape {format_shape(labels.shape)} fit neither one-hot "
                     f"{format_shape(scores.shape)} nor integer {format_shape(scores.shape[:-1])} labels")


def _same_shape(what: str, a: Node, b: Node) -> None:
    if not isinstance(a, Node) or not isinstance(b, Node):
        raise GraphError(f"{what}: both operands must be graph values")
    if a.shape != b.shape:
        raise ShapeError(f"{what}: prediction {format_shape(a.shape)} and target {format_shape(b.shape)} differ in shape")
