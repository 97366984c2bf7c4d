"""What a person reads for tensor graphs: the cases once printed wrong, names shared with the code,
both passes of a derivation; every string rendered by KaTeX."""
import re

import numpy as np
import pytest

import graphcomp as gc
from latex_check import katex_errors
from test_formula_reader import (CORPUS, cnn, linear_vector, logistic_regression, mean_over_batch_and_classes,
                                 quadratic_form, quadratic_loss, row_vector_times_matrix, sigmoid_typed_out)


def latex_of(build, leaf):
    return gc.compile(build(), loss="loss").gradient_latex()[leaf]


def test_linear_with_a_vector_input_has_an_outer_product_weight_gradient():
    assert latex_of(linear_vector, "W").splitlines()[1:3] == [r"\bar{W} &= \bar{Y} X^\top \\", r"\bar{Y} &= 2 Y \\"]
    assert latex_of(row_vector_times_matrix, "W") == (
        r"\bar{W} = x \left(1 - \left(\tanh{\left(x W \right)}\right)^{2}\right)^\top")


def test_the_cnn_kernel_gradient_goes_through_the_max_pool_step():
    latex = latex_of(cnn, "k")
    assert r"\bar{k} &= \operatorname{conv}^{\partial w}\left(\bar{t}_{4} \odot \mathbb{1}\left[t_{4} > 0\right], x, k\right)" in latex
    assert r"\operatorname{maxpool}_{2}^{\partial}" in latex
    assert r"\mathrm{pooled} &= \operatorname{maxpool}_{2}" in latex


def test_a_mean_over_batch_and_classes_divides_by_both():
    assert latex_of(mean_over_batch_and_classes, "W") == r"\bar{W} = x^\top \frac{\mathbf{1}_{x W}}{3 N}"


def test_a_quadratic_form_prints_both_paths():
    assert latex_of(quadratic_form, "x") == r"\bar{x} = A x + A^\top x"   # the two paths of x


def test_logistic_regression_reads_sigma_minus_y_with_every_symbol_defined():
    latex = latex_of(logistic_regression, "w")
    assert latex == r"\bar{w} = X^\top \frac{\sigma\left(X w\right) - y}{N}"   # X^T (σ(X w) - y) / N


def test_a_sigmoid_typed_out_differentiates_through_its_output():
    latex = latex_of(sigmoid_typed_out, "a")
    assert r"h \odot \left(1 - h\right)" in latex
    assert "e^{" not in latex.split(r"\\")[0]


def test_the_quadratic_loss_keeps_its_factor():
    assert latex_of(quadratic_loss, "yhat") == r"\bar{\hat{y}} = \frac{\hat{y} - y}{2}"   # 2 (ŷ - y) / 4 elements


def test_mlp_layers_are_named_as_in_the_seed():
    g = gc.Graph("mlp")
    x, labels = g.input("x", (None, 4)), g.input("labels", (None,))
    logits = g.output("logits", gc.mlp(g, x, [5, 5, 3]))
    g.output("loss", gc.softmax_cross_entropy(logits, labels))
    model = gc.compile(g, loss="loss")
    lines = model.gradient_latex()["W1"].splitlines()[1:6]
    assert lines == [r"\bar{W}_{1} &= x^\top \bar{a}_{1} \\",
                     r"\bar{a}_{1} &= \bar{h}_{1} \odot \mathbb{1}\left[a_{1} > 0\right] \\",
                     r"\bar{h}_{1} &= \bar{a}_{2} W_{2}^\top \\",
                     r"\bar{a}_{2} &= \bar{h}_{2} \odot \mathbb{1}\left[a_{2} > 0\right] \\",
                     r"\bar{h}_{2} &= \overline{\mathrm{logits}} W_{3}^\top \\"]
    assert "d_a1 = d_h1 * xp.astype(a1 > 0, a1.dtype)" in model.source


