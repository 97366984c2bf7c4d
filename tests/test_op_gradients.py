"""Every op's gradient against central finite differences in float64: one row per op and shape."""
import numpy as np
import pytest

import graphcomp as gc
from gradcheck import check_gradients

BATCH = 3

# (id, shapes of the operands a, b, ...; None is the batch axis), the op, and the range of the operand values.
CASES = [
    ("add scalar", [(), ()], lambda a, b: a + b, (-2, 2)),
    ("add bias broadcast", [(None, 4), (4,)], lambda a, b: a + b, (-2, 2)),
    ("sub broadcast", [(None, 1), (None, 3)], lambda a, b: a - b, (-2, 2)),
    ("sub constant", [(None, 3)], lambda a: 1 - a, (-2, 2)),
    ("mul scalar", [(), ()], lambda a, b: a * b, (-2, 2)),
    ("mul batched by scalar", [(None, 3), ()], lambda a, b: a * b, (-2, 2)),
    ("div", [(None, 3), (3,)], lambda a, b: a / b, (0.5, 2)),
    ("div constant numerator", [(None, 2)], lambda a: 2 / a, (0.5, 2)),
    ("pow constant exponent", [(None, 3)], lambda a: a ** 3, (-2, 2)),
    ("pow both operands", [(2,), (2,)], lambda a, b: a ** b, (0.5, 2)),
    ("maximum broadcast", [(None, 3), (3,)], lambda a, b: gc.maximum(a, b), (-2, 2)),
    ("maximum scalar", [(), ()], lambda a, b: gc.maximum(a, b), (-2, 2)),
    ("minimum scalar", [(), ()], lambda a, b: gc.minimum(a, b), (-2, 2)),
    ("minimum broadcast", [(None, 1), (4,)], lambda a, b: gc.minimum(a, b), (-2, 2)),
    ("matmul batch x matrix", [(None, 3), (3, 2)], lambda a, b: a @ b, (-1, 1)),
    ("matmul vector x matrix", [(3,), (3, 2)], lambda a, b: a @ b, (-1, 1)),
    ("matmul matrix x vector", [(2, 3), (3,)], lambda a, b: gc.matmul(a, b), (-1, 1)),
    ("matmul vector x vector", [(4,), (4,)], lambda a, b: a @ b, (-1, 1)),
    ("matmul batched stack x matrix", [(None, 2, 3), (3, 4)], lambda a, b: a @ b, (-1, 1)),
    ("sum all", [(None, 3)], lambda a: gc.sum(a), (-1, 1)),
    ("sum axis 0", [(None, 3)], lambda a: gc.sum(a, axis=0), (-1, 1)),
    ("sum axis -1 keepdims", [(None, 2, 3)], lambda a: gc.sum(a, axis=-1, keepdims=True), (-1, 1)),
    ("mean all", [(None, 3)], lambda a: gc.mean(a), (-1, 1)),
    ("mean axis 1", [(None, 4)], lambda a: gc.mean(a, axis=1), (-1, 1)),
    ("mean over batch keepdims", [(None, 2)], lambda a: gc.mean(a, axis=0, keepdims=True), (-1, 1)),
    ("mean fixed axes", [(4, 3)], lambda a: gc.mean(a, axis=(0, 1)), (-1, 1)),
    ("max all", [(None, 4)], lambda a: gc.max(a), (-1, 1)),
    ("max axis 1", [(None, 4)], lambda a: gc.max(a, axis=1), (-1, 1)),
    ("max axis 0 keepdims", [(3, 4)], lambda a: gc.max(a, axis=0, keepdims=True), (-1, 1)),
    ("min axis -1", [(None, 2, 3)], lambda a: gc.min(a, axis=-1), (-1, 1)),
    ("min all keepdims", [(3, 2)], lambda a: gc.min(a, keepdims=True), (-1, 1)),
    ("transpose 2-d", [(3, 4)], lambda a: gc.transpose(a), (-1, 1)),
    ("transpose axes", [(None, 2, 3)], lambda a: gc.transpose(a, (0, 2, 1)), (-1, 1)),
    ("reshape fixed", [(2, 6)], lambda a: gc.reshape(a, (3, 4)), (-1, 1)),
    ("reshape batched", [(None, 2, 3)], lambda a: gc.reshape(a, (None, 6)), (-1, 1)),
    ("flatten", [(None, 2, 2, 2)], lambda a: gc.flatten(a), (-1, 1)),
    ("flatten fixed", [(2, 3, 2)], lambda a: gc.flatten(a), (-1, 1)),
    ("concat axis 1", [(None, 2), (None, 3)], lambda a, b: gc.concat([a, b], axis=1), (-1, 1)),
    ("concat axis 0", [(2, 3), (1, 3)], lambda a, b: gc.concat([a, b, a], axis=0), (-1, 1)),
    ("slice columns", [(None, 5)], lambda a: a[:, 1:4], (-1, 1)),
    ("slice step and int", [(4, 6)], lambda a: a[1, ::2], (-1, 1)),
    ("slice ellipsis", [(None, 2, 3)], lambda a: a[..., 0], (-1, 1)),
    ("logsumexp", [(None, 4)], lambda a: gc.logsumexp(a), (-3, 3)),
    ("logsumexp axis 0 keepdims", [(3, 4)], lambda a: gc.logsumexp(a, axis=0, keepdims=True), (-3, 3)),
    ("log_softmax", [(None, 4)], lambda a: gc.log_softmax(a), (-3, 3)),
    ("log_softmax axis 1 of 3-d", [(None, 3, 2)], lambda a: gc.log_softmax(a, axis=1), (-3, 3)),
    ("softmax", [(None, 5)], lambda a: gc.softmax(a), (-3, 3)),
    ("softmax axis 0", [(3, 2)], lambda a: gc.softmax(a, axis=0), (-3, 3)),
    ("mse", [(None, 3), (None, 3)], gc.mse, (-2, 2)),
    ("mse scalar", [(), ()], gc.mse, (-2, 2)),
    ("binary_cross_entropy", [(None, 1), (None, 1)], gc.binary_cross_entropy, (0.1, 0.9)),
    ("binary_cross_entropy 2-d", [(None, 3), (None, 3)], gc.binary_cross_entropy, (0.1, 0.9)),
    ("binary_cross_entropy_with_logits", [(None, 2), (None, 2)], gc.binary_cross_entropy_with_logits, (-3, 3)),
    ("binary_cross_entropy_with_logits scalar", [(), ()], gc.binary_cross_entropy_with_logits, (-3, 3)),
    ("softmax_cross_entropy one-hot", [(None, 4), (None, 4)], gc.softmax_cross_entropy, (0, 1)),
    ("softmax_cross_entropy sequence", [(None, 2, 3), (None, 2, 3)], gc.softmax_cross_entropy, (0, 1)),
    ("nll", [(None, 4), (None, 4)], lambda a, b: gc.nll(gc.log_softmax(a), b), (0, 1)),
    ("nll of one vector", [(4,), (4,)], lambda a, b: gc.nll(gc.log_softmax(a), b), (0, 1)),
    ("conv2d", [(None, 2, 5, 5), (3, 2, 3, 3)], lambda a, b: gc.conv2d(a, b), (-1, 1)),
    ("conv2d bias stride padding", [(None, 2, 6, 5), (3, 2, 3, 3), (3,)],
     lambda a, b, c: gc.conv2d(a, b, c, stride=2, padding=1), (-1, 1)),
    ("conv2d 2x2 kernel", [(None, 1, 4, 4), (2, 1, 2, 2)], lambda a, b: gc.conv2d(a, b, padding=1), (-1, 1)),
    ("max_pool2d 2x2", [(None, 2, 4, 4)], lambda a: gc.max_pool2d(a), (-1, 1)),
    ("max_pool2d 3x3 stride 2", [(None, 1, 5, 5)], lambda a: gc.max_pool2d(a, size=3, stride=2), (-1, 1)),
    ("max_pool2d odd size", [(None, 2, 5, 3)], lambda a: gc.max_pool2d(a, size=2, stride=1), (-1, 1)),
    ("dropout outside training", [(None, 3)], lambda a: gc.dropout(a, 0.5) * 2, (-1, 1)),
]

