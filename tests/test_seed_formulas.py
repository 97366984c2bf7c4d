"""The derivative formulas of the lecture notes (backpropagation on a computational graph, layers as
modules, convolutional networks), checked on the generated code."""
import numpy as np
import pytest

import graphcomp as gc


def gradients_of(build, shapes, wrt, **arrays):
    g = gc.Graph("formula")
    leaves = {name: g.input(name, shape) for name, shape in shapes.items()}
    g.output("loss", build(**leaves))
    model = gc.compile(g, wrt=wrt)
    return model, model.load().gradients(**arrays)


def test_sigmoid_and_tanh_derivatives_read_through_the_output():
    for fn, formula in ((gc.sigmoid, "dh/da = h*(1 - h)"), (gc.tanh, "dh/da = 1 - h**2")):
        g = gc.Graph("act")
        a = g.input("a", (None, 3))
        h = g.let("h", fn(a))
        g.output("loss", gc.sum(h))
        assert formula in gc.compile(g).source


def test_quadratic_loss_derivative_is_2_times_the_error():
    yhat, y = np.array([[0.3], [1.5]]), np.array([[1.0], [1.0]])
    _, (_, grads) = gradients_of(lambda p, t: gc.mse(p, t), {"p": (None, 1), "t": (None, 1)}, ["p"], p=yhat, t=y)
    np.testing.assert_allclose(grads["p"], 2 * (yhat - y) / 2)  # mean over the 2 examples


def test_nll_derivative_has_a_plus_sign_on_the_second_term():
    # -y/ŷ + (1-y)/(1-ŷ): the notes on computational graphs print a minus there, which is a slip.
    p, y = np.array([[0.2], [0.7], [0.9]]), np.array([[1.0], [0.0], [1.0]])
    _, (_, grads) = gradients_of(lambda p, y: gc.binary_cross_entropy(p, y), {"p": (None, 1), "y": (None, 1)}, ["p"], p=p, y=y)
    np.testing.assert_allclose(grads["p"], (-y / p + (1 - y) / (1 - p)) / 3)


def test_softmax_cross_entropy_gradient_is_p_minus_y():
    z = np.array([[1.0, 2.0, 0.5], [-1.0, 0.0, 3.0]])
    labels = np.array([2, 0])
    onehot = np.eye(3)[labels]
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    for given in (onehot, labels):
        shape = (None, 3) if given.ndim == 2 else (None,)
        _, (out, grads) = gradients_of(lambda z, y: gc.softmax_cross_entropy(z, y), {"z": (None, 3), "y": shape}, ["z"], z=z, y=given)
        np.testing.assert_allclose(grads["z"], (p - onehot) / 2)
        np.testing.assert_allclose(out["loss"], -np.mean(np.log(p[[0, 1], labels])))


def test_binary_cross_entropy_with_logits_gradient_is_sigmoid_minus_y():
    z, y = np.array([[-2.0], [0.5], [3.0]]), np.array([[0.0], [1.0], [1.0]])
    _, (_, grads) = gradients_of(lambda z, y: gc.binary_cross_entropy_with_logits(z, y), {"z": (None, 1), "y": (None, 1)}, ["z"], z=z, y=y)
    np.testing.assert_allclose(grads["z"], (1 / (1 + np.exp(-z)) - y) / 3)


def test_max_pool_routes_the_gradient_to_the_max():
    # The notes on convolutional networks, figure 4: a 4x4 input pooled 2x2; the gradient lands where each max was.
    x = np.array([[1, 1, 2, 4],
                  [5, 6, 7, 8],
                  [3, 2, 1, 0],
                  [1, 2, 3, 4]], dtype=float)[None, None]
    upstream = np.array([[1.0, 2.0], [3.0, 4.0]])[None, None]
    _, (out, grads) = gradients_of(lambda x, r: gc.sum(gc.max_pool2d(x) * r),
                                   {"x": (None, 1, 4, 4), "r": (None, 1, 2, 2)}, ["x"], x=x, r=upstream)
    expected = np.zeros((4, 4))
    expected[1, 1], expected[1, 3], expected[2, 0], expected[3, 3] = 1, 2, 3, 4
    np.testing.assert_array_equal(grads["x"][0, 0], expected)


