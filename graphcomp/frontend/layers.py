"""Model builders: whole layers from the primitives, with their params declared on the graph."""
from __future__ import annotations

from typing import Sequence

from . import dsl
from ..errors import GraphError
from ..ir import Graph, Node

__all__ = ["mlp", "embedding", "linear"]

ACTIVATIONS = {"relu": dsl.relu, "tanh": dsl.tanh, "sigmoid": dsl.sigmoid}
# Kaiming init keeps relu layers' variance; xavier suits the saturating activations.
INIT_FOR = {"relu": "kaiming", "tanh": "xavier", "sigmoid": "xavier"}


def mlp(g: Graph, x: Node, sizes: Sequence[int], activation: str = "relu", prefix: str = "") -> Node:
    """A K-layer perceptron on x (..., d0): a_k = h_{k-1} W_k + b_k, h_k = activation(a_k).

    `sizes` are the widths of the K layers; the last layer has no activation, so
    the result is the logits. Params are named W1, b1, ..., WK, bK, hidden values
    a1, h1, ..., a{K-1}, h{K-1} and the result `logits` (after `prefix`; a name the graph already
    uses is skipped), so that formulas and code read as the δ-recursion of the lecture notes on
    computational graphs: the gradient of W_K is h_{K-1}^T times the logits' gradient, and so on down.
    """
    if activation not in ACTIVATIONS:
        raise GraphError(f"mlp: unknown activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}")
    sizes = list(sizes)
    if not sizes or any(not isinstance(n, int) or isinstance(n, bool) or n < 1 for n in sizes):
        raise GraphError(f"mlp: sizes must be a non-empty list of positive ints, got {sizes!r}")
    if x.ndim < 1 or x.shape[-1] is None:
        raise GraphError(f"mlp: the input's last axis must have a fixed size, got shape {x.shape}")
    h, width = x, x.shape[-1]
    for k, size in enumerate(sizes, start=1):
        W = g.param(f"{prefix}W{k}", (width, size), init=INIT_FOR[activation])
        b = g.param(f"{prefix}b{k}", (size,), init="zeros")
        a = h @ W + b
        if k == len(sizes):  # the logits: an output the caller declares under another name keeps this one
            return _named(g, f"{prefix}logits", a)
        h = _named(g, f"{prefix}h{k}", ACTIVATIONS[activation](_named(g, f"{prefix}a{k}", a)))
        width = size
    return h


def _named(g: Graph, name: str, value: Node) -> Node:
    """value under `name` (a_k, h_k: the seeds' names), unless the graph already uses that name."""
    try:
        return g.let(name, value)
    except GraphError:
        return value


def embedding(g: Graph, ids: Node, vocab: int, dim: int, name: str = "embedding") -> Node:
    """PyTorch's nn.Embedding: a table `<name>_weight` of shape (vocab, dim), drawn from N(0, 1) as
    PyTorch draws it, and the rows the integer `ids` pick: shape ids.shape + (dim,)."""
    _sizes("embedding", vocab=vocab, dim=dim)
    weight = g.param(f"{name}_weight", (vocab, dim), init="standard_normal")
    return dsl.take(weight, ids)


def linear(g: Graph, x: Node, out: int, name: str = "linear", bias: bool = True) -> Node:
    """PyTorch's nn.Linear on the last axis of x (N, D), (N, T, D), ...: y = x Wᵀ + b, with the weight
    `<name>_weight` in PyTorch's (out, in) layout and the bias `<name>_bias` (out,), both drawn from
    U(-1/√in, 1/√in) (PyTorch's Kaiming-uniform with a = √5, and its bias rule)."""
    _sizes("linear", out=out)
    if bias not in (True, False):
        raise GraphError(f"linear: bias must be True or False, got {bias!r}")
    if not isinstance(x, Node) or x.ndim < 1 or not isinstance(x.shape[-1], int):
        raise GraphError(f"linear: the input's last axis must have a fixed size, got {x!r}")
    width = x.shape[-1]
    weight = g.param(f"{name}_weight", (out, width), init="uniform", fan_in=width)
    y = x @ dsl.transpose(weight)
    if bias:
        y = y + g.param(f"{name}_bias", (out,), init="uniform", fan_in=width)
    return y


def _sizes(what: str, **sizes: int) -> None:
    """Refuse a layer size that is not a positive int (a float, a bool, 0) where it is given."""
    for key, size in sizes.items():
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise GraphError(f"{what}: {key} must be a positive int, got {size!r}")
