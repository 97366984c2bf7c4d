"""The benchmarks' --profile (benchmarks/line_profile.py): it times the generated functions' own lines,
whatever the functions are called, without changing a value they compute; and bench_step.py's RNN on
gc.scan is the unrolled RNN's model, loss and gradients alike. No timing is asserted, only counts and
signs: the machine's speed is not the subject here."""
import argparse
import sys
import traceback
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import bench_step  # noqa: E402 - the benchmark's own models
import line_profile  # noqa: E402

import graphcomp as gc  # noqa: E402

STEPS, BATCH = 5, 4


def mlp():
    model = gc.compile(bench_step.build((6, 5, 3), "sigmoid"), loss="loss")
    rng = np.random.default_rng(1)
    data = {"x": rng.normal(size=(STEPS * BATCH, 6)), "labels": rng.integers(0, 3, size=STEPS * BATCH).astype(float)}
    return model, data


def one_epoch(data):
    def workload(module):
        module.train(module.init_params(seed=0), data, epochs=1, lr=0.1, batch_size=BATCH)
    return workload


def test_the_profile_names_the_lines_of_the_generated_step():
    model, data = mlp()
    result = line_profile.profile(model, one_epoch(data), repeat=2, overhead=0.0)
    # the first layer's product, in whichever generated function trains: a line of its own, or written
    # into an array with that line as its comment (the in-place step)
    (first,) = [line for line in result.lines if "t1 = x @ W1" in line.text]
    assert first.calls == 2 * STEPS and f"def {first.function}(" in model.source
    assert "t1 = x @ W1" in model.source.splitlines()[first.number - 1]
    gradient = [line for line in result.lines if "d_W1 = x.T @" in line.text]  # its weight's gradient
    assert len(gradient) == 1 and gradient[0].calls == 2 * STEPS
    assert all(line.seconds >= 0 for line in result.lines)
    assert [line.seconds for line in result.lines] == sorted((line.seconds for line in result.lines), reverse=True)

def test_the_instrumented_module_computes_the_same_numbers():
    model, data = mlp()
    module, table = line_profile.instrument(model.source)
    params = model.load().init_params(seed=0)
    batch = {name: value[:BATCH] for name, value in data.items()}
    outputs, grads = module.gradients(**batch, **params)
    plain_outputs, plain_grads = model.load().gradients(**batch, **params)
    assert float(outputs["loss"]) == float(plain_outputs["loss"])
    assert all(np.array_equal(grads[name], plain_grads[name]) for name in plain_grads)
    assert module.gradients.__doc__ == model.load().gradients.__doc__  # docstrings are not wrapped
    assert sum(table.calls) > 0


def test_the_lines_inside_a_scan_loop_are_timed_once_per_time_step():
    model = gc.compile(bench_step.rnn_scan_graph(steps=3, hidden=4, inputs=2), loss="loss")
    rng = np.random.default_rng(2)
    data = {"x": rng.normal(size=(BATCH, 3, 2)), "y": rng.normal(size=(BATCH, 1))}
    module, table = line_profile.instrument(model.source)
    params = {name: value + 0.1 for name, value in module.init_params(seed=0).items()}
    outputs, grads = module.gradients(**data, **params)
    plain_outputs, plain_grads = model.load().gradients(**data, **params)
    assert float(outputs["loss"]) == float(plain_outputs["loss"])
    assert all(np.array_equal(grads[name], plain_grads[name]) for name in plain_grads)
    lines = model.source.splitlines()
    timed = [line for line in table.lines(0.0) if line.function == "_gradients"]
    in_loop = [line for line in timed if _indent(lines[line.number - 1]) > 4]  # inside a `for` over time
    assert len(in_loop) >= 6 and {line.calls for line in in_loop} == {3}
    assert {line.calls for line in timed if line not in in_loop} == {1}
    assert any("@ Wh" in line.text for line in in_loop)


def _indent(text):
    return len(text) - len(text.lstrip())

def test_a_generated_function_of_any_name_is_timed_and_the_runtime_is_not():
    model, data = mlp()
    extra = "def _step_anything(xp, a):\n    b = a + 1\n    return b * 2\n\n\n"
    source = model.source.replace(line_profile.RUNTIME_MARK, extra + line_profile.RUNTIME_MARK, 1)
    module, table = line_profile.instrument(source)
    assert module._step_anything(np, 3) == 8
    module.train(module.init_params(seed=0), data, epochs=1, lr=0.1, batch_size=BATCH)
    functions = {line.function for line in table.lines(0.0)}
    assert "_step_anything" in functions
    assert functions - {"_step_anything", "init_params"}  # the step train() calls, whatever its name
    assert not functions & {"train", "_epoch", "_apply"}  # the runtime's time is the rest of the step