def test_grad_text_defines_every_gradient_it_uses():
    model = gc.compile(logistic_regression())
    lines = model.gradient_text()["w"].splitlines()
    targets = [line.split(" = ")[0] for line in lines]
    for k, line in enumerate(lines):
        for name in re.findall(r"\bd_\w+|\bt\d+", line.split(" = ", 1)[1]):
            assert name in targets[:k], f"{name} is used before it is defined in {lines}"
    assert targets[-1] == "d_w"


def test_automatic_names_never_print_like_a_users():
    g = gc.Graph("seed003")
    t_2, x = g.input("t_2", (None, 3)), g.input("x", (None, 3))
    g.output("loss", gc.sum(gc.tanh(x * t_2) * gc.exp(x)))
    model = gc.compile(g, wrt=["x"], simplify=False)
    latex = model.gradient_latex()["x"]
    assert latex.count(r"t_{2} &=") == 0      # t_2 is the user's input, never an automatic name
    assert "t2 =" not in model.source
    assert all(s.target != "t2" for s in model.derivation().forward)


def test_multi_letter_names_read_as_words():
    model = gc.compile(logistic_regression())
    g = gc.Graph("words")
    logits, labels = g.input("logits", (None, 3)), g.input("labels", (None,))
    g.output("loss", gc.softmax_cross_entropy(logits, labels))
    latex = gc.compile(g, wrt=["logits"]).gradient_latex()["logits"]
    assert latex.splitlines()[1].startswith(r"\overline{\mathrm{logits}} &= ")
    assert model.derivation().steps[0].lhs == r"\overline{\mathrm{loss}}"


def test_a_derivation_shows_the_forward_pass_then_the_backward_pass():
    g = gc.Graph("fuv")
    u, v, w = g.input("u"), g.input("v"), g.input("w")
    g.output("f", (u + v) * w)
    d = gc.compile(g).derivation(at={"u": 2, "v": 3, "w": 4})
    assert str(d).splitlines()[:3] == ["t1 = u + v = 5", "f = t1 * w = 20", "df/df = 1"]
    assert d.latex().splitlines()[1:3] == [r"t_{1} &= u + v = 5 \\", r"f &= t_{1} w = 20 \\"]


def test_every_formula_of_the_corpus_renders():
    formulas = []
    for build in CORPUS:
        model = gc.compile(build(), loss="loss" if "loss" in build().outputs else None)
        gradients = model.gradient_latex()
        assert list(gradients) == list(model.wrt)  # one formula per leaf
        formulas += list(gradients.values()) + [model.derivation().latex()]
    assert katex_errors(formulas) == {}


def test_the_readme_shows_what_gradient_latex_prints():
    from pathlib import Path
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    block = re.search(r"```latex\n(.*?)```", readme, flags=re.S).group(1)
    from models import readme_xor
    printed = gc.compile(readme_xor(), loss="loss").gradient_latex()["W1"]
    assert [line.strip() for line in block.strip().splitlines()] == printed.splitlines()


def mazur_network():
    """The classic worked example of backpropagation: a 2-2-2 sigmoid network, squared error."""
    g = gc.Graph("net")
    x, y = g.input("x", (1, 2)), g.input("y", (1, 2))
    W1, b1 = g.param("W1", (2, 2)), g.param("b1", ())
    W2, b2 = g.param("W2", (2, 2)), g.param("b2", ())
    h = g.let("h", gc.sigmoid(x @ W1 + b1))
    o = g.let("o", gc.sigmoid(h @ W2 + b2))
    g.output("E", gc.sum(0.5 * (y - o) ** 2))
    at = dict(x=[[0.05, 0.10]], y=[[0.01, 0.99]], W1=[[0.15, 0.25], [0.20, 0.30]], b1=0.35,
              W2=[[0.40, 0.50], [0.45, 0.55]], b2=0.60)
    return g, at


