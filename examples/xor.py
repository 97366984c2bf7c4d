"""XOR, the example of the lecture notes on micro-autograd: a 2-8-1 network compiled to NumPy and trained to 100 % accuracy.

Run: python examples/xor.py [output directory]
It writes xor_model.py (the generated, numpy-only module) there and trains it.
"""
import sys
from pathlib import Path

import numpy as np

import graphcomp as gc

# What `graphcomp train examples/xor.py --data examples/data/xor.csv` reads, as a TOML spec's [model]
# and [training] tables would say it.
loss, predict, target = "loss", "p", "y"
training = {"lr": 0.5, "epochs": 1000, "batch_size": 4, "seed": 0}


def build() -> gc.Graph:
    g = gc.Graph("xor")
    x = g.input("x", shape=(None, 2))
    y = g.input("y", shape=(None, 1))
    W1, b1 = g.param("W1", (2, 8)), g.param("b1", (8,), init="zeros")
    W2, b2 = g.param("W2", (8, 1)), g.param("b2", (1,), init="zeros")
    h = g.let("h", gc.tanh(x @ W1 + b1))
    p = g.output("p", gc.sigmoid(h @ W2 + b2))
    g.output("loss", gc.mean(-(y * gc.log(p) + (1 - y) * gc.log(1 - p))))
    return g


def main(out_dir: Path) -> float:
    out_dir.mkdir(parents=True, exist_ok=True)
    model = gc.compile(build(), loss=loss, predict=predict, target=target)
    path = model.save(out_dir / "xor_model.py")
    print(f"wrote {path} ({len(model.source.splitlines())} lines, imports numpy only)")

    m = model.load()
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
    Y = np.array([[0], [1], [1], [0]], dtype=float)
    params, losses = m.train(m.init_params(seed=0), {"x": X, "y": Y}, **training)
    p = m.forward(x=X, y=Y, **params)["p"]
    accuracy = float(np.mean((p > 0.5) == (Y > 0.5)))
    for epoch in (0, 9, 99, len(losses) - 1):
        print(f"epoch {epoch + 1:4d}  loss {losses[epoch]:.5f}")
    print("predictions:", " ".join(f"{x[0]:.0f}{x[1]:.0f}->{q:.3f}" for x, q in zip(X, p.ravel())))
    print(f"accuracy {accuracy:.0%}")
    return accuracy


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("out"))
