"""What the language-model examples asked of the compiler: params that start at 1 (init="ones", the scale of
a layer norm or batch norm as PyTorch starts it), GELU's code (a³ as products, the tanh computed once for
both passes), and a matrix product of a batch of sequences (N, T, K) by a weight (K, M) as one 2-D product
over the N·T rows, forward and weight gradient, checked against NumPy, PyTorch and array-api-strict."""
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import graphcomp as gc
from graphcomp.errors import GraphError
from graphcomp.frontend.cli import _compiled, read_spec

TOLERANCE = dict(rtol=1e-10, atol=1e-10)


# ---- init="ones" -----------------------------------------------------------------------------------

def test_a_param_with_init_ones_starts_at_one_and_the_rest_keep_their_draws():
    g = gc.Graph("scaled")
    x = g.input("x", shape=(None, 4))
    W, gamma = g.param("W", (4, 4)), g.param("gamma", (4,), init="ones")
    g.output("loss", gc.mean(gc.layer_norm(x @ W, gamma, g.param("beta", (4,), init="zeros"))))
    m = gc.compile(g, loss="loss").load()
    params = m.init_params(seed=3)
    np.testing.assert_array_equal(params["gamma"], np.ones(4))
    np.testing.assert_array_equal(params["beta"], np.zeros(4))
    assert params["gamma"].dtype == np.float64
    # the ones draw nothing: W is what the same graph with a zeros-initialised gamma draws
    h = gc.Graph("scaled")
    y = h.input("x", shape=(None, 4))
    V = h.param("W", (4, 4))
    h.output("loss", gc.mean(gc.layer_norm(y @ V, h.param("gamma", (4,), init="zeros"),
                                           h.param("beta", (4,), init="zeros"))))
    np.testing.assert_array_equal(gc.compile(h, loss="loss").load().init_params(seed=3)["W"], params["W"])


def test_a_module_whose_params_are_all_constant_draws_no_random_numbers():
    g = gc.Graph("constant")
    x = g.input("x", shape=(None, 3))
    g.output("loss", gc.mean(x * g.param("s", (3,), init="ones") + g.param("b", (3,), init="zeros")))
    model = gc.compile(g, loss="loss")
    assert "default_rng" not in model.source.split("def init_params", 1)[1].split("def ", 1)[0]
    np.testing.assert_array_equal(model.load().init_params(0)["s"], np.ones(3))


def test_a_spec_file_declares_a_param_of_ones(tmp_path):
    path = tmp_path / "norm.toml"
    path.write_text('[model]\nname = "norm"\nloss = "loss"\n\n'
                    '[inputs]\nx = { shape = ["N", 5] }\n\n'
                    '[params]\ng = { shape = [5], init = "ones" }\nb = { shape = [5], init = "zeros" }\n\n'
                    '[outputs]\nloss = "mean(layer_norm(x, g, b) ** 2)"\n')
    module = _compiled(read_spec(str(path))).load()
    params = module.init_params(1)
    np.testing.assert_array_equal(params["g"], np.ones(5))
    x = np.random.default_rng(0).standard_normal((6, 5))
    outputs, grads = module.gradients(x=x, **params)
    g_t, b_t = (torch.tensor(params[name], requires_grad=True) for name in ("g", "b"))
    loss = (F.layer_norm(torch.tensor(x), (5,), g_t, b_t) ** 2).mean()
    loss.backward()
    np.testing.assert_allclose(outputs["loss"], loss.item(), **TOLERANCE)
    np.testing.assert_allclose(grads["g"], g_t.grad.numpy(), **TOLERANCE)


def test_an_unknown_init_names_ones_among_the_choices():
    with pytest.raises(GraphError, match="ones"):
        gc.Graph("bad").param("w", (2,), init="one")


# ---- GELU's code -----------------------------------------------------------------------------------

def _code(source: str, function: str) -> list[str]:
    """The lines of one generated function, comments cut off."""
    body = source.split(f"\ndef {function}(", 1)[1].split("\n\n\n", 1)[0]
    return [line.split("  #", 1)[0] for line in body.splitlines()[1:] if not line.lstrip().startswith("#")]


def _gelu_module():
    g = gc.Graph("gelu")
    x, r = g.input("x", shape=(None, 5)), g.input("r", shape=(None, 5))
    y = g.output("y", gc.gelu(x))
    g.output("loss", gc.sum(y * r))
    return gc.compile(g, wrt=["x"], loss="loss")


