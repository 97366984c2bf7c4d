"""Whole networks: gradients of a 2-layer MLP, and XOR trained by the generated loop."""
import sys
from pathlib import Path

import numpy as np
import pytest

import graphcomp as gc
from gradcheck import check_gradients

sys.path.insert(0, str(Path(__file__).parents[1] / "examples"))
import cnn_shapes  # noqa: E402
import mlp_spirals  # noqa: E402
import rnn_mean  # noqa: E402
import xor  # noqa: E402
from example_data import sequences, shape_images  # noqa: E402


def mlp(activation):
    g = gc.Graph("mlp")
    x = g.input("x", shape=(None, 3))
    y = g.input("y", shape=(None, 2))
    W1, b1 = g.param("W1", (3, 5)), g.param("b1", (5,), init="normal")
    W2, b2 = g.param("W2", (5, 2)), g.param("b2", (2,), init="normal")
    h = g.let("h", activation(x @ W1 + b1))
    out = g.output("out", h @ W2 + b2)
    g.output("loss", gc.mean((out - y) ** 2))
    return g


def test_two_layer_mlp_gradients_match_finite_differences():
    rng = np.random.default_rng(1)
    for activation in (gc.sigmoid, gc.tanh, gc.relu):
        m = gc.compile(mlp(activation), loss="loss").load()
        arrays = {"x": rng.normal(size=(6, 3)), "y": rng.normal(size=(6, 2)), **m.init_params(seed=3)}
        errors = check_gradients(m, arrays, "loss")
        assert set(errors) == {"W1", "b1", "W2", "b2"}


def test_init_params_is_reproducible_and_shaped():
    m = gc.compile(mlp(gc.tanh), loss="loss").load()
    a, b, c = m.init_params(seed=0), m.init_params(seed=0), m.init_params(seed=1)
    assert {k: v.shape for k, v in a.items()} == {"W1": (3, 5), "b1": (5,), "W2": (5, 2), "b2": (2,)}
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["W1"], c["W1"])
    # xavier uniform: |W| <= sqrt(6 / (fan_in + fan_out))
    assert np.abs(a["W1"]).max() <= np.sqrt(6 / 8)


def test_xor_trains_to_full_accuracy(tmp_path):
    assert xor.main(tmp_path) == 1.0
    assert (tmp_path / "xor_model.py").exists()


def test_training_reduces_the_loss_with_minibatches():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 3))
    Y = np.stack([X[:, 0] - X[:, 1], X[:, 2] * 0.5], axis=1)
    m = gc.compile(mlp(gc.tanh), loss="loss").load()
    params, losses = m.train(m.init_params(seed=0), {"x": X, "y": Y}, epochs=30, lr=0.1, batch_size=8, seed=0)
    assert len(losses) == 30
    assert losses[-1] < 0.2 * losses[0]
    again, losses_again = m.train(m.init_params(seed=0), {"x": X, "y": Y}, epochs=30, lr=0.1, batch_size=8, seed=0)
    assert losses == losses_again  # shuffling comes from the seed


def test_k_layer_mlp_helper_gradients():
    rng = np.random.default_rng(0)
    for activation in ("relu", "tanh", "sigmoid"):
        m = gc.compile(mlp_spirals.build(sizes=(5, 4, 3), activation=activation), loss="loss").load()
        params = m.init_params(seed=1)
        assert sorted(params) == ["W1", "W2", "W3", "b1", "b2", "b3"]
        assert params["W2"].shape == (5, 4)
        arrays = {"x": rng.normal(size=(7, 2)), "labels": rng.integers(0, 3, size=7).astype(float), **params}
        check_gradients(m, arrays, "loss")


def test_mlp_helper_refuses_bad_settings():
    g = gc.Graph("bad")
    x = g.input("x", (None, 2))
    with pytest.raises(gc.GraphError, match="unknown activation 'swish'"):
        gc.mlp(g, x, [3], activation="swish")
    with pytest.raises(gc.GraphError, match="positive ints"):
        gc.mlp(g, x, [3, 0])


