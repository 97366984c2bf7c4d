"""The derivative graph of a model with a loop (gc.scan), drawn whole: the gradients down to the loop's
results, one box for the backward loop holding the recursion as the lecture writes it (δ_t, h̄_{t-1}
from h̄_T), and a box per shared param whose gradient is a sum over the steps. Every formula of the
picture is read back by the independent reader (tests/latex_reader.py) and compared with the module's
gradients."""
import re
import sys
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

import graphcomp as gc
from graphcomp.formulas.symbols import symbol
from graphcomp.frontend.cli import main
from graphcomp.inspection.derivative_graph import backward_view
from graphcomp.inspection.pictures import render, svg_ratio, to_dot
from latex_reader import Reader, equations

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples"))  # rnn_mean.py imports its neighbour example_data
import rnn_mean  # noqa: E402 - the lecture's RNN, as a loop

BATCH, STEPS = 3, 4


def random_arrays(model, seed: int = 0) -> dict[str, np.ndarray]:
    module, rng = model.load(), np.random.default_rng(seed)
    shapes = {**module.INPUTS, **module.PARAMS}
    return {name: rng.normal(size=tuple(BATCH if d is None else STEPS if isinstance(d, str) else d for d in shape))
            for name, shape in shapes.items()}


def loop_box(view: nx.MultiDiGraph) -> str:
    (name,) = [name for name, data in view.nodes(data=True) if data["op"] == "scan"]
    return name


@pytest.fixture(scope="module")
def rnn():
    model = gc.compile(rnn_mean.build(), loss="loss")
    arrays = random_arrays(model)
    derived = model.derivation(at=arrays)
    return model, arrays, derived, backward_view(model, derived=derived)


def test_the_backward_picture_of_a_loop_draws_the_loop_and_every_params_gradient(rnn):
    model, _, _, view = rnn
    loop = loop_box(view)
    assert {"d_Wx", "d_Wh", "d_b", "d_Wy", "d_by"} <= set(view.nodes)
    (seed,) = set(view.predecessors(loop)) - {loop}  # the gradient of the loop's result, h̄_T
    assert view.has_edge("d_prediction", seed) and view.has_edge(loop, loop)  # a loop over t
    for param in ("Wx", "Wh", "b"):  # each shared param's gradient comes out of the backward loop
        assert list(view.predecessors(f"d_{param}")) == [loop]
        formula = view.nodes[f"d_{param}"]["label_formula"]
        assert re.fullmatch(r"\S+ = Σ_t .*δ_t", formula), formula
    text = view.nodes[loop]["label_formula"]
    lines = text.splitlines()
    assert "for t = T, …, 1:" in lines
    step = lines[lines.index("for t = T, …, 1:") + 1:]
    assert step[0].strip() == "δ_t = " + step[0].split(" = ")[1] and " ⊙ (1 − " in step[0]
    assert re.fullmatch(r"\S+\[t−1\] = δ_t Whᵀ", step[1].strip()), step[1]
    assert lines[1].endswith(" = " + view.nodes[seed]["title"])  # where the recursion starts: h̄_T


def test_the_pictures_loop_formulas_read_back_are_the_modules_gradients(rnn):
    model, arrays, derived, view = rnn
    (loop,) = derived.loops
    box = view.nodes[loop_box(view)]["latex"]  # the backward loop's box, as the picture writes it
    written = loop.forward + [tuple(line.split(" &= ", 1)) for line in box.split(" \\\\ ")]
    (seed,) = set(view.predecessors(loop_box(view))) - {loop_box(view)}
    written += [equations(view.nodes[name]["latex"])[0] for name in (seed, "d_prediction")]
    recursion = {lhs for lhs, _ in written}  # the loop's result is h_T there, not the loop's value's part
    written += [(s.lhs, s.formula) for s in derived.forward if s.target not in ("N", loop.target) and s.lhs not in recursion]
    reader = Reader({**{symbol(n): v for n, v in arrays.items()}, "N": BATCH, "T": STEPS}, BATCH, STEPS)
    reader.define([(re.sub(r"\s+", "", lhs), rhs) for lhs, rhs in written])
    _, grads = model.load().gradients(**arrays)
    for param in ("Wx", "Wh", "b"):
        lhs, rhs = equations(view.nodes[f"d_{param}"]["latex"])[0]
        assert r"\sum_{t=1}^{T}" in rhs and r"\delta_{t}" in rhs
        got = np.broadcast_to(reader.evaluate(rhs), grads[param].shape)
        np.testing.assert_allclose(got, grads[param], rtol=1e-10, atol=1e-12, err_msg=param)


def test_the_shares_out_of_the_backward_loop_are_the_gradients_of_the_params(rnn):
    model, arrays, _, view = rnn
    _, grads = model.load().gradients(**arrays)
    loop = loop_box(view)
    for param in ("Wx", "Wh", "b"):
        (edge,) = view.get_edge_data(loop, f"d_{param}").values()
        assert edge["flow_text"].startswith("adds ")
        assert view.nodes[f"d_{param}"]["value_text"] == edge["flow_text"][len("adds "):]  # the loop's share is all of it


def test_an_lstms_backward_picture_renders_with_its_two_recursions(tmp_path):
    g = gc.Graph("lstm")
    xs, y = g.input("xs", (None, "T", 3)), g.input("y", (None, 1))
    _, (h, _) = gc.lstm(g, xs, 4, axis=1)
    g.output("loss", gc.mse(h @ g.param("W", (4, 1)), y))
    view = backward_view(gc.compile(g))
    loop = loop_box(view)
    text = view.nodes[loop]["label_formula"]
    assert re.search(r"h̄\[t−1\] = ", text) and re.search(r"c̄\[t−1\] = ", text)  # both carries go back
    for param in ("lstm_weight_ih", "lstm_weight_hh"):
        assert f"d_{param}" in view and "Σ_t" in view.nodes[f"d_{param}"]["label_formula"]
        assert nx.has_path(view, loop, f"d_{param}")
    assert nx.has_path(view, "d_loss", loop)
    svg = render(to_dot(view), "svg").decode()
    assert 1 / 2.5 <= svg_ratio(svg) <= 2.5
    assert "backward loop of" in svg


def test_graphcomp_graph_backward_of_the_rnn_draws_the_loop(tmp_path):
    out = tmp_path / "rnn.svg"
    assert main(["graph", str(ROOT / "examples" / "rnn_mean.py"), "--backward", "-o", str(out)]) == 0
    svg = out.read_text(encoding="utf-8")
    assert 1 / 2.5 <= svg_ratio(svg) <= 2.5
    for text in ("backward loop of", "Σ_t", "δ_t"):
        assert text in svg, text
