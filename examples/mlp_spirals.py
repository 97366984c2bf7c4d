"""A K-layer perceptron built with gc.mlp, classifying three interleaved spirals.

Run: python examples/mlp_spirals.py [output directory]
"""
import sys
from pathlib import Path

import numpy as np

import graphcomp as gc
from example_data import spirals


def build(sizes=(32, 32, 3), activation="relu") -> gc.Graph:
    g = gc.Graph("spirals")
    x = g.input("x", shape=(None, 2))
    labels = g.input("labels", shape=(None,))
    logits = g.output("logits", gc.mlp(g, x, sizes=list(sizes), activation=activation))
    g.output("loss", gc.softmax_cross_entropy(logits, labels))
    return g


def main(out_dir: Path, epochs: int = 300) -> float:
    out_dir.mkdir(parents=True, exist_ok=True)
    model = gc.compile(build(), loss="loss")
    model.save(out_dir / "spirals_model.py")
    m = model.load()
    x, y = spirals(100, seed=0)
    params, losses = m.train(m.init_params(seed=0), {"x": x, "labels": y}, epochs=epochs, lr=0.2, batch_size=32)
    logits = m.forward(x=x, labels=y, **params)["logits"]
    accuracy = float(np.mean(logits.argmax(axis=1) == y))
    print(f"epoch 1 loss {losses[0]:.4f}, epoch {epochs} loss {losses[-1]:.4f}, training accuracy {accuracy:.1%}")
    return accuracy


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("out"))
