"""Pictures that tell one story per value: an edge per use of an operand whose shares add up to the
gradient, the derivative graph in math, numbers without float noise, and layouts that fit a slide."""
import json
import re
import sys
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

import graphcomp as gc
from graphcomp.frontend.cli import main, read_spec
from graphcomp.inspection.derivative_graph import backward_view
from graphcomp.inspection.export import to_networkx, write
from graphcomp.inspection.math_text import math_text
from graphcomp.inspection.numbers import box_text, shown
from graphcomp.inspection.pictures import render, svg_ratio, to_dot

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
sys.path.insert(0, str(EXAMPLES))  # rnn_mean.py imports its neighbour example_data
import rnn_mean  # noqa: E402 - the lecture's RNN, as a loop and unrolled


def shares_add_up(view: nx.MultiDiGraph) -> int:
    """Checks, for every box with a gradient, that the shares on the edges of its uses add up to it;
    returns how many boxes had shares."""
    checked = 0
    for name, data in view.nodes(data=True):
        flows = [edge["flow"] for _, _, edge in view.out_edges(name, data=True) if "flow" in edge]
        if flows:
            assert sum(flows) == pytest.approx(data["gradient"]), name
            checked += 1
    return checked


def test_a_value_multiplied_by_itself_draws_one_edge_per_use():
    g = gc.Graph("square")
    x = g.input("x")
    y = g.let("y", x * x)
    g.output("f", y * 3)
    view = to_networkx(g, "f", ("x",), {"x": 3})
    edges = sorted(view.get_edge_data("x", "y").items())
    assert [key for key, _ in edges] == [0, 1]  # keyed by operand position
    # each use: local derivative x = 3 times the upstream gradient 3, so 9 each, 18 together = 2 x df/dy
    assert [data["local_text"] for _, data in edges] == ["∂y/∂x (use 1 of 2) = x = 3", "∂y/∂x (use 2 of 2) = x = 3"]
    assert [data["flow_text"] for _, data in edges] == ["adds 9", "adds 9"]
    assert view.nodes["x"]["gradient"] == 18 and shares_add_up(view) == 2
    dot = to_dot(view)
    assert dot.count('"x" -> "y"') == 2


def test_the_shares_of_the_value_used_twice_add_up_to_each_gradient():
    spec = read_spec(str(EXAMPLES / "fan_out.toml"))  # a = x + y, b = a * y, as the lecture notes write it
    view = to_networkx(spec.graph, "b", ("x", "y"), {"x": 2, "y": -3})
    assert set(view.nodes) == {"x", "y", "a", "b"}
    assert sorted(edge["flow"] for _, _, edge in view.out_edges("y", data=True)) == [-3.0, -1.0]
    assert shares_add_up(view) == 3  # x, y and a


def test_tensor_shares_add_up_too():
    g = gc.Graph("tensor_square")
    x, w = g.input("x", (3,)), g.param("w", (3,))
    g.output("loss", gc.sum(g.let("y", x * x) * w))
    at = {"x": np.array([1.0, -2.0, 0.5]), "w": np.array([2.0, 1.0, -1.0])}
    view = to_networkx(g, "loss", ("x", "w"), at)
    edges = view.get_edge_data("x", "y")
    assert len(edges) == 2 and edges[0]["flow_text"] == edges[1]["flow_text"] == "adds [2 -2 -0.5]"  # w x each
    assert view.nodes["x"]["gradient_text"] == "[4 -4 -1]"  # 2 w x


def test_parallel_edges_survive_every_data_format(tmp_path):
    g = gc.Graph("square")
    x = g.input("x")
    g.output("f", x * x)
    view = to_networkx(g, "f", ("x",), {"x": 3})
    write(view, "graphml", tmp_path / "s.graphml")
    assert nx.read_graphml(tmp_path / "s.graphml").number_of_edges("x", "f") == 2
    write(view, "json", tmp_path / "s.json")
    links = json.loads((tmp_path / "s.json").read_text())["edges"]
    assert sorted(link["key"] for link in links if link["source"] == "x") == [0, 1]
    write(view, "dot", tmp_path / "s.dot")
    assert (tmp_path / "s.dot").read_text().count('"x" -> "f"') == 2


def test_the_derivative_graph_of_the_value_used_twice_is_the_lecture_slide():
    model = gc.compile(read_spec(str(EXAMPLES / "fan_out.toml")).graph, loss="b")
    view = backward_view(model, {"x": 2, "y": -3})
    assert view.nodes["d_a"]["formula"] == "∂b/∂a = y · ∂b/∂b" and view.nodes["d_a"]["value"] == -3
    assert view.nodes["d_y"]["formula"] == "∂b/∂y = 1 · ∂b/∂a + a · ∂b/∂b" and view.nodes["d_y"]["value"] == -4
    into_y = sorted((source, edge["flow"]) for source, _, edge in view.in_edges("d_y", data=True))
    assert into_y == [("d_a", -3.0), ("d_b", -1.0)]  # the two paths of the lecture notes, adding to -4