def test_gelus_code_cubes_by_products_and_computes_its_tanh_once():
    source = _gelu_module().source
    for function in ("forward", "_gradients"):
        lines = _code(source, function)
        assert not any("**3" in line or "** 3" in line for line in lines), "\n".join(lines)
        assert sum(line.count("xp.tanh(") for line in lines) == 1, "\n".join(lines)


def test_cubes_printed_as_products_keep_their_value_in_every_position():
    forms = {  # name: (graph, NumPy) of a power 3 or 4 as a factor, a divisor, a term
        "scaled": (lambda x, y, z: 2 * x**3, lambda x, y, z: 2 * x**3),
        "divisor": (lambda x, y, z: y / x**3, lambda x, y, z: y / x**3),
        "negative_quotient": (lambda x, y, z: -2 / 3 * y * (x + z) / x**3, lambda x, y, z: -2 / 3 * y * (x + z) / x**3),
        "negated": (lambda x, y, z: -(x**4), lambda x, y, z: -(x**4)),
        "difference": (lambda x, y, z: y - x**3, lambda x, y, z: y - x**3),
        "denominator": (lambda x, y, z: (y + z) / (z * x**4), lambda x, y, z: (y + z) / (z * x**4)),
        "products": (lambda x, y, z: -(x**3) * y**3 / z**4, lambda x, y, z: -(x**3) * y**3 / z**4),
    }
    g = gc.Graph("powers")  # each form its own x, so that no power is a value shared by two formulas
    y, z = g.input("y", shape=(None,)), g.input("z", shape=(None,))
    total = 0
    for k, (name, (build, _)) in enumerate(forms.items()):
        total = total + gc.sum(g.output(name, build(g.input(f"x{k}", shape=(None,)), y, z)))
    g.output("loss", total)
    model = gc.compile(g, loss="loss")
    lines = _code(model.source, "forward")
    assert not any("**3" in line or "**4" in line or "** 3" in line for line in lines), "\n".join(lines)
    rng = np.random.default_rng(4)
    arrays = {name: rng.uniform(0.5, 2.0, size=3) * rng.choice([-1.0, 1.0], size=3) for name in g.leaves}
    outputs = model.load().forward(**arrays)
    for k, (name, (_, reference)) in enumerate(forms.items()):
        np.testing.assert_allclose(outputs[name], reference(arrays[f"x{k}"], arrays["y"], arrays["z"]), rtol=1e-12,
                                   err_msg=name)


def test_gelus_gradient_matches_differences_and_pytorch():
    m = _gelu_module().load()
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.standard_normal((6, 5)) * 3, [[0.0, -1e-3, 1e-3, -8.0, 8.0]]])
    r = rng.standard_normal(x.shape)
    outputs, grads = m.gradients(x=x, r=r)
    h = 1e-3  # five-point differences of the elementwise function: error of order h**4
    y = {k: m.forward(x=x + k * h, r=r)["y"] for k in (-2, -1, 1, 2)}
    slope = (y[-2] - 8 * y[-1] + 8 * y[1] - y[2]) / (12 * h)
    np.testing.assert_allclose(grads["x"], r * slope, **TOLERANCE)
    x_t = torch.tensor(x, requires_grad=True)
    y_t = F.gelu(x_t, approximate="tanh")
    (y_t * torch.tensor(r)).sum().backward()
    np.testing.assert_allclose(outputs["y"], y_t.detach().numpy(), **TOLERANCE)
    np.testing.assert_allclose(grads["x"], x_t.grad.numpy(), **TOLERANCE)


# ---- a stack of rows times a weight ----------------------------------------------------------------

def _stack_module(shape: tuple, width: int = 4):
    """loss = sum(tanh(x @ W) * r) for x of `shape` (..., K) and W (K, width), with every gradient."""
    g = gc.Graph("stack")
    x = g.input("x", shape=shape)
    W = g.param("W", (shape[-1], width))
    y = g.output("y", x @ W)
    g.output("loss", gc.sum(gc.tanh(y) * g.input("r", y.shape)))
    return gc.compile(g, wrt=["x", "W"], loss="loss")


def _torch_step(x: np.ndarray, W: np.ndarray, r: np.ndarray):
    x_t, W_t = torch.tensor(x, requires_grad=True), torch.tensor(W, requires_grad=True)
    y = x_t @ W_t
    (torch.tanh(y) * torch.tensor(r)).sum().backward()
    return y.detach().numpy(), x_t.grad.numpy(), W_t.grad.numpy()


STACKS = [((None, 5, 3), (4, 5, 3)), ((None, 2, 5, 3), (3, 2, 5, 3)), ((None, "T", 3), (4, 7, 3)),
          (("T", None, 3), (6, 2, 3))]


