"""Loops as loops (issue 22): training steps of recurrent nets compiled with gc.scan and gc.lstm.

Run: python benchmarks/bench_loops.py [--repeat 7] [--rnn-steps 20] [--lstm-steps 100] [--checkpoint 10]
     [--unrolled 10,20] [--long 10000] [--profile NAME]
Two workloads, float64, batch 32, 8 inputs, hidden 64, the last state regressed onto a target (mse):
a tanh RNN over 20 steps on gc.scan, and gc.lstm over 100 steps (also with checkpoint=10: its time and
peak memory against keeping every step). Each is one training step (forward
and gradients, no update): the generated module's `_gradients`, against a hand-written NumPy BPTT of the
same model (below; its gradients are checked equal to graphcomp's to 1e-10 before anything is timed),
PyTorch CPU (torch.nn.RNN / torch.nn.LSTM with the same weights, autograd) and JAX (`lax.scan` under
`jit`, x64); the RNN also against the same graph unrolled by Python (examples/rnn_mean.py's style).
Times are medians of interleaved repeats, given as ratios to the hand-written step of the same run.
Peak memory of one step: tracemalloc for the NumPy steps; for JAX, XLA's own plan of the compiled step
(temporaries and outputs, `memory_analysis()`); PyTorch's CPU allocator is seen by neither, so it has
no figure. Compile times are measured each in a fresh process (SymPy's caches cold, as for a user).
Every library computes on one thread (OPENBLAS_NUM_THREADS, OMP_NUM_THREADS and XLA's flags are set
unless given): the matrices are small (32x64 by 64x256), and on a machine whose second core is busy two
BLAS threads made the same NumPy step 5 to 20 times slower and erratic.
--profile NAME prints instead the ten slowest lines of one workload's generated step (line_profile.py).
"""
import os

if __name__ == "__main__":  # run as a script (not imported by a test): before the libraries load
    for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_variable, "1")
    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

# the libraries below read the thread counts when they load
import argparse
import hashlib
import json
import re
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

import graphcomp as gc
import line_profile
import peers

BATCH, INPUTS, HIDDEN = 32, 8, 64


# ------------------------------------------------------------------------------------------- graphs

def rnn_graph(steps, hidden=HIDDEN, unrolled=False) -> gc.Graph:
    """h_t = tanh(x_t Wx + h_{t-1} Wh + bh) from h0, loss mse(h_T Wy, y); on gc.scan or unrolled."""
    g = gc.Graph("rnn")
    x, y = g.input("x", (None, steps, INPUTS)), g.input("y", (None, 1))
    h0 = g.input("h0", (None, hidden))
    Wx, Wh = g.param("Wx", (INPUTS, hidden)), g.param("Wh", (hidden, hidden))
    bh, Wy = g.param("bh", (hidden,), init="zeros"), g.param("Wy", (hidden, 1))
    if unrolled:
        h = h0
        for t in range(steps):
            h = g.let(f"h{t + 1}", gc.tanh(x[:, t, :] @ Wx + h @ Wh + bh))
    else:
        h, _ = gc.scan(lambda h, x_t: (gc.tanh(x_t @ Wx + h @ Wh + bh), None), h0, x, axis=1)  # no y_t: unused
    g.output("loss", gc.mse(h @ Wy, y))
    return g


def lstm_graph(steps, hidden=HIDDEN, checkpoint=None) -> gc.Graph:
    """gc.lstm over (N, T, 8) from zero states, loss mse(h_T W + b, y)."""
    g = gc.Graph("lstm")
    x, y = g.input("x", (None, steps, INPUTS)), g.input("y", (None, 1))
    _, (h, _) = gc.lstm(g, x, hidden, name="lstm", axis=1, checkpoint=checkpoint)
    W, b = g.param("W", (hidden, 1)), g.param("b", (1,), init="zeros")
    g.output("loss", gc.mse(h @ W + b, y))
    return g


# ------------------------------------------------------------------------------ hand-written BPTT