# Every unary elementwise op, on a scalar and on a batch.
UNARY = [
    ("neg", lambda a: -a, (-2, 2)),
    ("exp", gc.exp, (-2, 2)),
    ("log", gc.log, (0.5, 3)),
    ("sqrt", gc.sqrt, (0.5, 3)),
    ("abs", gc.abs, (-2, 2)),
    ("sigmoid", gc.sigmoid, (-3, 3)),
    ("tanh", gc.tanh, (-2, 2)),
    ("relu", gc.relu, (-2, 2)),
    ("leaky_relu", lambda a: gc.leaky_relu(a, slope=0.1), (-2, 2)),
    ("softplus", gc.softplus, (-3, 3)),
    ("softsign", gc.softsign, (-3, 3)),
    ("sign", gc.sign, (-2, 2)),  # a step: 0 on both sides (a straight-through estimator's forward)
    ("sin", gc.sin, (-3, 3)),
    ("cos", gc.cos, (-3, 3)),
    ("tan", gc.tan, (-1.2, 1.2)),
    ("arcsin", gc.arcsin, (-0.9, 0.9)),
    ("arctan", gc.arctan, (-3, 3)),
    ("sinh", gc.sinh, (-2, 2)),
    ("cosh", gc.cosh, (-2, 2)),
    ("log1p", gc.log1p, (-0.5, 3)),
    ("expm1", gc.expm1, (-2, 2)),
    ("square", gc.square, (-2, 2)),
]
CASES += [(f"{name} {label}", [shape], build, domain)
          for name, build, domain in UNARY for label, shape in (("scalar", ()), ("batched", (None, 4)))]
