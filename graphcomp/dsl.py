"""The functions users call to build graphs: `gc.sigmoid(a)`, `gc.sum(x, axis=0)`, ...

Each is one line over the op table; operators (`+ - * / ** @`) live on `Node`.
"""
from __future__ import annotations

import builtins
from typing import Any

from .graph import Node, apply

Axis = Any  # None, an int, or a tuple of ints


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


def matmul(a: Node, b: Node) -> Node:
    return apply("matmul", a, b)


def sum(x: Node, axis: Axis = None, keepdims: bool = False) -> Node:  # noqa: A001 - mirrors np.sum
    return apply("sum", x, axis=_axis(axis), keepdims=builtins.bool(keepdims))


def mean(x: Node, axis: Axis = None, keepdims: bool = False) -> Node:
    return apply("mean", x, axis=_axis(axis), keepdims=builtins.bool(keepdims))


def _axis(axis: Axis) -> Axis:
    # Attrs must be hashable: lists become tuples.
    return tuple(axis) if isinstance(axis, list) else axis