def test_conv_weight_gradient_is_the_sum_of_upstream_times_input_patches():
    # The notes on convolutional networks, eq. (16): dL/dW(x, y) = Σ_i Σ_j dL/dout(i, j) · Image(i + x, j + y).
    rng = np.random.default_rng(0)
    image, kernel, upstream = rng.normal(size=(1, 1, 5, 5)), rng.normal(size=(1, 1, 3, 3)), rng.normal(size=(1, 1, 3, 3))
    _, (_, grads) = gradients_of(lambda x, w, r: gc.sum(gc.conv2d(x, w) * r),
                                 {"x": (None, 1, 5, 5), "w": (1, 1, 3, 3), "r": (None, 1, 3, 3)}, ["w"],
                                 x=image, w=kernel, r=upstream)
    expected = np.zeros((3, 3))
    for dx in range(3):
        for dy in range(3):
            expected[dx, dy] = sum(upstream[0, 0, i, j] * image[0, 0, i + dx, j + dy] for i in range(3) for j in range(3))
    np.testing.assert_allclose(grads["w"][0, 0], expected)


def test_conv_of_a_centre_one_filter_copies_the_image():
    # The notes on convolutional networks, figure 7: a filter with 1 in the centre gives back the image's centre value.
    image = np.arange(9, dtype=float).reshape(1, 1, 3, 3)
    kernel = np.zeros((1, 1, 3, 3))
    kernel[0, 0, 1, 1] = 1
    g = gc.Graph("conv")
    x, w = g.input("x", (None, 1, 3, 3)), g.input("w", (1, 1, 3, 3))
    g.output("out", gc.conv2d(x, w))
    assert gc.compile(g).load().forward(x=image, w=kernel)["out"].item() == 4.0


@pytest.mark.parametrize("build", [
    lambda z: gc.sum(gc.softmax(z) * np.pi),
    lambda z: gc.sum(gc.log_softmax(z)),
    lambda z: gc.sum(gc.logsumexp(z)),
    lambda z: gc.softmax_cross_entropy(z, z * 0 + 1 / 4),
], ids=["softmax", "log_softmax", "logsumexp", "softmax_cross_entropy"])
def test_softmax_family_is_finite_at_extreme_inputs(build):
    z = np.array([[800.0, -800.0, 0.0, 800.0], [-800.0, -800.0, -800.0, -799.0]])
    g = gc.Graph("extreme")
    g.output("loss", build(g.input("z", (None, 4))))
    m = gc.compile(g).load()
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        outputs, grads = m.gradients(z=z)
    assert np.isfinite(outputs["loss"]) and np.all(np.isfinite(grads["z"]))


def test_softmax_values_at_extreme_inputs():
    g = gc.Graph("sm")
    g.output("p", gc.softmax(g.input("z", (None, 3))))
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        p = gc.compile(g).load().forward(z=[[800.0, -800.0, 800.0], [0.0, 0.0, 0.0]])["p"]
    np.testing.assert_allclose(p, [[0.5, 0, 0.5], [1 / 3, 1 / 3, 1 / 3]])


def test_dropout_is_identity_outside_training_and_inverted_inside():
    g = gc.Graph("drop")
    x = g.input("x", (None, 1000))
    w = g.param("w", (1000,), init="zeros")
    g.output("loss", gc.mean(gc.dropout(x, rate=0.25) * w))
    m = gc.compile(g).load()
    X = np.ones((1, 1000))
    _, grads = m.gradients(x=X, w=np.zeros(1000))
    np.testing.assert_array_equal(grads["w"], np.full(1000, 1 / 1000))
    _, grads = m.gradients(_rng=np.random.default_rng(0), x=X, w=np.zeros(1000))
    mask = grads["w"] * 1000  # the dropout mask itself: 0, or 1/(1 - rate) for the values kept
    kept = mask != 0
    assert 0.7 < kept.mean() < 0.8
    np.testing.assert_allclose(mask[kept], 1 / 0.75)
