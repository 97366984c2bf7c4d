"""What the language-model examples asked of the compiler: params that start at 1 (init="ones", the scale of
a layer norm or batch norm as PyTorch starts it), GELU's code (a³ as products, the tanh computed once for
both passes), and a matrix product of a batch of sequences (N, T, K) by a weight (K, M) as one 2-D product
over the N·T rows, forward and weight gradient, checked against NumPy, PyTorch and array-api-strict."""
import math
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
