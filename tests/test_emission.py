"""Every op of the table emitted and run, its value and shape compared with NumPy computed directly.

Each op is built with `apply` as the compiler builds it, compiled as written (simplify=False, so the
line under test is the op's own emission), with and without check_shapes. Ops that take any number of
operands are emitted with one, two and more; ops that take axes, shapes or indices get one-element
ones too, the case where a tuple printed without its comma silently means something else.
"""
import functools
import importlib.util
import math
import re
import subprocess
import sys
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest

import graphcomp as gc
from graphcomp.codegen import source_spec
from graphcomp.formulas.derivatives import placeholder
from graphcomp.ir import OPS, apply, normalize_index
from graphcomp.ops import cross_entropy

N = 3  # the batch size every case runs at
x0, x1, x2 = placeholder(0), placeholder(1), placeholder(2)


@dataclass
class Case:
    id: str
    op: str
    shapes: list           # operand shapes; None is the batch axis
    build: Callable        # graph inputs -> the node under test
    numpy: Callable        # the same computed by NumPy on the arrays
    data: str = "normal"   # "normal", "positive", "labels" (0, 1 or 2), or "ids": the last operand int64 ids (0, 1, 2)


# ---- NumPy written out, loops and all: the reference of the vectorised helpers ----------------

def _pad(x, p):
    return np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))


def _patches(x, kh, kw, stride):
    """(i, j, slice of x) for every window position."""
    rows, cols = (x.shape[2] - kh) // stride + 1, (x.shape[3] - kw) // stride + 1
    for i, j in np.ndindex(rows, cols):
        yield i, j, (slice(None), slice(None), slice(i * stride, i * stride + kh), slice(j * stride, j * stride + kw))