def test_the_backward_picture_of_the_rnn_is_math_with_a_box_per_named_value(tmp_path):
    model = gc.compile(rnn_mean.build(unrolled=True), loss="loss")  # the lecture's RNN unrolled in time
    view = backward_view(model)
    names = set(model.graph.leaves) | set(model.graph.labels.values()) | set(model.graph.outputs)
    wrt = {f"d_{name}" for name in model.wrt}
    assert wrt <= set(view.nodes) and len(view) <= len(names) + 2  # named values and leaves, not every op
    text = " ".join(data["formula"] for _, data in view.nodes(data=True))
    for code in ("xp.", "_sigmoid", "astype", "maximum", "transpose", "unbroadcast", "@", "*"):
        assert code not in text, code
    assert "⊙" in text and "ᵀ" in text and "h̄₅ = (h̄₆ ⊙ (1 − h₆²)) Whᵀ" in text
    assert main(["graph", str(EXAMPLES / "rnn_mean.py"), "--unroll", "6", "--backward", "-o", str(tmp_path / "rnn.svg")]) == 0
    assert 1 / 2.5 <= svg_ratio((tmp_path / "rnn.svg").read_text()) <= 2.5


def test_the_backward_picture_with_values_shows_each_gradient():
    g = gc.Graph("layer")
    x, W = g.input("x", (None, 2)), g.param("W", (2, 2))
    g.output("loss", gc.sum(gc.sigmoid(x @ W)))
    model = gc.compile(g, loss="loss")
    at = {"x": np.array([[1.0, -2.0]]), "W": np.array([[0.1, -0.3], [0.2, 0.4]])}
    view = backward_view(model, at)
    s = 1 / (1 + np.exp(-(at["x"] @ at["W"])))
    assert view.nodes["d_W"]["value_text"] == shown(at["x"].T @ (s * (1 - s)), latex=False)


def test_latex_reads_as_plain_math():
    assert math_text(r"\bar{W}_{2} = h^\top \bar{t}_{3}") == "W̄₂ = hᵀ t̄₃"
    assert math_text(r"\bar{h} \odot \mathbb{1}\left[t_{3} > 0\right]") == "h̄ ⊙ [t₃ > 0]"
    assert math_text(r"\frac{\sigma\left(t_{3}\right)}{N} + - \bar{t}_{8}") == "σ(t₃)/N − t̄₈"
    assert math_text(r"\frac{\left(e^{z - m}\right) - p}{N}") == "(exp(z − m) − p)/N"
    assert math_text(r"\operatorname{sum}_{\to (8, 1, 1)}\left(\left(a + b\right)\right)") == "Σ[→ (8, 1, 1)](a + b)"


def test_float_noise_prints_as_zero_and_small_arrays_whole():
    assert shown(np.array([1.0, -2.7e-16, 3.0]), latex=False) == "[1 0 3]"
    assert shown(-2.7e-16, latex=False) == "-2.7e-16"  # a lone number is its own scale
    assert box_text(3e-17, scale=4.0) == "0"  # a share of 3e-17 of a gradient of 4
    assert shown(np.arange(16.0).reshape(2, 2, 2, 2), latex=False) == "[0 1; 2 3; 4 5; 6 7; 8 9; 10 11; 12 13; 14 15]"
    assert shown(np.ones((1, 1, 3, 3)), latex=True).count(r"\\") == 2  # a 3×3 filter is a 3×3 matrix
    assert box_text(np.zeros(17)) == "17 array, all 0"


def chain(steps: int = 30) -> gc.Graph:
    """A long chain of scalar steps, each named: once 30 boxes in one 8:1 strip."""
    g = gc.Graph("chain")
    x = g.input("x")
    value = x
    for k in range(steps):
        value = g.let(f"h{k + 1}", gc.tanh(value) if k % 2 else value * x)
    g.output("f", value)
    return g


def ratio(view: nx.MultiDiGraph) -> float:
    return svg_ratio(render(to_dot(view), "svg").decode("utf-8"))


@pytest.mark.parametrize("spec", sorted(p.name for p in EXAMPLES.glob("*.toml")) + ["xor.py", "rnn_mean.py", "cnn_shapes.py"])
def test_every_example_fits_a_slide(spec):
    spec = read_spec(str(EXAMPLES / spec))
    model = gc.compile(spec.graph, wrt=spec.wrt, loss=spec.loss)
    for view in (to_networkx(spec.graph, model.loss), backward_view(model)):
        assert 1 / 2.5 <= ratio(view) <= 2.5, view.graph["name"]


