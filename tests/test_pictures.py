"""Pictures of graphs: roles, values and gradients on boxes, local derivatives and flows on edges, the
backward pass, and layouts that fit a slide."""
import re
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

import graphcomp as gc
from graphcomp.frontend.cli import main
from graphcomp.inspection.numbers import shown
from graphcomp.inspection.derivative_graph import backward_view
from graphcomp.inspection.export import to_networkx
from graphcomp.inspection.pictures import render, to_dot, wrapped

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def fuv() -> gc.Graph:
    g = gc.Graph("fuv")
    u, v, w = g.input("u"), g.input("v"), g.input("w")
    g.output("f", (u + v) * w)
    return g


def test_values_gradients_and_local_derivatives_of_the_first_worked_example():
    view = to_networkx(fuv(), "f", ("u", "v", "w"), {"u": 2, "v": 3, "w": 4})
    assert view.nodes["t1"]["value"] == 5 and view.nodes["t1"]["gradient"] == 4
    assert view.nodes["w"]["gradient"] == 5 and view.nodes["f"]["role"] == "loss"
    assert view.edges["t1", "f", 0]["local_text"] == "∂f/∂t1 = w = 4" and view.edges["t1", "f", 0]["flow"] == 4
    assert view.edges["w", "f", 1]["local_text"] == "∂f/∂w = t1 = 5" and view.edges["w", "f", 1]["flow"] == 5
    dot = to_dot(view)
    assert "rankdir=LR" in dot  # a graph of scalars reads left to right
    assert "shape ()" not in dot and "()" not in dot  # scalars print no shape


def test_a_value_used_twice_shows_both_flows_adding_up():
    g = gc.Graph("fan_out")
    x, y = g.input("x"), g.input("y")
    g.output("b", (x + y) * y)
    view = to_networkx(g, "b", ("x", "y"), {"x": 2, "y": -3})
    flows = sorted(data["flow"] for _, _, data in view.out_edges("y", data=True))
    assert flows == [-3.0, -1.0] and view.nodes["y"]["gradient"] == sum(flows) == -4.0


def test_roles_and_shapes_of_a_network():
    g = gc.Graph("net")
    x, labels = g.input("x", (None, 4)), g.input("labels", (None,))
    logits = g.output("logits", gc.mlp(g, x, [5, 3]))
    g.output("loss", gc.softmax_cross_entropy(logits, labels))
    view = to_networkx(g, "loss")
    roles = {name: data["role"] for name, data in view.nodes(data=True)}
    assert roles["x"] == "input" and roles["W1"] == "param" and roles["logits"] == "output" and roles["loss"] == "loss"
    assert view.nodes["x"]["shape_text"] == "(N, 4)"  # the batch axis as a spec writes it
    # layer 1's values share a cluster; unnamed single-use values are written inside their user's box
    assert view.nodes["W1"]["cluster"] == view.nodes["h1"]["cluster"] != ""
    assert all(not name.startswith("t") for name in view.nodes)
    assert "W1" in view.nodes["a1"]["formula"] and "rankdir=TB" in to_dot(view)
    assert len(to_networkx(g, "loss", fold=False)) > len(view)


def test_precedence_decides_the_parentheses_of_folded_formulas():
    g = gc.Graph("p")
    x, W, b = g.input("x", (None, 3)), g.param("W", (3, 2)), g.param("b", (2,))
    g.output("out", gc.sum(gc.tanh((x - b[0]) @ W + b) * 2))
    formula = to_networkx(g).nodes["out"]["formula"]
    assert formula == "out = sum(tanh((x - b[0]) @ W + b) * 2)"


def test_tensor_values_show_as_arrays_on_boxes_and_edges():
    g = gc.Graph("lin")
    x, w = g.input("x", (None, 2)), g.param("w", (2,))
    g.output("loss", gc.mean((x @ w - 1) ** 2))
    at = {"x": np.array([[1.0, 2.0], [3.0, 4.0]]), "w": np.array([0.5, -1.0])}
    view = to_networkx(g, "loss", ("w",), at)
    # t1 = x @ w = [-1.5, -2.5]; loss = mean((t1 - 1)^2) = (6.25 + 12.25) / 2
    assert view.nodes["loss"]["value"] == pytest.approx(9.25)
    assert "-1.5" in view.nodes["t1"]["value_text"] and "-2.5" in view.nodes["t1"]["value_text"]
    want = 2 * (at["x"] @ at["w"] - 1) @ at["x"] / 2
    assert view.nodes["w"]["gradient_text"] == shown(want, latex=False)
    assert view.edges["w", "t1", 1]["flow_text"].startswith("adds")


def test_the_backward_picture_is_the_derivative_graph_of_the_slide():
    model = gc.compile(fuv(), loss="f")  # the lecture notes' f = (u + v) w: t1 = u + v, then f = t1 w
    view = backward_view(model, {"u": 2, "v": 3, "w": 4})
    assert view.nodes["d_t1"]["formula"] == "∂f/∂t₁ = w · ∂f/∂f" and view.nodes["d_t1"]["value"] == 4
    assert view.nodes["d_u"]["formula"] == "∂f/∂u = 1 · ∂f/∂t₁" and view.nodes["d_u"]["value"] == 4
    assert view.nodes["d_w"]["value"] == 5 and view.nodes["d_f"]["role"] == "loss"
    # the chain rule's edges: from the gradient of a user to the gradient of each operand it uses
    assert {(s, t) for s, t, _ in view.edges} == {("d_f", "d_t1"), ("d_f", "d_w"), ("d_t1", "d_u"), ("d_t1", "d_v")}
    assert view.edges["d_f", "d_t1", "f/0"]["local_text"] == "· w"


