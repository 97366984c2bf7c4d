"""benchmarks/bench_jacobian.py checks itself before it times: the generated module, JAX jit and torch.func
give the same Hessian and Jacobians to 1e-10 (the benchmark's `run` asserts it), and the matrices are
computed without a loop."""
import re
import sys
from pathlib import Path

import numpy as np

import graphcomp as gc

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import bench_jacobian  # noqa: E402 - the benchmark's own workloads


def test_the_benchmark_compares_equal_matrices_computed_without_loops():
    rng = np.random.default_rng(3)
    workloads = [("hessian", *bench_jacobian.logistic_regression(40, rng)), ("mlp_x", *bench_jacobian.mlp("x", rng)),
                 ("mlp_W1", *bench_jacobian.mlp("W1", rng))]
    for workload, graph, arrays in workloads:
        source = gc.compile(graph, runtime=False).source
        assert not re.search(r"^ +for \w+ in ", source[source.index("def forward"):source.index("def gradients")], re.M)
        times = bench_jacobian.run(workload, graph, arrays, repeat=1)
        assert set(times) == {"graphcomp", "JAX jit", "torch.func"} and all(t > 0 for t in times.values())
