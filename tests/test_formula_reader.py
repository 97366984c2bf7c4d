"""Every printed gradient formula, read back by an independent parser and evaluated with NumPy,
equals the generated module's gradient (tests/latex_reader.py)."""
import numpy as np
import pytest

import graphcomp as gc
from graphcomp.formulas.symbols import symbol
from latex_reader import Reader, ReadError, equations
from random_graphs import BATCH as RANDOM_BATCH
from random_graphs import random_case

BATCH = 3


def linear_vector():
    """The Linear module of the lecture notes on layers as modules, Y = W X with a vector X: the weight gradient is an outer product."""
    g = gc.Graph("linear")
    W, X = g.param("W", (2, 3)), g.input("X", (3,))
    Y = g.let("Y", W @ X)
    g.output("loss", gc.sum(Y * Y))
    return g


def row_vector_times_matrix():
    g = gc.Graph("rowvec")
    x, W = g.input("x", (3,)), g.param("W", (3, 2))
    g.output("loss", gc.sum(gc.tanh(x @ W)))
    return g


def mean_over_batch_and_classes():
    g = gc.Graph("mean")
    x, W = g.input("x", (None, 3)), g.param("W", (3, 3))
    g.output("loss", gc.mean(x @ W))
    return g


def quadratic_form():
    g = gc.Graph("quad")
    x, A = g.param("x", (3,)), g.input("A", (3, 3))
    g.output("loss", x @ (A @ x))
    return g


def logistic_regression():
    g = gc.Graph("logreg")
    X, y, w = g.input("X", (None, 3)), g.input("y", (None,)), g.param("w", (3,))
    g.output("loss", gc.binary_cross_entropy(gc.sigmoid(X @ w), y))
    return g


def sigmoid_typed_out():
    g = gc.Graph("raw")
    a = g.param("a", (2, 3))
    h = g.let("h", 1 / (1 + gc.exp(-a)))
    g.output("loss", gc.sum(h * h))
    return g


def quadratic_loss():
    g = gc.Graph("mse")
    yhat, y = g.param("yhat", (4, 1)), g.input("y", (4, 1))
    g.output("loss", gc.mse(yhat, y))
    return g


def mlp_two_layers():
    g = gc.Graph("mlp")
    x, labels = g.input("x", (None, 4)), g.input("labels", (None,))
    logits = g.output("logits", gc.mlp(g, x, [5, 3]))
    g.output("loss", gc.softmax_cross_entropy(logits, labels))
    return g


def cnn():
    """The CNN of the lecture notes on convolutional networks: convolution, relu, max-pooling, dense, softmax cross-entropy."""
    g = gc.Graph("cnn")
    x, labels = g.input("x", (None, 1, 6, 6)), g.input("labels", (None,))
    k, W = g.param("k", (2, 1, 3, 3)), g.param("W", (8, 3))
    bias = g.param("bias", (2,))
    pooled = g.let("pooled", gc.max_pool2d(gc.relu(gc.conv2d(x, k, bias))))
    g.output("loss", gc.softmax_cross_entropy(gc.flatten(pooled) @ W, labels))
    return g


def rnn():
    """The RNN of the lecture notes, unrolled over three steps with shared weights."""
    g = gc.Graph("rnn")
    xs = [g.input(f"x{t}", (None, 2)) for t in range(1, 4)]
    U, V, w = g.param("U", (2, 3)), g.param("V", (3, 3)), g.param("w", (3,))
    y = g.input("y", (None,))
    h = gc.tanh(xs[0] @ U)
    for t, x in enumerate(xs[1:], start=2):
        h = g.let(f"h{t}", gc.tanh(x @ U + h @ V))
    g.output("loss", gc.mse(h @ w, y))
    return g


def fuv():
    g = gc.Graph("fuv")
    u, v, w = g.input("u"), g.input("v"), g.input("w")
    g.output("f", (u + v) * w)
    return g


def xor():
    """The XOR network of the lecture notes on micro-autograd, binary cross-entropy written out."""
    g = gc.Graph("xor")
    x, y = g.input("x", shape=(None, 2)), g.input("y", shape=(None, 1))
    W1, b1 = g.param("W1", (2, 8)), g.param("b1", (8,))
    W2, b2 = g.param("W2", (8, 1)), g.param("b2", (1,))
    h = g.let("h", gc.tanh(x @ W1 + b1))
    p = g.output("p", gc.sigmoid(h @ W2 + b2))
    g.output("loss", gc.mean(-(y * gc.log(p) + (1 - y) * gc.log(1 - p))))
    return g


