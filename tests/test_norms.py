"""Layer norm and batch norm: values and gradients against PyTorch's autograd in float64 (to 1e-10) and
central differences, at several shapes; the printed gradient of batch norm is the lecture's closed
form, read back by the independent LaTeX reader; bad input gets one clear error each."""
import ast
import py_compile
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import graphcomp as gc
from gradcheck import check_gradients
from graphcomp.formulas.symbols import symbol
from latex_reader import Reader, equations

BATCH = 4


def normed(kind: str, shape: tuple, scale_shape: tuple, **options):
    """A graph whose loss weights kind(x, gamma, beta) by a fixed random r: every output position counts."""
    g = gc.Graph(kind)
    x, r = g.input("x", shape), g.input("r", shape)
    gamma, beta = g.param("gamma", scale_shape), g.param("beta", scale_shape)
    y = g.let("y", getattr(gc, kind)(x, gamma, beta, **options))
    g.output("y", y)
    g.output("loss", gc.sum(y * r))
    return g, y


def arrays_for(g, batch: int = BATCH, seed: int = 0, length: int = 3) -> dict:
    rng = np.random.default_rng(seed)
    sizes = {None: batch, "T": length}
    return {name: rng.normal(size=tuple(sizes.get(d, d) for d in node.shape)) * 1.5 + 0.3
            for name, node in g.leaves.items()}


def training(kind: str) -> dict:
    """forward()'s mode for the batch's own statistics: batch norm's forward() uses its running ones unless
    told training=True (tests/test_batch_norm_running.py); layer norm has no mode."""
    return {"training": True} if kind == "batch_norm" else {}


def torch_reference(kind: str, arrays: dict, options: dict) -> tuple:
    """(y, {leaf: gradient}) by PyTorch's own layer_norm / batch_norm (training mode) and autograd."""
    t = {k: torch.tensor(v, dtype=torch.float64, requires_grad=k != "r") for k, v in arrays.items()}
    eps = options.get("eps", 1e-5)
    if kind == "layer_norm":
        x = t["x"]
        y = torch.nn.functional.layer_norm(x, t["gamma"].shape, t["gamma"], t["beta"], eps)
    else:  # channels last, as graphcomp's batch_norm: PyTorch wants them on axis 1
        x = t["x"] if t["x"].ndim == 2 else t["x"].transpose(1, 2)
        y = torch.nn.functional.batch_norm(x, None, None, t["gamma"], t["beta"], training=True, eps=eps)
        y = y if y.ndim == 2 else y.transpose(1, 2)
    (y * t["r"]).sum().backward()
    return y.detach().numpy(), {k: v.grad.numpy() for k, v in t.items() if k != "r"}


CASES = [
    ("layer_norm", (None, 5), (5,), {}),
    ("layer_norm", (None, 3, 6), (6,), {"eps": 1e-3}),
    ("layer_norm", (None, 3, 4), (3, 4), {"axis": -2}),
    ("batch_norm", (None, 5), (5,), {}),
    ("batch_norm", (None, 3, 4), (4,), {"eps": 1e-3}),
]


@pytest.mark.parametrize("kind, shape, scale_shape, options", CASES,
                         ids=[f"{c[0]} {c[1]} {c[3]}" for c in CASES])
def test_values_and_gradients_match_pytorch_and_finite_differences(kind, shape, scale_shape, options):
    g, _ = normed(kind, shape, scale_shape, **options)
    model = gc.compile(g, wrt=["x", "gamma", "beta"], loss="loss")
    module = model.load()
    for batch in (BATCH, 2):
        arrays = arrays_for(g, batch)
        want_y, want_grads = torch_reference(kind, arrays, options)
        np.testing.assert_allclose(module.forward(**training(kind), **arrays)["y"], want_y, rtol=1e-10, atol=1e-10)
        _, grads = module.gradients(**arrays)
        for leaf, want in want_grads.items():
            np.testing.assert_allclose(grads[leaf], want, rtol=1e-10, atol=1e-10, err_msg=leaf)
        check_gradients(module, arrays, "loss", tolerance=1e-5)


def named_batch_norm(shape=(None, 3)):
    """A batch norm whose x̂ and σ carry names (they are the row's operands 3 and 4); σ is written std,
    \\sigma being the logistic function in the formulas."""
    g, y = normed("batch_norm", shape, shape[-1:])
    g.let("xhat", y.inputs[3])
    g.let("std", y.inputs[4])
    return g


