"""benchmarks/bench_compile.py --largest N: no graph or spec it times has more than N nodes."""
import subprocess
import sys
from pathlib import Path

import pytest

from graphcomp.frontend.spec import load

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import bench_compile  # noqa: E402 - the benchmark's own case lists


@pytest.mark.parametrize("largest", [50, 99, 400, 1003, 10003])
def test_largest_caps_every_graph_and_spec(largest, tmp_path):
    graphs = bench_compile.graph_cases(largest)
    sizes = [len(graph.nodes()) for _, graph in graphs]
    assert sizes and max(sizes) <= largest
    assert max(len(graph.nodes()) for label, graph in graphs if label.startswith("chain")) > largest - 8
    for label, text in bench_compile.specs(largest):
        (tmp_path / "spec.toml").write_text(text)
        assert len(load(tmp_path / "spec.toml").graph.nodes()) <= largest, label


def test_the_default_run_keeps_the_readme_sizes():
    sizes = {label: len(graph.nodes()) for label, graph in bench_compile.graph_cases(10003)}
    assert [sizes[f"chain {steps}"] for steps in (100, 250, 1000, 2500)] == [403, 1003, 4003, 10003]


def test_a_run_of_small_graphs_times_only_those():
    done = subprocess.run([sys.executable, str(BENCHMARKS / "bench_compile.py"), "--largest", "120"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines()[1:] if line.strip() and not line.startswith("spec")]
    assert rows and all(int(row[2]) <= 120 for row in rows), done.stdout
    refused = subprocess.run([sys.executable, str(BENCHMARKS / "bench_compile.py"), "--largest", "10"],
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "--largest must be at least 50" in refused.stderr