def test_a_30_step_chain_fits_a_slide():
    g = chain()
    model = gc.compile(g, loss="f")
    views = [to_networkx(g, "f"), to_networkx(g, "f", ("x",), {"x": 0.5}), backward_view(model, {"x": 0.5}),
             backward_view(model, fold=False), to_networkx(chain(12), "f")]
    for view in views:
        assert 1 / 2.5 <= ratio(view) <= 2.5, view.graph["name"]
    assert "rank=same" in to_dot(views[0])  # the 31 boxes wrap into rows


def test_every_symbol_of_the_derivative_graph_is_a_box_or_defined_beside_the_boxes():
    """A network's folded derivative graph reads unnamed forward values (t₁ = x/16, the one-hot Y):
    a note defines each of them, and the softmax cross-entropy's probabilities read softmax(logits)."""
    from pathlib import Path
    from graphcomp.frontend.cli import read_spec
    spec = read_spec(str(Path(__file__).resolve().parent.parent / "examples" / "digits.toml"))
    view = backward_view(gc.compile(spec.graph, loss=spec.loss))
    formulas = [data["formula"] for name, data in view.nodes(data=True) if name != "where"]
    where = view.nodes["where"]["formula"].splitlines()
    defined = {line.split(" = ")[0] for line in where}
    used = {symbol for formula in formulas for symbol in re.findall(r"\bt[₀-₉]+|\bY\b", formula)}
    assert used and used <= defined, (used, defined)
    logits = next(f for f in formulas if f.startswith("l̅o̅g̅i̅t̅s̅ ="))
    assert "softmax" in logits and "exp" not in logits
    # a graph of scalars with a loss typed out (the lecture's two layers): t₂ inside exp(t₂) is defined too
    spec = read_spec(str(Path(__file__).resolve().parent.parent / "examples" / "lectures" / "backprop_two_layers.toml"))
    view = backward_view(gc.compile(spec.graph, loss=spec.loss), {"x": 1, "y": 0, "w1": 0.5, "w2": 2})
    where = view.nodes["where"]["formula"].splitlines()
    defined = {line.split(" = ")[0] for line in where}
    used = {symbol for _, data in view.nodes(data=True) for symbol in re.findall(r"\bt[₀-₉]+", data["formula"])}
    assert used <= defined, used - defined


def test_a_summarised_arrays_mean_of_noise_prints_as_zero():
    array = np.array([[0.25, -0.25, 1e-17 - 3e-17], [-0.5, 0.5, 0.0]] * 3)  # the rows of P - Y sum to 0
    array[0, 0] += 2.7e-17
    assert "mean 0," in shown(array, latex=False) and "mean 0," in box_text(array)


def rnn_on_scan() -> gc.Graph:
    g = gc.Graph("rnn")
    xs, h0 = g.input("xs", shape=(None, "T", 3)), g.input("h0", shape=(None, 4))
    W, U = g.param("W", (3, 4)), g.param("U", (4, 4))
    hT, hs = gc.scan(lambda h, x: (gc.tanh(x @ W + h @ U),) * 2, h0, xs, axis=1)
    g.output("loss", gc.sum(hT) + gc.sum(hs * hs))
    return g


def test_a_loop_is_one_box_with_its_step_inside_and_a_loop_edge(tmp_path):
    g = rnn_on_scan()
    view = to_networkx(g, "loss")
    (loop,) = [name for name, data in view.nodes(data=True) if data["op"] == "scan"]
    lines = view.nodes[loop]["formula"].splitlines()
    step = re.fullmatch(r"  (t\d+) ← tanh\(xs\[t\] @ W \+ (t\d+) @ U\)", lines[1])
    assert step and step.group(1) == step.group(2), lines  # the carry goes round under one name
    assert step.group(1) in view and re.fullmatch(rf"  t\d+\[t\] = {step.group(1)}", lines[2])
    assert view.has_edge(loop, loop)  # drawn as a loop edge
    svg = render(to_dot(view), "svg").decode()
    assert "each step t" in svg
    # an LSTM's gates, read several times, get lines of their own; the new cell is one line too
    g = gc.Graph("lstm")
    xs, y = g.input("xs", ("T", None, 3)), g.input("y", (None, 2))
    _, (hT, _) = gc.lstm(g, xs, 2, name="lstm")
    g.output("loss", gc.mse(hT, y))
    view = to_networkx(g, "loss")
    (loop,) = [name for name, data in view.nodes(data=True) if data["op"] == "scan"]
    formula = view.nodes[loop]["formula"]
    assert re.search(r"^  s1 = .*xs\[t\]", formula, re.M) and re.search(r"^  carry2 ← s\d+$", formula, re.M)
    from graphcomp.inspection.explorer import explorer_html
    assert "each step t" in explorer_html(gc.compile(rnn_on_scan()))


