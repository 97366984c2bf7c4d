"""The running example of Baydin et al., "Automatic differentiation in machine learning: a survey":
f(x1, x2) = ln x1 + x1 x2 - sin x2 at x1 = 2, x2 = 5, in Python (examples/ad_survey.py) and as a spec
(examples/ad_survey.toml): its values, its reverse-mode gradients, and the formulas and derivation printed."""
import math
import sys
from pathlib import Path

import numpy as np
import pytest

import graphcomp as gc
from graphcomp.frontend.cli import main, read_spec
from latex_check import katex_errors
from latex_reader import Reader, equations

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
F = math.log(2) + 10 - math.sin(5)        # 11.652
DF_DX1 = 1 / 2 + 5                         # 5.5
DF_DX2 = 2 - math.cos(5)                   # 1.716


def survey_graph(kind: str) -> gc.Graph:
    if kind == "spec":
        return read_spec(str(EXAMPLES / "ad_survey.toml")).graph
    sys.path.insert(0, str(EXAMPLES))
    try:
        import ad_survey
    finally:
        sys.path.remove(str(EXAMPLES))
    return ad_survey.build()


@pytest.mark.parametrize("kind", ["python", "spec"])
@pytest.mark.parametrize("simplify", [True, False], ids=["simplified", "literal"])
def test_the_value_and_gradient_are_the_surveys(kind, simplify):
    outputs, grads = gc.compile(survey_graph(kind), simplify=simplify).load().gradients(x1=2.0, x2=5.0)
    assert round(outputs["y"], 3) == 11.652 and round(grads["x2"], 3) == 1.716
    assert outputs["y"] == pytest.approx(F, rel=1e-15)
    assert grads["x1"] == pytest.approx(DF_DX1, rel=1e-15)
    assert grads["x2"] == pytest.approx(DF_DX2, rel=1e-15)


@pytest.mark.parametrize("kind", ["python", "spec"])
def test_the_printed_gradients_are_the_textbooks(kind):
    model = gc.compile(survey_graph(kind))
    latex = model.gradient_latex()
    assert latex == {"x1": r"\frac{\partial y}{\partial x_{1}} = x_{2} + \frac{1}{x_{1}}",
                     "x2": r"\frac{\partial y}{\partial x_{2}} = x_{1} - \cos{\left(x_{2} \right)}"}
    reader = Reader({"x_{1}": 2.0, "x_{2}": 5.0}, 1)
    assert reader.evaluate(equations(latex["x1"])[0][1]) == pytest.approx(DF_DX1, rel=1e-15)
    assert reader.evaluate(equations(latex["x2"])[0][1]) == pytest.approx(DF_DX2, rel=1e-15)
    assert not katex_errors(list(latex.values()))


def test_the_derivation_is_the_surveys_reverse_sweep():
    """Forward trace v1 ... v4, y; then the adjoints from y back to x1 and x2, each value read back."""
    derivation = gc.compile(survey_graph("python")).derivation(at={"x1": 2.0, "x2": 5.0})
    latex = derivation.latex()
    assert not katex_errors([latex])
    values = {"v_{1}": math.log(2), "v_{2}": 10.0, "v_{3}": math.sin(5), "v_{4}": math.log(2) + 10, "y": F,
              r"\frac{\partial y}{\partial x_{1}}": DF_DX1, r"\frac{\partial y}{\partial x_{2}}": DF_DX2}
    reader = Reader({"x_{1}": 2.0, "x_{2}": 5.0}, 1)
    pairs = equations(latex)
    reader.define([(lhs, rhs.split(" = ")[0]) for lhs, rhs in pairs])
    for symbol, want in values.items():
        assert reader.value(symbol) == pytest.approx(want, rel=1e-12), symbol
    text = derivation.text().splitlines()
    assert "dy/dx2 = x1 * dy/dv2 + cos(x2) * dy/dv3 = 2 * 1 + 0.283662 * (-1) = 2 + (-0.283662) = 1.71634" in text
    assert "dy/dx1 = 1/x1 * dy/dv1 + x2 * dy/dv2 = 0.5 * 1 + 5 * 1 = 0.5 + 5 = 5.5" in text


