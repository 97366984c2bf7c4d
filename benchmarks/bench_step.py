"""One SGD training step (gradients + update) of the generated module against hand-written NumPy.

Run: python benchmarks/bench_step.py [--repeat 7] [--dtype float64|float32] [--profile NAME]
For each workload (MLPs small and large, relu and sigmoid; the CNN of the lecture notes on convolutional
networks on 28x28 images; an RNN over 20 steps, unrolled by Python and as one gc.scan loop, both against
the same hand-written BPTT), the generated module's own train() runs one epoch of minibatch SGD, and a
hand-written NumPy loop does the same work (shuffle, slice, forward, backward, update) in the same
process, interleaved with the peers of peers.py (JAX jit with x64, eager PyTorch on the CPU, PyTensor;
`pip install -e '.[bench]'` installs them, a peer not installed shows `-`); the table gives the median
time per step of the generated module and of hand-written NumPy, and every other time as a ratio to the
NumPy step: the generated module's, the peers', and that of the MLP's matrix products alone (the BLAS
floor); then the peak memory of one step of the generated module and of NumPy. Timings are noisy: compare
ratios, which are measured in one run.
--profile NAME (a workload's name, or a unique part of it) prints instead the ten slowest lines of the
generated module for that workload (line_profile.py): time per step, share of the step, calls, code.
Every library computes on one thread, as in bench_loops.py (the thread counts are set when run as a
script): on a shared 2-core machine, BLAS threads make the small steps slower and erratic.
"""
import os

if __name__ == "__main__":  # run as a script (not imported by a test): before the libraries load
    for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_variable, "1")
    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

# the libraries below read the thread counts when they load
import argparse
import statistics
import time
import tracemalloc

import numpy as np

import graphcomp as gc
import line_profile
import peers

WORKLOADS = {  # name: (layer sizes, activation, batch, steps per epoch)
    "MLP 64-32-10 sigmoid, batch 64": ((64, 32, 10), "sigmoid", 64, 200),
    "MLP 64-32-10 relu, batch 64": ((64, 32, 10), "relu", 64, 200),
    "MLP 784-512-256-10 sigmoid, batch 256": ((784, 512, 256, 10), "sigmoid", 256, 10),
    "MLP 784-512-256-10 relu, batch 256": ((784, 512, 256, 10), "relu", 256, 10),
}
CNN = "CNN 1x28x28, 8 3x3 filters, batch 64"
RNN = "RNN 20 steps, hidden 64, batch 32"
RNN_SCAN = "RNN on gc.scan 20 steps, hidden 64, batch 32"
NAMES = (*WORKLOADS, CNN, RNN, RNN_SCAN)


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


def cnn_graph() -> gc.Graph:
    """The CNN of the lecture notes on convolutional networks on 1x28x28 images: 3x3 conv with 8 filters (padding 1), relu, 2x2 max-pool,
    dense to 10, softmax cross-entropy."""
    g = gc.Graph("cnn")
    x, labels = g.input("x", (None, 1, 28, 28)), g.input("labels", (None,))
    k, b = g.param("k", (8, 1, 3, 3), init="kaiming"), g.param("b", (8,), init="zeros")
    W, c = g.param("W", (8 * 14 * 14, 10)), g.param("c", (10,), init="zeros")
    pooled = gc.max_pool2d(gc.relu(gc.conv2d(x, k, b, padding=1)))
    g.output("loss", gc.softmax_cross_entropy(gc.flatten(pooled) @ W + c, labels))
    return g


def cnn_by_hand(params, data, batch, lr, rng):
    """The same CNN, one epoch of SGD, written directly in NumPy (sliding windows and tensordot)."""
    x, labels = data["x"], data["labels"].astype(int)
    order = rng.permutation(len(x))
    k, b, W, c = params["k"], params["b"], params["W"], params["c"]
    for start in range(0, len(x), batch):
        rows = order[start:start + batch]
        n = len(rows)
        patches = np.lib.stride_tricks.sliding_window_view(np.pad(x[rows], ((0, 0), (0, 0), (1, 1), (1, 1))), (3, 3), axis=(2, 3))
        conv = np.tensordot(patches, k, axes=((1, 4, 5), (1, 2, 3))).transpose(0, 3, 1, 2) + b[:, None, None]
        r = np.maximum(conv, 0)
        windows = r.reshape(n, 8, 14, 2, 14, 2)
        pooled = windows.max(axis=(3, 5))
        f = pooled.reshape(n, -1)
        z = f @ W + c
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        p[np.arange(n), labels[rows]] -= 1
        g = p / n
        dW, dc = f.T @ g, g.sum(axis=0)
        dpooled = (g @ W.T).reshape(n, 8, 14, 1, 14, 1)
        mask = windows == pooled[:, :, :, None, :, None]
        dconv = (mask * dpooled / mask.sum(axis=(3, 5), keepdims=True)).reshape(n, 8, 28, 28) * (conv > 0)
        dk = np.tensordot(dconv, patches, axes=((0, 2, 3), (0, 2, 3)))
        db = dconv.sum(axis=(0, 2, 3))
        k -= lr * dk
        b -= lr * db
        W -= lr * dW
        c -= lr * dc


