"""The lecture's names for values the user did not name: a norm's normalised value x̂ (xhat) and standard
deviation σ_x (sigma_x), and an attention's probabilities P, so that the printed gradients read as the
lecture writes them. Each name is one value in the code, the derivation and the picture; a second norm
gets xhat2, sigma_x2; every printed gradient is read back by tests/latex_reader.py."""
import re

import numpy as np

import graphcomp as gc
from graphcomp.formulas.symbols import symbol
from graphcomp.inspection.export import to_networkx
from latex_reader import Reader, equations

BATCH = 4


def arrays_for(model, seed: int = 0) -> dict:
    module, rng = model.load(), np.random.default_rng(seed)
    shapes = {**module.INPUTS, **module.PARAMS}
    return {name: rng.normal(size=tuple(BATCH if d is None else d for d in shape)) for name, shape in shapes.items()}


def read_back(model, arrays: dict) -> None:
    """Every leaf's printed gradient, evaluated by the reader, is the module's (1e-9)."""
    _, grads = model.load().gradients(**arrays)
    for leaf, latex in model.gradient_latex().items():
        pairs = equations(latex)
        reader = Reader({**{symbol(name): value for name, value in arrays.items()}, "N": BATCH}, BATCH)
        reader.define(pairs[1:])
        got = np.broadcast_to(reader.evaluate(pairs[0][1]), grads[leaf].shape)
        np.testing.assert_allclose(got, grads[leaf], rtol=1e-9, atol=1e-12, err_msg=f"{leaf}:\n{latex}")


def two_norms() -> gc.Graph:
    g = gc.Graph("norms")
    x, y = g.input("x", (None, 3)), g.input("y", (None, 3))
    z = gc.batch_norm(x, g.param("gamma", (3,)), g.param("beta", (3,)))
    g.output("loss", gc.mse(gc.layer_norm(gc.tanh(z), g.param("g2", (3,)), g.param("b2", (3,))), y))
    return g


def test_a_batch_norms_gradient_reads_with_xhat_and_sigma_without_naming_them():
    model = gc.compile(two_norms(), wrt=["x", "gamma", "beta"])
    pairs = dict(equations(model.gradient_latex()["x"]))
    first = equations(model.gradient_latex()["x"])[0][1]
    # x̄ = γ/(N σ_x)(N ȳ - β̄ - x̂ ⊙ γ̄): x̂ and σ_x by name, each defined once
    assert r"\hat{x} \odot \bar{\gamma}" in first and r"{\sigma_{x}}" in first, first
    assert pairs[r"\sigma_{x}"].startswith(r"\sqrt{")
    assert pairs[r"\hat{x}"] == r"\frac{x - t_{1}}{\sigma_{x}}" or pairs[r"\hat{x}"].endswith(r"}{\sigma_{x}}")
    read_back(model, arrays_for(model))


def test_two_norms_name_their_parts_apart_and_the_code_uses_the_same_names():
    model = gc.compile(two_norms(), wrt=["x", "gamma", "beta", "g2", "b2"])
    source = model.source.split("def _gradients(")[1].split("\ndef ")[0]  # the training step's lines
    for name in ("xhat", "sigma_x", "xhat2", "sigma_x2"):
        assert len(re.findall(rf"^    {name} = ", source, flags=re.M)) == 1, name
    assert re.search(r"^    d_x = gamma\*\(.*xhat\)/\(sigma_x\*", source, flags=re.M)
    latex = "\n".join(model.gradient_latex().values())
    assert r"\hat{x}_{2}" in latex and r"\sigma_{x2}" in latex
    read_back(model, arrays_for(model, seed=1))


def test_a_name_is_one_value_in_the_code_the_derivation_and_the_picture():
    graph = two_norms()
    model = gc.compile(graph)
    arrays = arrays_for(model, seed=2)
    traced = model.values_at(arrays)
    in_code = {name: traced[node] for node, name in model.listing.names.items() if node in traced}
    derived = model.derivation(at=arrays)
    view = to_networkx(graph, model.loss, model.wrt, derived=derived)
    for name in ("xhat", "sigma_x", "xhat2", "sigma_x2"):
        np.testing.assert_allclose(in_code[name], derived.values[name], rtol=1e-12, err_msg=name)
        assert name in view
    assert np.allclose(derived.values["xhat"].mean(axis=0), 0) and np.all(derived.values["sigma_x"] > 0)


def test_a_users_name_wins_and_the_lectures_moves_aside():
    g = gc.Graph("taken")
    x, y = g.input("x", (None, 3)), g.input("y", (None, 3))
    doubled = g.let("xhat", x * 2)  # the user's xhat is another value
    z = gc.batch_norm(x, g.param("gamma", (3,)), g.param("beta", (3,)))
    g.output("loss", gc.mse(z + doubled, y))
    model = gc.compile(g, wrt=["x", "gamma"])
    source = model.source.split("def _gradients(")[1]
    assert re.search(r"^    xhat = x \* 2", source, flags=re.M)
    assert re.search(r"^    xhat2 = \(x - t\d+\)/sigma_x$", source, flags=re.M)
    assert r"\hat{x}_{2} \odot \bar{\gamma}" in model.gradient_latex()["x"]
    read_back(model, arrays_for(model, seed=4))


def test_attention_names_its_probabilities_p():
    g = gc.Graph("attention")
    x, y = g.input("x", (None, 4, 3)), g.input("y", (None, 4, 3))
    Wq, Wk, Wv = (g.param(name, (3, 3)) for name in ("Wq", "Wk", "Wv"))
    g.output("loss", gc.mse(gc.attention(x @ Wq, x @ Wk, x @ Wv, causal=False), y))
    model = gc.compile(g)
    assert re.search(r"^    P = ", model.source, flags=re.M)
    pairs = dict(equations(model.gradient_latex()["Wq"]))
    assert pairs["P"].startswith(r"\operatorname{softmax}")
    assert any(r"P \odot \left(\bar{P} - " in rhs for rhs in pairs.values())  # S̄ = P ⊙ (P̄ - Σ(P̄ ⊙ P))
    read_back(model, arrays_for(model, seed=3))