def test_a_tensor_derivation_reproduces_the_textbook_2_2_2_network():
    g, at = mazur_network()
    d = gc.compile(g).derivation(at=at)
    values = {s.target: s.value for s in d.forward}
    assert np.allclose(values["h"], [[0.593269992, 0.596884378]])        # out_h1, out_h2
    assert np.allclose(values["o"], [[0.75136507, 0.772928465]])         # out_o1, out_o2
    assert values["E"] == pytest.approx(0.298371109)                     # E_total
    gradients = {s.target: s.array for s in d.steps}
    assert np.allclose(gradients["W2"], [[0.082167041, -0.022602540], [0.082667628, -0.022740242]])  # w5 w7 / w6 w8
    assert np.allclose(gradients["W1"], [[0.000438568, 0.000497713], [0.000877135, 0.000995425]])    # w1 w3 / w2 w4
    text = str(d)
    assert "h = sigmoid(t2) = [0.5933 0.5969]" in text
    assert "d_W2 = transpose(h) @ d_t3 = [0.08217 -0.0226; 0.08267 -0.02274]" in text
    latex = d.latex()
    assert r"\bar{W}_{2} &= h^\top \bar{t}_{3} = \begin{bmatrix} 0.08217 & -0.0226 \\ 0.08267 & -0.02274 \end{bmatrix}" in latex
    assert katex_errors([latex]) == {}


def test_tensor_derivations_show_small_convolutions_and_pools_whole_and_summarise_large_arrays():
    g = gc.Graph("conv")
    x, k = g.input("x", (1, 1, 4, 4)), g.param("k", (1, 1, 3, 3))
    pooled = g.let("pooled", gc.max_pool2d(x, 2, 2))
    g.output("loss", gc.sum(gc.conv2d(x, k) * gc.conv2d(x, k)) + gc.sum(pooled))
    rng = np.random.default_rng(0)
    d = gc.compile(g, wrt=["x", "k"]).derivation(at={"x": rng.normal(size=(1, 1, 4, 4)), "k": rng.normal(size=(1, 1, 3, 3))})
    latex = d.latex()
    assert latex.count(r"\begin{bmatrix}") >= 6
    assert katex_errors([latex]) == {}
    assert d.step("k").array.shape == (1, 1, 3, 3)
    big = gc.Graph("big")
    z = big.input("z", (None, 30))
    big.output("loss", gc.sum(gc.tanh(z)))
    text = str(gc.compile(big).derivation(at={"z": np.ones((2, 30))}))
    assert "[2×30 array: mean 0.7616, min 0.7616, max 0.7616]" in text


def test_derivation_at_errors_name_the_array():
    g, at = mazur_network()
    with pytest.raises(gc.GraphError, match=r"'W1' has shape \(3,\)"):
        gc.compile(g).derivation(at={**at, "W1": [1.0, 2.0, 3.0]})


def test_a_report_tells_the_whole_story_with_values(tmp_path):
    g = gc.Graph("bce")
    z, y = g.input("z", (None, 1)), g.input("y", (None, 1))
    p = g.output("p", gc.sigmoid(z))
    g.output("loss", gc.binary_cross_entropy(p, y))
    model = gc.compile(g, loss="loss", wrt=["z"])
    text = model.report(tmp_path / "bce.md", at={"z": [[0.5], [-1.0]], "y": [[1.0], [0.0]]}).read_text()
    assert r"| $p$ | sigmoid | `(None, 1)` | $\sigma\left(z\right)$ | $\begin{bmatrix} 0.6225 \\ 0.2689 \end{bmatrix}$ |" in text
    assert "- rewrite: $" in text and "log σ(z) = -softplus(-z): finite for any z" in text
    assert "- fused (" in text and "one formula whose derivative reuses forward values" in text
    assert r"\bar{z} = \frac{\sigma\left(z\right) - y}{N}" in text
    code = text.split("## Generated code")[1]
    assert "def forward(" in code and "def gradients(" in code and "def train(" not in code
    from latex_check import display_math
    assert katex_errors(display_math(text) + re.findall(r"(?<!\$)\$([^$\n]+)\$(?!\$)", text)) == {}
    literal = gc.compile(g, loss="loss", wrt=["z"], simplify=False).report(tmp_path / "literal.md").read_text()
    assert "Nothing: the code computes the graph as written" in literal
