"""Gradient formulas in the form of the lecture notes: σ(1 - σ) and 1 - tanh² for functions typed out,
(P - Y)/N for a softmax cross-entropy, (ŷ - y)/(ŷ(1 - ŷ))/N for a binary cross-entropy, numbers folded,
the δ-form through the names a user gave. Each printed formula is read back (tests/latex_reader.py)
and compared with central differences of the generated forward pass, in float64."""
import re

import numpy as np
import pytest

import graphcomp as gc
from graphcomp.formulas.symbols import symbol
from latex_check import katex_errors
from latex_reader import Reader, equations

BATCH = 3
TEMPORARY = r"t_\{\d+\}"  # any temporary: tests do not depend on how temporaries are numbered


def central_differences(module, arrays: dict, leaf: str, loss: str, step: float = 1e-6) -> np.ndarray:
    """∂loss/∂leaf by central differences of the generated forward pass, in float64."""
    value = np.array(arrays[leaf], dtype=np.float64)
    grad = np.zeros_like(value)
    for index in np.ndindex(value.shape):
        shifted = []
        for sign in (1, -1):
            moved = value.copy()
            moved[index] += sign * step
            shifted.append(float(module.forward(**{**arrays, leaf: moved})[loss]))
        grad[index] = (shifted[0] - shifted[1]) / (2 * step)
    return grad


def read_back(model, arrays: dict, leaf: str) -> np.ndarray:
    """The value of the printed gradient formula of `leaf`, evaluated by the independent reader."""
    latex = model.gradient_latex()[leaf]
    pairs = equations(latex)
    reader = Reader({**{symbol(name): value for name, value in arrays.items()}, "N": BATCH}, BATCH)
    reader.define(pairs[1:])
    return reader.evaluate(pairs[0][1])


def check_against_differences(model, arrays: dict, leaves=None) -> None:
    module = model.load()
    formulas = model.gradient_latex()
    assert katex_errors(list(formulas.values())) == {}
    for leaf in leaves or model.wrt:
        want = central_differences(module, arrays, leaf, model.loss)
        got = np.broadcast_to(read_back(model, arrays, leaf), want.shape)
        assert np.allclose(got, want, rtol=1e-5, atol=1e-7), f"{leaf}: {formulas[leaf]}\nread {got}\ndifferences {want}"


def test_a_typed_out_sigmoid_reads_sigma_times_one_minus_sigma():
    g = gc.Graph("raw")
    a = g.input("a")
    g.output("s", 1 / (1 + gc.exp(-a)))
    model = gc.compile(g)
    latex = model.gradient_latex()["a"]
    assert latex == r"\frac{\partial s}{\partial a} = \sigma\left(a\right) \left(1 - \sigma\left(a\right)\right)"
    assert model.gradient_text()["a"] == "ds/da = sigmoid(a)*(1 - sigmoid(a))"
    for a_value in (-2.0, 0.3, 4.0):
        check_against_differences(model, {"a": a_value})


def test_a_typed_out_tanh_reads_one_minus_tanh_squared():
    g = gc.Graph("raw")
    a = g.input("a")
    g.output("s", (gc.exp(2 * a) - 1) / (gc.exp(2 * a) + 1))
    model = gc.compile(g)
    assert model.gradient_latex()["a"] == r"\frac{\partial s}{\partial a} = 1 - \left(\tanh{\left(a \right)}\right)^{2}"
    check_against_differences(model, {"a": 0.7})


def test_a_named_sigmoid_reads_s_times_one_minus_s_as_the_code_computes_it():
    g = gc.Graph("named")
    a, y = g.input("a"), g.input("y")
    s = g.let("s", 1 / (1 + gc.exp(-a)))
    g.output("L", (s - y) ** 2)
    model = gc.compile(g)
    lines = model.gradient_latex()["a"].splitlines()
    # a graph of scalars writes each gradient ∂L/∂x, as the derivation and the pictures do
    assert lines[1:3] == [r"\frac{\partial L}{\partial a} &= \frac{\partial L}{\partial s} s \left(1 - s\right) \\",
                          r"\frac{\partial L}{\partial s} &= 2 \left(s - y\right) \\"]
    assert "d_a = d_s*s*(1 - s)" in model.source
    check_against_differences(model, {"a": 0.4, "y": 0.9})