# Normalisation, GELU and attention (graphcomp/ops/norm.py, attention.py).
CASES += [
    ("layer_norm", [(None, 4), (4,), (4,)], lambda a, b, c: gc.layer_norm(a, b, c), (-2, 2)),
    ("layer_norm sequence", [(None, 2, 3), (3,), (3,)], lambda a, b, c: gc.layer_norm(a, b, c), (-2, 2)),
    ("batch_norm", [(None, 4), (4,), (4,)], lambda a, b, c: gc.batch_norm(a, b, c), (-2, 2)),
    ("batch_norm sequence", [(None, 2, 3), (3,), (3,)], lambda a, b, c: gc.batch_norm(a, b, c), (-2, 2)),
    ("gelu scalar", [()], gc.gelu, (-3, 3)),
    ("gelu batched", [(None, 4)], gc.gelu, (-3, 3)),
    ("gelu exact", [(None, 2, 3)], lambda a: gc.gelu(a, approximate="none"), (-3, 3)),
    ("causal_mask then softmax", [(None, 3, 3)], lambda a: gc.softmax(gc.causal_mask(a)), (-2, 2)),
    ("attention causal heads", [(None, 2, 3, 2)] * 3, gc.attention, (-1, 1)),
    ("attention", [(None, 3, 2), (None, 4, 2), (None, 4, 3)], lambda q, k, v: gc.attention(q, k, v, causal=False), (-1, 1)),
]
# Conditions (graphcomp/ops/elementwise.py): where, clip and comparisons, away from their kinks.
CASES += [
    ("where of a comparison", [(None, 3), (None, 3), (3,)], lambda a, b, c: gc.where(a > c, a * b, gc.sin(b)), (-2, 2)),
    ("where of a value, scalar branch", [(None, 3), ()], lambda a, b: gc.where(a, b, gc.square(a)), (-2, 2)),
    ("where with numbers", [(None, 4)], lambda a: gc.where(a <= 0.5, 1, -2) * gc.exp(a), (-2, 2)),
    ("clip", [(None, 4)], lambda a: gc.clip(a, -1, 1), (-2, 2)),
    ("clip one-sided", [(2, 3)], lambda a: gc.clip(a, hi=0.5) + gc.clip(a, lo=-0.5), (-2, 2)),
    ("comparison mask", [(None, 3), (3,)], lambda a, b: (a >= b) * a + gc.not_equal(a, b) * b, (-2, 2)),
]


