"""Graphs shared by several tests (importable by a fresh interpreter, too)."""
import graphcomp as gc


def sigmoid_net() -> gc.Graph:
    g = gc.Graph("net")
    x = g.input("x", shape=(None, 4))
    y = g.input("y", shape=(None, 1))
    W1, b1 = g.param("W1", (4, 6)), g.param("b1", (6,), init="zeros")
    W2, b2 = g.param("W2", (6, 1)), g.param("b2", (1,), init="zeros")
    h = g.let("h", gc.sigmoid(x @ W1 + b1))
    p = g.output("p", gc.sigmoid(h @ W2 + b2))
    g.output("loss", gc.mean((p - y) ** 2 + gc.exp(-p) * gc.tanh(p)))
    return g


def sigmoid_net_source() -> str:
    return gc.compile(sigmoid_net(), loss="loss").source


def readme_xor() -> gc.Graph:
    """The XOR network of the README: a 2-8-1 tanh/sigmoid network, cross-entropy typed out."""
    g = gc.Graph("xor")
    x, y = g.input("x", shape=(None, 2)), g.input("y", shape=(None, 1))
    W1, b1 = g.param("W1", (2, 8)), g.param("b1", (8,), init="zeros")
    W2, b2 = g.param("W2", (8, 1)), g.param("b2", (1,), init="zeros")
    h = g.let("h", gc.tanh(x @ W1 + b1))
    p = g.output("p", gc.sigmoid(h @ W2 + b2))
    g.output("loss", gc.mean(-(y * gc.log(p) + (1 - y) * gc.log(1 - p))))
    return g


def readme_rnn() -> gc.Graph:
    """The RNN of the README's loop section: h_t = tanh(x_t W + h_{t-1} U) over a run-time length."""
    g = gc.Graph("rnn")
    xs, h0 = g.input("xs", shape=(None, "T", 3)), g.input("h0", shape=(None, 4))
    W, U = g.param("W", (3, 4)), g.param("U", (4, 4))

    def step(h, x):
        h = gc.tanh(x @ W + h @ U)
        return h, h

    hT, hs = gc.scan(step, h0, xs, axis=1)
    g.output("loss", gc.sum(hT) + gc.sum(hs * hs))
    return g
