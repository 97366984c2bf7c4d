"""Stable rewrites.

Rewrites are small functions, one per pattern, `rule(node) -> Node | None`:
a naive formula is replaced by its stable form, so that a graph written the
textbook way gives finite values and gradients at logits of ±800.
"""
from __future__ import annotations

import math
from typing import Callable, Optional

from ..ir import Node, apply
from ..ops import cross_entropy
from ..ops.table import reduced_axes
from .changes import Change, rebuild

Rule = Callable[[Node], Optional[Node]]


def _is(node: Node, op: str) -> bool:
    return node.op == op


def _is_one(node: Node) -> bool:
    return node.op == "const" and node.attr("value") == 1


def log_of_sigmoid(node: Node) -> Optional[Node]:
    """log σ(z) = -softplus(-z): finite for any z, where log σ(z) is log 0 = -inf below z = -745."""
    if _is(node, "log") and _is(node.inputs[0], "sigmoid"):
        return -apply("softplus", -node.inputs[0].inputs[0])
    return None


def log_of_one_minus_sigmoid(node: Node) -> Optional[Node]:
    """log(1 - σ(z)) = -softplus(z): finite for any z, where 1 - σ(z) rounds to 0 above z = 37."""
    if _is(node, "log") and _is(node.inputs[0], "sub"):
        one, s = node.inputs[0].inputs
        if _is_one(one) and _is(s, "sigmoid"):
            return -apply("softplus", s.inputs[0])
    return None


def log_of_exp(node: Node) -> Optional[Node]:
    """log(exp(u)) = u: exact, and no overflow of exp above u = 709."""
    if _is(node, "log") and _is(node.inputs[0], "exp"):
        return node.inputs[0].inputs[0]
    return None


def log_of_softmax(node: Node) -> Optional[Node]:
    """log(softmax(x)) = log_softmax(x): finite where a probability underflows to 0."""
    if _is(node, "log") and _is(node.inputs[0], "softmax"):
        s = node.inputs[0]
        return apply("log_softmax", s.inputs[0], axis=s.attr("axis"))
    return None


def log_of_sum_of_exp(node: Node) -> Optional[Node]:
    """log(sum(exp(x), axis)) = logsumexp(x, axis): the max is taken out first, so exp never overflows."""
    if _is(node, "log") and _is(node.inputs[0], "sum") and _is(node.inputs[0].inputs[0], "exp"):
        total = node.inputs[0]
        x = total.inputs[0].inputs[0]
        axes = reduced_axes(total.attr("axis"), x.ndim)
        if len(axes) == 1:
            return apply("logsumexp", x, axis=axes[0], keepdims=bool(total.attr("keepdims")))
    return None


def softmax_written_out(node: Node) -> Optional[Node]:
    """exp(x) / sum(exp(x), axis, keepdims=True) = softmax(x, axis): no overflow, and a one-line gradient."""
    if _is(node, "div") and _is(node.inputs[0], "exp") and _is(node.inputs[1], "sum"):
        e, total = node.inputs
        if total.inputs[0] is e and total.attr("keepdims"):
            axes = reduced_axes(total.attr("axis"), e.ndim)
            if len(axes) == 1:
                return apply("softmax", e.inputs[0], axis=axes[0])
    return None


def cross_entropy_of_log_softmax(node: Node) -> Optional[Node]:
    """-sum(y * log_softmax(z), axis) = softmax_cross_entropy(z, y): its gradient is one line, p - y."""
    if not (_is(node, "neg") and _is(node.inputs[0], "sum") and _is(node.inputs[0].inputs[0], "mul")):
        return None
    total, product = node.inputs[0], node.inputs[0].inputs[0]
    for y, ls in (product.inputs, product.inputs[::-1]):
        if _is(ls, "log_softmax") and y.shape == ls.shape and not total.attr("keepdims"):
            axis = reduced_axes(total.attr("axis"), ls.ndim)
            if axis == (ls.attr("axis"),):
                return cross_entropy(ls.inputs[0], y, axis=axis[0], normalized=_is(y, "one_hot"))
    return None


def gelu_through_its_tanh(node: Node) -> Optional[Node]:
    """gelu(x) = x (1 + t) / 2 with t = tanh(√(2/π)(x + 0.044715 x·x·x)) a value of its own: the gradient
    reads t (tanh' = 1 - t²) instead of computing the tanh again, and x³ is two products."""
    if _is(node, "gelu"):
        x = node.inputs[0]
        t = apply("tanh", math.sqrt(2 / math.pi) * (x + 0.044715 * (x * x * x)))
        return 0.5 * x * (1 + t)
    return None


RULES: tuple[Rule, ...] = (
    log_of_sigmoid, log_of_one_minus_sigmoid, log_of_exp, log_of_softmax, log_of_sum_of_exp,
    softmax_written_out, cross_entropy_of_log_softmax, gelu_through_its_tanh,
)


def rewrite(roots: list[Node], rules: tuple[Rule, ...], log: list[Change] | None = None) -> dict[Node, Node]:
    """Apply the rules everywhere until none fires (a rule's result is rewritten too)."""
    def transform(original: Node, node: Node) -> Node:
        for _ in range(32):  # rules only shrink or stabilise a formula; this bounds a faulty one
            for rule in rules:
                replacement = rule(node)
                if replacement is not None:
                    before, node = node, rebuild([replacement], transform)[replacement]
                    if log is not None:
                        log.append(Change("rewrite", before, node, (rule.__doc__ or rule.__name__).strip()))
                    break
            else:
                return node
        return node
    return rebuild(roots, transform)
