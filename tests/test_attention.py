"""GELU, the causal mask and scaled dot-product attention: values and gradients against PyTorch's
autograd in float64 (to 1e-10) and central differences, single- and multi-head, causal and not, at a
run-time length T; the softmax's printed gradient S̄ = P ⊙ (P̄ - Σ(P̄ ⊙ P)), read back by the
independent LaTeX reader; bad input gets one clear error each."""
import ast
import math
import py_compile

import array_api_strict

import numpy as np
import pytest
import torch

import graphcomp as gc
from gradcheck import check_gradients
from graphcomp.formulas.symbols import symbol
from latex_reader import Reader, equations


def concrete(shape: tuple, batch: int, length: int) -> tuple:
    return tuple(batch if d is None else length if d == "T" else d for d in shape)


def random_arrays(g, batch: int = 2, length: int = 4, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {name: rng.normal(size=concrete(node.shape, batch, length)) for name, node in g.leaves.items()}


def weighted(build, shapes: dict, out_shape) -> gc.Graph:
    """A graph with loss Σ build(...) ⊙ r, r a fixed random weighting; `out` is an output too."""
    g = gc.Graph("case")
    leaves = {name: (g.param(name, shape) if name.startswith("W") else g.input(name, shape))
              for name, shape in shapes.items()}
    out = build(**leaves)
    g.output("out", out)
    g.output("loss", gc.sum(out * g.input("r", out_shape or out.shape)))
    return g


def torch_values(build, arrays: dict) -> tuple:
    """(out, {leaf: gradient}) of the same computation written with PyTorch, by its autograd."""
    t = {k: torch.tensor(v, dtype=torch.float64, requires_grad=k != "r") for k, v in arrays.items()}
    out = build(**{k: v for k, v in t.items() if k != "r"})
    (out * t["r"]).sum().backward()
    return out.detach().numpy(), {k: v.grad.numpy() for k, v in t.items() if k != "r"}


def check_against_torch(g, torch_build, wrt, runs=((2, 4),)) -> None:
    module = gc.compile(g, wrt=wrt, loss="loss").load()
    for batch, length in runs:
        arrays = random_arrays(g, batch, length)
        want_out, want_grads = torch_values(torch_build, arrays)
        np.testing.assert_allclose(module.forward(**arrays)["out"], want_out, rtol=1e-10, atol=1e-10)
        _, grads = module.gradients(**arrays)
        for leaf in wrt:
            np.testing.assert_allclose(grads[leaf], want_grads[leaf], rtol=1e-10, atol=1e-10, err_msg=leaf)
        check_gradients(module, arrays, "loss", tolerance=1e-5)


@pytest.mark.parametrize("shape", [(None, 5), (None, 2, 3), ()])
def test_gelu_matches_pytorchs_tanh_form(shape):
    g = weighted(gc.gelu, {"x": shape}, None)
    check_against_torch(g, lambda x: torch.nn.functional.gelu(x, approximate="tanh"), ["x"], runs=((2, 4), (3, 4)))


@pytest.mark.parametrize("shape", [(None, 5), (None, 2, 3)])
def test_exact_gelu_matches_pytorchs_erf_form(shape):
    g = weighted(lambda x: gc.gelu(x, approximate="none"), {"x": shape}, None)
    check_against_torch(g, lambda x: torch.nn.functional.gelu(x, approximate="none"), ["x"], runs=((2, 4), (3, 4)))


def test_the_runtime_erf_is_float64_accurate_everywhere():
    from graphcomp.templates.runtime.helpers import _erf

    rng = np.random.default_rng(0)
    xs = np.concatenate([rng.uniform(-7, 7, 100_000), np.linspace(-6.5, 6.5, 50_001), rng.uniform(-1.1, 1.1, 50_000),
                         10.0 ** rng.uniform(-300, 1, 20_000), [0.0, 1.0, -1.0, 2.5, -2.5, 6.0, 40.0, -40.0, 5e-324]])
    want = np.array([math.erf(v) for v in xs])
    got = _erf(np, xs)
    assert np.max(np.abs(got - want) / np.maximum(np.abs(want), 5e-324)) < 1e-15
    assert _erf(np, np.float64(0.5)) == math.erf(0.5) and np.isnan(_erf(np, np.array([np.nan]))[0])
    strict = np.asarray(_erf(array_api_strict, array_api_strict.asarray(xs[:2000])))
    assert np.max(np.abs(strict - want[:2000]) / np.maximum(np.abs(want[:2000]), 5e-324)) < 1e-15


def test_gelu_refuses_an_unknown_form():
    with pytest.raises(gc.GraphError, match=r"gelu: approximate must be \"tanh\" \(GPT-2's form\) or \"none\" "
                                            r"\(the exact erf form\), got 'fast'"):
        gc.gelu(gc.Graph("g").input("x", (3,)), approximate="fast")


def sdpa(causal: bool):
    return lambda q, k, v: torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("shape", [(None, 2, 4, 3), (None, 5, 2)])
def test_attention_matches_pytorch(shape, causal):
    g = weighted(lambda q, k, v: gc.attention(q, k, v, causal=causal), {"q": shape, "k": shape, "v": shape}, None)
    check_against_torch(g, sdpa(causal), ["q", "k", "v"])


def multi_head(x, Wq, Wk, Wv, causal, heads=2, length=4, width=6):
    """x (N, T, C) to H heads of size C/H: reshape to (N, T, H, d), heads before time, attention, back."""
    def split(t):
        return gc.transpose(gc.reshape(x @ t, (None, length, heads, width // heads)), (0, 2, 1, 3))
    out = gc.attention(split(Wq), split(Wk), split(Wv), causal=causal)
    return gc.reshape(gc.transpose(out, (0, 2, 1, 3)), (None, length, width))


def torch_multi_head(causal, heads=2):
    def build(x, Wq, Wk, Wv):
        n, t, c = x.shape
        q, k, v = ((x @ w).reshape(n, t, heads, c // heads).transpose(1, 2) for w in (Wq, Wk, Wv))
        return sdpa(causal)(q, k, v).transpose(1, 2).reshape(n, t, c)
    return build


@pytest.mark.parametrize("causal", [True, False])
def test_multi_head_attention_matches_pytorch(causal):
    shapes = {"x": (None, 4, 6), "Wq": (6, 6), "Wk": (6, 6), "Wv": (6, 6)}
    g = weighted(lambda **a: multi_head(**a, causal=causal), shapes, None)
    check_against_torch(g, torch_multi_head(causal), ["x", "Wq", "Wk", "Wv"], runs=((2, 4), (3, 4)))


def test_attention_at_a_run_time_length():
    shapes = {"x": (None, "T", 3), "Wq": (3, 3)}
    g = weighted(lambda x, Wq: gc.attention(x @ Wq, x, x), shapes, (None, "T", 3))
    check_against_torch(g, lambda x, Wq: sdpa(True)(x @ Wq, x, x), ["x", "Wq"], runs=((2, 3), (2, 5)))


def test_the_causal_mask_gives_later_positions_no_weight():
    g = gc.Graph("mask")
    x = g.input("x", (None, "T", 3))
    scores = x @ gc.transpose(x, (0, 2, 1))  # (N, T, T)
    g.output("p", gc.softmax(gc.causal_mask(scores)))
    module = gc.compile(g).load()
    p = module.forward(x=np.random.default_rng(1).normal(size=(2, 5, 3)))["p"]
    assert np.all(p[:, np.triu_indices(5, 1)[0], np.triu_indices(5, 1)[1]] == 0)
    np.testing.assert_allclose(p.sum(axis=-1), 1, rtol=1e-12)


@pytest.mark.parametrize("shape", [(None, 3, 4), (None, "T", 4), (5,)])
def test_a_mask_on_a_non_square_score_matrix_is_refused(shape):
    scores = gc.Graph("g").input("s", shape)
    with pytest.raises(gc.ShapeError, match=r"causal_mask: the scores \(.*\) must end in a square matrix"):
        gc.causal_mask(scores)


def named_attention(causal: bool):
    """One head whose scores S (masked, when causal) and probabilities P carry the lecture's names (P is
    the product's left operand, S the softmax's operand)."""
    g = gc.Graph("head")
    q, k, v = (g.input(name, (None, 3, 2)) for name in "qkv")
    out = gc.attention(q, k, v, causal=causal)
    probabilities = g.let("P", out.inputs[0])
    g.let("S", probabilities.inputs[0])
    g.output("loss", gc.sum(out * g.input("r", (None, 3, 2))))
    return g


def traced_symbols(model, arrays: dict) -> dict:
    """{LaTeX symbol: value} of every value and gradient of one run of the module."""
    return {model.listing.symbols[n]: np.asarray(v) for n, v in model.values_at(arrays).items()
            if n in model.listing.symbols and not n.is_leaf}


@pytest.mark.parametrize("causal", [True, False])
def test_the_softmax_gradient_prints_p_times_dp_minus_its_row_sum(causal):
    g = named_attention(causal)
    model = gc.compile(g, wrt=["q", "k", "v"], loss="loss")
    pairs = dict(equations(model.gradient_latex()["q"]))
    total = next(lhs for lhs, rhs in pairs.items()
                 if rhs == r"\operatorname{sum}_{\text{axis } 2,\ \text{keepdims}}\left(\bar{P} \odot P\right)")
    assert pairs[r"\bar{S}"] == rf"P \odot \left(\bar{{P}} - {total}\right)"
    # S̄ read back from P and P̄ alone (the reader computes the row sums itself) is the module's S̄
    arrays = random_arrays(g, batch=2, length=3)
    traced = traced_symbols(model, arrays)
    reader = Reader({"P": traced["P"], r"\bar{P}": traced[r"\bar{P}"]}, 2)
    reader.define([(total, pairs[total])])
    np.testing.assert_allclose(reader.evaluate(pairs[r"\bar{S}"]), traced[r"\bar{S}"], rtol=1e-12, atol=1e-14)
    if causal:  # the masked entries get no gradient
        assert any(r"\operatorname{causal}_{0}\left(\bar{S}\right)" in rhs for rhs in pairs.values())


def test_every_printed_gradient_of_attention_reads_back():
    g = named_attention(causal=False)
    model = gc.compile(g, wrt=["q", "k", "v"], loss="loss")
    arrays = random_arrays(g, batch=2, length=3)
    _, grads = model.load().gradients(**arrays)
    for leaf in "qkv":
        lines = equations(model.gradient_latex()[leaf])
        reader = Reader({symbol(name): value for name, value in arrays.items()}, 2)
        reader.define(lines[1:])
        np.testing.assert_allclose(reader.evaluate(lines[0][1]), grads[leaf], rtol=1e-9, atol=1e-12, err_msg=leaf)


def test_the_attention_module_is_numpy_only_deterministic_and_compiles(tmp_path):
    shapes = {"x": (None, 4, 6), "Wq": (6, 6), "Wk": (6, 6), "Wv": (6, 6)}
    sources = [gc.compile(weighted(lambda **a: gc.gelu(multi_head(**a, causal=True)), shapes, None),
                          wrt=["Wq", "Wk", "Wv"], loss="loss").source for _ in range(2)]
    assert sources[0] == sources[1]
    tree = ast.parse(sources[0])
    assert {alias.name for node in tree.body if isinstance(node, ast.Import) for alias in node.names} == {"numpy"}
    assert "_causal_mask(xp, " in sources[0]
    path = tmp_path / "head.py"
    path.write_text(sources[0], encoding="utf-8")
    py_compile.compile(str(path), doraise=True)


def test_attention_refuses_a_causal_flag_that_is_not_true_or_false():
    g = gc.Graph("g")
    with pytest.raises(gc.GraphError, match="attention: causal must be True or False, got 'yes'"):
        gc.attention(*(g.input(n, (None, 3, 2)) for n in "qkv"), causal="yes")


def test_a_transformer_block_has_its_report_explorer_and_picture(tmp_path):
    """Layer norm, multi-head causal attention, GELU and batch norm in one model: every view is made."""
    g = gc.Graph("block")
    x, r = g.input("x", (None, 4, 6)), g.input("r", (None, 4, 6))
    gamma, beta = g.param("gamma", (6,)), g.param("beta", (6,))
    weights = {name: g.param(name, (6, 6)) for name in ("Wq", "Wk", "Wv")}
    h = multi_head(gc.layer_norm(x, gamma, beta), **weights, causal=True)
    g.output("loss", gc.sum(gc.batch_norm(gc.gelu(h), gamma, beta) * r))
    model = gc.compile(g, loss="loss")
    at = random_arrays(g, batch=2)
    report = model.report(tmp_path / "block.md", at=at).read_text(encoding="utf-8")
    assert r"\operatorname{causal}" in report and "_causal_mask(xp, " in report
    assert model.explorer(tmp_path / "block.html", at=at).stat().st_size > 0
    from graphcomp.inspection.explorer import picture_view
    assert picture_view(g, "loss", wrt=["Wq", "gamma"], at=at).number_of_nodes() > 20