def test_scalar_layers_print_the_delta_form_through_their_names():
    # The lecture notes on backpropagation: a_k = w_k φ_{k-1}, φ_k = σ(a_k), then ā_k = φ̄_k σ'(a_k), w̄_k = ā_k φ_{k-1}.
    g = gc.Graph("layers")
    x, y = g.input("x"), g.input("y")
    w1, w2 = g.param("w1"), g.param("w2")
    a1 = g.let("a1", w1 * x)
    phi1 = g.let("phi1", 1 / (1 + gc.exp(-a1)))
    a2 = g.let("a2", w2 * phi1)
    phi2 = g.let("phi2", gc.sigmoid(a2))
    g.output("F", (phi2 - y) ** 2)
    model = gc.compile(g)
    assert model.gradient_latex()["w1"].splitlines()[1:6] == [
        r"\frac{\partial F}{\partial w_{1}} &= \frac{\partial F}{\partial a_{1}} x \\",
        r"\frac{\partial F}{\partial a_{1}} &= \frac{\partial F}{\partial \phi_{1}} \phi_{1} \left(1 - \phi_{1}\right) \\",
        r"\frac{\partial F}{\partial \phi_{1}} &= \frac{\partial F}{\partial a_{2}} w_{2} \\",
        r"\frac{\partial F}{\partial a_{2}} &= \frac{\partial F}{\partial \phi_{2}} \phi_{2} \left(1 - \phi_{2}\right) \\",
        r"\frac{\partial F}{\partial \phi_{2}} &= 2 \left(\phi_{2} - y\right) \\",
    ]
    check_against_differences(model, {"x": 0.5, "y": 0.2, "w1": -1.3, "w2": 0.8})


def mlp_with_softmax_cross_entropy(activation="tanh"):
    g = gc.Graph("mlp")
    x, labels = g.input("x", (None, 4)), g.input("labels", (None,))
    logits = gc.mlp(g, x, [5, 3], activation=activation)
    g.output("loss", gc.softmax_cross_entropy(logits, labels))
    return g


def test_mlp_names_its_logits():
    model = gc.compile(mlp_with_softmax_cross_entropy())
    assert re.search(r"^    logits = t\d+ \+ b2$", model.source, flags=re.M)
    assert model.gradient_text()["W2"].splitlines()[-1] == "d_W2 = h1.T @ d_logits"
    assert r"\bar{W}_{2} &= h_{1}^\top \overline{\mathrm{logits}} \\" in model.gradient_latex()["W2"]
    # a name the graph already uses is left to it
    g = gc.Graph("taken")
    x = g.input("x", (None, 4))
    logits = g.input("logits", (None, 3))
    g.output("loss", gc.sum(gc.mlp(g, x, [3]) * logits))
    assert "logits = " not in gc.compile(g).source


def test_softmax_cross_entropy_reads_p_minus_y_over_n_with_p_defined():
    model = gc.compile(mlp_with_softmax_cross_entropy())
    latex = model.gradient_latex()["W2"]
    # the lecture's names: P the probabilities, Y the one-hot labels
    assert r"\overline{\mathrm{logits}} &= \frac{P - Y}{N} \\" in latex.splitlines()
    assert r"P &= \operatorname{softmax}_{\text{axis } 1}\left(\mathrm{logits}\right)" in latex
    assert r"Y &= \operatorname{onehot}_{3}\left(\mathrm{labels}\right)" in latex
    assert "d_logits = (P - Y)/" in model.source
    assert "e^{" not in latex and "logsumexp" not in latex
    rng = np.random.default_rng(0)
    arrays = {"x": rng.normal(size=(BATCH, 4)), "labels": np.array([0.0, 2.0, 1.0])}
    arrays.update({name: value for name, value in model.load().init_params(seed=1).items()})
    check_against_differences(model, arrays, ["W1", "b1", "W2", "b2"])