def rnn_graph(steps: int = 20, hidden: int = 64, inputs: int = 8) -> gc.Graph:
    """An RNN unrolled over 20 steps (hidden 64), its last state regressed onto a target."""
    g = gc.Graph("rnn")
    x, y = g.input("x", (None, steps, inputs)), g.input("y", (None, 1))
    Wx, Wh = g.param("Wx", (inputs, hidden)), g.param("Wh", (hidden, hidden))
    bh, Wy = g.param("bh", (hidden,), init="zeros"), g.param("Wy", (hidden, 1))
    h = gc.tanh(x[:, 0, :] @ Wx + bh)
    for t in range(1, steps):
        h = gc.tanh(x[:, t, :] @ Wx + h @ Wh + bh)
    g.output("loss", gc.mse(h @ Wy, y))
    return g


def rnn_scan_graph(steps: int = 20, hidden: int = 64, inputs: int = 8) -> gc.Graph:
    """The RNN of rnn_graph as one gc.scan loop over the 20 steps (examples/rnn_mean.py's form): from a
    zero state, so that its first step is rnn_graph's tanh(x_0 Wx + bh)."""
    g = gc.Graph("rnn_scan")
    x, y = g.input("x", (None, steps, inputs)), g.input("y", (None, 1))
    Wx, Wh = g.param("Wx", (inputs, hidden)), g.param("Wh", (hidden, hidden))
    bh, Wy = g.param("bh", (hidden,), init="zeros"), g.param("Wy", (hidden, 1))
    h0 = gc.zeros_like(x[:, 0, :] @ Wx)  # (N, hidden) zeros
    h, _ = gc.scan(lambda h, x_t: (gc.tanh(x_t @ Wx + h @ Wh + bh), None), h0, x, axis=1)
    g.output("loss", gc.mse(h @ Wy, y))
    return g


def rnn_by_hand(params, data, batch, lr, rng):
    """The same RNN, one epoch of SGD with backpropagation through time, written in NumPy."""
    x, y = data["x"], data["y"]
    order = rng.permutation(len(x))
    Wx, Wh, bh, Wy = params["Wx"], params["Wh"], params["bh"], params["Wy"]
    for start in range(0, len(x), batch):
        rows = order[start:start + batch]
        xs, n = x[rows], len(rows)
        hs = [np.tanh(xs[:, 0, :] @ Wx + bh)]
        for t in range(1, xs.shape[1]):
            hs.append(np.tanh(xs[:, t, :] @ Wx + hs[-1] @ Wh + bh))
        out = hs[-1] @ Wy
        d_out = 2 * (out - y[rows]) / n
        dWy = hs[-1].T @ d_out
        dh = d_out @ Wy.T
        dWx, dWh, dbh = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(bh)
        for t in range(xs.shape[1] - 1, -1, -1):
            da = dh * (1 - hs[t] ** 2)
            dWx += xs[:, t, :].T @ da
            dbh += da.sum(axis=0)
            if t:
                dWh += hs[t - 1].T @ da
                dh = da @ Wh.T
        Wx -= lr * dWx
        Wh -= lr * dWh
        bh -= lr * dbh
        Wy -= lr * dWy


def median_step(run, steps, repeat) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) / steps)
    return statistics.median(times)


def workloads(dtype: str):
    """(name, graph, data, batch, steps, hand-written epoch, peers) for every workload of the table;
    peers() builds the peers' epochs (only when called: JAX compiles, PyTorch allocates)."""
    rng = np.random.default_rng(0)
    for name, (sizes, activation, batch, steps) in WORKLOADS.items():
        data = {"x": rng.normal(size=(batch * steps, sizes[0])).astype(dtype),
                "labels": rng.integers(0, sizes[-1], size=batch * steps).astype(dtype)}
        yield name, build(sizes, activation), data, batch, steps, (
            lambda hand, data=data, batch=batch, activation=activation:
            by_hand(hand, data, batch, 0.01, activation, np.random.default_rng(0))), \
            lambda sizes=sizes, activation=activation, data=data, batch=batch: {
                peer: make(sizes, activation, data, batch, dtype) for peer, make in peers.MLP_PEERS.items()}
    data = {"x": rng.normal(size=(64 * 4, 1, 28, 28)).astype(dtype),
            "labels": rng.integers(0, 10, size=64 * 4).astype(dtype)}
    yield CNN, cnn_graph(), data, 64, 4, (
        lambda hand, data=data: cnn_by_hand(hand, data, 64, 0.01, np.random.default_rng(0))), \
        lambda data=data: {"PyTorch": peers.torch_cnn(data, 64, dtype)}
    data = {"x": rng.normal(size=(32 * 8, 20, 8)).astype(dtype), "y": rng.normal(size=(32 * 8, 1)).astype(dtype)}
    for name, graph in ((RNN, rnn_graph()), (RNN_SCAN, rnn_scan_graph())):  # the same data, the same baseline
        yield name, graph, data, 32, 8, (
            lambda hand, data=data: rnn_by_hand(hand, data, 32, 0.01, np.random.default_rng(0))), \
            lambda data=data: {"PyTorch": peers.torch_rnn(data, 32, dtype)}


