"""Speed of the generated gradients against hand-written NumPy backprop, measured in the same run.

Run: python benchmarks/bench_mlp.py [--repeat 30]
Prints, for a 2-hidden-layer relu MLP with softmax cross-entropy on a batch of 256:
the median time of one gradients() call of the generated module (simplified, and as written),
of a hand-written NumPy forward + backward of the same network, and their ratios. Timings are
noisy; the ratios, measured in one process, are what to compare across versions.
"""
import argparse
import statistics
import time

import numpy as np

import graphcomp as gc

SIZES = (64, 128, 128, 10)
BATCH = 256


def build() -> gc.Graph:
    g = gc.Graph("bench")
    x = g.input("x", (None, SIZES[0]))
    labels = g.input("labels", (None,))
    logits = g.output("logits", gc.mlp(g, x, list(SIZES[1:]), activation="relu"))
    g.output("loss", gc.softmax_cross_entropy(logits, labels))
    return g


def by_hand(x, labels, W1, b1, W2, b2, W3, b3):
    """The textbook forward and backward pass, written directly in NumPy."""
    a1 = x @ W1 + b1
    h1 = np.maximum(a1, 0)
    a2 = h1 @ W2 + b2
    h2 = np.maximum(a2, 0)
    z = h2 @ W3 + b3
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    n = len(x)
    loss = -np.mean(np.log(p[np.arange(n), labels.astype(int)]))
    dz = p.copy()
    dz[np.arange(n), labels.astype(int)] -= 1
    dz /= n
    dW3, db3 = h2.T @ dz, dz.sum(axis=0)
    dh2 = dz @ W3.T * (a2 > 0)
    dW2, db2 = h1.T @ dh2, dh2.sum(axis=0)
    dh1 = dh2 @ W2.T * (a1 > 0)
    dW1, db1 = x.T @ dh1, dh1.sum(axis=0)
    return loss, (dW1, db1, dW2, db2, dW3, db3)


def median_seconds(fn, repeat: int) -> float:
    fn()  # warm up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    repeat = parser.parse_args().repeat
    start = time.perf_counter()
    fused = gc.compile(build())
    compile_seconds = time.perf_counter() - start
    literal = gc.compile(build(), simplify=False)
    fused_m, literal_m = fused.load(), literal.load()
    rng = np.random.default_rng(0)
    params = fused_m.init_params(0)
    x, labels = rng.normal(size=(BATCH, SIZES[0])), rng.integers(0, SIZES[-1], size=BATCH).astype(float)
    arrays = {"x": x, "labels": labels, **params}
    loss_gen = fused_m.gradients(**arrays)[0]["loss"]
    loss_hand = by_hand(x, labels, *(params[k] for k in ("W1", "b1", "W2", "b2", "W3", "b3")))[0]
    assert np.isclose(loss_gen, loss_hand), (loss_gen, loss_hand)
    hand = median_seconds(lambda: by_hand(x, labels, *(params[k] for k in ("W1", "b1", "W2", "b2", "W3", "b3"))), repeat)
    generated = median_seconds(lambda: fused_m.gradients(**arrays), repeat)
    as_written = median_seconds(lambda: literal_m.gradients(**arrays), repeat)
    print(f"MLP {SIZES}, batch {BATCH}, median of {repeat}")
    print(f"  hand-written NumPy     {hand * 1e3:8.3f} ms  (baseline)")
    print(f"  generated (simplified) {generated * 1e3:8.3f} ms  ratio {generated / hand:.2f}")
    print(f"  generated (as written) {as_written * 1e3:8.3f} ms  ratio {as_written / hand:.2f}")
    print(f"  compile time           {compile_seconds:8.3f} s")


if __name__ == "__main__":
    main()
