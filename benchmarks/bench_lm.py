"""The training steps of the two language-model examples against PyTorch CPU eager and JAX jit.

Run: python benchmarks/bench_lm.py [--repeat 7] [--dtype float64|float32] [--batch 32] [--profile NAME]
Workloads: examples/bengio_lm.py (context 3, embedding 10, hidden 200 with batch norm, vocabulary 27) and
examples/tiny_gpt.py (2 blocks, 2 heads, d = 64, context 16, weight-tied output, dropout 0.1), one step
each at the examples' batch of 32: forward and gradients, no update. The generated module's `_gradients`
(what its train() calls per minibatch, dropout drawn from a NumPy generator), eager PyTorch on the CPU
(torch.autograd.grad; F.dropout in training mode) and JAX (jax.value_and_grad under jit, dropout from a
key split inside the step), the same params in each. Before anything is timed, PyTorch's and JAX's losses
and gradients are checked against graphcomp's with dropout off (to 1e-10 in float64, 1e-4 relative in
float32). Times: the median of interleaved rounds, in ms and as ratios to PyTorch's and JAX's steps of
the same run; then the minor page faults per step (memory taken from the system afresh at each step: with
glibc's default settings, the generated step's tens of MB of temporaries are handed back to the system
when it returns and zeroed again by the kernel at the next step; MALLOC_TRIM_THRESHOLD_=1000000000
MALLOC_MMAP_THRESHOLD_=33554432 in the environment keep them), and the peak memory of the generated step
(tracemalloc).
Every library computes on one thread, as in bench_loops.py (OPENBLAS_NUM_THREADS, OMP_NUM_THREADS and
XLA's flags set unless given; torch.set_num_threads(1)): the matrices are small, and the machine's other
core is often busy.
--profile NAME prints instead the ten slowest lines of one example's generated step (line_profile.py).
"""
import os

if __name__ == "__main__":  # run as a script: before the libraries load
    for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_variable, "1")
    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

# the libraries below read the thread counts when they load
import argparse
import sys
from pathlib import Path

import numpy as np

import graphcomp as gc
import line_profile
import peers
from bench_loops import median_times, peak_megabytes

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
import bengio_lm  # noqa: E402 - the examples' own graphs, data and initial params
import tiny_gpt  # noqa: E402

EXAMPLES = {"bengio_lm": bengio_lm, "tiny_gpt": tiny_gpt}
LABELS = {"bengio_lm": "Bengio MLP (context 3, hidden 200, batch norm)",
          "tiny_gpt": "tiny GPT (2 layers, 2 heads, d=64, T=16)"}


def workload(example: str, dtype: str, batch: int, seed: int = 0, module=None):
    """(module, params, data): the example compiled in `dtype` (or `module`, that model already imported:
    the profiler's instrumented one), its initial params, one batch of its data."""
    source = EXAMPLES[example]
    module = module or gc.compile(source.build(), loss="loss", dtype=dtype).load()
    params = {name: value.astype(dtype) for name, value in source.initial_params(module, seed=0).items()}
    data = source.examples(source.read_names())
    rows = np.random.default_rng(seed).choice(len(next(iter(data.values()))), batch, replace=False)
    return module, params, {name: value[rows] for name, value in data.items()}


def generated_step(module, params, data):
    """The generated `_gradients` on the batch, with a generator for the dropout masks where it draws them."""
    arguments = [data[name] if name in data else params[name] for name in module.GRADIENT_ARGS]
    xp, rng = module._namespace(arguments), np.random.default_rng(0)
    if module.USES_DROPOUT:
        return lambda: module._gradients(rng, xp, *arguments)
    return lambda: module._gradients(xp, *arguments)


def trained(module, params) -> list:
    return [name for name in params if name in module.TRAINED]


# ------------------------------------------------------------------------------------------ PyTorch