def blas_floor(sizes, batch, dtype):
    """One step's matrix products alone (forward and weight gradient per layer, input gradient for all
    but the first): the time no NumPy step of the MLP can go below."""
    rng = np.random.default_rng(0)
    weights = [rng.normal(size=(a, b)).astype(dtype) for a, b in zip(sizes[:-1], sizes[1:])]
    acts = [rng.normal(size=(batch, a)).astype(dtype) for a in sizes]

    def epoch_of_products():
        for k, (W, a, b) in enumerate(zip(weights, acts[:-1], acts[1:])):
            a @ W
            a.T @ b
            if k:
                b @ W.T
    return epoch_of_products


def step_peak(module, params, data, batch) -> float:
    """Peak memory of one training step of the generated module, as train() takes it on NumPy arrays (its
    _gradients_in_place, with the arrays it writes into, which this first step makes; else _gradients),
    and the update."""
    arguments = [data[name][:batch] if name in module.INPUTS else params[name] for name in module.GRADIENT_ARGS]

    def step():
        xp = module._namespace(arguments)
        if module.IN_PLACE:
            _, grads, *_ = module._gradients_in_place(module._buffers(batch), xp, *arguments)
        else:
            _, grads, *_ = module._gradients(xp, *arguments)
        for name in module.TRAINED:
            params[name] -= 0.01 * grads[name]
    return peak_megabytes(step)


def peak_megabytes(run) -> float:
    """Peak memory NumPy allocated while `run()` ran (tracemalloc sees NumPy's buffers)."""
    tracemalloc.start()
    run()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2 ** 20


PEER_COLUMNS = ("JAX jit", "PyTorch", "PyTensor")


def table(args) -> None:
    print(f"{'workload':<46}{'generated ms':>14}{'NumPy ms':>10}{'ratio':>8}"
          + "".join(f"{peer:>10}" for peer in PEER_COLUMNS) + f"{'GEMMs':>8}{'step MB':>9}{'NumPy MB':>10}")
    for name, graph, data, batch, steps, epoch_by_hand, make_peers in workloads(args.dtype):
        module = gc.compile(graph, loss="loss", dtype=args.dtype).load()
        params = module.init_params(seed=0)
        hand = {k: v.copy() for k, v in params.items()}
        peer_runs = make_peers()
        runs = {"generated": lambda: module.train(params, data, epochs=1, lr=0.01, batch_size=batch),
                "NumPy": lambda: epoch_by_hand(hand),
                **({"GEMMs": blas_floor(WORKLOADS[name][0], batch, args.dtype)} if name in WORKLOADS else {}),
                **{peer: run for peer, run in peer_runs.items() if run is not None}}
        times = {run: [] for run in runs}
        for _ in range(args.repeat):  # interleaved, so that all see the same machine
            for run, epoch in runs.items():
                times[run].append(median_step(epoch, 1 if run == "GEMMs" else steps, 1))
                if run in peer_runs:
                    time.sleep(0.2)  # the peers' worker threads spin for a while after their last call
        median = {run: statistics.median(values) for run, values in times.items()}
        ratio = {run: f"{value / median['NumPy']:.2f}" for run, value in median.items()}
        one_batch = {key: value[:batch] for key, value in data.items()}
        memory = step_peak(module, dict(params), data, batch), peak_megabytes(lambda: epoch_by_hand(hand, one_batch))
        print(f"{name:<46}{1000 * median['generated']:>14.3f}{1000 * median['NumPy']:>10.3f}{ratio['generated']:>8}"
              + "".join(f"{ratio.get(peer, '-'):>10}" for peer in PEER_COLUMNS)
              + f"{ratio.get('GEMMs', '-'):>8}{memory[0]:>9.1f}{memory[1]:>10.1f}", flush=True)


def profile(name: str, dtype: str, repeat: int) -> str:
    """The ten slowest generated lines of workload `name` (a unique part of one is enough): the
    module's own train(), one epoch per run, as the table times it."""
    chosen = line_profile.choose(name, NAMES)
    for title, graph, data, batch, steps, _, _ in workloads(dtype):
        if title == chosen:
            model = gc.compile(graph, loss="loss", dtype=dtype)

            def epochs(module):
                params = module.init_params(seed=0)
                return lambda: module.train(params, data, epochs=1, lr=0.01, batch_size=batch)
            return line_profile.step_profile(f"{title} ({dtype})", model, epochs, steps, repeat)
    raise AssertionError(f"{chosen!r} is in NAMES but not among the workloads")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    parser.add_argument("--profile", metavar="NAME", help="print the ten slowest generated lines of one workload "
                        "(its name, or a unique part of it) instead of the table")
    args = parser.parse_args()
    if args.profile is None:
        table(args)
        return
    try:
        print(profile(args.profile, args.dtype, args.repeat))
    except line_profile.UnknownWorkload as error:
        parser.error(str(error))


if __name__ == "__main__":
    main()
