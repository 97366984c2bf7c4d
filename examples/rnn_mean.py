"""The RNN of the lecture notes, learning the mean of a sequence: one loop over time with shared weights.

h_t = tanh(x_t Wx + h_{t-1} Wh + b) from h_0 = 0, prediction h_T Wy + by, squared error.
The same Wx, Wh, b serve at every step, so their gradient is the sum of the contributions of the
T steps. `build()` writes the recursion with gc.scan: the generated module runs one `for` loop over
time forward and one reversed loop for the gradients (backpropagation through time), for sequences of
any length. `build(unrolled=True)` writes the same network out step by step, h1 ... h6, as the lecture
draws it unrolled in time (the pictures of the README are drawn from it).
Run: python examples/rnn_mean.py [output directory]
"""
import sys
from pathlib import Path

import graphcomp as gc
from example_data import sequences

STEPS, HIDDEN = 6, 8


def build(steps: int = STEPS, hidden: int = HIDDEN, unrolled: bool = False) -> gc.Graph:
    g = gc.Graph("rnn")
    x = g.input("x", shape=(None, steps if unrolled else "T", 1))  # "T": one module for every length
    y = g.input("y", shape=(None, 1))
    Wx, Wh = g.param("Wx", (1, hidden)), g.param("Wh", (hidden, hidden))
    b = g.param("b", (hidden,), init="zeros")
    Wy, by = g.param("Wy", (hidden, 1)), g.param("by", (1,), init="zeros")
    if unrolled:
        h = g.let("h1", gc.tanh(x[:, 0, :] @ Wx + b))  # the states h1 ... hT are named in time order
        for t in range(1, steps):
            h = g.let(f"h{t + 1}", gc.tanh(x[:, t, :] @ Wx + h @ Wh + b))
    else:
        h0 = gc.zeros_like(gc.sum(x, axis=1) @ Wx)  # (N, hidden) zeros: the state before the first step

        def step(h, x_t):
            h = gc.tanh(x_t @ Wx + h @ Wh + b)
            return h, None  # the new state; no per-step output (the loss reads only h_T)

        h, _ = gc.scan(step, h0, x, axis=1)
        h = g.let("hT", h)  # the state after the last step
    prediction = g.output("prediction", h @ Wy + by)
    g.output("loss", gc.mse(prediction, y))
    return g


def main(out_dir: Path, epochs: int = 40) -> tuple[float, float]:
    out_dir.mkdir(parents=True, exist_ok=True)
    model = gc.compile(build(), loss="loss")
    model.save(out_dir / "rnn_model.py")
    m = model.load()
    x, y = sequences(512, STEPS, seed=0)
    params, losses = m.train(m.init_params(seed=0), {"x": x, "y": y}, epochs=epochs, lr=0.1, batch_size=16)
    x_test, y_test = sequences(256, STEPS, seed=1)
    test_loss = m.forward(x=x_test, y=y_test, **params)["loss"]
    baseline = float(((y_test - y_test.mean()) ** 2).mean())
    print(f"epoch 1 loss {losses[0]:.4f}, epoch {epochs} loss {losses[-1]:.4f}")
    print(f"test mse {test_loss:.5f} (predicting the average target: {baseline:.5f})")
    return test_loss, baseline


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("out"))
