"""Derivations of graphs where a use carries no gradient (stop_gradient, a dropout mask), and of models
with integer inputs (token ids): each value gets one step, and the steps' arrays are the module's."""
import numpy as np
import pytest

import graphcomp as gc
from graphcomp.frontend.cli import read_spec


def test_a_use_through_stop_gradient_has_no_path_and_the_derivation_says_so_once():
    g = gc.Graph("stopped")
    x = g.input("x", (3,))
    g.output("loss", gc.sum(x * gc.stop_gradient(x)))
    model = gc.compile(g, wrt=["x"])
    at = {"x": np.array([1.0, -2.0, 3.0])}
    derived = model.derivation(at=at)
    targets = [step.target for step in derived.steps]
    assert len(targets) == len(set(targets))  # one step per value
    d_x = derived.step("d_x" if "d_x" in targets else "x")
    assert len(d_x.terms) == 1  # only the use that is not stopped carries gradient
    _, grads = model.load().gradients(**at)
    np.testing.assert_allclose(d_x.array, grads["x"])
    np.testing.assert_allclose(d_x.array, at["x"])  # d(x * stop(x))/dx = stop(x)


def test_a_dropout_masks_use_has_no_path_and_the_gradient_below_it_is_the_modules():
    g = gc.Graph("masked")
    x, W = g.input("x", (None, 3)), g.param("W", (3, 2))
    h = x @ W
    g.output("loss", gc.sum(gc.dropout(h, 0.5)))  # h * dropout_mask(h)
    model = gc.compile(g)
    rng = np.random.default_rng(1)
    at = {"x": rng.normal(size=(4, 3)), "W": rng.normal(size=(3, 2))}
    derived = model.derivation(at=at)
    targets = [step.target for step in derived.steps]
    assert len(targets) == len(set(targets))
    (w_step,) = [step for step in derived.steps if step.target == "W"]
    _, grads = model.load().gradients(**at)
    np.testing.assert_allclose(w_step.array, grads["W"])  # no mask outside training: x^T 1
    np.testing.assert_allclose(w_step.array, at["x"].T @ np.ones((4, 2)))


IDS_SPEC = """import graphcomp as gc
g = gc.Graph("bag")
ids, y = g.input("ids", (None, 3), dtype="int64"), g.input("y", (None, 4))
E, W = g.param("E", (10, 4)), g.param("W", (4, 4))
g.output("loss", gc.mse(gc.mean(gc.take(E, ids), axis=1) @ W, y))
"""


def ids_model(tmp_path):
    spec = tmp_path / "bag.py"
    spec.write_text(IDS_SPEC, encoding="utf-8")
    rng = np.random.default_rng(3)
    at = {"ids": rng.integers(0, 10, size=(5, 3)), "y": rng.normal(size=(5, 4)),
          "E": rng.normal(size=(10, 4)), "W": rng.normal(size=(4, 4))}
    return spec, gc.compile(read_spec(str(spec)).graph), at


def test_a_derivation_keeps_token_ids_integer_and_its_gradients_are_the_modules(tmp_path):
    _, model, at = ids_model(tmp_path)
    _, grads = model.load().gradients(**at)
    for given in (at["ids"], at["ids"].astype(float)):  # whole numbers given as floats are ids too
        derived = model.derivation(at={**at, "ids": given})
        assert derived.values["ids"].dtype.kind == "i"
        np.testing.assert_array_equal(derived.values["ids"], at["ids"])
        np.testing.assert_allclose(derived.step("E").array, grads["E"])
        np.testing.assert_allclose(derived.step("W").array, grads["W"])


def test_a_derivation_refuses_ids_that_are_not_whole_numbers(tmp_path):
    _, model, at = ids_model(tmp_path)
    with pytest.raises(gc.GraphError, match="ids"):
        model.derivation(at={**at, "ids": at["ids"] + 0.5})


def test_graphcomp_grad_and_report_at_a_data_file_with_ids(tmp_path, capsys):
    from graphcomp.frontend.cli import main
    spec, model, at = ids_model(tmp_path)
    np.savez(tmp_path / "data.npz", ids=at["ids"], y=at["y"])
    assert main(["grad", str(spec), "--at", str(tmp_path / "data.npz"), "--params", "init:0"]) == 0
    lines = capsys.readouterr().out.splitlines()
    (e_line,) = [line for line in lines if line.startswith("d_E = ")]
    assert "scatter_add" in e_line and "ids" in e_line
    module = model.load()
    _, grads = module.gradients(ids=at["ids"], y=at["y"], **module.init_params(0))
    (w_line,) = [line for line in lines if line.startswith("d_W = ")]
    shown = [[float(v) for v in row.split()] for row in w_line.split(" = [")[-1].rstrip("]").split("; ")]
    np.testing.assert_allclose(shown, grads["W"], rtol=1e-3, atol=1e-6)
    np.savez(tmp_path / "all.npz", **at)
    out = tmp_path / "report.md"
    assert main(["report", str(spec), "--at", str(tmp_path / "all.npz"), "-o", str(out)]) == 0
    assert "d_E" in out.read_text(encoding="utf-8")