def test_an_error_in_the_instrumented_module_points_at_the_generated_line():
    model, _ = mlp()
    module, _ = line_profile.instrument(model.source)
    params = module.init_params(seed=0)
    with pytest.raises(ValueError) as raised:
        module._gradients(np, np.ones((2, 7)), np.zeros(2), *(params[name] for name in module.TRAINED))
    last = traceback.extract_tb(raised.value.__traceback__)[-1]  # the source's own line number and text
    assert last.name == "_gradients" and last.line.startswith("t1 = x @ W1")
    assert model.source.splitlines()[last.lineno - 1].strip() == last.line


def test_a_source_without_the_runtime_is_refused():
    with pytest.raises(ValueError, match="no line starting with '# The runtime'"):
        line_profile.instrument("def f(x):\n    return x\n")
    with pytest.raises(ValueError, match="already uses the profiler's names: _lp_start"):
        line_profile.instrument("def f(_lp_start):\n    return 1\n# The runtime\n")


def test_the_report_lists_ten_lines_and_splits_the_step():
    model, data = mlp()

    def epochs(module):
        params = module.init_params(seed=0)
        return lambda: module.train(params, data, epochs=1, lr=0.1, batch_size=BATCH)
    text = line_profile.step_profile("small MLP", model, epochs, STEPS, repeat=2)
    lines = text.splitlines()
    assert lines[0].startswith("small MLP: the 10 slowest generated lines over 10 steps")
    assert len(lines) == 13 and lines[-1].startswith("the 10 lines above:")
    assert any("x, W1" in line or "x @ W1" in line for line in lines[2:12])
    assert line_profile.timer_overhead(rounds=3, runs=1000) >= 0


def test_a_workload_is_chosen_by_a_unique_part_of_its_name():
    assert line_profile.choose("MLP 64-32-10 sigmoid", bench_step.NAMES) == "MLP 64-32-10 sigmoid, batch 64"
    assert line_profile.choose("on gc.scan", bench_step.NAMES) == bench_step.RNN_SCAN
    assert line_profile.choose("rnn 20 steps, hidden 64, batch 32", bench_step.NAMES) == bench_step.RNN
    with pytest.raises(line_profile.UnknownWorkload, match="matches 4 workloads"):
        line_profile.choose("MLP", bench_step.NAMES)
    with pytest.raises(line_profile.UnknownWorkload, match="matches no workload; the workloads are: 'MLP 64-32-10"):
        bench_step.profile("LSTM", "float64", 1)


def test_the_rnn_on_gc_scan_is_the_unrolled_rnn():
    unrolled = gc.compile(bench_step.rnn_graph(steps=4, hidden=5, inputs=3), loss="loss").load()
    looped = gc.compile(bench_step.rnn_scan_graph(steps=4, hidden=5, inputs=3), loss="loss").load()
    rng = np.random.default_rng(3)
    params = {name: 0.5 * rng.normal(size=value.shape) for name, value in unrolled.init_params(seed=0).items()}
    data = {"x": rng.normal(size=(6, 4, 3)), "y": rng.normal(size=(6, 1))}
    (outputs, grads), (loop_outputs, loop_grads) = unrolled.gradients(**data, **params), looped.gradients(**data, **params)
    assert set(grads) == set(loop_grads) == set(params)
    assert abs(float(outputs["loss"]) - float(loop_outputs["loss"])) <= 1e-10
    assert all(np.max(np.abs(grads[name] - loop_grads[name])) <= 1e-10 for name in grads)
    assert all(np.abs(grads[name]).max() > 1e-6 for name in grads)  # every gradient is exercised


def test_bench_loops_profiles_its_own_workloads():
    import bench_loops
    args = argparse.Namespace(rnn_steps=3, lstm_steps=3, checkpoint=2, repeat=1)
    assert line_profile.choose("unrolled", bench_loops.profiled(args)) == "RNN T=3 unrolled, hidden 64, batch 32"
    lines = bench_loops.profile("checkpoint", args).splitlines()
    assert lines[0].startswith("LSTM T=3 checkpoint=2, hidden 64, batch 32: the 10 slowest generated lines over 2 steps")
    assert len(lines) == 13


def test_bench_lm_profiles_the_bengio_step():
    import bench_lm
    args = argparse.Namespace(batch=8, dtype="float64", repeat=1)
    lines = bench_lm.profile("bengio", args).splitlines()
    assert lines[0].startswith("Bengio MLP (context 3, hidden 200, batch norm), batch 8 (float64): the 10 slowest")
    assert any("_take_grad" in line for line in lines)  # the embedding's gradient: the step's own lines