def test_graphcomp_grad_at_prints_the_sweep_with_its_numbers(capsys):
    assert main(["grad", str(EXAMPLES / "ad_survey.toml"), "--at", "x1=2,x2=5"]) == 0
    out = capsys.readouterr().out.splitlines()
    for line in ("v1 = log(x1) = 0.693147", "v2 = x1 * x2 = 10", "v3 = sin(x2) = -0.958924", "y = v4 - v3 = 11.6521",
                 "dy/dx1 = 1/x1 * dy/dv1 + x2 * dy/dv2 = 0.5 * 1 + 5 * 1 = 0.5 + 5 = 5.5"):
        assert line in out, out
    assert main(["grad", str(EXAMPLES / "ad_survey.toml"), "--latex"]) == 0
    assert r"x_{1} - \cos{\left(x_{2} \right)}" in capsys.readouterr().out


def test_the_example_runs(capsys):
    sys.path.insert(0, str(EXAMPLES))
    try:
        import ad_survey
    finally:
        sys.path.remove(str(EXAMPLES))
    grads = ad_survey.main()
    assert np.allclose([grads["x1"], grads["x2"]], [DF_DX1, DF_DX2], rtol=1e-15)
    assert "y = 11.6521, dy/dx1 = 5.5000, dy/dx2 = 1.7163" in capsys.readouterr().out


SURVEY_FORWARD_TRACE = ["v1 = log(x1) = 0.693147", "dot_v1 = dot_x1/x1 = 0.5", "v2 = x1 * x2 = 10",
                        "dot_v2 = dot_x1*x2 + dot_x2*x1 = 5", "v4 = v1 + v2 = 10.6931", "dot_v4 = dot_v1 + dot_v2 = 5.5",
                        "v3 = sin(x2) = -0.958924", "dot_v3 = dot_x2*cos(x2) = 0", "y = v4 - v3 = 11.6521",
                        "dot_y = dot_v4 - dot_v3 = 5.5"]


@pytest.mark.parametrize("kind", ["python", "spec"])
def test_forward_mode_is_the_surveys_tangent_trace(kind):
    """Forward mode along x1 (ẋ1 = 1, ẋ2 = 0): the survey's v̇1 = 0.5, v̇2 = 5, v̇3 = 0, v̇4 = ẏ = 5.5."""
    model = gc.compile(survey_graph(kind))
    trace = model.tangent_derivation({"x1": 1.0, "x2": 0.0}, at={"x1": 2.0, "x2": 5.0})
    assert trace.text().splitlines() == SURVEY_FORWARD_TRACE
    assert r"\dot{v}_{3} &= \dot{x}_{2} \cos{\left(x_{2} \right)} = 0" in trace.latex()
    assert not katex_errors([trace.latex()])


def test_gc_jvp_gives_both_partials_in_forward_mode():
    sys.path.insert(0, str(EXAMPLES))
    try:
        import ad_survey
    finally:
        sys.path.remove(str(EXAMPLES))
    module = gc.compile(ad_survey.build_forward(), loss="y").load()
    along_x1 = module.forward(x1=2.0, x2=5.0, dot_x1=1.0, dot_x2=0.0)
    along_x2 = module.forward(x1=2.0, x2=5.0, dot_x1=0.0, dot_x2=1.0)
    assert along_x1["dot_y"] == pytest.approx(DF_DX1, rel=1e-15) and along_x2["dot_y"] == pytest.approx(DF_DX2, rel=1e-15)


def test_grad_tangent_on_the_spec_prints_the_trace(capsys):
    assert main(["grad", str(EXAMPLES / "ad_survey.toml"), "--at", "x1=2,x2=5", "--tangent", "x1=1,x2=0"]) == 0
    assert capsys.readouterr().out.splitlines() == SURVEY_FORWARD_TRACE
