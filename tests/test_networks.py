"""Whole networks: gradients of a 2-layer MLP, and XOR trained by the generated loop."""
import sys
from pathlib import Path

import numpy as np

import graphcomp as gc
from gradcheck import check_gradients

sys.path.insert(0, str(Path(__file__).parents[1] / "examples"))
import xor  # noqa: E402


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