def conv(x, w, stride=1, padding=0):
    x = _pad(x, padding)
    out = np.zeros((x.shape[0], w.shape[0], (x.shape[2] - w.shape[2]) // stride + 1, (x.shape[3] - w.shape[3]) // stride + 1))
    for i, j, cut in _patches(x, *w.shape[2:], stride):
        out[:, :, i, j] = np.tensordot(x[cut], w, axes=([1, 2, 3], [1, 2, 3]))
    return out


def conv_input_grad(g, w, x, stride=1, padding=0):
    out = np.zeros(_pad(x, padding).shape)
    for i, j, cut in _patches(out, *w.shape[2:], stride):
        out[cut] += np.tensordot(g[:, :, i, j], w, axes=(1, 0))
    return out[:, :, padding:padding + x.shape[2], padding:padding + x.shape[3]]


def conv_weight_grad(g, x, w, stride=1, padding=0):
    x, out = _pad(x, padding), np.zeros(w.shape)
    for i, j, cut in _patches(x, *w.shape[2:], stride):
        out += np.tensordot(g[:, :, i, j], x[cut], axes=(0, 0))
    return out


def pool(x, size=2, stride=2):
    return _pooled(x, x, size, stride, lambda window, hit, value: window.max(axis=(2, 3)))


def pool_select(values, x, size=2, stride=2):
    return _pooled(values, x, size, stride, lambda window, hit, value: (hit * value).sum((2, 3)) / hit.sum((2, 3)))


def _pooled(values, x, size, stride, reduce):
    out = np.zeros(x.shape[:2] + ((x.shape[2] - size) // stride + 1, (x.shape[3] - size) // stride + 1))
    for i, j, cut in _patches(x, size, size, stride):
        hit = x[cut] == x[cut].max(axis=(2, 3), keepdims=True)
        out[:, :, i, j] = reduce(x[cut], hit, values[cut])
    return out


def pool_grad(g, x, size=2, stride=2):
    out = np.zeros(x.shape)
    for i, j, cut in _patches(x, size, size, stride):
        hit = x[cut] == x[cut].max(axis=(2, 3), keepdims=True)
        out[cut] += hit * (g[:, :, i, j] / hit.sum((2, 3)))[:, :, None, None]
    return out


def unindex(g, like, key):
    out = np.zeros(like.shape)
    out[key] += g
    return out


def ties(x, axis):
    hit = x == x.max(axis=axis, keepdims=True)
    return hit / hit.sum(axis=axis, keepdims=True)


def pooled(x):
    return apply("max_pool2d", x, size=2, stride=2)


def index(x, key):
    return apply("index", x, index=normalize_index(key, x.shape))


def placed(g, like, key):
    return apply("unindex", g, like, index=normalize_index(key, like.shape))


def logsumexp(a, axis, keepdims=False):
    return np.log(np.sum(np.exp(a), axis=axis, keepdims=keepdims))


def sigmoid(a):
    return 1 / (1 + np.exp(-a))


# ---- the cases: every op of the table -------------------------------------------------------

ELEMENTWISE = [  # (op, operand shapes, NumPy, data)
    ("add", [(None, 3), (3,)], np.add, "normal"), ("sub", [(None, 1), (1, 3)], np.subtract, "normal"),
    ("mul", [(), (None, 2)], np.multiply, "normal"), ("div", [(None, 3), (3,)], np.divide, "positive"),
    ("pow", [(None, 2), (2,)], np.power, "positive"), ("neg", [(None, 2)], np.negative, "normal"),
    ("exp", [(2, 3)], np.exp, "normal"), ("log", [(None, 2)], np.log, "positive"),
    ("tanh", [()], np.tanh, "normal"), ("sigmoid", [(None, 3)], sigmoid, "normal"),
    ("relu", [(None, 4)], lambda a: np.maximum(a, 0), "normal"),
    ("maximum", [(None, 3), (3,)], np.maximum, "normal"), ("minimum", [(None, 1), (4,)], np.minimum, "normal"),
    ("sqrt", [(3,)], np.sqrt, "positive"), ("abs", [(None, 3)], np.abs, "normal"),
    ("softplus", [(None, 3)], lambda a: np.logaddexp(0, a), "normal"),
    ("softsign", [(None, 3)], lambda a: a / (1 + np.abs(a)), "normal"),
]

CASES = [Case(op, op, shapes, lambda *xs, op=op: apply(op, *xs), reference, data)
         for op, shapes, reference, data in ELEMENTWISE] + [
    Case("leaky_relu", "leaky_relu", [(None, 3)], lambda a: apply("leaky_relu", a, slope=0.1),
         lambda a: np.where(a > 0, a, 0.1 * a)),
    Case("formula of one", "formula", [(None, 3)], lambda a: apply("formula", a, expr=2 * x0 + 1),
         lambda a: 2 * a + 1),
    Case("formula of two", "formula", [(None, 3), (3,)],
         lambda a, b: apply("formula", a, b, expr=x0 * x1 - x0), lambda a, b: a * b - a),
    Case("formula of three", "formula", [(None, 1), (3,), ()],
         lambda a, b, c: apply("formula", a, b, c, expr=x0 * x1 - x2), lambda a, b, c: a * b - c),
    # variable numbers of operands
    Case("concat of one", "concat", [(None, 1, 4)], lambda a: apply("concat", a, axis=1), lambda a: a),
    Case("concat of one along axis 0", "concat", [(2, 3)], lambda a: apply("concat", a, axis=0), lambda a: a),
    Case("concat of two", "concat", [(None, 1, 4), (None, 2, 4)], lambda a, b: apply("concat", a, b, axis=1),
         lambda a, b: np.concatenate([a, b], axis=1)),
    Case("concat of four", "concat", [(None, 2), (None, 1), (None, 3)],
         lambda a, b, c: apply("concat", a, b, c, a, axis=-1), lambda a, b, c: np.concatenate([a, b, c, a], axis=-1)),
    Case("expand to one reference", "expand", [(1,), (None, 3)], lambda a, r: apply("expand", a, r),
         lambda a, r: np.broadcast_to(a, r.shape)),
    Case("expand to two references", "expand", [(), (None, 1), (1, 3)], lambda a, r, s: apply("expand", a, r, s),
         lambda a, r, s: np.broadcast_to(a, (N, 3))),
    Case("expand to three references", "expand", [(3,), (None, 1), (None, 3), (1, 3)],
         lambda a, r, s, t: apply("expand", a, r, s, t), lambda a, r, s, t: np.broadcast_to(a, (N, 3))),
    Case("expand a number to one reference", "expand", [(None, 2)], lambda r: apply("expand", 2, r),
         lambda r: np.full(r.shape, 2.0)),
    Case("expand a number to two references", "expand", [(None, 1), (2,)], lambda r, s: apply("expand", 2, r, s),
         lambda r, s: np.full((N, 2), 2.0)),
    # axes, shapes and indices of one element
    Case("sum over every axis", "sum", [(None, 3)], lambda a: gc.sum(a), np.sum),
    Case("sum over axes (1,)", "sum", [(None, 3, 2)], lambda a: gc.sum(a, axis=(1,)), lambda a: a.sum(axis=1)),
    Case("sum over no axis", "sum", [(None, 3)], lambda a: gc.sum(a, axis=()), lambda a: a),
    Case("mean over axes (0, 2), keepdims", "mean", [(None, 3, 2)], lambda a: gc.mean(a, axis=(0, 2), keepdims=True),
         lambda a: a.mean(axis=(0, 2), keepdims=True)),
    Case("max over axes (1,)", "max", [(None, 4)], lambda a: gc.max(a, axis=(1,)), lambda a: a.max(axis=1)),
    Case("min of a vector, keepdims", "min", [(4,)], lambda a: gc.min(a, keepdims=True), lambda a: a.min(keepdims=True)),
    Case("tie_share over axes (1,)", "tie_share", [(None, 4)],
         lambda a: apply("tie_share", a, gc.max(a, axis=(1,)), axis=(1,), keepdims=False), lambda a: ties(a, 1)),
    Case("tie_share over every axis", "tie_share", [(2, 3)],
         lambda a: apply("tie_share", a, gc.max(a), axis=None, keepdims=False), lambda a: ties(a, None)),
    Case("count of the batch axis", "count", [(None, 3)], lambda a: apply("count", a, axis=(0,)), lambda a: float(N)),
    Case("count of two axes", "count", [(None, 3)], lambda a: apply("count", a, axis=(0, 1)), lambda a: 3.0 * N),
    Case("sum_to a vector", "sum_to", [(None, 2, 3)], lambda a: apply("sum_to", a, shape=(3,)), lambda a: a.sum((0, 1))),
    Case("sum_to kept axes", "sum_to", [(None, 2, 3)], lambda a: apply("sum_to", a, shape=(2, 1)),
         lambda a: a.sum(axis=2, keepdims=True).sum(axis=0)),
    Case("sum_to a scalar", "sum_to", [(None, 2)], lambda a: apply("sum_to", a, shape=()), np.sum),
    Case("reshape to one axis", "reshape", [(2, 3)], lambda a: gc.reshape(a, (6,)), lambda a: a.reshape(6)),
    Case("reshape to a scalar", "reshape", [(1,)], lambda a: gc.reshape(a, ()), lambda a: a.reshape(())),
    Case("reshape batched", "reshape", [(None, 2, 3)], lambda a: gc.reshape(a, (None, 6)), lambda a: a.reshape(N, 6)),
    Case("reshape with two batch axes", "reshape", [(None, 2)], lambda a: gc.reshape(a @ a.T, (None, 1, None)),
         lambda a: (a @ a.T)[:, None, :]),
    Case("transpose of a matrix", "transpose", [(2, 3)], lambda a: gc.transpose(a), lambda a: a.T),
    Case("transpose of a vector", "transpose", [(3,)], lambda a: gc.transpose(a), lambda a: a),
    Case("transpose axes (0,)", "transpose", [(3,)], lambda a: gc.transpose(a, (0,)), lambda a: a),
    Case("transpose axes (0, 2, 1)", "transpose", [(None, 2, 3)], lambda a: gc.transpose(a, (0, 2, 1)),
         lambda a: a.transpose(0, 2, 1)),
    Case("index one slice", "index", [(4,)], lambda a: index(a, slice(1, 3)), lambda a: a[1:3]),
    Case("index of a scalar", "index", [()], lambda a: index(a, ...), lambda a: a[()]),
    Case("index columns", "index", [(None, 5)], lambda a: index(a, (slice(None), slice(1, 4))), lambda a: a[:, 1:4]),
    Case("index leading int", "index", [(2, 3, 4)], lambda a: index(a, 1), lambda a: a[1]),
    Case("index int and step", "index", [(4, 6)], lambda a: index(a, (1, slice(None, None, 2))), lambda a: a[1, ::2]),
    Case("unindex one slice", "unindex", [(2,), (4,)], lambda g, x: placed(g, x, slice(1, 3)),
         lambda g, x: unindex(g, x, np.s_[1:3])),
    Case("unindex into a scalar", "unindex", [(), ()], lambda g, x: placed(g, x, ...), lambda g, x: unindex(g, x, ())),
    Case("unindex columns", "unindex", [(None, 3), (None, 5)], lambda g, x: placed(g, x, (slice(None), slice(1, 4))),
         lambda g, x: unindex(g, x, np.s_[:, 1:4])),
    Case("unindex leading int", "unindex", [(3, 4), (2, 3, 4)], lambda g, x: placed(g, x, 1),
         lambda g, x: unindex(g, x, 1)),
    Case("broadcast_like", "broadcast_like", [(3,), (None, 2, 3)], lambda g, r: apply("broadcast_like", g, r, axis=None),
         lambda g, r: np.broadcast_to(g, r.shape)),
    Case("broadcast_like axes (1,)", "broadcast_like", [(None, 4), (None, 3, 4)],
         lambda g, r: apply("broadcast_like", g, r, axis=(1,)), lambda g, r: np.broadcast_to(g[:, None, :], r.shape)),
    Case("broadcast_like a scalar, axes (0,)", "broadcast_like", [(), (4,)],
         lambda g, r: apply("broadcast_like", g, r, axis=(0,)), lambda g, r: np.broadcast_to(g, r.shape)),
    Case("broadcast_like ones", "broadcast_like", [(None, 2)], lambda r: apply("broadcast_like", 1, r, axis=None),
         np.ones_like),
    Case("broadcast_like a number", "broadcast_like", [(None, 2)], lambda r: apply("broadcast_like", 2.5, r, axis=None),
         lambda r: np.full(r.shape, 2.5)),
    # the rest of the table
    Case("zeros_like", "zeros_like", [(None, 2)], lambda a: apply("zeros_like", a), np.zeros_like),
    Case("alias", "alias", [(None, 2)], lambda a: apply("alias", a), lambda a: a),
    Case("stop_gradient", "stop_gradient", [(None, 2)], gc.stop_gradient, lambda a: a),
    Case("one_hot", "one_hot", [(None,)], lambda a: gc.one_hot(a, 3), lambda a: np.eye(3)[a.astype(int)], "labels"),
    Case("one_hot of a matrix", "one_hot", [(2, 2)], lambda a: gc.one_hot(a, 3), lambda a: np.eye(3)[a.astype(int)],
         "labels"),
    Case("matmul", "matmul", [(None, 3), (3, 2)], gc.matmul, np.matmul),
    Case("matmul of vectors", "matmul", [(3,), (3,)], gc.matmul, np.matmul),
    Case("matmul of a stack", "matmul", [(None, 2, 3), (3,)], gc.matmul, np.matmul),
    Case("outer", "outer", [(3,), (2,)], lambda a, b: apply("outer", a, b), np.outer),
    Case("matmul of a stack by a matrix", "matmul", [(None, 4, 3), (3, 2)], gc.matmul, np.matmul),
    Case("rows_matmul", "rows_matmul", [(None, 2, 4, 3), (None, 2, 4, 5)], lambda a, g: apply("rows_matmul", a, g),
         lambda a, g: np.einsum("nhtk,nhtm->km", a, g)),
    Case("logsumexp", "logsumexp", [(None, 4)], lambda a: apply("logsumexp", a, axis=1, keepdims=False),
         lambda a: logsumexp(a, axis=1)),
    Case("logsumexp keepdims", "logsumexp", [(None, 4)], lambda a: apply("logsumexp", a, axis=0, keepdims=True),
         lambda a: logsumexp(a, axis=0, keepdims=True)),
    Case("log_softmax", "log_softmax", [(None, 4)], lambda a: apply("log_softmax", a, axis=1),
         lambda a: a - logsumexp(a, axis=1, keepdims=True)),
    Case("softmax", "softmax", [(None, 2, 3)], lambda a: apply("softmax", a, axis=1),
         lambda a: np.exp(a - logsumexp(a, axis=1, keepdims=True))),
    Case("softmax_cross_entropy", "softmax_cross_entropy", [(None, 4), (None, 4)],
         lambda z, y: cross_entropy(z, y, 1, normalized=False),
         lambda z, y: -np.sum(y * (z - logsumexp(z, axis=1, keepdims=True)), axis=1)),
    Case("softmax_cross_entropy normalized", "softmax_cross_entropy", [(None, 2, 3), (None, 2, 3)],
         lambda z, y: cross_entropy(z, y, 2, normalized=True),  # targets that sum to 1 are assumed to
         lambda z, y: logsumexp(z, axis=2) - np.sum(y * z, axis=2)),   # (these do not: the formula shows)
    Case("conv2d", "conv2d", [(None, 2, 5, 5), (3, 2, 3, 3)], lambda x, w: apply("conv2d", x, w, stride=1, padding=0),
         conv),
    Case("conv2d stride 2 padding 1", "conv2d", [(None, 1, 4, 5), (2, 1, 2, 2)],
         lambda x, w: apply("conv2d", x, w, stride=2, padding=1), lambda x, w: conv(x, w, 2, 1)),
    Case("conv2d_input_grad", "conv2d_input_grad", [(None, 2, 3, 3), (2, 1, 2, 2), (None, 1, 4, 4)],
         lambda g, w, x: apply("conv2d_input_grad", g, w, x, stride=2, padding=1),
         lambda g, w, x: conv_input_grad(g, w, x, 2, 1)),
    Case("conv2d_weight_grad", "conv2d_weight_grad", [(None, 3, 3, 3), (None, 2, 5, 5), (3, 2, 3, 3)],
         lambda g, x, w: apply("conv2d_weight_grad", g, x, w, stride=1, padding=0), conv_weight_grad),
    Case("max_pool2d", "max_pool2d", [(None, 2, 4, 4)], pooled, pool),
    Case("max_pool2d 3x3 stride 2", "max_pool2d", [(None, 1, 5, 5)], lambda x: apply("max_pool2d", x, size=3, stride=2),
         lambda x: pool(x, 3, 2)),
    Case("max_pool2d_grad", "max_pool2d_grad", [(None, 2, 2, 2), (None, 2, 4, 4)],
         lambda g, x: apply("max_pool2d_grad", g, x, pooled(x), size=2, stride=2), pool_grad),
    Case("max_pool2d_select", "max_pool2d_select", [(None, 2, 4, 4), (None, 2, 4, 4)],
         lambda v, x: apply("max_pool2d_select", v, x, pooled(x), size=2, stride=2), pool_select),
    Case("dropout_mask", "dropout_mask", [(None, 3)], lambda a: apply("dropout_mask", a, rate=0.5, draw=0),
         np.ones_like),
    Case("scan_result final carry", "scan_result", [(None, 4), (None, 5, 4)], lambda a, b: gc.scan(_step, a, b, axis=1)[0],
         lambda a, b: _loop(a, b)[0]),
    Case("scan_result stacked", "scan_result", [(None, 4), (None, 5, 4)], lambda a, b: gc.scan(_step, a, b, axis=1)[1],
         lambda a, b: _loop(a, b)[1]),
]


def normalised(x, gamma, beta, axes, eps=1e-5):
    """γ ⊙ (x - μ)/sqrt(var + eps) + β, the statistics over `axes` (the biased variance)."""
    return gamma * (x - x.mean(axis=axes, keepdims=True)) / np.sqrt(x.var(axis=axes, keepdims=True) + eps) + beta


CASES += [  # normalisation, GELU, the causal mask (graphcomp/ops/norm.py, attention.py)
    Case("variance", "variance", [(None, 2, 4)], lambda a: apply("variance", a, gc.mean(a, axis=(0, 1), keepdims=True),
                                                                 axis=(0, 1)),
         lambda a: a.var(axis=(0, 1), keepdims=True)),
    Case("batch_norm", "batch_norm", [(None, 2, 3), (3,), (3,)], gc.batch_norm, lambda x, g, b: normalised(x, g, b, (0, 1))),
    Case("layer_norm", "layer_norm", [(None, 2, 3), (3,), (3,)], gc.layer_norm, lambda x, g, b: normalised(x, g, b, 2)),
    Case("gelu", "gelu", [(None, 3)], gc.gelu,
         lambda a: 0.5 * a * (1 + np.tanh(np.sqrt(2 / np.pi) * (a + 0.044715 * a ** 3)))),
    Case("erf", "erf", [(None, 3, 2)], lambda a: apply("erf", a), lambda a: np.vectorize(math.erf)(a)),
    Case("causal_mask", "causal_mask", [(None, 3, 3)], gc.causal_mask,
         lambda a: np.where(np.triu(np.ones((3, 3)), 1) > 0, -np.inf, a)),
    Case("causal_mask of a gradient", "causal_mask", [(2, 4, 4)], lambda a: apply("causal_mask", a, fill=0.0),
         lambda a: np.where(np.triu(np.ones((4, 4)), 1) > 0, 0.0, a)),
    # whole derivative matrices: the identity they are batched over, and the mark of ∂y/∂x
    Case("eye", "eye", [(None, 2)], lambda a: apply("eye", a, size=3), lambda a: np.eye(3)),
    Case("jacobian", "jacobian", [(3,)], lambda a: gc.jacobian(gc.tanh(a), a),
         lambda a: np.diag(1 - np.tanh(a) ** 2)),
]
CASES += [  # the elementwise functions, comparisons, where and clip (graphcomp/ops/elementwise.py)
    *(Case(op, op, [(None, 3)], lambda a, op=op: apply(op, a), reference, data) for op, reference, data in (
        ("sin", np.sin, "normal"), ("cos", np.cos, "normal"), ("tan", np.tan, "normal"),
        ("arctan", np.arctan, "normal"), ("sinh", np.sinh, "normal"), ("cosh", np.cosh, "normal"),
        ("log1p", np.log1p, "positive"), ("expm1", np.expm1, "normal"), ("square", np.square, "normal"))),
    Case("arcsin", "arcsin", [(None, 3)], lambda a: apply("arcsin", gc.tanh(a)), lambda a: np.arcsin(np.tanh(a))),
    Case("compare", "compare", [(None, 3), (3,)], lambda a, b: apply("compare", a, b, relation=">="),
         lambda a, b: (a >= b).astype(float)),
    Case("compare with a number first", "compare", [(None, 2)], lambda a: apply("compare", 0.5, a, relation="<"),
         lambda a: (0.5 < a).astype(float)),
    Case("where", "where", [(None, 3), (3,), (None, 1), ()], lambda a, b, c, d: apply("where", a, b, c, d, relation="<="),
         lambda a, b, c, d: np.where(c <= d, a, b)),
    Case("where of two numbers", "where", [(None, 3)], lambda a: apply("where", 1.5, -2, a, 0, relation="!="),
         lambda a: np.where(a != 0, 1.5, -2.0)),
    Case("clip", "clip", [(None, 4)], lambda a: gc.clip(a, -0.5, 1), lambda a: np.clip(a, -0.5, 1)),
    Case("clip from below", "clip", [(2, 3)], lambda a: gc.clip(a, lo=0), lambda a: np.maximum(a, 0)),
]


def scattered(grad, table, ids):
    """The gradient of table[ids] written out: each position's gradient added into the row its id names."""
    out = np.zeros_like(table)
    for index in np.ndindex(ids.shape):
        out[ids[index]] += grad[index]
    return out


CASES += [  # ops over integer ids (graphcomp/ops/indexing.py); the ids repeat, so rows add up
    Case("take", "take", [(3, 2), (None, 4)], gc.take, lambda table, ids: table[ids], "ids"),
    Case("take of matrices", "take", [(3, 2, 2), (None,)], gc.take, lambda table, ids: table[ids], "ids"),
    Case("take_grad", "take_grad", [(None, 4, 2), (3, 2), (None, 4)],
         lambda g, table, ids: apply("take_grad", g, table, ids), scattered, "ids"),
    Case("as_float", "as_float", [(None, 3)], lambda ids: apply("as_float", ids), lambda ids: ids.astype(np.float64),
         "ids"),
]
def _spd(a):
    return a @ np.swapaxes(a, -1, -2) + 3 * np.eye(a.shape[-1])


CASES += [  # matrix calculus (graphcomp/ops/matrix.py, ops/einsum.py): one matrix and a stack of them
    Case("trace", "trace", [(3, 3)], gc.trace, np.trace),
    Case("trace of a stack", "trace", [(None, 3, 3)], gc.trace, lambda a: np.trace(a, axis1=-2, axis2=-1)),
    Case("diagonal", "diagonal", [(None, 3, 3)], gc.diag, lambda a: np.diagonal(a, axis1=-2, axis2=-1)),
    Case("diag_embed", "diag_embed", [(3,)], gc.diag, np.diag),
    Case("diag_embed of a stack", "diag_embed", [(None, 3)], lambda a: apply("diag_embed", a),
         lambda a: a[..., None] * np.eye(3)),
    Case("scaled_identity", "scaled_identity", [(), (3, 3)], lambda a, b: apply("scaled_identity", a, b),
         lambda a, b: a * np.eye(3)),
    Case("scaled_identity of a stack", "scaled_identity", [(None,), (None, 3, 3)],
         lambda a, b: apply("scaled_identity", a, b), lambda a, b: a[:, None, None] * np.eye(3)),
    Case("eye_like", "scaled_identity", [(2, 2)], gc.eye_like, lambda a: np.eye(2)),
    Case("det", "det", [(None, 3, 3)], gc.det, np.linalg.det),
    Case("logdet", "logdet", [(3, 3)], gc.logdet, lambda a: np.log(np.linalg.det(a))),
    Case("logdet of a stack", "logdet", [(None, 3, 3)], lambda a: gc.logdet(a @ gc.transpose(a, (0, 2, 1))),
         lambda a: np.linalg.slogdet(a @ np.swapaxes(a, 1, 2))[1]),
    Case("inv", "inv", [(None, 3, 3)], gc.inv, np.linalg.inv),
    Case("solve vector", "solve", [(3, 3), (3,)], gc.solve, np.linalg.solve),
    Case("solve stack", "solve", [(None, 3, 3), (None, 3, 2)], gc.solve, np.linalg.solve),
    Case("cholesky", "cholesky", [(2, 3, 3)], lambda a: gc.cholesky(a @ gc.transpose(a, (0, 2, 1)) + 3 * gc.eye_like(a[0])),
         lambda a: np.linalg.cholesky(_spd(a))),
    Case("phi", "phi", [(None, 3, 3)], lambda a: apply("phi", a), lambda a: np.tril(a) - 0.5 * np.tril(np.triu(a))),
    Case("einsum one operand", "einsum", [(None, 3)], lambda a: gc.einsum("ni->i", a), lambda a: a.sum(axis=0)),
    Case("einsum two operands", "einsum", [(None, 3), (3, 2)], lambda a, b: gc.einsum("ni,ij->jn", a, b),
         lambda a, b: (a @ b).T),
    Case("einsum three operands", "einsum", [(None, 3), (3, 2), (None, 2)], lambda a, b, c: gc.einsum("ni,ij,nj->n", a, b, c),
         lambda a, b, c: np.einsum("ni,ij,nj->n", a, b, c)),
]
# A step, and users' own rules (graphcomp/ops/steps.py, custom.py): a custom op is emitted as its forward's
# value, whatever number of inputs it takes
_CUBE = gc.custom_op("cube", lambda a: a * a * a, vjp=lambda inputs, y, g: 3 * g * inputs[0] * inputs[0])
_AFFINE = gc.custom_op("affine", lambda a, b, c: a * b + c,
                       vjp=lambda inputs, y, g: (g * inputs[1], g * inputs[0], g))
_PRODUCT = gc.custom_op("product", lambda a, b: a * b, vjp=lambda inputs, y, g: (g * inputs[1], g * inputs[0]))
CASES += [
    Case("sign", "sign", [(None, 3)], gc.sign, np.sign),
    Case("custom of one input", "custom", [(None, 3)], _CUBE, lambda a: a ** 3),
    Case("custom of two inputs", "custom", [(None, 3), (3,)], _PRODUCT, np.multiply),
    Case("custom of three inputs", "custom", [(None, 3), (3,), ()], _AFFINE, lambda a, b, c: a * b + c),
]
# A loop (`scan`) is a tuple of arrays, emitted as a for block: the scan_result cases emit it.
TUPLE_VALUED = {"scan"}


def _step(h, x):
    return gc.tanh(h + x), h * x


def _loop(a, b):
    h, ys = a, []
    for t in range(b.shape[1]):
        ys.append(h * b[:, t])
        h = np.tanh(h + b[:, t])
    return h, np.stack(ys, axis=1)


def arrays_for(case: Case) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(len(case.id))
    draw = {"normal": lambda shape: rng.normal(size=shape), "positive": lambda shape: rng.uniform(0.5, 2, size=shape),
            "labels": lambda shape: rng.integers(0, 3, size=shape).astype(float),
            "ids": lambda shape: rng.normal(size=shape)}[case.data]
    arrays = {name: draw(tuple(N if d is None else d for d in shape)) for name, shape in zip("abcd", case.shapes)}
    if case.data == "ids":
        arrays[_ids(case)] = rng.integers(0, 3, size=arrays[_ids(case)].shape)
    return arrays


def _inputs(g: gc.Graph, case: Case) -> list[gc.Node]:
    """The case's operands as inputs a, b, c, d of g; ids as an int64 input."""
    return [g.input(name, shape, dtype="int64" if name == _ids(case) else "float")
            for name, shape in zip("abcd", case.shapes)]


def _ids(case: Case) -> str | None:
    """The operand of a case that is an int64 input of ids (the last one, for data "ids")."""
    return "abcd"[len(case.shapes) - 1] if case.data == "ids" else None


def compiled(case: Case, check_shapes: bool = False) -> gc.CompiledModel:
    """The case's op as the only output y of a graph over inputs a, b, c, d, compiled as written."""
    g = gc.Graph("emission")
    node = case.build(*_inputs(g, case))
    assert node.op == case.op, f"the case builds {node.op}, not {case.op}"
    g.output("y", node)
    wrt = [name for name in g.inputs if name != _ids(case)]  # every input (no params) but ids, never differentiated
    return gc.compile(g, simplify=False, check_shapes=check_shapes, wrt=wrt)


@functools.cache
def generated(case_index: int, check_shapes: bool) -> tuple[str, bool]:
    """(the generated source of a case, whether it has gradients), compiled once for the tests that
    only read and run it."""
    model = compiled(CASES[case_index], check_shapes)
    return model.source, model.backward is not None


def loaded(text: str):
    """The module of a generated source, imported from memory."""
    spec = source_spec("emission", text)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("check_shapes", [False, True], ids=["plain", "check_shapes"])
@pytest.mark.parametrize("index", range(len(CASES)), ids=[case.id for case in CASES])
def test_each_op_computes_what_numpy_computes(index, check_shapes):
    case, arrays = CASES[index], arrays_for(CASES[index])
    text, differentiated = generated(index, check_shapes)
    module = loaded(text)
    training = {"training": True} if getattr(module, "BUFFERS", None) else {}  # batch norm: the batch's statistics
    got = np.asarray(module.forward(**arrays, **training)["y"])
    want = np.asarray(case.numpy(*arrays.values()))
    assert got.shape == want.shape, f"{case.id}: shape {got.shape}, NumPy gives {want.shape}\n{text}"
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=case.id)
    if differentiated:  # a scalar output is differentiated too: those lines run (and are checked)
        module.gradients(**arrays)


def test_every_op_of_the_table_is_emitted():
    assert {case.op for case in CASES} == set(OPS) - TUPLE_VALUED


def test_ops_of_any_arity_are_emitted_with_one_two_and_more_operands():
    leading = {"expand": 1, "custom": 1}  # expand(value, *references): one, two, three references; custom: inputs
    counts: dict[str, set[int]] = {}
    for case in CASES:
        g = gc.Graph("arity")
        node = case.build(*_inputs(g, case))
        counts.setdefault(case.op, set()).add(min(len(node.inputs) - leading.get(case.op, 0), 3))
    variable = [name for name, op in OPS.items() if op.arity is None and name not in TUPLE_VALUED]
    assert variable and all(counts[name] == {1, 2, 3} for name in variable), {name: counts[name] for name in variable}


def test_every_generated_module_compiles_with_py_compile(tmp_path):
    paths = []
    for index in range(len(CASES)):
        for check_shapes in (False, True):
            paths.append(tmp_path / f"case{index}_{check_shapes}.py")
            paths[-1].write_text(generated(index, check_shapes)[0], encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "py_compile", *map(str, paths)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# ---- check_shapes ----------------------------------------------------------------------------

def case_named(name: str) -> Case:
    return next(case for case in CASES if case.id == name)


def test_check_shapes_is_off_by_default_and_adds_only_check_lines():
    case = case_named("concat of one")
    plain, checked = compiled(case).source, compiled(case, check_shapes=True).source
    g = gc.Graph("emission")
    g.output("y", case.build(g.input("a", case.shapes[0])))
    assert gc.compile(g, simplify=False, check_shapes=False).source == plain
    assert "_expect_shape" not in plain and "_CHECKED_LINES" not in plain
    body = checked[checked.index("def forward"):checked.index("return {'y'")]
    assert "    N = a.shape[0]\n    y = xp.concat((a,), axis=1)\n    _expect_shape(y, (N, 1, 4), \"y\")\n" in body


def test_check_shapes_names_the_line_that_computed_another_shape():
    """The concat of one operand as it used to be emitted: (a) is a, not a tuple, so its rows were joined."""
    case = case_named("concat of one")
    model = compiled(case, check_shapes=True)
    model.source = model.source.replace("xp.concat((a,), axis=1)", "xp.concat((a), axis=1)")
    message = "check_shapes: y = xp.concat((a), axis=1) computed shape (1, 12), but the graph gives y the shape (3, 1, 4)"
    with pytest.raises(ValueError, match=re.escape(message)):
        model.load().forward(**arrays_for(case))


def test_check_shapes_holds_every_batch_axis_to_the_number_of_examples():
    case = case_named("reshape with two batch axes")
    model = compiled(case, check_shapes=True)
    assert '_expect_shape(y, (N, 1, N), "y")' in model.source
    (line,) = re.findall(r"^    y = \w+\[:, None, :\]$", model.source, flags=re.M)
    model.source = model.source.replace(line, line.replace(":]", ":2]"))
    with pytest.raises(ValueError, match=re.escape("computed shape (3, 1, 2), but the graph gives y the shape (3, 1, 3)")):
        model.load().forward(**arrays_for(case))
