"""One SGD training step (gradients + update) of the generated module against hand-written NumPy.

Run: python benchmarks/bench_step.py [--repeat 7] [--dtype float64]
For each workload, the generated module's own train() runs one epoch of minibatch SGD, and a
hand-written NumPy loop does the same work (shuffle, slice, forward, backward, update) in the same
process, interleaved; the table gives the median time per step of each and their ratio. Timings are
noisy: compare ratios, which are measured in one run.
"""
import argparse
import statistics
import time

import numpy as np

import graphcomp as gc

WORKLOADS = {  # name: (layer sizes, activation, batch, steps per epoch)
    "MLP 64-32-10 sigmoid, batch 64": ((64, 32, 10), "sigmoid", 64, 200),
    "MLP 64-32-10 relu, batch 64": ((64, 32, 10), "relu", 64, 200),
    "MLP 784-512-256-10 sigmoid, batch 256": ((784, 512, 256, 10), "sigmoid", 256, 10),
    "MLP 784-512-256-10 relu, batch 256": ((784, 512, 256, 10), "relu", 256, 10),
}


def build(sizes, activation) -> gc.Graph:
    g = gc.Graph("bench")
    x, labels = g.input("x", (None, sizes[0])), g.input("labels", (None,))
    logits = g.output("logits", gc.mlp(g, x, list(sizes[1:]), activation=activation))
    g.output("loss", gc.softmax_cross_entropy(logits, labels))
    return g


def by_hand(params, data, batch, lr, activation, rng):
    """One epoch of minibatch SGD, written directly in NumPy: the baseline."""
    x, labels = data["x"], data["labels"].astype(int)
    order = rng.permutation(len(x))
    layers = len(params) // 2
    for start in range(0, len(x), batch):
        rows = order[start:start + batch]
        h, hs, outs = x[rows], [], []
        for k in range(1, layers + 1):
            hs.append(h)
            a = h @ params[f"W{k}"] + params[f"b{k}"]
            if k < layers:
                h = 1 / (1 + np.exp(-a)) if activation == "sigmoid" else np.maximum(a, 0)
                outs.append(h if activation == "sigmoid" else a)
            else:
                h = a
        z = h - h.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        n = len(rows)
        p[np.arange(n), labels[rows]] -= 1
        g = p / n
        for k in range(layers, 0, -1):
            W = params[f"W{k}"]
            dW, db = hs[k - 1].T @ g, g.sum(axis=0)
            if k > 1:
                out = outs[k - 2]
                g = g @ W.T * (out * (1 - out) if activation == "sigmoid" else (out > 0))
            params[f"W{k}"] -= lr * dW
            params[f"b{k}"] -= lr * db


def median_step(run, steps, repeat) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) / steps)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    args = parser.parse_args()
    print(f"{'workload':<42}{'generated ms':>14}{'NumPy ms':>10}{'ratio':>8}")
    for name, (sizes, activation, batch, steps) in WORKLOADS.items():
        module = gc.compile(build(sizes, activation), loss="loss", dtype=args.dtype).load()
        rng = np.random.default_rng(0)
        data = {"x": rng.normal(size=(batch * steps, sizes[0])).astype(args.dtype),
                "labels": rng.integers(0, sizes[-1], size=batch * steps).astype(args.dtype)}
        params = module.init_params(seed=0)
        hand = {k: v.copy() for k, v in params.items()}
        generated = lambda: module.train(params, data, epochs=1, lr=0.01, batch_size=batch)  # noqa: E731
        written = lambda: by_hand(hand, data, batch, 0.01, activation, np.random.default_rng(0))  # noqa: E731
        ours, theirs = [], []
        for _ in range(args.repeat):  # interleaved, so that both see the same machine
            ours.append(median_step(generated, steps, 1))
            theirs.append(median_step(written, steps, 1))
        a, b = statistics.median(ours), statistics.median(theirs)
        print(f"{name:<42}{1000 * a:>14.3f}{1000 * b:>10.3f}{a / b:>8.2f}", flush=True)


if __name__ == "__main__":
    main()
