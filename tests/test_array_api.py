"""Nothing outside the Array API standard is emitted: every op and every example network gives the
same outputs and gradients through array-api-strict (the standard's reference implementation, which
refuses anything the standard lacks) as through NumPy, in float64 to 1e-10; and through PyTorch's CPU
tensors and Dask arrays where those are installed."""
import functools
import importlib.util
from pathlib import Path

import array_api_strict
import numpy as np
import pytest

import graphcomp as gc
from graphcomp.frontend.cli import _compiled, read_spec
from test_op_gradients import CASES, concrete

array_api_strict.set_array_api_strict_flags(api_version="2024.12")
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SPECS = sorted(p for p in EXAMPLES.iterdir() if p.suffix in (".toml", ".py") and p.stem not in ("example_data", "make_shapes", "dask_cluster", "backends"))
TORCH = importlib.util.find_spec("torch") is not None
DASK = importlib.util.find_spec("dask") is not None


def as_strict(value):
    """A float64 array of array-api-strict; integer ids stay integers."""
    if np.issubdtype(np.asarray(value).dtype, np.integer):
        return array_api_strict.asarray(value)
    return array_api_strict.asarray(value, dtype=array_api_strict.float64)


def same_results(module, arrays: dict, convert) -> None:
    """gradients() on NumPy arrays and on `convert`ed ones agree, and the latter are that library's."""
    want_outputs, want_grads = module.gradients(**arrays)
    got_outputs, got_grads = module.gradients(**{name: convert(value) for name, value in arrays.items()})
    for want, got in [(want_outputs, got_outputs), (want_grads, got_grads)]:
        assert set(want) == set(got)
        for name in want:
            assert isinstance(got[name], float) or not isinstance(got[name], np.ndarray), name
            np.testing.assert_allclose(np.asarray(got[name]), want[name], rtol=1e-10, atol=1e-12, err_msg=name)


@functools.cache
def example_module(spec_path: Path):
    """An example's generated module, compiled once for every library it is run on."""
    return _compiled(read_spec(str(spec_path))).load()


@functools.cache
def case_module(case: int):
    """(module, operands, output) of CASES[case], compiled once for every library it is run on."""
    _, shapes, build, _ = CASES[case]
    return op_module(shapes, build)


def op_module(shapes, build):
    g = gc.Graph("case")
    operands = [g.input(name, shape) for name, shape in zip("abcd", shapes)]
    out = build(*operands)
    g.output("out", out)
    g.output("loss", gc.sum(out * g.input("r", out.shape)))
    return gc.compile(g, loss="loss", wrt=[x.name for x in operands]).load(), operands, out


def op_arrays(operands, out, domain):
    rng = np.random.default_rng(0)
    arrays = {x.name: rng.uniform(*domain, size=concrete(x.shape)) for x in operands}
    arrays["r"] = rng.normal(size=concrete(out.shape))
    return arrays


@pytest.mark.parametrize("case", range(len(CASES)), ids=[c[0] for c in CASES])
def test_every_op_computes_within_the_standard(case):
    module, operands, out = case_module(case)
    same_results(module, op_arrays(operands, out, CASES[case][3]), as_strict)