@pytest.mark.parametrize("shape", [(None, 3), (None, 2, 3)])
def test_batch_norm_prints_the_closed_form_and_the_reader_evaluates_it(shape):
    g = named_batch_norm(shape)
    model = gc.compile(g, wrt=["x", "gamma", "beta"], loss="loss")
    latex = model.gradient_latex()["x"]
    count = r"N" if len(shape) == 2 else r"2 N"
    # x̄ = γ/(Nσ)(N ȳ - Σȳ - x̂ ⊙ Σ(ȳ ⊙ x̂)), the sums being β̄ and γ̄ (computed once)
    assert (rf"\bar{{x}} &= \frac{{1}}{{{count}}} \frac{{\gamma \odot \left({count} \bar{{y}} - \bar{{\beta}} "
            rf"- \hat{{x}} \odot \bar{{\gamma}}\right)}}{{\mathrm{{std}}}} \\") in latex
    axes = r"\text{axis } 0" if len(shape) == 2 else r"\text{axes } 0, 1"
    assert rf"\bar{{\gamma}} &= \operatorname{{sum}}_{{{axes}}}\left(\bar{{y}} \odot \hat{{x}}\right) \\" in latex
    assert rf"\bar{{\beta}} &= \operatorname{{sum}}_{{{axes}}}\left(\bar{{y}}\right) \\" in latex
    arrays = arrays_for(g)
    _, grads = model.load().gradients(**arrays)
    for leaf in ("x", "gamma", "beta"):
        pairs = equations(model.gradient_latex()[leaf])
        reader = Reader({**{symbol(name): value for name, value in arrays.items()}, "N": BATCH}, BATCH)
        reader.define(pairs[1:])
        np.testing.assert_allclose(np.broadcast_to(reader.evaluate(pairs[0][1]), grads[leaf].shape), grads[leaf],
                                   rtol=1e-9, atol=1e-12, err_msg=leaf)


def test_batch_norm_code_computes_the_closed_form_in_a_few_lines():
    source = gc.compile(named_batch_norm(), wrt=["x", "gamma", "beta"], loss="loss").source
    assert "    d_beta = xp.sum(d_y, axis=0)" in source
    assert "    d_gamma = xp.sum(t6, axis=0)" in source and "    t6 = d_y * xhat" in source
    assert re.search(r"^    d_x = gamma\*\(d_y\*x\.shape\[0\] - d_beta - d_gamma\*xhat\)/\(std\*x\.shape\[0\]\)  #",
                     source, flags=re.M)


def test_layer_norm_prints_its_closed_form_over_its_axis():
    g, y = normed("layer_norm", (None, 4), (4,))
    g.let("xhat", y.inputs[3])
    g.let("std", y.inputs[4])
    model = gc.compile(g, wrt=["x"], loss="loss")
    latex = model.gradient_latex()["x"]
    assert r"\hat{x}" in latex and r"\mathrm{std}" in latex and r"\gamma \odot \bar{y}" in latex
    arrays = arrays_for(g)
    pairs = equations(latex)
    reader = Reader({symbol(name): value for name, value in arrays.items()}, BATCH)
    reader.define(pairs[1:])
    np.testing.assert_allclose(reader.evaluate(pairs[0][1]), model.load().gradients(**arrays)[1]["x"],
                               rtol=1e-9, atol=1e-12)


def test_the_module_is_numpy_only_deterministic_and_compiles(tmp_path):
    first = gc.compile(named_batch_norm((None, 2, 3)), wrt=["x", "gamma", "beta"], loss="loss")
    second = gc.compile(named_batch_norm((None, 2, 3)), wrt=["x", "gamma", "beta"], loss="loss")
    assert first.source == second.source
    tree = ast.parse(first.source)
    assert {alias.name for node in tree.body if isinstance(node, ast.Import) for alias in node.names} == {"numpy"}
    assert not any(isinstance(node, ast.ImportFrom) for node in ast.walk(tree))
    path = tmp_path / "bn.py"
    path.write_text(first.source, encoding="utf-8")
    py_compile.compile(str(path), doraise=True)


def test_a_batch_of_one_example_is_refused_at_run_time():
    g, _ = normed("batch_norm", (None, 3), (3,))
    module = gc.compile(g, wrt=["x"], loss="loss").load()
    with pytest.raises(ValueError, match=r"statistics over axis 0 of an array of shape \(1, 3\) .* one value"):
        module.gradients(**arrays_for(g, batch=1))


@pytest.mark.parametrize("kind, shape, scale_shape", [("batch_norm", (1, 3), (3,)), ("layer_norm", (None, 1), (1,))])
def test_a_normalised_axis_declared_of_size_one_is_refused(kind, shape, scale_shape):
    with pytest.raises(gc.ShapeError, match=rf"{kind}: the normalised axes \(\d,\) of shape .* hold one value each"):
        normed(kind, shape, scale_shape)


