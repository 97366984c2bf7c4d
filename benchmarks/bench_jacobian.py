"""Whole derivative matrices (issue 24): gc.hessian and gc.jacobian against JAX jit and torch.func.

Run: python benchmarks/bench_jacobian.py [--repeat 7] [--examples 1000]
Three workloads, float64:
- the Hessian (100, 100) of a logistic-regression loss (the mean binary cross-entropy with logits) with
  100 features, with respect to the weights, over N examples (--examples, 1000 by default);
- the Jacobian (10, 64) of a 64-32-10 tanh MLP's logits with respect to one example's input;
- the Jacobian (10, 64, 32) of the same logits with respect to the first layer's weights.
Each is the generated module's forward() (its arrays checked, as a user calls it), against
jax.jit(jax.hessian(f)) / jax.jit(jax.jacrev(f)) (x64; compiled outside the timing) and torch.func.hessian
/ torch.func.jacrev (eager). The three results are checked equal to 1e-10 before anything is timed.
Times are medians of interleaved repeats, each repeat a loop of calls long enough to be measured; the
ratios are to JAX jit of the same run. Every library computes on one thread.
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

import numpy as np

import graphcomp as gc

FEATURES, SIZES = 100, (64, 32, 10)


def logistic_regression(examples: int, rng) -> tuple:
    """The graph of the Hessian, its arrays, and the loss as a function of w (for the peers)."""
    g = gc.Graph("logreg_hessian")
    x, y = g.input("x", (None, FEATURES)), g.input("y", (None,))
    w, b = g.param("w", (FEATURES,)), g.param("b", ())
    g.output("H", gc.hessian(gc.binary_cross_entropy_with_logits(x @ w + b, y), w))
    arrays = {"x": rng.normal(size=(examples, FEATURES)), "y": (rng.random(examples) < 0.5).astype(float),
              "w": rng.normal(size=FEATURES) * 0.1, "b": np.float64(0.2)}
    return g, arrays


def mlp(wrt: str, rng) -> tuple:
    """The graph of the logits' Jacobian with respect to the input x or the first weights W1."""
    g = gc.Graph(f"mlp_jacobian_{wrt}")
    x = g.input("x", (SIZES[0],))
    W1, b1 = g.param("W1", SIZES[:2]), g.param("b1", (SIZES[1],))
    W2, b2 = g.param("W2", SIZES[1:]), g.param("b2", (SIZES[2],))
    logits = gc.tanh(x @ W1 + b1) @ W2 + b2
    g.output("J", gc.jacobian(logits, x if wrt == "x" else W1))
    arrays = {"x": rng.normal(size=SIZES[0]), "W1": rng.normal(size=SIZES[:2]) / 8, "b1": rng.normal(size=SIZES[1]) / 8,
              "W2": rng.normal(size=SIZES[1:]) / 6, "b2": rng.normal(size=SIZES[2]) / 6}
    return g, arrays


def jax_call(workload: str, arrays: dict):
    import jax
    import jax.numpy as jnp
    jax.config.update("jax_enable_x64", True)
    a = {k: jnp.asarray(v) for k, v in arrays.items()}
    if workload == "hessian":
        def loss(w):
            z = a["x"] @ w + a["b"]
            return jnp.mean(jnp.logaddexp(0.0, z) - a["y"] * z)
        f, at = jax.jit(jax.hessian(loss)), a["w"]
    else:
        def logits(x, W1):
            return jnp.tanh(x @ W1 + a["b1"]) @ a["W2"] + a["b2"]
        f = jax.jit(jax.jacrev(logits, argnums=0 if workload == "mlp_x" else 1))
        at = (a["x"], a["W1"])
    call = (lambda: f(at).block_until_ready()) if workload == "hessian" else (lambda: f(*at).block_until_ready())
    call()  # compiled outside the timing
    return call


def torch_call(workload: str, arrays: dict):
    import torch
    torch.set_num_threads(1)
    t = {k: torch.tensor(np.asarray(v), dtype=torch.float64) for k, v in arrays.items()}
    if workload == "hessian":
        def loss(w):
            z = t["x"] @ w + t["b"]
            return torch.mean(torch.nn.functional.softplus(z) - t["y"] * z)
        return lambda: torch.func.hessian(loss)(t["w"])

    def logits(x, W1):
        return torch.tanh(x @ W1 + t["b1"]) @ t["W2"] + t["b2"]
    return lambda: torch.func.jacrev(logits, argnums=0 if workload == "mlp_x" else 1)(t["x"], t["W1"])


def median_time(call, repeat: int) -> float:
    """Seconds per call: the median of `repeat` timed loops, each long enough (≥ 20 ms) to be measured."""
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < 0.02:
        call()
        calls += 1
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(calls):
            call()
        times.append((time.perf_counter() - start) / calls)
    return statistics.median(times)


def run(workload: str, graph: gc.Graph, arrays: dict, repeat: int) -> dict:
    module = gc.compile(graph, runtime=False).load()
    calls = {"graphcomp": lambda: module.forward(**arrays)["J" if workload != "hessian" else "H"],
             "JAX jit": jax_call(workload, arrays), "torch.func": torch_call(workload, arrays)}
    reference = np.asarray(calls["graphcomp"]())
    for name in ("JAX jit", "torch.func"):
        np.testing.assert_allclose(np.asarray(calls[name]()), reference, rtol=1e-10, atol=1e-10, err_msg=name)
    medians: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeat):  # interleaved: a slow spell of the machine falls on every library alike
        for name, call in calls.items():
            medians[name].append(median_time(call, 1))
    return {name: statistics.median(times) for name, times in medians.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--examples", type=int, default=1000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    workloads = [("hessian", f"Hessian of logistic regression, {FEATURES} features, N = {args.examples}",
                  *logistic_regression(args.examples, rng)),
                 ("mlp_x", "Jacobian of 64-32-10 MLP logits w.r.t. the input (10, 64)", *mlp("x", rng)),
                 ("mlp_W1", "Jacobian of 64-32-10 MLP logits w.r.t. W1 (10, 64, 32)", *mlp("W1", rng))]
    print(f"{'workload':<62} {'graphcomp':>11} {'JAX jit':>11} {'torch.func':>11}  graphcomp / JAX")
    for workload, title, graph, arrays in workloads:
        times = run(workload, graph, arrays, args.repeat)
        cells = " ".join(f"{times[name] * 1e6:>9.1f}us" for name in ("graphcomp", "JAX jit", "torch.func"))
        print(f"{title:<62} {cells}  {times['graphcomp'] / times['JAX jit']:.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