def example_arrays(module, seed=0):
    """Random inputs for an example (class labels and ids where it takes them), and its initial params."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for name, shape in module.INPUTS.items():
        size = tuple(4 if d is None else 5 if isinstance(d, str) else d for d in shape)  # "T": 5 steps
        if name in module.INTEGERS:  # ids: integers below the rows (or classes) they pick
            dtype, rows = module.INTEGERS[name]
            arrays[name] = rng.integers(0, rows or 1, size=size).astype(dtype)
        else:
            arrays[name] = (rng.integers(0, module.LABELS[name], size=size).astype(float) if name in module.LABELS
                            else rng.normal(size=size))
    return {**arrays, **module.init_params(seed)}


@pytest.mark.parametrize("spec_path", SPECS, ids=lambda path: path.name)
def test_every_example_network_computes_within_the_standard(spec_path):
    module = example_module(spec_path)
    same_results(module, example_arrays(module), as_strict)


def test_training_on_strict_arrays_matches_numpy():
    module = example_module(EXAMPLES / "xor.toml")
    data = {"x": np.array([[0.0, 0], [0, 1], [1, 0], [1, 1]]), "y": np.array([[0.0], [1], [1], [0]])}
    settings = dict(epochs=5, lr=0.5, batch_size=2, optimizer="adam")
    want, want_losses = module.train(module.init_params(0), data, **settings)
    got, got_losses = module.train(module.init_params(0), {k: as_strict(v) for k, v in data.items()}, **settings)
    assert array_api_strict.__name__ in type(got["W1"]).__module__  # the params stay in the library computed with
    np.testing.assert_allclose(got_losses, want_losses, rtol=1e-10)
    for name in want:
        np.testing.assert_allclose(np.asarray(got[name]), want[name], rtol=1e-10, atol=1e-12)


def test_a_bad_backend_is_named():
    module = example_module(EXAMPLES / "xor.toml")
    with pytest.raises(ValueError, match="backend must be one of numpy, torch, cupy, jax, dask, got 'tpu'"):
        module.train(module.init_params(0), {"x": np.zeros((2, 2)), "y": np.zeros((2, 1))}, epochs=1, lr=0.1,
                     batch_size=2, backend="tpu")


# ---- optional libraries: run where installed -------------------------------------------------------

@pytest.mark.skipif(not TORCH, reason="PyTorch is not installed (pip install torch)")
@pytest.mark.parametrize("spec_path", SPECS, ids=lambda path: path.name)
def test_torch_cpu_tensors_give_the_numpy_results(spec_path):
    import torch
    module = example_module(spec_path)
    same_results(module, example_arrays(module), lambda value: torch.asarray(np.asarray(value)))


@pytest.mark.skipif(not TORCH, reason="PyTorch is not installed (pip install torch)")
def test_train_on_the_torch_backend():
    module = example_module(EXAMPLES / "xor.toml")
    data = {"x": np.array([[0.0, 0], [0, 1], [1, 0], [1, 1]]), "y": np.array([[0.0], [1], [1], [0]])}
    settings = dict(epochs=5, lr=0.5, batch_size=2, optimizer="momentum", weight_decay=0.01)
    want, want_losses = module.train(module.init_params(0), data, **settings)
    got, got_losses = module.train(module.init_params(0), data, backend="torch", **settings)
    assert type(got["W1"]).__module__ == "torch"
    np.testing.assert_allclose(got_losses, want_losses, rtol=1e-10)


@pytest.mark.skipif(not DASK, reason="Dask is not installed (pip install 'dask[array]')")
def test_dask_chunked_data_gives_the_numpy_gradients_and_training():
    import dask.array as da
    module = example_module(EXAMPLES / "digits.toml")
    rng = np.random.default_rng(0)
    data = {"x": rng.uniform(0, 16, size=(60, 64)), "labels": rng.integers(0, 10, size=60).astype(float)}
    params = module.init_params(0)
    chunked = {name: da.from_array(value, chunks=(20,) + value.shape[1:]) for name, value in data.items()}
    same_results(module, {**data, **params}, lambda value: da.from_array(np.asarray(value)))
    settings = dict(epochs=3, lr=0.1, batch_size=60, optimizer="sgd")  # full batch: gradients across the chunks
    want, want_losses = module.train(params, data, **settings)
    got, got_losses = module.train(params, chunked, **settings)
    assert isinstance(got["W1"], np.ndarray)  # the params stay NumPy; only the data is chunked
    np.testing.assert_allclose(got_losses, want_losses, rtol=1e-10)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("seed, steps", [*((seed, None) for seed in (*range(60), 1025, 1115, 1174, 1180, 1380, 3048)),
                                         (100108, 25)])
def test_random_graphs_compute_within_the_standard(seed, steps):
    """The random-graph generator's DAGs (every op, fan-out, broadcasting, slicing, conv and pooling,
    second derivatives) through array-api-strict, compiled simplified and as written; the seeds past 60
    once failed there (a condition shared by sympy.cse, Python numbers from counts of examples, a
    function of constants alone)."""
    from random_graphs import random_case
    case = random_case(seed, steps)
    for simplify in (True, False):
        module = gc.compile(case.graph, wrt=case.wrt, loss="loss", simplify=simplify).load()
        with np.errstate(all="ignore"):
            want_outputs, want_grads = module.gradients(**case.arrays)
        if not all(np.all(np.isfinite(v)) for v in [*want_outputs.values(), *want_grads.values()]):
            continue  # overflow in float64: nothing to compare
        got_outputs, got_grads = module.gradients(**{k: as_strict(v) for k, v in case.arrays.items()})
        for name in want_grads:
            np.testing.assert_allclose(np.asarray(got_grads[name]), want_grads[name], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(float(got_outputs["loss"]), want_outputs["loss"], rtol=1e-9, atol=1e-12)


@pytest.mark.skipif(not DASK or importlib.util.find_spec("distributed") is None,
                    reason="Dask's distributed scheduler is not installed (pip install distributed)")
def test_the_dask_cluster_example_trains_as_numpy_does():
    import subprocess
    import sys
    result = subprocess.run([sys.executable, str(EXAMPLES / "dask_cluster.py"), "--epochs", "3"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    numpy_line, dask_line = (line.split(" in ")[0].split(":")[1] for line in lines[1:3])
    assert numpy_line.strip() == dask_line.strip()  # the same losses, to the printed digits
    assert float(lines[3].split(": ")[1]) < 1e-12


JAX = importlib.util.find_spec("jax") is not None


def as_jax(value):
    import jax
    jax.config.update("jax_enable_x64", True)  # float64, as the module's DTYPE
    import jax.numpy as jnp
    return jnp.asarray(np.asarray(value))


@pytest.mark.skipif(not JAX, reason="JAX is not installed (pip install jax)")
@pytest.mark.parametrize("spec_path", SPECS, ids=lambda path: path.name)
def test_jax_arrays_give_the_numpy_results(spec_path):
    """JAX arrays cannot be assigned into: the gradients of slicing, convolution and pooling add into
    their arrays through JAX's .at instead."""
    module = example_module(spec_path)
    same_results(module, example_arrays(module), as_jax)


@pytest.mark.skipif(not JAX, reason="JAX is not installed (pip install jax)")
@pytest.mark.parametrize("case", range(len(CASES)), ids=[c[0] for c in CASES])
def test_every_op_on_jax_arrays(case):
    module, operands, out = case_module(case)
    same_results(module, op_arrays(operands, out, CASES[case][3]), as_jax)