def torch_step(example, module, params, data, dtype, dropout=True):
    """An eager PyTorch step of the same model (functional, the same params): loss and gradients."""
    torch = peers._torch()
    if torch is None:
        return None
    torch.set_num_threads(1)
    F = torch.nn.functional
    names = trained(module, params)
    p = {name: torch.from_numpy(params[name].copy()).requires_grad_() for name in names}
    t = {name: torch.from_numpy(value) for name, value in data.items()}
    rate = tiny_gpt.DROPOUT if dropout else 0.0

    def bengio(p):
        a = p["C_weight"][t["context"]].flatten(1) @ p["hidden_weight"].T
        h = torch.tanh(F.batch_norm(a, None, None, p["bn_weight"], p["bn_bias"], training=True, eps=1e-5))
        return F.cross_entropy(h @ p["out_weight"].T + p["out_bias"], t["next"])

    def gpt(p):
        ids = t["ids"]
        n, T, C = len(ids), tiny_gpt.CONTEXT, tiny_gpt.WIDTH
        x = F.dropout(p["wte"][ids] + p["wpe"], rate, training=rate > 0)
        for k in range(tiny_gpt.LAYERS):
            def w(name):
                return p[f"h{k}_{name}"]
            h = F.layer_norm(x, (C,), w("ln1_weight"), w("ln1_bias"))
            q, key, v = (z.reshape(n, T, tiny_gpt.HEADS, -1).transpose(1, 2)
                         for z in F.linear(h, w("attn_weight"), w("attn_bias")).split(C, dim=2))
            y = F.scaled_dot_product_attention(q, key, v, is_causal=True).transpose(1, 2).reshape(n, T, C)
            x = x + F.dropout(F.linear(y, w("proj_weight"), w("proj_bias")), rate, training=rate > 0)
            h = F.gelu(F.linear(F.layer_norm(x, (C,), w("ln2_weight"), w("ln2_bias")), w("fc_weight"), w("fc_bias")),
                       approximate="tanh")
            x = x + F.dropout(F.linear(h, w("fc2_weight"), w("fc2_bias")), rate, training=rate > 0)
        logits = F.layer_norm(x, (C,), p["ln_f_weight"], p["ln_f_bias"]) @ p["wte"].T
        return F.cross_entropy(logits.reshape(-1, tiny_gpt.VOCAB), t["targets"].reshape(-1))

    loss_of = bengio if example == "bengio_lm" else gpt

    def step():
        loss = loss_of(p)
        grads = torch.autograd.grad(loss, list(p.values()))
        return float(loss.detach()), {name: g.numpy() for name, g in zip(names, grads)}
    return step


# ---------------------------------------------------------------------------------------------- JAX

