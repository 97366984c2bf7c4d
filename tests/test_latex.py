"""Formulas a person reads: golden strings for the lecture notes' worked examples (f = (u + v) w, a value
used twice), and every string rendered by KaTeX."""
import pytest

import graphcomp as gc
from latex_check import display_math, katex_errors


def fuv():
    g = gc.Graph("fuv")
    u, v, w = g.input("u"), g.input("v"), g.input("w")
    g.output("f", (u + v) * w)
    return gc.compile(g)


def fanout():
    g = gc.Graph("fanout")
    x, y = g.input("x"), g.input("y")
    g.output("b", (x + y) * y)
    return gc.compile(g)


def mlp():
    g = gc.Graph("mlp")
    x, y = g.input("x", (None, 2)), g.input("y", (None, 1))
    W_1, b_1 = g.param("W_1", (2, 3)), g.param("b_1", (3,))
    W_2 = g.param("W_2", (3, 1))
    h = g.let("h", gc.sigmoid(x @ W_1 + b_1))
    g.output("loss", gc.mse(h @ W_2, y))
    return gc.compile(g)


def cnn():
    g = gc.Graph("cnn")
    x, labels = g.input("x", (None, 1, 6, 6)), g.input("labels", (None,))
    k, W = g.param("k", (2, 1, 3, 3)), g.param("W", (8, 3))
    pooled = g.let("pooled", gc.max_pool2d(gc.relu(gc.conv2d(x, k))))
    g.output("loss", gc.softmax_cross_entropy(gc.flatten(pooled) @ W, labels))
    return gc.compile(g)


def test_scalar_gradients_in_closed_form():
    assert fuv().gradient_latex() == {
        "u": r"\frac{\partial f}{\partial u} = w",
        "v": r"\frac{\partial f}{\partial v} = w",
        "w": r"\frac{\partial f}{\partial w} = u + v",
    }


def test_tensor_gradients_are_the_codes_equations_under_the_codes_names():
    model = mlp()
    formulas = model.gradient_latex()
    assert formulas["W_1"].splitlines()[1:4] == [
        r"\bar{W}_{1} &= x^\top \left(\bar{h} \odot h \odot \left(1 - h\right)\right) \\",  # d_W_1 = x.T @ d_t1
        r"\bar{h} &= \frac{2 \left(h W_{2} - y\right)}{N} W_{2}^\top \\",                     # d_h = d_t3 @ W_2.T
        r"h &= \sigma\left(b_{1} + x W_{1}\right)",                                             # every symbol is defined
    ]
    assert formulas["b_1"].splitlines()[1] == r"\bar{b}_{1} &= \mathbf{1}^\top \left(\bar{h} \odot h \odot \left(1 - h\right)\right) \\"
    assert formulas["W_2"].startswith(r"\begin{aligned}" + "\n" + r"\bar{W}_{2} &= h^\top")
    code = model.gradient_text()["W_1"].splitlines()
    # the graph's own numbering: t2 = t1 + b_1 went into h's formula, t4 = t3 - y into t5's
    assert code[-4:] == ["d_t3 = 2*(t3 - y)/t5.shape[0]", "d_h = d_t3 @ W_2.T", "d_t1 = d_h*h*(1 - h)", "d_W_1 = x.T @ d_t1"]
    assert all(line in model.source for line in code)


def test_symbolic_derivation_follows_the_slides():
    steps = [s.latex() for s in fuv().derivation().steps]
    assert steps == [
        r"\frac{\partial f}{\partial f} &= 1",
        r"\frac{\partial f}{\partial w} &= t_{1} \cdot \frac{\partial f}{\partial f}",
        r"\frac{\partial f}{\partial t_{1}} &= w \cdot \frac{\partial f}{\partial f}",
        r"\frac{\partial f}{\partial u} &= 1 \cdot \frac{\partial f}{\partial t_{1}}",
        r"\frac{\partial f}{\partial v} &= 1 \cdot \frac{\partial f}{\partial t_{1}}",
    ]