def test_mlp_learns_the_spirals(tmp_path):
    assert mlp_spirals.main(tmp_path) >= 0.95


def test_seed_003_cnn_gradients():
    m = gc.compile(cnn_shapes.build(), loss="loss").load()
    x, labels = shape_images(2, cnn_shapes.SIZE, seed=3)
    params = m.init_params(seed=0)
    check_gradients(m, {"x": x, "labels": labels, **params}, "loss", tolerance=1e-5)


def test_seed_003_cnn_learns_the_shapes(tmp_path):
    assert cnn_shapes.main(tmp_path) > 0.6  # five classes: chance is 0.2


def untied_rnn(steps, hidden):
    """The same RNN with one copy of Wx, Wh and b per step."""
    g = gc.Graph("untied")
    x, y = g.input("x", (None, steps, 1)), g.input("y", (None, 1))
    Wy, by = g.param("Wy", (hidden, 1)), g.param("by", (1,))
    h = None
    for t in range(steps):
        a = x[:, t, :] @ g.param(f"Wx{t}", (1, hidden)) + g.param(f"b{t}", (hidden,))
        if h is not None:
            a = a + h @ g.param(f"Wh{t}", (hidden, hidden))
        h = gc.tanh(a)
    g.output("loss", gc.mse(h @ Wy + by, y))
    return g


def test_rnn_gradient_is_the_sum_of_the_per_step_contributions():
    steps, hidden = 4, 3
    tied = gc.compile(rnn_mean.build(steps, hidden), loss="loss").load()
    untied = gc.compile(untied_rnn(steps, hidden)).load()
    x, y = sequences(5, steps, seed=2)
    params = tied.init_params(seed=4)
    params["b"] = np.random.default_rng(5).normal(size=hidden)
    _, grads = tied.gradients(x=x, y=y, **params)
    copies = {"Wy": params["Wy"], "by": params["by"]}
    for t in range(steps):
        copies[f"Wx{t}"], copies[f"b{t}"] = params["Wx"], params["b"]
        if t:
            copies[f"Wh{t}"] = params["Wh"]
    _, per_step = untied.gradients(x=x, y=y, **copies)
    np.testing.assert_allclose(grads["Wx"], sum(per_step[f"Wx{t}"] for t in range(steps)), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(grads["Wh"], sum(per_step[f"Wh{t}"] for t in range(1, steps)), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(grads["b"], sum(per_step[f"b{t}"] for t in range(steps)), rtol=1e-12, atol=1e-15)
    check_gradients(tied, {"x": x, "y": y, **params}, "loss")


def test_rnn_learns_the_sequence_mean(tmp_path):
    test_loss, baseline = rnn_mean.main(tmp_path)
    assert test_loss < 0.1 * baseline


def test_gradients_are_graph_values_that_differentiate_again():
    # Hessian-vector product: d/dW of sum(dL/dW * v), against central differences of the gradient.
    g = gc.Graph("hvp")
    x, v = g.input("x", (None, 3)), g.input("v", (3, 2))
    W = g.param("W", (3, 2))
    loss = gc.mean(gc.tanh(x @ W) ** 2)
    (dW,) = gc.grad(loss, [W])
    g.output("hv", gc.sum(dW * v))
    m = gc.compile(g, wrt=["W"], loss="hv").load()
    rng = np.random.default_rng(0)
    X, W0, V = rng.normal(size=(4, 3)), rng.normal(size=(3, 2)), rng.normal(size=(3, 2))
    _, grads = m.gradients(x=X, W=W0, v=V)

    def gradient(Wv):
        h = np.tanh(X @ Wv)
        return X.T @ (2 * h * (1 - h ** 2) / h.size)

    eps = 1e-6
    np.testing.assert_allclose(grads["W"], (gradient(W0 + eps * V) - gradient(W0 - eps * V)) / (2 * eps), atol=1e-8)