@pytest.mark.parametrize("shape, concrete", STACKS, ids=["N,T,K", "N,H,T,K", "N,T(run time),K", "T(run time),N,K"])
def test_a_stack_times_a_weight_matches_numpy_and_pytorch(shape, concrete):
    m = _stack_module(shape).load()
    rng = np.random.default_rng(len(concrete))
    x, W = rng.standard_normal(concrete), rng.standard_normal((3, 4))
    r = rng.standard_normal(concrete[:-1] + (4,))
    outputs, grads = m.gradients(x=x, W=W, r=r)
    np.testing.assert_allclose(outputs["y"], np.matmul(x, W), **TOLERANCE)
    y, dx, dW = _torch_step(x, W, r)
    np.testing.assert_allclose(outputs["y"], y, **TOLERANCE)
    np.testing.assert_allclose(grads["x"], dx, **TOLERANCE)
    np.testing.assert_allclose(grads["W"], dW, **TOLERANCE)
    # the same module on array-api-strict arrays
    import array_api_strict as strict

    got_outputs, got_grads = m.gradients(**{k: strict.asarray(v, dtype=strict.float64) for k, v in
                                            {"x": x, "W": W, "r": r}.items()})
    assert not isinstance(got_grads["W"], np.ndarray)
    for want, got in [(outputs["y"], got_outputs["y"]), (grads["x"], got_grads["x"]), (grads["W"], got_grads["W"])]:
        np.testing.assert_allclose(np.asarray(got), want, **TOLERANCE)


def test_a_run_time_length_may_differ_between_calls_and_be_zero():
    m = _stack_module((None, "T", 3)).load()
    rng = np.random.default_rng(1)
    W = rng.standard_normal((3, 4))
    for length in (1, 9, 0):
        x, r = rng.standard_normal((2, length, 3)), rng.standard_normal((2, length, 4))
        outputs, grads = m.gradients(x=x, W=W, r=r)
        assert outputs["y"].shape == (2, length, 4)
        np.testing.assert_allclose(grads["W"], _torch_step(x, W, r)[2], **TOLERANCE)


def test_the_weight_gradient_of_a_stack_is_one_product_of_rows():
    source = _stack_module((None, 5, 3)).source
    lines = _code(source, "_gradients")
    text = "\n".join(lines)
    assert not re.search(r"permute_dims\([^\n]*\)\s*@", text), text
    assert "_matmul_rows(xp, x, W)" in text
    assert re.search(r"d_W = xp\.reshape\(x, \(-1, 3\)\)\.T @ xp\.reshape\(\w+, \(-1, 4\)\)", text), text
    # a product of two stacks (attention's scores) and of a matrix by a matrix stay as they were
    g = gc.Graph("kept")
    q, k = g.input("q", shape=(None, 2, 5, 3)), g.input("k", shape=(None, 2, 5, 3))
    a, W = g.input("a", shape=(None, 3)), g.param("W", (3, 3))
    g.output("loss", gc.sum(q @ gc.transpose(k, (0, 1, 3, 2))) + gc.sum(a @ W))
    kept = "\n".join(_code(gc.compile(g, wrt=["q", "k", "W"], loss="loss").source, "_gradients"))
    assert "_matmul_rows" not in kept and "xp.reshape" not in kept, kept
    assert "a @ W" in kept and "a.T @" in kept, kept


def test_the_row_product_of_a_weight_gradient_has_its_own_gradient():
    from graphcomp.ir import apply

    g = gc.Graph("second")
    a, d = g.input("a", shape=(None, 2, 4, 3)), g.input("d", shape=(None, 2, 4, 5))
    g.output("loss", gc.sum(apply("rows_matmul", a, d) * g.input("r", (3, 5))))
    m = gc.compile(g, wrt=["a", "d"], loss="loss").load()
    rng = np.random.default_rng(2)
    arrays = {"a": rng.standard_normal((3, 2, 4, 3)), "d": rng.standard_normal((3, 2, 4, 5)),
              "r": rng.standard_normal((3, 5))}
    outputs, grads = m.gradients(**arrays)
    a_t, d_t = (torch.tensor(arrays[name], requires_grad=True) for name in ("a", "d"))
    loss = (torch.einsum("nhtk,nhtm->km", a_t, d_t) * torch.tensor(arrays["r"])).sum()
    loss.backward()
    np.testing.assert_allclose(outputs["loss"], loss.item(), **TOLERANCE)
    np.testing.assert_allclose(grads["a"], a_t.grad.numpy(), **TOLERANCE)
    np.testing.assert_allclose(grads["d"], d_t.grad.numpy(), **TOLERANCE)
