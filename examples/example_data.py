"""Small data sets the examples make themselves (nothing is downloaded), and what the language-model
examples (bengio_lm.py, tiny_gpt.py) share: the first names they learn from (data/names.txt, made by
data/make_names.py), the letters as ids, the split into training and validation names, and the run of
their main(): train with the generated `train`, print the losses, sample ten names."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

SHAPES = ("horizontal bar", "vertical bar", "square", "cross", "diagonal")


def spirals(n_per_class: int = 100, classes: int = 3, noise: float = 0.15, seed: int = 0):
    """Points on `classes` interleaved spiral arms: x (N, 2), integer labels y (N,)."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for c in range(classes):
        r = np.linspace(0.05, 1.0, n_per_class)
        t = np.linspace(c * 4.0, (c + 1) * 4.0, n_per_class) + rng.normal(scale=noise, size=n_per_class)
        xs.append(np.stack([r * np.sin(t), r * np.cos(t)], axis=1))
        ys.append(np.full(n_per_class, c))
    return np.concatenate(xs), np.concatenate(ys).astype(float)


def shape_images(n: int = 1000, size: int = 12, seed: int = 0):
    """Images (N, 1, size, size) of five kinds of shapes (see SHAPES), shifted and noisy; labels (N,)."""
    rng = np.random.default_rng(seed)
    images = rng.normal(scale=0.2, size=(n, 1, size, size))
    labels = rng.integers(0, len(SHAPES), size=n)
    for image, label in zip(images[:, 0], labels):
        k = rng.integers(4, 7)  # shape extent
        r, c = rng.integers(0, size - k + 1, size=2)
        if label == 0:
            image[r + k // 2, c:c + k] += 1
        elif label == 1:
            image[r:r + k, c + k // 2] += 1
        elif label == 2:
            image[r, c:c + k] += 1
            image[r + k - 1, c:c + k] += 1
            image[r:r + k, c] += 1
            image[r:r + k, c + k - 1] += 1
        elif label == 3:
            image[r + k // 2, c:c + k] += 1
            image[r:r + k, c + k // 2] += 1
        else:
            image[r + np.arange(k), c + np.arange(k)] += 1
    return images, labels.astype(float)


def sequences(n: int = 512, steps: int = 6, seed: int = 0):
    """Sequences x (N, steps, 1) of numbers in [-1, 1]; target y (N, 1): their mean."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=(n, steps, 1))
    return x, x.mean(axis=1)


# ---- the first names of the language-model examples ----

ALPHABET = ".abcdefghijklmnopqrstuvwxyz"  # id 0 is '.', the start and the end of a name
VOCAB = len(ALPHABET)
NAMES = Path(__file__).parent / "data" / "names.txt"


def read_names(path: Path = NAMES) -> list[str]:
    return path.read_text(encoding="ascii").split()


def split(names: list[str], seed: int = 0, held_out: float = 0.1) -> tuple[list[str], list[str]]:
    """(training names, validation names), shuffled from `seed`."""
    order = np.random.default_rng(seed).permutation(len(names))
    cut = len(names) - int(round(held_out * len(names)))
    return [names[i] for i in order[:cut]], [names[i] for i in order[cut:]]


def train_and_sample(m, params: dict, data: dict, held: dict, out: Path, *, start: float, epochs: int, every: int,
                     settings: dict, sample: Callable, final: str = "final loss") -> dict:
    """Train the loaded module `m` from `params` (whose loss on `data` is `start`), a line every `every`
    epochs, print the training and validation losses and ten sampled names, save the params to `out`;
    return the figures."""

    def report(record):
        if record["epoch"] % every == 0 or record["epoch"] == epochs:
            print(f"epoch {record['epoch']:>3}/{epochs}  loss {record['loss']:.4f}  {record['seconds']:.1f}s",
                  flush=True)

    params, losses = m.train(params, data, epochs=epochs, seed=0, on_epoch=report, **settings)
    train_loss, val_loss = m.evaluate(params, data)["loss"], m.evaluate(params, held)["loss"]
    print(f"{final}: training {train_loss:.4f}, validation {val_loss:.4f}")
    m.save_params(out, params)
    names_drawn = sample(m, params)
    print("sampled names:", ", ".join(names_drawn))
    return {"start": start, "losses": losses, "train": train_loss, "validation": val_loss, "names": names_drawn}