def test_shared_weights_of_an_unrolled_rnn_do_not_web_the_picture():
    g = gc.Graph("rnn")
    x, Wh, Wx = g.input("x", (None, 5, 2)), g.param("Wh", (3, 3)), g.param("Wx", (2, 3))
    h = g.let("h0", gc.tanh(x[:, 0, :] @ Wx))
    for t in range(1, 5):
        h = g.let(f"h{t}", gc.tanh(x[:, t, :] @ Wx + h @ Wh))
    g.output("loss", gc.sum(h))
    dot = to_dot(to_networkx(g, "loss"))
    assert "read by h0, h1, … h4" in dot and '"Wx" ->' not in dot
    assert '"h3" -> "h4"' in dot


def test_long_formulas_break_after_the_commas_of_their_outer_call():
    line = "pooled = max_pool2d(t1 + reshape(conv_bias, (8, 1, 1)), size=2, stride=2)"
    assert wrapped(line) == ["pooled = max_pool2d(t1 + reshape(conv_bias, (8, 1, 1)),", "    size=2, stride=2)"]
    assert wrapped("t1 = u + v") == ["t1 = u + v"]


def png_size(data: bytes) -> tuple[int, int]:
    return struct.unpack(">II", data[16:24])


def test_png_resolution_follows_dpi():
    dot = to_dot(to_networkx(fuv()))
    small, sharp = png_size(render(dot, "png", dpi=72)), png_size(render(dot, "png"))
    assert sharp[0] == pytest.approx(small[0] * 192 / 72, rel=0.05)


def test_command_line_options(tmp_path, capsys):
    assert main(["graph", str(EXAMPLES / "fuv.toml"), "-o", str(tmp_path / "f.svg")]) == 0
    assert (tmp_path / "f.svg").read_text().lstrip().startswith("<?xml")  # the format follows the suffix
    assert main(["graph", str(EXAMPLES / "fuv.toml"), "-o", str(tmp_path / "f.picture")]) == 0
    assert "<svg" in (tmp_path / "f.picture").read_text()  # an unknown suffix: SVG, the default
    assert main(["graph", str(EXAMPLES / "fuv.toml"), "--rankdir", "TB", "--format", "dot", "-o", str(tmp_path / "f.dot")]) == 0
    assert "rankdir=TB" in (tmp_path / "f.dot").read_text()
    assert main(["graph", str(EXAMPLES / "fuv.toml"), "--backward", "--no-simplify", "--at", "u=1,v=2,w=3",
                 "--format", "json", "-o", str(tmp_path / "b.json")]) == 0
    assert '"value": 3.0' in (tmp_path / "b.json").read_text()  # df/du = w = 3
    assert main(["graph", str(EXAMPLES / "fuv.toml"), "--dpi", "0", "-o", str(tmp_path / "x.png")]) == 2
    assert "--dpi must be between 10 and 1200" in capsys.readouterr().err


def test_the_documented_pictures_are_drawn_by_one_command(tmp_path):
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        import make_pictures
    finally:
        sys.path.remove(str(ROOT / "docs"))
    written = make_pictures.make(tmp_path)
    assert {path.name for path in written} == {path.name for path in (ROOT / "docs" / "pictures").glob("*.svg")}
    for path in written:
        svg = path.read_text()
        width, height = (float(n) for n in re.search(r'width="([\d.]+)pt" height="([\d.]+)pt"', svg).groups())
        assert 1 / 2.5 <= width / height <= 2.5, f"{path.name} is {width:.0f} x {height:.0f} pt: too long a strip"


def test_arrays_print_whole_up_to_16_elements_and_as_a_summary_above():
    g = gc.Graph("big")
    x, W, K = g.input("x", (None, 2)), g.param("W", (2, 4)), g.param("K", (1, 1, 3, 3))
    g.output("loss", gc.sum(g.let("z", x @ W)) + gc.sum(K))
    at = {"x": np.ones((2, 2)), "W": np.arange(8.0).reshape(2, 4), "K": np.full((1, 1, 3, 3), 1 / 9)}
    view = to_networkx(g, "loss", ("W", "K"), at)
    assert view.nodes["W"]["value_text"] == "[0 1 2 3; 4 5 6 7]"
    assert view.nodes["W"]["gradient_text"] == "[2 2 2 2; 2 2 2 2]"  # each weight meets both examples' 1s
    assert view.nodes["K"]["value_text"] == "[0.1111 0.1111 0.1111; 0.1111 0.1111 0.1111; 0.1111 0.1111 0.1111]"
    big = to_networkx(g, "loss", ("W", "K"), {**at, "x": np.ones((9, 2))})
    assert big.nodes["x"]["value_text"] == "9×2 array, all 1"
    assert big.nodes["z"]["value_text"] == "9×4 array, mean 7, from 4 to 10"  # the columns of W, summed