def test_binary_cross_entropy_of_probabilities_reads_factored():
    g = gc.Graph("bce")
    p, y = g.input("p", (None, 1)), g.input("y", (None, 1))
    g.output("loss", gc.binary_cross_entropy(p, y))
    model = gc.compile(g)
    assert model.gradient_latex()["p"] == r"\bar{p} = \frac{1}{N} \frac{p - y}{p \odot \left(1 - p\right)}"
    check_against_differences(model, {"p": np.array([[0.2], [0.7], [0.9]]), "y": np.array([[1.0], [0.0], [1.0]])})


def test_binary_cross_entropy_through_a_sigmoid_reads_sigma_minus_y_over_n():
    g = gc.Graph("logreg")
    X, y, w = g.input("X", (None, 3)), g.input("y", (None,)), g.param("w", (3,))
    yhat = g.let("yhat", gc.sigmoid(X @ w))
    g.output("loss", gc.binary_cross_entropy(yhat, y))
    model = gc.compile(g)
    assert model.gradient_latex()["w"] == r"\bar{w} = X^\top \frac{\sigma\left(X w\right) - y}{N}"
    rng = np.random.default_rng(2)
    check_against_differences(model, {"X": rng.normal(size=(BATCH, 3)), "y": np.array([1.0, 0.0, 1.0]), "w": rng.normal(size=3)})


def test_ridge_folds_its_numbers():
    g = gc.Graph("ridge")
    X, y, w = g.input("X", (None, 3)), g.input("y", (None,)), g.param("w", (3,))
    g.output("loss", gc.mse(X @ w, y) + 0.1 * gc.sum(w * w))
    model = gc.compile(g)
    latex = model.gradient_latex()["w"]
    assert latex == r"\bar{w} = 0.2 w + X^\top \frac{2 \left(X w - y\right)}{N}"
    rng = np.random.default_rng(3)
    check_against_differences(model, {"X": rng.normal(size=(BATCH, 3)), "y": rng.normal(size=BATCH), "w": rng.normal(size=3)})


def test_mse_of_a_tanh_mlp_cancels_its_twos():
    g = gc.Graph("regression")
    x, y = g.input("x", (None, 4)), g.input("y", (None, 2))
    g.output("loss", gc.mse(gc.mlp(g, x, [5, 2], activation="tanh"), y))
    model = gc.compile(g)
    latex = model.gradient_latex()["W2"]
    assert "{2 N}" not in latex and r"\frac{2" not in latex  # 2 (logits - y) / (2 N): a mean over N × 2 elements
    assert r"\overline{\mathrm{logits}} &= \frac{\mathrm{logits} - y}{N} \\" in latex.splitlines()
    rng = np.random.default_rng(4)
    arrays = {"x": rng.normal(size=(BATCH, 4)), "y": rng.normal(size=(BATCH, 2)),
              **model.load().init_params(seed=0)}
    check_against_differences(model, arrays, ["W1", "b1", "W2", "b2"])


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_every_layer_reads_through_its_named_values(activation):
    model = gc.compile(mlp_with_softmax_cross_entropy(activation))
    lines = model.gradient_latex()["W1"].splitlines()
    assert lines[1] == r"\bar{W}_{1} &= x^\top \bar{a}_{1} \\"
    assert lines[2].startswith(r"\bar{a}_{1} &= \bar{h}_{1} \odot ")
    assert lines[3] == r"\bar{h}_{1} &= \overline{\mathrm{logits}} W_{2}^\top \\"