def test_unroll_draws_the_first_steps_of_a_loop_like_the_slide(tmp_path, capsys):
    from graphcomp.inspection.unroll import unrolled
    g = rnn_on_scan()
    view = to_networkx(unrolled(g, 3), "loss")
    assert view.nodes["h2"]["formula"] == "h2 = tanh(xs_2 @ W + h1 @ U)"
    assert {"h1", "h2", "h3", "xs_1", "xs_2", "xs_3"} <= set(view.nodes)
    backward = backward_view(gc.compile(unrolled(g, 3)))
    w = next(data["formula"] for name, data in backward.nodes(data=True) if name == "d_W")
    assert w.count("xs") == 3 and "h̄₁" in w  # W's gradient: one term per step, the BPTT sum
    # drawn with as many steps as the loop has, the unrolled graph is the model: same loss and gradients
    fixed = gc.Graph("rnn3")
    xs, h0 = fixed.input("xs", shape=(None, 3, 3)), fixed.input("h0", shape=(None, 4))
    W, U = fixed.param("W", (3, 4)), fixed.param("U", (4, 4))
    hT, hs = gc.scan(lambda h, x: (gc.tanh(x @ W + h @ U),) * 2, h0, xs, axis=1)
    fixed.output("loss", gc.sum(hT) + gc.sum(hs * hs))
    rng = np.random.default_rng(0)
    at = {"xs": rng.normal(size=(2, 3, 3)), "h0": rng.normal(size=(2, 4)), "W": rng.normal(size=(3, 4)),
          "U": rng.normal(size=(4, 4))}
    loop_out, loop_grads = gc.compile(fixed).load().gradients(**at)
    flat = {**{k: v for k, v in at.items() if k != "xs"}, **{f"xs_{t + 1}": at["xs"][:, t] for t in range(3)}}
    flat_out, flat_grads = gc.compile(unrolled(fixed, 3), wrt=["W", "U"]).load().gradients(**flat)
    np.testing.assert_allclose(flat_out["loss"], loop_out["loss"], rtol=1e-12)
    for name in ("W", "U"):
        np.testing.assert_allclose(flat_grads[name], loop_grads[name], rtol=1e-10)
    spec = tmp_path / "rnn.py"
    spec.write_text("import graphcomp as gc\n" + "g = gc.Graph('rnn')\n"
                    "xs, h0 = g.input('xs', shape=(None, 'T', 3)), g.input('h0', shape=(None, 4))\n"
                    "W, U = g.param('W', (3, 4)), g.param('U', (4, 4))\n"
                    "hT, hs = gc.scan(lambda h, x: (gc.tanh(x @ W + h @ U),) * 2, h0, xs, axis=1)\n"
                    "g.output('loss', gc.sum(hT) + gc.sum(hs * hs))\n", encoding="utf-8")
    assert main(["graph", str(spec), "--unroll", "3", "--backward", "-o", str(tmp_path / "u.svg")]) == 0
    assert main(["graph", str(spec), "--unroll", "0", "-o", str(tmp_path / "v.svg")]) == 2
    assert "between 1 and 20 steps" in capsys.readouterr().err and not (tmp_path / "v.svg").exists()


@pytest.mark.parametrize("length", [6, 20])
def test_a_derivation_at_values_writes_the_loop_out_first_and_last_steps(length):
    """`grad --at` on the RNN of examples/rnn_mean.py (whose starting state reads x outside its loop):
    every step of a short sequence; of a longer one the first and last three, the middle steps one ⋮
    line. The values are the generated loop's."""
    model = gc.compile(rnn_mean.build(), loss="loss")
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (2, length, 1))
    params = model.load().init_params(seed=0)
    at = {"x": x, "y": x.mean(axis=1), **params}
    text = model.derivation(at=at, unroll=True).text()
    shown = {int(t) for t in re.findall(r"^h(\d+) = tanh", text, flags=re.M)}
    assert shown == (set(range(1, length)) if length <= 12 else {1, 2, 3, length - 2, length - 1})  # h_T is "h"
    assert ("⋮ (the middle steps likewise)" in text) == (length > 12)
    _, grads = model.load().gradients(**at)
    for name in ("Wx", "b"):  # (Wh's 64 numbers print as a summary)
        line = next(line for line in text.splitlines() if line.startswith(f"d_{name} = "))
        printed = np.array([float(v) for v in re.findall(r"-?\d+\.?\d*(?:e-?\d+)?", line.rsplit(" = ", 1)[1])])
        np.testing.assert_allclose(printed, grads[name].ravel(), rtol=2e-3, atol=1e-6)
