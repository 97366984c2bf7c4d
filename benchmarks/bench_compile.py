"""Compile time against graph size: elementwise chains, MLPs and unrolled RNNs of growing size, and
TOML specs of chains (written last entry first) and wide sums.

Run: python benchmarks/bench_compile.py [--largest 10000] [--only graphs|specs]
Prints one row per graph: its node count, seconds to compile (simplified, and as written), and
milliseconds per node; a spec's row also gives the seconds to read it (TOML, expressions, names and
shapes checked: what every graphcomp command does first) and what `graphcomp check` takes beyond
compiling. Compile time is linear in graph size when the per-node figure stays flat as the graphs
grow; timings are noisy, so compare the per-node column, not single seconds.
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

import graphcomp as gc
from graphcomp.frontend.cli import spec_gradient_errors
from graphcomp.frontend.spec import load

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_large_specs import chain_spec, wide_spec  # noqa: E402 - the spec generators the tests use


def chain(steps: int) -> gc.Graph:
    """An elementwise chain alternating h*1.01 + w and tanh(h)*0.9 + 0.1: one long fusion candidate."""
    g = gc.Graph("chain")
    x, w = g.input("x", (None, 4)), g.param("w", (4,))
    h = x
    for k in range(steps):
        h = h * 1.01 + w if k % 2 == 0 else gc.tanh(h) * 0.9 + 0.1
    g.output("loss", gc.sum(h))
    return g


def mlp(layers: int) -> gc.Graph:
    g = gc.Graph("mlp")
    x, labels = g.input("x", (None, 16)), g.input("labels", (None,))
    logits = g.output("logits", gc.mlp(g, x, [16] * layers + [4], activation="tanh"))
    g.output("loss", gc.softmax_cross_entropy(logits, labels))
    return g


def rnn(steps: int) -> gc.Graph:
    g = gc.Graph("rnn")
    x, y = g.input("x", (None, steps, 2)), g.input("y", (None, 1))
    Wx, Wh, b = g.param("Wx", (2, 8)), g.param("Wh", (8, 8)), g.param("b", (8,))
    Wy = g.param("Wy", (8, 1))
    h = gc.tanh(x[:, 0, :] @ Wx + b)
    for t in range(1, steps):
        h = gc.tanh(x[:, t, :] @ Wx + h @ Wh + b)
    g.output("loss", gc.mse(h @ Wy, y))
    return g


def seconds(graph: gc.Graph, simplify: bool, **options) -> float:
    start = time.perf_counter()
    gc.compile(graph, simplify=simplify, **options)
    return time.perf_counter() - start


def specs(largest: int) -> list[tuple[str, str]]:
    """(label, TOML text): the chain above as a spec, and one of `largest` additions, both written last
    entry first; `largest` terms x + k summed; and fewer terms tanh(x * k + w), each a formula of its own."""
    return [(f"chain spec {largest // 4}", chain_spec(largest // 4, reverse=True)),
            (f"add spec {largest}", chain_spec(largest, reverse=True, steps=("{h} + w",))),
            (f"wide spec {largest}", wide_spec(largest, term="x + {k}")),
            (f"tanh spec {largest // 100}", wide_spec(largest // 100))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--largest", type=int, default=10000, help="node count of the largest chain (default 10000)")
    parser.add_argument("--only", choices=("graphs", "specs"), help="time only the graphs built in Python, or only the specs")
    args = parser.parse_args()
    if args.only != "specs":
        graphs(args.largest)
    if args.only != "graphs":
        spec_files(args.largest)


def graphs(largest: int) -> None:
    cases = [("chain", chain, steps) for steps in (25, 100, 250, 1000, largest // 4)]
    cases += [("mlp", mlp, layers) for layers in (2, 8, 32)]
    cases += [("rnn", rnn, steps) for steps in (5, 20, 80)]
    print(f"{'graph':<14}{'nodes':>8}{'simplified s':>15}{'as written s':>15}{'ms/node':>10}")
    for name, build, size in cases:
        graph = build(size)
        nodes = len(graph.nodes())
        fused, literal = seconds(graph, True), seconds(graph, False)
        print(f"{name + ' ' + str(size):<14}{nodes:>8}{fused:>15.2f}{literal:>15.2f}{1000 * fused / nodes:>10.2f}", flush=True)


def spec_files(largest: int) -> None:
    print(f"\n{'spec':<20}{'nodes':>8}{'read s':>9}{'simplified s':>15}{'as written s':>15}{'ms/node':>10}"
          f"{'check s':>10}")
    with tempfile.TemporaryDirectory() as folder:
        for label, text in specs(largest):
            path = Path(folder) / "spec.toml"
            path.write_text(text)
            start = time.perf_counter()
            spec = load(path)
            read = time.perf_counter() - start
            nodes = len(spec.graph.nodes())
            options = dict(loss=spec.loss, wrt=["x", "w"])
            fused, literal = seconds(spec.graph, True, **options), seconds(spec.graph, False, **options)
            check = check_seconds(spec)
            print(f"{label:<20}{nodes:>8}{read:>9.2f}{fused:>15.2f}{literal:>15.2f}{1000 * fused / nodes:>10.2f}"
                  f"{check:>10.2f}", flush=True)


def check_seconds(spec) -> float:
    """What `graphcomp check` adds to compiling the spec as it says: the module imported, its gradients
    against central differences (two forward runs per number of each leaf differentiated)."""
    model = gc.compile(spec.graph, wrt=spec.wrt, loss=spec.loss)
    start = time.perf_counter()
    spec_gradient_errors(model, spec)
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
