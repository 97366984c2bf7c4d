"""An LSTM learns the adding problem: a task that needs memory, trained with the generated loop.

Each step of a sequence gives a number in [0, 1) and a marker, 1 at exactly two steps and 0 elsewhere;
the target is the sum of the two marked numbers. The LSTM (gc.lstm, PyTorch's gates and params) reads
the sequence with gc.scan: the generated module runs one `for` loop over time forward, one reversed
`for` loop for the gradients, and runs any length, since the sequence's length is "T" in its shape.
Run: python examples/lstm_adding.py [output directory]
"""
import sys
from pathlib import Path

import numpy as np

import graphcomp as gc

STEPS, HIDDEN = 20, 16
loss = "loss"  # what `graphcomp compile examples/lstm_adding.py` differentiates


def adding(n: int, steps: int = STEPS, seed: int = 0):
    """Sequences x (N, steps, 2) of (number, marker) pairs; target y (N, 1): the sum of the marked numbers."""
    rng = np.random.default_rng(seed)
    numbers = rng.uniform(0, 1, size=(n, steps))
    markers = np.zeros((n, steps))
    for row in range(n):
        markers[row, rng.choice(steps, 2, replace=False)] = 1
    return np.stack([numbers, markers], axis=2), (numbers * markers).sum(axis=1, keepdims=True)


def build(hidden: int = HIDDEN) -> gc.Graph:
    g = gc.Graph("lstm_adding")
    x = g.input("x", shape=(None, "T", 2))  # any number of steps
    y = g.input("y", shape=(None, 1))
    _, (h, _) = gc.lstm(g, x, hidden, name="lstm", axis=1)
    W, b = g.param("W", (hidden, 1)), g.param("b", (1,), init="zeros")
    prediction = g.output("prediction", h @ W + b)
    g.output("loss", gc.mse(prediction, y))
    return g


def main(out_dir: Path, epochs: int = 30) -> tuple[float, float]:
    out_dir.mkdir(parents=True, exist_ok=True)
    model = gc.compile(build(), loss="loss")
    model.save(out_dir / "lstm_adding_model.py")
    m = model.load()
    x, y = adding(2000, seed=0)
    params, losses = m.train(m.init_params(seed=0), {"x": x, "y": y}, epochs=epochs, lr=0.01, batch_size=50,
                             optimizer="adam")
    x_test, y_test = adding(500, seed=1)
    test_loss = float(m.forward(x=x_test, y=y_test, **params)["loss"])
    longer, target = adding(500, steps=2 * STEPS, seed=2)  # the same module on sequences twice as long
    longer_loss = float(m.forward(x=longer, y=target, **params)["loss"])
    baseline = float(((y_test - y_test.mean()) ** 2).mean())
    print(f"epoch 1 loss {losses[0]:.4f}, epoch {epochs} loss {losses[-1]:.4f}")
    print(f"test mse {test_loss:.5f} at {STEPS} steps, {longer_loss:.5f} at {2 * STEPS} "
          f"(predicting the average target: {baseline:.5f})")
    return test_loss, baseline


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("out"))
