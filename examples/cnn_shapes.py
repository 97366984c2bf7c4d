"""The CNN of the lecture notes on convolutional networks on generated images of five shapes.

3x3 convolution with 8 filters, 2x2 max-pooling, flatten, a dense layer to 5
classes, softmax cross-entropy. Run: python examples/cnn_shapes.py [output directory]
"""
import sys
from pathlib import Path

import numpy as np

import graphcomp as gc
from example_data import SHAPES, shape_images

SIZE = 12


def build() -> gc.Graph:
    g = gc.Graph("cnn")
    x = g.input("x", shape=(None, 1, SIZE, SIZE))
    labels = g.input("labels", shape=(None,))
    kernels = g.param("kernels", (8, 1, 3, 3), init="kaiming")
    conv_bias = g.param("conv_bias", (8,), init="zeros")
    W = g.param("W", (8 * 5 * 5, len(SHAPES)))
    b = g.param("b", (len(SHAPES),), init="zeros")
    pooled = g.let("pooled", gc.max_pool2d(gc.conv2d(x, kernels, conv_bias), size=2, stride=2))
    logits = g.output("logits", gc.flatten(pooled) @ W + b)
    g.output("loss", gc.softmax_cross_entropy(logits, labels))
    return g


def main(out_dir: Path, epochs: int = 20) -> float:
    out_dir.mkdir(parents=True, exist_ok=True)
    model = gc.compile(build(), loss="loss")
    model.save(out_dir / "cnn_model.py")
    m = model.load()
    x, y = shape_images(1200, SIZE, seed=0)
    x_test, y_test = shape_images(400, SIZE, seed=1)
    params, losses = m.train(m.init_params(seed=0), {"x": x, "labels": y}, epochs=epochs, lr=0.1, batch_size=32)
    for epoch, loss in enumerate(losses, start=1):
        print(f"epoch {epoch:2d}  loss {loss:.4f}")
    logits = m.forward(x=x_test, labels=y_test, **params)["logits"]
    accuracy = float(np.mean(logits.argmax(axis=1) == y_test))
    print(f"test accuracy {accuracy:.1%} over {len(SHAPES)} classes (chance: {1 / len(SHAPES):.0%})")
    return accuracy


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("out"))
