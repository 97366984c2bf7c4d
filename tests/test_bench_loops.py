"""benchmarks/bench_loops.py checks itself before it times: its hand-written BPTT of the RNN and of the
LSTM gives the gradients of the modules graphcomp generates (gc.scan, gc.lstm, the unrolled RNN), to 1e-10.
Here on 3 steps, as the benchmark does on 20 and 100."""
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import bench_loops  # noqa: E402 - the benchmark's own models and baselines


@pytest.mark.parametrize("kind, unrolled, checkpoint", [("rnn", False, None), ("rnn", True, None), ("lstm", False, None),
                                                        ("lstm", False, 2)])
def test_hand_written_bptt_gives_the_generated_gradients(kind, unrolled, checkpoint):
    generated, params, data = bench_loops.workload(kind, 3, unrolled=unrolled, checkpoint=checkpoint)
    loss, grads = bench_loops.by_hand(kind, params, data)()
    assert set(grads) == set(params)
    assert all(np.abs(g).max() > 1e-6 for g in grads.values())  # every gradient is exercised
    assert bench_loops.difference(generated(), (loss, grads)) <= 1e-10


def test_a_wrong_gradient_is_caught():
    generated, params, data = bench_loops.workload("rnn", 3)
    loss, grads = bench_loops.by_hand("rnn", params, data)()
    grads["Wh"] = grads["Wh"] * (1 + 1e-8)
    assert bench_loops.difference(generated(), (loss, grads)) > 1e-10
