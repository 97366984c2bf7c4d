"""Random graphs extended to gc.jacobian and gc.hessian (tests/random_jacobians.py): their matrices, in
both modes, against central differences; the graphs are those tests/random_graphs.py builds, seed for seed."""
import os

from random_graphs import random_case
from random_jacobians import check, jacobian_case, report

GRAPHS = int(os.environ.get("GRAPHCOMP_RANDOM_JACOBIANS", "30"))


def test_random_jacobians_and_hessians_agree_with_central_differences():
    matrices, modes, hessians = 0, set(), 0
    for seed in range(GRAPHS):
        jc = check(jacobian_case(seed))
        assert not jc.problems, report(jc)
        matrices += len(jc.matrices)
        modes |= {m.output.rsplit("_", 1)[-1] for m in jc.matrices if not m.hessian}
        hessians += sum(m.hessian for m in jc.matrices)
    assert modes == {"forward", "reverse"} and matrices >= GRAPHS and hessians >= GRAPHS // 10


def test_a_seed_builds_the_graph_it_always_built():
    for seed in range(20):
        assert jacobian_case(seed).case.code == random_case(seed, new_ops=True).code