def test_bad_settings_get_one_clear_error_each():
    g = gc.Graph("bad")
    x, gamma = g.input("x", (None, 2, 3)), g.param("gamma", (3,))
    with pytest.raises(gc.ShapeError, match=r"batch_norm: gamma has shape \(2,\), but input \(None, 2, 3\) needs \(3,\)"):
        gc.batch_norm(x, g.param("g2", (2,)), gamma)
    with pytest.raises(gc.GraphError, match="layer_norm: eps must be a positive number, got -1.0"):
        gc.layer_norm(x, gamma, gamma, eps=-1)
    with pytest.raises(gc.GraphError, match="batch_norm: axis must be an axis before the channels"):
        gc.batch_norm(x, gamma, gamma, axis=2)
    with pytest.raises(gc.GraphError, match="layer_norm: axis must be an axis of shape"):
        gc.layer_norm(x, gamma, gamma, axis=3)


def test_the_readme_shows_what_batch_norm_prints():
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("#### Normalisation, GELU, attention"):]
    block = re.search(r"```tex\n(.*?)```", section, flags=re.S).group(1)
    g = gc.Graph("bn")
    x, y = g.input("x", (None, 8)), g.input("y", (None,))
    W, gamma, beta = g.param("W", (8, 16)), g.param("gamma", (16,)), g.param("beta", (16,), init="zeros")
    h = g.let("h", x @ W)
    z = g.let("z", gc.batch_norm(h, gamma, beta))
    g.let("hhat", z.inputs[3])
    g.let("std", z.inputs[4])
    g.output("loss", gc.softmax_cross_entropy(gc.relu(z) @ g.param("V", (16, 3)), y))
    model = gc.compile(g, loss="loss")
    printed = model.gradient_latex()["W"].splitlines()
    assert [line.strip() for line in block.strip().splitlines()] == printed[2:5]
    assert "d_h = gamma*(d_z*h.shape[0] - d_beta - d_gamma*hhat)/(h.shape[0]*std)" in model.source


@pytest.mark.parametrize("kind, shape", [("batch_norm", (None, 2, 3)), ("layer_norm", (None, 3))])
def test_a_graph_that_uses_the_normalised_value_itself_gets_its_whole_gradient(kind, shape):
    """x̂ and σ get nothing from the norm row (its closed form holds them), but a graph that reads x̂
    elsewhere differentiates through the mean and the variance as through any value."""
    g = gc.Graph("both")
    x, r, s = g.input("x", shape), g.input("r", shape), g.input("s", shape)
    gamma, beta = g.param("gamma", (3,)), g.param("beta", (3,))
    y = getattr(gc, kind)(x, gamma, beta)
    g.output("loss", gc.sum(y * r) + gc.sum(y.inputs[3] * y.inputs[3] * s) + gc.sum(y.inputs[4]))
    module = gc.compile(g, wrt=["x", "gamma"], loss="loss").load()
    arrays = arrays_for(g)
    t = {k: torch.tensor(v, requires_grad=k in ("x", "gamma")) for k, v in arrays.items()}
    axes = (0, 1) if kind == "batch_norm" else (1,)
    mean, var = t["x"].mean(dim=axes, keepdim=True), t["x"].var(dim=axes, keepdim=True, unbiased=False)
    std = torch.sqrt(var + 1e-5)
    xhat = (t["x"] - mean) / std
    ((t["gamma"] * xhat + t["beta"]) * t["r"]).sum().add((xhat * xhat * t["s"]).sum()).add(std.sum()).backward()
    _, grads = module.gradients(**arrays)
    np.testing.assert_allclose(grads["x"], t["x"].grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(grads["gamma"], t["gamma"].grad.numpy(), rtol=1e-10, atol=1e-10)
    check_gradients(module, arrays, "loss", tolerance=1e-5)


@pytest.mark.parametrize("kind", ["batch_norm", "layer_norm"])
def test_a_run_time_length_is_counted_when_the_module_runs(kind):
    g, _ = normed(kind, (None, "T", 4), (4,))
    module = gc.compile(g, wrt=["x", "gamma", "beta"], loss="loss").load()
    for length in (2, 5):
        arrays = arrays_for(g, length=length)
        want_y, want_grads = torch_reference(kind, arrays, {})
        np.testing.assert_allclose(module.forward(**training(kind), **arrays)["y"], want_y, rtol=1e-10, atol=1e-10)
        _, grads = module.gradients(**arrays)
        for leaf, want in want_grads.items():
            np.testing.assert_allclose(grads[leaf], want, rtol=1e-10, atol=1e-10, err_msg=leaf)