def rnn_by_hand(p, x, y, h0):
    """The tanh RNN's loss and gradients: forward keeping every state, then BPTT as a reversed loop."""
    Wx, Wh, bh, Wy = p["Wx"], p["Wh"], p["bh"], p["Wy"]
    hs = [h0]
    for t in range(x.shape[1]):
        hs.append(np.tanh(x[:, t, :] @ Wx + hs[-1] @ Wh + bh))
    err = hs[-1] @ Wy - y
    d_out = 2 * err / err.size
    grads = {"Wy": hs[-1].T @ d_out, "Wx": np.zeros_like(Wx), "Wh": np.zeros_like(Wh), "bh": np.zeros_like(bh)}
    dh = d_out @ Wy.T
    for t in range(x.shape[1] - 1, -1, -1):
        da = dh * (1 - hs[t + 1] ** 2)
        grads["Wx"] += x[:, t, :].T @ da
        grads["Wh"] += hs[t].T @ da
        grads["bh"] += da.sum(axis=0)
        dh = da @ Wh.T
    return float(np.mean(err ** 2)), grads


def _sigmoid(a):
    return 0.5 * (np.tanh(0.5 * a) + 1)


def lstm_by_hand(p, x, y):
    """The LSTM (PyTorch's gates: input, forget, cell, output) and its BPTT, keeping per step the
    activated gates, the cell and the state."""
    W_ih, W_hh, b = p["lstm_weight_ih"], p["lstm_weight_hh"], p["lstm_bias_ih"] + p["lstm_bias_hh"]
    H, steps = W_hh.shape[1], x.shape[1]
    hs, cs, gates = [np.zeros((len(x), H))], [np.zeros((len(x), H))], []
    for t in range(steps):
        a = x[:, t, :] @ W_ih.T + hs[-1] @ W_hh.T + b
        a[:, :2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:] = (_sigmoid(a[:, :2 * H]), np.tanh(a[:, 2 * H:3 * H]),
                                                         _sigmoid(a[:, 3 * H:]))
        gates.append(a)
        cs.append(a[:, H:2 * H] * cs[-1] + a[:, :H] * a[:, 2 * H:3 * H])
        hs.append(a[:, 3 * H:] * np.tanh(cs[-1]))
    err = hs[-1] @ p["W"] + p["b"] - y
    d_out = 2 * err / err.size
    grads = {"W": hs[-1].T @ d_out, "b": d_out.sum(axis=0), "lstm_weight_ih": np.zeros_like(W_ih),
             "lstm_weight_hh": np.zeros_like(W_hh), "lstm_bias_ih": np.zeros_like(b)}
    dh, dc = d_out @ p["W"].T, np.zeros((len(x), H))
    for t in range(steps - 1, -1, -1):
        a, tc = gates[t], np.tanh(cs[t + 1])
        i, f, cell, o = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
        dc = dc + dh * o * (1 - tc ** 2)
        da = np.concatenate([dc * cell * i * (1 - i), dc * cs[t] * f * (1 - f), dc * i * (1 - cell ** 2),
                             dh * tc * o * (1 - o)], axis=1)
        grads["lstm_weight_ih"] += da.T @ x[:, t, :]
        grads["lstm_weight_hh"] += da.T @ hs[t]
        grads["lstm_bias_ih"] += da.sum(axis=0)
        dc, dh = dc * f, da @ W_hh
    grads["lstm_bias_hh"] = grads["lstm_bias_ih"].copy()
    return float(np.mean(err ** 2)), grads


# -------------------------------------------------------------------------------------- the peers