def test_numeric_derivation_of_the_worked_example():
    d = fuv().derivation(at={"u": 2, "v": 3, "w": 4})
    assert [(s.target, s.value) for s in d.steps] == [("f", 1), ("w", 5), ("t1", 4), ("u", 4), ("v", 4)]
    assert d.step("u").latex() == r"\frac{\partial f}{\partial u} &= 1 \cdot \frac{\partial f}{\partial t_{1}} = 1 \cdot 4 = 4"


def test_numeric_derivation_shows_both_paths_into_a_fanned_out_value():
    step = fanout().derivation(at={"x": 2, "y": -3}).step("y")
    assert step.path_values == [-3, -1]
    assert step.value == -4
    assert step.latex().endswith(r"= -3 + \left(-1\right) = -4")


def test_tensor_derivation_lists_every_adjoint():
    d = mlp().derivation()
    assert [s.target for s in d.steps][0] == "loss"
    assert r"\bar{h} &= \bar{t}_{3} W_{2}^\top" in d.latex()  # t3 = h W2
    assert r"\bar{t}_{3} &= \bar{t}_{4}" in d.latex()          # t4 = t3 - y


def test_derivation_errors_name_the_problem():
    with pytest.raises(gc.GraphError, match="missing value\\(s\\) for w"):
        fuv().derivation(at={"u": 1, "v": 2})
    with pytest.raises(gc.GraphError, match="unknown name\\(s\\) z"):
        fuv().derivation(at={"u": 1, "v": 2, "w": 3, "z": 0})
    with pytest.raises(gc.GraphError, match="missing value\\(s\\) for W_1, b_1, W_2, y"):
        mlp().derivation(at={"x": 1})


def test_every_latex_string_renders():
    formulas = []
    for model in (fuv(), fanout(), mlp(), cnn()):
        formulas += list(model.gradient_latex().values())
        formulas.append(model.derivation().latex())
        formulas += display_math(model._repr_markdown_())
    formulas.append(fuv().derivation(at={"u": 2, "v": 3.5, "w": -4}).latex())
    assert katex_errors(formulas) == {}


def test_report_is_markdown_whose_formulas_render(tmp_path):
    for model in (fuv(), mlp(), cnn()):
        path = model.report(tmp_path / f"{model.graph.name}.md")
        text = path.read_text()
        for heading in ("## Forward pass", "## Local derivatives", "## What simplification changed", "## Gradients",
                        "## Derivation", "## Generated code"):
            assert heading in text
        assert katex_errors(display_math(text)) == {}
    text = (tmp_path / "mlp.md").read_text()
    # the local derivative of the sigmoid, as differentiated and as used
    assert r"\frac{\partial h}{\partial t_{2}} = \frac{e^{- t_{2}}}{\left(1 + e^{- t_{2}}\right)^{2}} \;\to\; h \left(1 - h\right)" in text


def test_notebook_views():
    d = fuv().derivation(at={"u": 2, "v": 3, "w": 4})
    assert d._repr_latex_().startswith("$$\n\\begin{aligned}")
    assert "$$\\frac{\\partial f}{\\partial u} = w$$" in fuv()._repr_markdown_().splitlines()


def test_katex_check_catches_malformed_latex():
    assert set(katex_errors([r"\frac{a}{", r"\undefinedcommand x", r"a + b"])) == {r"\frac{a}{", r"\undefinedcommand x"}


def test_a_fraction_is_transposed_whole():
    g = gc.Graph("scaled")
    x, W = g.input("x", (None, 3)), g.param("W", (3, 2))
    g.output("loss", gc.sum((x / 16) @ W))
    first = gc.compile(g).gradient_latex()["W"].splitlines()[0]
    assert r"\left(\frac{x}{16}\right)^\top" in first and r"\frac{x}{16}^\top" not in first