def jax_step(example, module, params, data, dtype, dropout=True):
    """The same step in JAX: value_and_grad under jit; dropout from a key split inside the step."""
    if peers._module("jax") is None:
        return None
    import jax
    import jax.numpy as jnp
    jax.config.update("jax_enable_x64", dtype == "float64")
    names = trained(module, params)
    rate = tiny_gpt.DROPOUT if dropout else 0.0

    def cross_entropy(logits, labels):
        log_p = jax.nn.log_softmax(logits, axis=-1)
        return -jnp.mean(jnp.take_along_axis(log_p, labels[..., None], axis=-1))

    def layer_norm(x, weight, bias):
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / jnp.sqrt(var + 1e-5) * weight + bias

    def bengio(p, batch, key):
        a = p["C_weight"][batch["context"]].reshape(len(batch["context"]), -1) @ p["hidden_weight"].T
        mean = a.mean(0)
        h = jnp.tanh((a - mean) / jnp.sqrt(((a - mean) ** 2).mean(0) + 1e-5) * p["bn_weight"] + p["bn_bias"])
        return cross_entropy(h @ p["out_weight"].T + p["out_bias"], batch["next"])

    def gpt(p, batch, key):
        keys = iter(jax.random.split(key, 1 + 2 * tiny_gpt.LAYERS))

        def drop(x):
            if not rate:
                return x
            return x * jax.random.bernoulli(next(keys), 1 - rate, x.shape).astype(x.dtype) / (1 - rate)
        ids = batch["ids"]
        n, T, C = ids.shape[0], tiny_gpt.CONTEXT, tiny_gpt.WIDTH
        mask = jnp.tril(jnp.ones((T, T), dtype=bool))
        x = drop(p["wte"][ids] + p["wpe"])
        for k in range(tiny_gpt.LAYERS):
            def w(name):
                return p[f"h{k}_{name}"]
            qkv = layer_norm(x, w("ln1_weight"), w("ln1_bias")) @ w("attn_weight").T + w("attn_bias")
            q, key_, v = (z.reshape(n, T, tiny_gpt.HEADS, -1).transpose(0, 2, 1, 3) for z in jnp.split(qkv, 3, axis=2))
            scores = jnp.where(mask, q @ key_.transpose(0, 1, 3, 2) / np.sqrt(C // tiny_gpt.HEADS), -jnp.inf)
            y = (jax.nn.softmax(scores, axis=-1) @ v).transpose(0, 2, 1, 3).reshape(n, T, C)
            x = x + drop(y @ w("proj_weight").T + w("proj_bias"))
            h = jax.nn.gelu(layer_norm(x, w("ln2_weight"), w("ln2_bias")) @ w("fc_weight").T + w("fc_bias"),
                            approximate=True)
            x = x + drop(h @ w("fc2_weight").T + w("fc2_bias"))
        logits = layer_norm(x, p["ln_f_weight"], p["ln_f_bias"]) @ p["wte"].T
        return cross_entropy(logits, batch["targets"])

    loss_of = bengio if example == "bengio_lm" else gpt

    @jax.jit
    def step_fn(p, batch, key):
        key, use = jax.random.split(key)
        loss, grads = jax.value_and_grad(loss_of)(p, batch, use)
        return loss, grads, key

    state = {"key": jax.random.PRNGKey(0)}
    p = {name: jnp.asarray(params[name]) for name in names}
    batch = {name: jnp.asarray(value) for name, value in data.items()}
    jax.block_until_ready(step_fn(p, batch, state["key"]))  # compiled outside the timing

    def step():
        loss, grads, state["key"] = jax.block_until_ready(step_fn(p, batch, state["key"]))
        return float(loss), {name: np.asarray(g) for name, g in grads.items()}
    return step


# ------------------------------------------------------------------------------------ measurements

def difference(result, reference) -> float:
    """The largest difference of the loss and of every gradient, relative to each one's largest value."""
    (loss, grads), (ref_loss, ref_grads) = result, reference
    scale = {name: max(float(np.max(np.abs(value))), 1e-30) for name, value in ref_grads.items()}
    return max([abs(loss - ref_loss) / abs(ref_loss)]
               + [float(np.max(np.abs(np.asarray(grads[name], dtype=np.float64) - value))) / scale[name]
                  for name, value in ref_grads.items()])


def measure(example: str, dtype: str, batch: int, repeat: int, inner: int) -> dict:
    """Checks first (dropout off), then the median times of the three steps (dropout on)."""
    module, params, data = workload(example, dtype, batch)
    outputs, grads = module.gradients(**data, **params)  # dropout off in gradients()
    reference = (float(outputs["loss"]), grads)
    checks = {}
    for name, peer in (("PyTorch", torch_step), ("JAX jit", jax_step)):
        run = peer(example, module, params, data, dtype, dropout=False)
        if run is not None:
            checks[name] = difference(run(), reference)
    limit = 1e-10 if dtype == "float64" else 1e-4
    if any(value > limit for value in checks.values()):
        raise SystemExit(f"{example}, {dtype}: a peer's loss or gradients differ from graphcomp's: {checks}")
    runs = {"generated": generated_step(module, params, data),
            "PyTorch": torch_step(example, module, params, data, dtype),
            "JAX jit": jax_step(example, module, params, data, dtype)}
    runs = {name: run for name, run in runs.items() if run is not None}
    seconds = median_times(runs, repeat, inner)
    return {"seconds": seconds, "checks": checks, "faults": {name: page_faults(run) for name, run in runs.items()},
            "peak": peak_megabytes(runs["generated"])}


def page_faults(run, steps: int = 5) -> float:
    """Minor page faults per step: memory the step takes from the system afresh (where the C library
    returned the previous step's temporaries to it), each page zeroed by the kernel on first touch."""
    import resource

    run()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(steps):
        run()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / steps


def table(rows: dict, dtype: str) -> None:
    print(f"{'training step (' + dtype + ')':<60}{'generated ms':>13}{'PyTorch ms':>12}{'JAX jit ms':>12}"
          f"{'generated / PyTorch':>21}{'generated / JAX':>17}   page faults per step: generated / PyTorch / JAX"
          f"   generated step peak MB")
    for name, row in rows.items():
        seconds = row["seconds"]

        def ms(run):
            return f"{1000 * seconds[run]:.3f}" if run in seconds else "-"

        def ratio(run):
            return f"{seconds['generated'] / seconds[run]:.2f}" if run in seconds else "-"
        faults = " / ".join(f"{row['faults'][run]:.0f}" if run in row["faults"] else "-"
                            for run in ("generated", "PyTorch", "JAX jit"))
        print(f"{name:<60}{ms('generated'):>13}{ms('PyTorch'):>12}{ms('JAX jit'):>12}{ratio('PyTorch'):>21}"
              f"{ratio('JAX jit'):>17}   {faults:<45}   {row['peak']:.1f}")
    for name, row in rows.items():
        print(f"{name}: largest difference from graphcomp's loss and gradients (relative, dropout off): "
              + ", ".join(f"{run} {value:.1e}" for run, value in row["checks"].items()))


def profile(name: str, args) -> str:
    """The ten slowest lines of one example's generated step (`_gradients` with dropout, as timed above)."""
    inner = {"bengio_lm": 50, "tiny_gpt": 5}
    names = {f"{LABELS[example]}, batch {args.batch}": example for example in EXAMPLES}
    chosen = line_profile.choose(name, names)
    example = names[chosen]

    def run_of(module):
        step = generated_step(*workload(example, args.dtype, args.batch, module=module))
        return lambda: [step() for _ in range(inner[example])]
    model = gc.compile(EXAMPLES[example].build(), loss="loss", dtype=args.dtype)
    return line_profile.step_profile(f"{chosen} ({args.dtype})", model, run_of, inner[example], args.repeat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7, help="interleaved rounds; the median is reported")
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    parser.add_argument("--batch", type=int, default=32, help="examples per step (the examples train at 32)")
    parser.add_argument("--profile", metavar="NAME", help="print the ten slowest generated lines of one example's "
                        "step (a unique part of its name: Bengio, GPT) instead of the table")
    args = parser.parse_args()
    if args.profile:
        try:
            print(profile(args.profile, args))
        except line_profile.UnknownWorkload as error:
            parser.error(str(error))
        return
    rows = {f"{LABELS[example]}, batch {args.batch}": measure(example, args.dtype, args.batch, args.repeat, inner)
            for example, inner in (("bengio_lm", 50), ("tiny_gpt", 5))}
    table(rows, args.dtype)


if __name__ == "__main__":
    main()
