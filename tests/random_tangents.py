"""Forward mode on the random graphs of tests/random_graphs.py: each graph's loss gets its tangent along
a random direction of every leaf it is differentiated for (gc.jvp), compiled with and without
simplification; both must equal ⟨∇loss, v⟩ from reverse mode, which check_case holds to central
differences. Two derivatives made by different rules (the op table's jvp column, the formulas'
derivatives, the reverse rules transposed) that agree to rounding.

    python tests/random_tangents.py --graphs 2000
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import graphcomp as gc
from random_graphs import AGREEMENT, _same, _tame, random_case

sys.setrecursionlimit(10000)


def tangent_problems(seed: int) -> list[str]:
    """What is wrong with forward mode on the random graph of `seed` (nothing: an empty list)."""
    case = random_case(seed, new_ops=True)
    graph = case.graph.remapped({})
    leaves = [graph.leaves[name] for name in case.wrt]
    directions = [graph.input(f"v_{leaf.name}", leaf.shape) for leaf in leaves]
    graph.output("dot_loss", gc.jvp(graph.outputs["loss"], leaves, directions))
    rng = np.random.default_rng([seed, 3])
    arrays = dict(case.arrays)
    moved = {f"v_{leaf.name}": rng.normal(size=np.shape(case.arrays[leaf.name])) for leaf in leaves}
    problems = []
    for simplify in (False, True):
        try:
            module = gc.compile(graph, wrt=case.wrt, loss="loss", simplify=simplify, check_shapes=True).load()
            mode = {"training": True} if module.BUFFERS else {}
            with np.errstate(all="ignore"):
                outputs, grads = module.gradients(**arrays, **moved)
                tangent = module.forward(**mode, **arrays, **moved)["dot_loss"]
        except Exception as error:  # noqa: BLE001 - any failure is a finding
            return [f"simplify={simplify}: {type(error).__name__}: {error}"]
        if not _tame(outputs) or not _tame(grads):
            return []  # the graph overflows here: nothing to compare
        want = sum(float(np.sum(np.asarray(grads[name]) * moved[f"v_{name}"])) for name in case.wrt)
        if not _same(tangent, want, AGREEMENT * 100):
            problems.append(f"simplify={simplify}: jvp {tangent!r} but <grad, v> = {want!r}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--graphs", type=int, default=300)
    parser.add_argument("--start", type=int, default=0)
    args = parser.parse_args(argv)
    started, failed = time.perf_counter(), 0
    for seed in range(args.start, args.start + args.graphs):
        problems = tangent_problems(seed)
        if problems:
            failed += 1
            print(f"seed {seed}: " + "; ".join(problems), flush=True)
    print(f"{args.graphs} graphs in {time.perf_counter() - started:.0f} s: {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