def concrete(shape):
    return tuple(BATCH if d is None else d for d in shape)


@pytest.mark.parametrize("shapes, build, domain", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_op_gradient_matches_finite_differences(shapes, build, domain):
    rng = np.random.default_rng(0)
    g = gc.Graph("case")
    operands = [g.input(name, shape) for name, shape in zip("abcd", shapes)]
    out = build(*operands)
    weights = g.input("r", out.shape)  # a fixed random weighting makes any output shape a scalar loss
    g.output("loss", gc.sum(out * weights))
    m = gc.compile(g, wrt=[x.name for x in operands]).load()
    arrays = {x.name: rng.uniform(*domain, size=concrete(x.shape)) for x in operands}
    arrays["r"] = rng.normal(size=concrete(out.shape))
    check_gradients(m, arrays, "loss")


def test_the_finite_difference_reference_itself():
    from gradcheck import numeric_gradient, relative_error

    x = np.array([[0.3, -1.2], [2.0, 0.5]])
    np.testing.assert_allclose(numeric_gradient(lambda x: float(np.sum(np.sin(x) * x)), {"x": x}, "x"),
                               np.cos(x) * x + np.sin(x), rtol=1e-8)
    assert relative_error([1.0, 2.0], [1.0, 2.0]) == 0
    assert relative_error([1.0, 2.2], [1.0, 2.0]) == pytest.approx(0.2 / 2.2)


# Ops reading integer ids (graphcomp/ops/indexing.py): (id, the float operand's shape, the ids' shape, how
# many rows or classes the ids pick, the op). The ids are an int64 input drawn with repeats and get no
# gradient; the float operand's gradient is checked (a second derivative exercises take_grad's rule).
ID_CASES = [
    ("take rows", (4, 3), (None,), 4, gc.take),
    ("take of a sequence of matrices", (3, 2, 2), (None, 5), 3, gc.take),
    ("take_grad", (4, 3), (None, 2), 4, lambda E, ids: gc.grad(gc.sum(gc.take(E, ids) ** 3), [E])[0]),
    ("softmax_cross_entropy integer labels", (None, 4), (None,), 4, gc.softmax_cross_entropy),
    ("softmax_cross_entropy sequence integer labels", (None, 3, 4), (None, 3), 4, gc.softmax_cross_entropy),
]


@pytest.mark.parametrize("shape, ids_shape, rows, build", [c[1:] for c in ID_CASES], ids=[c[0] for c in ID_CASES])
def test_gradients_through_integer_ids_match_finite_differences(shape, ids_shape, rows, build):
    rng = np.random.default_rng(0)
    g = gc.Graph("case")
    a, ids = g.input("a", shape), g.input("ids", ids_shape, dtype="int64")
    out = build(a, ids)
    g.output("loss", gc.sum(out * g.input("r", out.shape)))
    m = gc.compile(g, wrt=["a"]).load()
    arrays = {"a": rng.uniform(-1, 1, size=concrete(shape)), "r": rng.normal(size=concrete(out.shape)),
              "ids": np.resize([1, 1, *range(rows)], concrete(ids_shape))}  # id 1 at least twice
    check_gradients(m, arrays, "loss")
