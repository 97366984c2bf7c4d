"""Compile time against graph size: elementwise chains, wide sums of independent terms, MLPs (up to 100
layers) and unrolled RNNs of growing size, and TOML specs of chains (written last entry first) and wide sums.

Run: python benchmarks/bench_compile.py [--largest 10003] [--only graphs|specs] [--repeat 1]
--largest N caps every graph and spec timed at N nodes: the longest chain, the widest sum and the spec
chains have about N nodes, the wide specs are sized to fit, and a fixed-size graph larger than N is left
out. --repeat K compiles each graph K times and prints the median.
Prints one row per graph: its node count, seconds to compile (simplified, and as written), and
milliseconds per node; a spec's row also gives the seconds to read it (TOML, expressions, names and
shapes checked: what every graphcomp command does first) and what `graphcomp check` takes beyond
compiling. Compile time is linear in graph size when the per-node figure stays flat as the graphs
grow; timings are noisy, so compare the per-node column, not single seconds.
"""
import argparse
import statistics
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


def wide(terms: int) -> gc.Graph:
    """`terms` independent terms x * k + w (k from 1.0001 up), added one after the other: 4 nodes a term,
    every one elementwise, so the whole graph below the loss is one fusion candidate, but wide, not deep."""
    g = gc.Graph("wide")
    x, w = g.input("x", (None, 4)), g.param("w", (4,))
    total = None
    for k in range(1, terms + 1):
        term = x * (1 + k / 10000) + w
        total = term if total is None else total + term
    g.output("loss", gc.sum(total))
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


def seconds(graph: gc.Graph, simplify: bool, repeat: int = 1, **options) -> float:
    """The median of `repeat` compiles' wall-clock seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        gc.compile(graph, simplify=simplify, **options)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def specs(largest: int) -> list[tuple[str, str]]:
    """(label, TOML text), each of at most `largest` nodes: the chain above as a spec (4 nodes an entry)
    and a chain of additions (1 node an entry), both written last entry first; terms x + k summed (3
    nodes a term); and a hundredth as many terms tanh(x * k + w), each a formula of its own (5 a term)."""
    chain_entries, add_entries, terms = (largest - 3) // 4, largest - 3, (largest - 1) // 3
    cases = [(f"chain spec {chain_entries}", chain_spec(chain_entries, reverse=True)) if chain_entries >= 1 else None,
             (f"add spec {add_entries}", chain_spec(add_entries, reverse=True, steps=("{h} + w",))),
             (f"wide spec {terms}", wide_spec(terms, term="x + {k}")),
             (f"tanh spec {terms // 100}", wide_spec(terms // 100)) if terms >= 100 else None]
    return [case for case in cases if case is not None]


def graph_cases(largest: int) -> list[tuple[str, gc.Graph]]:
    """(label, graph) of every graph timed: chains up to about `largest` nodes (4 a step, and 3), wide sums
    as large (4 a term, and 2), MLPs of up to 100 layers and RNNs; none of more than `largest` nodes."""
    steps = sorted({size for size in (25, 100, 250, 1000) if 4 * size + 3 <= largest} | {(largest - 3) // 4} - {0})
    built = [(f"chain {size}", chain(size)) for size in steps]
    built += [(f"wide {size}", wide(size)) for size in steps]
    built += [(f"mlp {layers}", mlp(layers)) for layers in (2, 8, 32, 100)]
    built += [(f"rnn {size}", rnn(size)) for size in (5, 20, 80)]
    return [(label, graph) for label, graph in built if len(graph.nodes()) <= largest]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--largest", type=int, default=10003, help="the most nodes a graph or spec timed has: the "
                        "longest chain has about this many, larger fixed-size graphs are left out (default 10003)")
    parser.add_argument("--only", choices=("graphs", "specs"), help="time only the graphs built in Python, or only the specs")
    parser.add_argument("--repeat", type=int, default=1, help="compiles of each graph, the median printed (default 1)")
    args = parser.parse_args()
    if args.largest < 50:
        parser.error(f"--largest must be at least 50 (nodes), got {args.largest}")
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1, got {args.repeat}")
    if args.only != "specs":
        graphs(args.largest, args.repeat)
    if args.only != "graphs":
        spec_files(args.largest)


def graphs(largest: int, repeat: int = 1) -> None:
    print(f"{'graph':<14}{'nodes':>8}{'simplified s':>15}{'as written s':>15}{'ms/node':>10}")
    for label, graph in graph_cases(largest):
        nodes = len(graph.nodes())
        fused, literal = seconds(graph, True, repeat), seconds(graph, False, repeat)
        print(f"{label:<14}{nodes:>8}{fused:>15.2f}{literal:>15.2f}{1000 * fused / nodes:>10.2f}", flush=True)


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
            if nodes > largest:  # specs() sizes each to fit: never taken, but the cap is a promise
                print(f"{label:<20}{nodes:>8}  left out: more than --largest {largest} nodes", flush=True)
                continue
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