def torch_step(kind, p, data):
    """One eager PyTorch step (torch.nn.RNN or torch.nn.LSTM, float64, the same weights): loss and grads."""
    torch = peers._torch()
    if torch is None:
        return None
    torch.set_num_threads(1)
    t = {name: torch.from_numpy(np.ascontiguousarray(value)) for name, value in data.items()}
    if kind == "rnn":
        layer = torch.nn.RNN(INPUTS, HIDDEN, batch_first=True, dtype=torch.float64)
        weights = {"weight_ih_l0": p["Wx"].T, "weight_hh_l0": p["Wh"].T, "bias_ih_l0": p["bh"],
                   "bias_hh_l0": np.zeros(HIDDEN)}
        head, names = [torch.from_numpy(p["Wy"].copy()).requires_grad_()], ["Wx", "Wh", "bh", "bh_hh", "Wy"]
    else:
        layer = torch.nn.LSTM(INPUTS, HIDDEN, batch_first=True, dtype=torch.float64)
        weights = {f"{k}_l0": p[f"lstm_{k}"] for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
        head = [torch.from_numpy(p[k].copy()).requires_grad_() for k in ("W", "b")]
        names = ["lstm_weight_ih", "lstm_weight_hh", "lstm_bias_ih", "lstm_bias_hh", "W", "b"]
    with torch.no_grad():
        for name, value in weights.items():
            getattr(layer, name).copy_(torch.from_numpy(np.ascontiguousarray(value)))
    params = [layer.weight_ih_l0, layer.weight_hh_l0, layer.bias_ih_l0, layer.bias_hh_l0, *head]

    def step():
        states = (t["h0"][None],) if kind == "rnn" else ()
        _, final = layer(t["x"], *states)
        h = final[0] if kind == "rnn" else final[0][0]
        loss = torch.mean((h @ head[0] + (head[1] if len(head) > 1 else 0) - t["y"]) ** 2)
        grads = [g.numpy() for g in torch.autograd.grad(loss, params)]
        if kind == "rnn":  # back to the graph's layout: Wx = weight_ihᵀ, bh = bias_ih (bias_hh stays 0)
            grads[0], grads[1] = grads[0].T, grads[1].T
        return float(loss.detach()), dict(zip(names, grads))
    return step


def jax_step(kind, p, data):
    """The same step in JAX: lax.scan over time, value_and_grad, jit (x64). Returns (step, plan in MB)."""
    if peers._module("jax") is None:
        return None, None
    import jax
    import jax.numpy as jnp
    jax.config.update("jax_enable_x64", True)

    def cell(params, carry, x_t):
        if kind == "rnn":
            h = jnp.tanh(x_t @ params["Wx"] + carry @ params["Wh"] + params["bh"])
            return h, None
        h, c = carry
        a = x_t @ params["lstm_weight_ih"].T + params["lstm_bias_ih"] + h @ params["lstm_weight_hh"].T + params["lstm_bias_hh"]
        i, f, g, o = jnp.split(a, 4, axis=1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        return (jax.nn.sigmoid(o) * jnp.tanh(c), c), None

    def loss(params, x, y, h0):
        init = h0 if kind == "rnn" else (h0, h0)
        final, _ = jax.lax.scan(lambda carry, x_t: cell(params, carry, x_t), init, jnp.swapaxes(x, 0, 1))
        h = final if kind == "rnn" else final[0]
        out = h @ params["Wy"] if kind == "rnn" else h @ params["W"] + params["b"]
        return jnp.mean((out - y) ** 2)

    fn = jax.jit(jax.value_and_grad(loss))
    args = ({k: jnp.asarray(v) for k, v in p.items()}, jnp.asarray(data["x"]), jnp.asarray(data["y"]),
            jnp.asarray(data.get("h0", np.zeros((BATCH, HIDDEN)))))
    plan = fn.lower(*args).compile().memory_analysis()
    megabytes = None if plan is None else (plan.temp_size_in_bytes + plan.output_size_in_bytes) / 2 ** 20
    jax.block_until_ready(fn(*args))  # compiled outside the timing

    def step():
        value, grads = jax.block_until_ready(fn(*args))
        return float(value), {k: np.asarray(v) for k, v in grads.items()}
    return step, megabytes


# ------------------------------------------------------------------------------------ measurements

def model(kind, steps, unrolled=False, checkpoint=None):
    """The compiled model of a workload."""
    graph = rnn_graph(steps, unrolled=unrolled) if kind == "rnn" else lstm_graph(steps, checkpoint=checkpoint)
    return gc.compile(graph, loss="loss")


def workload(kind, steps, unrolled=False, seed=0, checkpoint=None, module=None):
    """(generated step, params, data): the compiled module's `_gradients` on one batch, params from
    init_params(0) with the zero-initialised ones drawn small, so that every gradient is exercised.
    `module`: the model's module already imported (the profiler's instrumented one)."""
    module = module or model(kind, steps, unrolled, checkpoint).load()
    rng = np.random.default_rng(seed)
    params = {k: v if v.any() else 0.1 * rng.normal(size=v.shape) for k, v in module.init_params(seed=0).items()}
    data = {"x": rng.normal(size=(BATCH, steps, INPUTS)), "y": rng.normal(size=(BATCH, 1))}
    if kind == "rnn":
        data["h0"] = 0.1 * rng.normal(size=(BATCH, HIDDEN))
    arguments = [data[name] if name in data else params[name] for name in module.GRADIENT_ARGS]

    def step():
        outputs, grads = module._gradients(module._namespace(arguments), *arguments)
        return float(outputs["loss"]), grads
    return step, params, data


def by_hand(kind, params, data):
    if kind == "rnn":
        return lambda: rnn_by_hand(params, data["x"], data["y"], data["h0"])
    return lambda: lstm_by_hand(params, data["x"], data["y"])


def difference(result, reference) -> float:
    """The largest absolute difference of the loss and of every gradient the reference gives."""
    (loss, grads), (ref_loss, ref_grads) = result, reference
    return max([abs(loss - ref_loss)] + [float(np.max(np.abs(grads[k] - v))) for k, v in ref_grads.items()])


def peak_megabytes(run) -> float:
    """Peak memory NumPy allocated while `run()` ran (tracemalloc sees NumPy's buffers)."""
    tracemalloc.start()
    run()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2 ** 20


def median_times(runs, repeat, inner) -> dict:
    """Seconds per step of each run: the median over `repeat` rounds, the runs interleaved in each."""
    times = {name: [] for name in runs}
    for _ in range(repeat):
        for name, run in runs.items():
            start = time.perf_counter()
            for _ in range(inner):
                run()
            times[name].append((time.perf_counter() - start) / inner)
            if name in ("PyTorch", "JAX jit"):
                time.sleep(0.2)  # their worker threads spin for a while after the last call
    return {name: statistics.median(values) for name, values in times.items()}


def measure(kind, steps, repeat, inner, unrolled, checkpoint=None) -> dict:
    """Every figure of one row: checks first (to 1e-10), then times and peak memory."""
    generated, params, data = workload(kind, steps)
    hand = by_hand(kind, params, data)
    runs = {"generated": generated, "NumPy": hand}
    if unrolled:
        runs["unrolled"] = workload(kind, steps, unrolled=True)[0]
    if checkpoint:
        runs["checkpointed"] = workload(kind, steps, checkpoint=checkpoint)[0]
    runs["PyTorch"] = torch_step(kind, params, data)
    runs["JAX jit"], jax_plan = jax_step(kind, params, data)
    runs = {name: run for name, run in runs.items() if run is not None}
    reference = hand()
    checks = {name: difference(run(), reference) for name, run in runs.items() if name != "NumPy"}
    if max(checks["generated"], checks.get("unrolled", 0), checks.get("checkpointed", 0)) > 1e-10:
        raise SystemExit(f"{kind}: the generated gradients differ from the hand-written BPTT: {checks}")
    seconds = median_times(runs, repeat, inner)
    memory = {name: peak_megabytes(runs[name]) for name in ("generated", "unrolled", "checkpointed", "NumPy") if name in runs}
    return {"seconds": seconds, "checks": checks, "memory": memory | {"JAX plan": jax_plan}, "checkpoint": checkpoint}


def compile_once(kind, steps) -> dict:
    """gc.compile of one model at one length (run in a fresh process): seconds, lines, text sans numbers."""
    length = int(steps) if steps.isdigit() else steps
    graph = rnn_graph(length) if kind == "rnn" else rnn_graph(length, unrolled=True) if kind == "unrolled" \
        else lstm_graph(length)
    start = time.perf_counter()
    source = gc.compile(graph, loss="loss").source
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "lines": source.count("\n"), "text": hashlib.sha256(re.sub(r"\d+", "0", source).encode()).hexdigest()}


def compile_in_fresh_process(kind, steps) -> dict:
    output = subprocess.run([sys.executable, str(Path(__file__)), "--compile", kind, str(steps)],
                            check=True, capture_output=True, text=True).stdout
    return json.loads(output.splitlines()[-1])


# ----------------------------------------------------------------------------------------- reports

def step_table(rows) -> None:
    print(f"{'workload':<32}{'NumPy ms':>10}{'generated ms':>14}{'generated':>11}{'unrolled':>10}{'PyTorch':>9}"
          f"{'JAX jit':>9}   peak MB: generated / unrolled / NumPy / JAX plan")
    for name, row in rows.items():
        seconds, memory = row["seconds"], row["memory"]
        ratio = {run: f"{value / seconds['NumPy']:.2f}" for run, value in seconds.items()}
        mb = " / ".join("-" if memory.get(k) is None else f"{memory[k]:.2f}"
                        for k in ("generated", "unrolled", "NumPy", "JAX plan"))
        print(f"{name:<32}{1000 * seconds['NumPy']:>10.3f}{1000 * seconds['generated']:>14.3f}{ratio['generated']:>11}"
              + "".join(f"{ratio.get(run, '-'):>{w}}" for run, w in (("unrolled", 10), ("PyTorch", 9), ("JAX jit", 9)))
              + f"   {mb}")
    for name, row in rows.items():
        if "checkpointed" in row["seconds"]:
            seconds, memory = row["seconds"], row["memory"]
            print(f"{name}, checkpoint={row['checkpoint']}: step {seconds['checkpointed'] / seconds['generated']:.2f}x the "
                  f"time of keeping every step, peak {memory['checkpointed']:.2f} MB against {memory['generated']:.2f} MB "
                  f"({memory['checkpointed'] / memory['generated']:.2f}x)")
    for name, row in rows.items():
        print(f"{name}: largest difference from the hand-written BPTT (loss and every gradient): "
              + ", ".join(f"{run} {value:.1e}" for run, value in row["checks"].items()))


def compile_table(lengths) -> None:
    print(f"\n{'compile (fresh process)':<32}{'T':>8}{'seconds':>10}{'lines':>8}   same text as the first row, numbers aside")
    for kind, label in (("rnn", "RNN on gc.scan"), ("lstm", "gc.lstm"), ("unrolled", "RNN unrolled by Python")):
        first = None
        for steps in lengths[kind]:
            result = compile_in_fresh_process(kind, steps)
            first = first or result
            same = "yes" if result["text"] == first["text"] else "no"
            print(f"{label:<32}{steps:>8}{result['seconds']:>10.2f}{result['lines']:>8}   {same}", flush=True)


def profiled(args) -> dict:
    """The workloads --profile may name: (kind, steps, unrolled, checkpoint, steps per run)."""
    rnn, lstm, rest = f"RNN T={args.rnn_steps}", f"LSTM T={args.lstm_steps}", ", hidden 64, batch 32"
    return {f"{rnn} on gc.scan{rest}": ("rnn", args.rnn_steps, False, None, 10),
            f"{rnn} unrolled{rest}": ("rnn", args.rnn_steps, True, None, 10),
            f"{lstm}{rest}": ("lstm", args.lstm_steps, False, None, 2),
            f"{lstm} checkpoint={args.checkpoint}{rest}": ("lstm", args.lstm_steps, False, args.checkpoint, 2)}


def profile(name, args) -> str:
    """The ten slowest lines of one workload's generated step (its `_gradients`, as the table times it)."""
    workloads = profiled(args)
    chosen = line_profile.choose(name, workloads)
    kind, steps, unrolled, checkpoint, inner = workloads[chosen]

    def run_of(module):
        step = workload(kind, steps, unrolled, checkpoint=checkpoint, module=module)[0]
        return lambda: [step() for _ in range(inner)]
    return line_profile.step_profile(chosen, model(kind, steps, unrolled, checkpoint), run_of, inner, args.repeat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7, help="interleaved rounds; the median is reported")
    parser.add_argument("--rnn-steps", type=int, default=20)
    parser.add_argument("--lstm-steps", type=int, default=100)
    parser.add_argument("--checkpoint", type=int, default=10, help="the LSTM also run with gc.lstm(..., checkpoint=K)")
    parser.add_argument("--long", default="10000", help="the long length compiled (T=10 is the short one)")
    parser.add_argument("--unrolled", default="10,20", help="lengths the unrolled RNN is compiled at")
    parser.add_argument("--compile", nargs=2, metavar=("MODEL", "T"), help=argparse.SUPPRESS)
    parser.add_argument("--profile", metavar="NAME", help="print the ten slowest generated lines of one workload "
                        "(its name, or a unique part of it: scan, unrolled, 'LSTM T=100,', checkpoint) instead of the tables")
    args = parser.parse_args()
    if args.profile:
        try:
            print(profile(args.profile, args))
        except line_profile.UnknownWorkload as error:
            parser.error(str(error))
        return
    if args.compile:
        result = compile_once(*args.compile)
        print(json.dumps(result))
        return
    rows = {f"RNN T={args.rnn_steps}, hidden 64, batch 32": measure("rnn", args.rnn_steps, args.repeat, 10, True),
            f"LSTM T={args.lstm_steps}, hidden 64, batch 32": measure("lstm", args.lstm_steps, args.repeat, 2, False,
                                                                      args.checkpoint)}
    step_table(rows)
    lengths = {"rnn": ["10", args.long, "T"], "lstm": ["10", args.long, "T"], "unrolled": args.unrolled.split(",")}
    compile_table(lengths)


if __name__ == "__main__":
    main()
