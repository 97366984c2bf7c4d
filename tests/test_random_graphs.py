"""The random-graph differential test (tests/random_graphs.py) over a fixed range of seeds; every
module it runs checks each value's shape against the graph's (check_shapes).

GRAPHCOMP_RANDOM_GRAPHS sets how many (default 300); the longer run is
`python tests/random_graphs.py --graphs 2000`.
"""
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import graphcomp as gc
from random_graphs import check_case, random_case, report

GRAPHS = int(os.environ.get("GRAPHCOMP_RANDOM_GRAPHS", "300"))


@pytest.mark.parametrize("seed", range(GRAPHS))
def test_random_graph_agrees_with_finite_differences_with_and_without_simplification(seed):
    case = random_case(seed)
    outcome = check_case(case)
    assert not outcome.problems, report(case, outcome)


def test_random_graphs_cover_every_op_and_are_mostly_checkable():
    """The generator reaches every op users can call, and few graphs escape the comparison."""
    seen, compared = set(), 0
    for seed in range(100):
        case = random_case(seed)
        seen.update(node.op for node in case.graph.nodes())
        outcome = check_case(case)
        compared += not outcome.degenerate and not outcome.unsmooth
    user_ops = {"add", "sub", "mul", "div", "pow", "neg", "exp", "log", "tanh", "sigmoid", "relu", "leaky_relu",
                "maximum", "minimum", "sqrt", "abs", "softplus", "matmul", "transpose", "sum", "mean", "max", "min",
                "reshape", "index", "concat", "one_hot", "logsumexp", "log_softmax", "softmax",
                "softmax_cross_entropy", "conv2d", "max_pool2d", "dropout_mask"}
    assert user_ops <= seen, f"never generated: {sorted(user_ops - seen)}"
    assert compared >= 90, f"only {compared} of 100 graphs compared against finite differences"


def test_a_random_graph_compiles_to_the_same_source_twice():
    case = random_case(7)
    for check_shapes in (False, True):  # check_case compiles with the shape checks on
        first, second = (gc.compile(case.graph, wrt=case.wrt, check_shapes=check_shapes).source for _ in range(2))
        assert first == second
        assert ("_expect_shape(" in first) == check_shapes


@settings(max_examples=25, deadline=None, derandomize=True, database=None)
@given(seed=st.integers(min_value=10_000, max_value=10**9))
def test_hypothesis_drawn_random_graphs_keep_the_contract(seed):
    """Seeds drawn by hypothesis beyond the fixed range: it shrinks a failure to the smallest seed."""
    case = random_case(seed)
    outcome = check_case(case)
    assert not outcome.problems, report(case, outcome)