def two_two_two():
    """The textbook 2-2-2 sigmoid network with squared error."""
    g = gc.Graph("net")
    x, y = g.input("x", (None, 2)), g.input("y", (None, 2))
    W1, b1, W2, b2 = g.param("W1", (2, 2)), g.param("b1", ()), g.param("W2", (2, 2)), g.param("b2", ())
    o = gc.sigmoid(gc.sigmoid(x @ W1 + b1) @ W2 + b2)
    g.output("loss", gc.sum(0.5 * (y - o) ** 2))
    return g


def attention():
    """Softmax over scores of a batch against itself, keepdims reductions and a transpose."""
    g = gc.Graph("attention")
    x, Wq = g.input("x", (None, 4)), g.param("Wq", (4, 4))
    scores = g.let("scores", (x @ Wq) @ x.T / 2)
    weights = gc.softmax(scores, axis=-1)
    pooled = weights @ x
    g.output("loss", gc.mean((pooled - x) ** 2) + gc.sum(gc.max(scores, axis=1, keepdims=True)))
    return g


CORPUS = [xor, two_two_two, attention, linear_vector, row_vector_times_matrix, mean_over_batch_and_classes, quadratic_form,
          logistic_regression, sigmoid_typed_out, quadratic_loss, mlp_two_layers, cnn, rnn, fuv]


def arrays_for(graph: gc.Graph, rng) -> dict:
    arrays = {}
    for name, leaf in graph.leaves.items():
        shape = tuple(BATCH if d is None else d for d in leaf.shape)
        if name == "labels":
            arrays[name] = rng.integers(0, 3, size=shape).astype(float)
        else:
            arrays[name] = rng.normal(size=shape)
    return arrays


def check_formulas(graph: gc.Graph, arrays: dict, wrt=None, simplify=True, batch=BATCH) -> int:
    """Read every printed gradient back and compare it with the module's; return how many were read."""
    model = gc.compile(graph, wrt=wrt, loss="loss" if "loss" in graph.outputs else None, simplify=simplify)
    with np.errstate(all="ignore"):
        _, grads = model.load().gradients(**arrays)
    leaves = {symbol(name): value for name, value in arrays.items()}
    for name, latex in model.gradient_latex().items():
        reader = Reader({**leaves, "N": batch}, batch)
        pairs = equations(latex)
        reader.define(pairs[1:])
        with np.errstate(all="ignore"):
            got = reader.evaluate(pairs[0][1])
        want = np.asarray(grads[name])
        got = np.broadcast_to(got, want.shape) if np.size(got) <= np.size(want) else got
        assert np.shape(got) == want.shape, f"{name}: the formula gives shape {np.shape(got)}, the code {want.shape}\n{latex}"
        assert np.allclose(got, want, rtol=1e-6, atol=1e-9, equal_nan=True), f"{name}: {latex}\nread {got}\ncode {want}"
    return len(model.wrt)


@pytest.mark.parametrize("build", CORPUS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("simplify", [True, False], ids=["simplified", "literal"])
def test_printed_gradients_evaluate_to_the_modules_gradients(build, simplify):
    graph = build()
    arrays = arrays_for(graph, np.random.default_rng(0))
    wrt = [n for n in graph.leaves if n != "labels"]
    assert check_formulas(graph, arrays, wrt, simplify) == len(wrt)


@pytest.mark.parametrize("seed", range(60))
def test_printed_gradients_of_random_graphs_evaluate_to_the_modules_gradients(seed):
    case = random_case(seed)
    check_formulas(case.graph, case.arrays, case.wrt, batch=RANDOM_BATCH)


def test_the_reader_refuses_what_it_cannot_read():
    with pytest.raises(ReadError, match="undefined symbol"):
        Reader({}, 1).evaluate(r"x^\top \bar{t}_{1}")
    reader = Reader({"x": np.array([1.0, 2.0]), "y": np.array([3.0, 4.0, 5.0]), "W": np.array([[1.0, 2.0], [3.0, 4.0]])}, 1)
    assert np.array_equal(reader.evaluate(r"x y^\top"), np.outer([1, 2], [3, 4, 5]))   # two vectors: outer product
    assert np.array_equal(reader.evaluate(r"x W"), [7.0, 10.0])                       # a row times a matrix
    assert np.array_equal(reader.evaluate(r"x \odot x"), [1.0, 4.0])
    with pytest.raises(ReadError):
        reader.evaluate(r"x \star W")
