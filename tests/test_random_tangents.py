"""Forward mode on the random graphs (tests/random_tangents.py): gc.jvp of each graph's loss along a random
direction equals ⟨∇loss, v⟩ from reverse mode, compiled as written and simplified.

GRAPHCOMP_RANDOM_TANGENTS sets how many (default 80); the longer run is
`python tests/random_tangents.py --graphs 2000`.
"""
import os

import pytest

from random_tangents import tangent_problems

GRAPHS = int(os.environ.get("GRAPHCOMP_RANDOM_TANGENTS", "80"))


@pytest.mark.parametrize("seed", range(GRAPHS))
def test_random_graph_tangent_agrees_with_reverse_mode(seed):
    assert tangent_problems(seed) == []
