"""The elementwise functions (sin, cos, tan, arcsin, arctan, sinh, cosh, log1p, expm1, square), comparisons,
where and clip: values and gradients against PyTorch in float64, the kink conventions at the kinks
themselves, the derivatives as printed (code, text, LaTeX read back by tests/latex_reader.py and rendered
by KaTeX), spec files, and the errors of bad use."""
import tomllib

import numpy as np
import pytest
import torch

import graphcomp as gc
from graphcomp.formulas.symbols import symbol
from graphcomp.frontend import spec as specs
from graphcomp.frontend.expressions import SpecError
from latex_check import katex_errors
from latex_reader import Reader, equations

UNARY = [  # (function, PyTorch's, the range of x)
    ("sin", torch.sin, (-3, 3)), ("cos", torch.cos, (-3, 3)), ("tan", torch.tan, (-1.3, 1.3)),
    ("arcsin", torch.asin, (-0.95, 0.95)), ("arctan", torch.atan, (-4, 4)), ("sinh", torch.sinh, (-3, 3)),
    ("cosh", torch.cosh, (-3, 3)), ("log1p", torch.log1p, (-0.9, 4)), ("expm1", torch.expm1, (-3, 3)),
    ("square", torch.square, (-3, 3)),
]


def module_of(build, shapes: dict, wrt=None, simplify=True):
    """The loaded module of loss = Σ build(leaves) ⊙ r, and its compiled model."""
    g = gc.Graph("case")
    leaves = {name: g.input(name, shape) for name, shape in shapes.items()}
    out = build(**leaves)
    g.output("out", out)
    g.output("loss", gc.sum(out * g.input("r", out.shape)))
    model = gc.compile(g, loss="loss", wrt=wrt or list(shapes), simplify=simplify)
    return model.load(), model


def torch_gradients(build, arrays: dict, wrt: list[str]):
    """PyTorch's loss Σ build(leaves) ⊙ r, and its gradients with respect to `wrt`, in float64."""
    tensors = {k: torch.tensor(v, dtype=torch.float64, requires_grad=k in wrt) for k, v in arrays.items()}
    out = build(**{k: v for k, v in tensors.items() if k != "r"})
    (out * tensors["r"]).sum().backward()
    return out.detach().numpy(), {k: tensors[k].grad.numpy() for k in wrt}


@pytest.mark.parametrize("simplify", [True, False], ids=["simplified", "literal"])
@pytest.mark.parametrize("name, reference, domain", UNARY, ids=[u[0] for u in UNARY])
def test_each_function_and_its_gradient_agree_with_pytorch(name, reference, domain, simplify):
    rng = np.random.default_rng(1)
    arrays = {"x": rng.uniform(*domain, size=(5, 3)), "r": rng.normal(size=(5, 3))}
    module, _ = module_of(lambda x: getattr(gc, name)(x), {"x": (None, 3)}, simplify=simplify)
    outputs, grads = module.gradients(**arrays)
    want_out, want_grads = torch_gradients(lambda x: reference(x), arrays, ["x"])
    np.testing.assert_allclose(outputs["out"], want_out, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(grads["x"], want_grads["x"], rtol=1e-10, atol=1e-12)


def test_log1p_and_expm1_keep_the_digits_of_small_values():
    module, _ = module_of(lambda x: gc.log1p(x) + gc.expm1(x), {"x": (2,)})
    outputs, grads = module.gradients(x=np.array([1e-12, -3e-17]), r=np.ones(2))
    np.testing.assert_allclose(outputs["out"], [2e-12, -6e-17], rtol=1e-12)
    np.testing.assert_allclose(grads["x"], [2.0, 2.0], rtol=1e-12)


def test_derivatives_read_as_a_textbook_writes_them():
    """tan' = 1 + tan², expm1' = expm1 + 1 through the forward value; sinh' = cosh, arcsin' = 1/√(1 - x²)."""
    g = gc.Graph("d")
    x = g.input("x", (3,))
    values = {name: g.let(name, getattr(gc, function)(x))
              for name, function in (("u", "tan"), ("v", "expm1"), ("s", "sinh"), ("a", "arcsin"), ("l", "log1p"))}
    g.output("loss", sum((gc.sum(v * g.input(f"r_{k}", (3,))) for k, v in values.items()), start=0))
    model = gc.compile(g, wrt=["x"])
    text = model.gradient_text()["x"].splitlines()
    for line in ("d_x_5 = d_u*(u**2 + 1)", "d_x_4 = d_v*(v + 1)", "d_x_3 = d_s*xp.cosh(x)",
                 "d_x_2 = d_a/xp.sqrt(1 - x**2)", "d_x_1 = d_l/(x + 1)"):
        assert line in text, text
    latex = model.gradient_latex()["x"]
    for part in (r"\bar{u} \odot \left(u^{2} + 1\right)", r"\bar{v} \odot \left(v + 1\right)",
                 r"\bar{s} \odot \cosh{\left(x \right)}", r"\frac{\bar{a}}{\sqrt{1 - x^{2}}}", r"\frac{\bar{l}}{x + 1}",
                 r"v &= \left(e^{x} - 1\right)", r"u &= \tan{\left(x \right)}"):
        assert part in latex, latex


def test_the_code_calls_the_array_api_functions():
    _, model = module_of(lambda x: gc.arcsin(gc.tanh(x)) + gc.arctan(x) + gc.log1p(gc.square(x)) + gc.expm1(x)
                              + gc.clip(x, -1, 1) + gc.where(x > 0, x, 0), {"x": (None, 2)})
    for call in ("xp.asin(", "xp.atan(", "xp.log1p(", "xp.expm1(", "xp.clip(x, (-1.0), 1.0)", "xp.where(x > 0, x, 0)"):
        assert call in model.source, call
    assert "out = xp.square(x)" in module_of(gc.square, {"x": (None, 2)})[1].source


# ---------------------------------------------------------------- kinks

def test_where_at_its_kink_follows_pytorch():
    """The gradient goes to a where the condition holds, to b elsewhere (x = 0: b), none into the condition."""
    x = np.array([-1.5, 0.0, 0.0, 2.0, 0.5])
    arrays = {"x": x, "a": np.array([0.3, -1.0, 2.0, 1.5, -0.7]), "r": np.array([1.0, 2.0, -1.0, 0.5, 3.0])}
    module, _ = module_of(lambda x, a: gc.where(x > 0, a * x, a * a), {"x": (5,), "a": (5,)})
    outputs, grads = module.gradients(**arrays)
    want_out, want = torch_gradients(lambda x, a: torch.where(x > 0, a * x, a * a), arrays, ["x", "a"])
    np.testing.assert_allclose(outputs["out"], want_out, rtol=1e-12)
    for name in ("x", "a"):
        np.testing.assert_allclose(grads[name], want[name], rtol=1e-12, atol=0)


def test_where_selects_rather_than_multiplying_by_a_mask():
    """where(x > 0, log x, 0) is 0 where x <= 0 (a mask times log x would be nan there), its gradient
    1/x where x > 0 and 0 where x < 0, as PyTorch's."""
    arrays = {"x": np.array([-1.0, 0.5, 2.0]), "r": np.ones(3)}
    module, _ = module_of(lambda x: gc.where(x > 0, gc.log(x), 0), {"x": (3,)})
    with np.errstate(invalid="ignore"):
        outputs, grads = module.gradients(**arrays)
    want_out, want = torch_gradients(lambda x: torch.where(x > 0, torch.log(x), torch.zeros(())), arrays, ["x"])
    np.testing.assert_allclose(outputs["out"], want_out)
    np.testing.assert_allclose(grads["x"], want["x"])


@pytest.mark.parametrize("lo, hi", [(-1.0, 1.0), (None, 1.0), (-1.0, None), (0.5, 0.5)])
def test_clip_at_its_bounds_follows_torch_clamp(lo, hi):
    """The gradient passes where lo <= x <= hi, both bounds included (torch.clamp), and nowhere else."""
    x = np.array([-2.0, -1.0, -0.25, 0.5, 1.0, 3.0])
    arrays = {"x": x, "r": np.arange(1.0, 7.0)}
    module, _ = module_of(lambda x: gc.clip(x, lo, hi), {"x": (6,)})
    outputs, grads = module.gradients(**arrays)
    want_out, want = torch_gradients(lambda x: torch.clamp(x, lo, hi), arrays, ["x"])
    np.testing.assert_array_equal(outputs["out"], want_out)
    np.testing.assert_array_equal(grads["x"], want["x"])


def test_comparisons_are_masks_that_pass_no_gradient():
    rng = np.random.default_rng(2)
    arrays = {"x": rng.normal(size=(4, 3)), "y": rng.normal(size=(3,)), "r": rng.normal(size=(4, 3))}
    arrays["x"][0] = arrays["y"]  # ties: x == y on the first row
    build = lambda x, y: ((x > y) + 2 * (x < y) + 4 * (x >= y) + 8 * (x <= y)  # noqa: E731 - a lambda, as the other builders
                          + 16 * gc.equal(x, y) + 32 * gc.not_equal(x, y)) * gc.where(x - y, x, y * y)
    module, _ = module_of(build, {"x": (None, 3), "y": (3,)})
    outputs, grads = module.gradients(**arrays)
    tx, ty = torch.tensor(arrays["x"], requires_grad=True), torch.tensor(arrays["y"], requires_grad=True)
    mask = ((tx > ty) + 2 * (tx < ty) + 4 * (tx >= ty) + 8 * (tx <= ty) + 16 * (tx == ty) + 32 * (tx != ty)).double()
    out = mask * torch.where(tx - ty != 0, tx, ty * ty)
    (out * torch.tensor(arrays["r"])).sum().backward()
    np.testing.assert_allclose(outputs["out"], out.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(grads["x"], tx.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(grads["y"], ty.grad.numpy(), rtol=1e-12)


# ---------------------------------------------------------------- formulas

def graph_of_every_function() -> gc.Graph:
    g = gc.Graph("every")
    x, y = g.input("x", (None, 3)), g.param("y", (3,))
    a = g.let("a", gc.sin(x) * gc.cos(y) + gc.tan(x / 4) + gc.arcsin(gc.tanh(y)) + gc.arctan(x * y))
    b = g.let("b", gc.sinh(x) - gc.cosh(y) + gc.log1p(gc.square(y)) + gc.expm1(x / 2))
    c = g.let("c", gc.where(x > y, a, b) + gc.clip(a * b, -1, 2) + gc.where(a, b, 0.5) + (y <= 0.5) * x)
    g.output("loss", gc.sum(c * c) + gc.sum(gc.clip(y, lo=0) + gc.clip(x, hi=0.25)))
    return g


@pytest.mark.parametrize("simplify", [True, False], ids=["simplified", "literal"])
def test_printed_formulas_read_back_to_the_gradients_and_render(simplify):
    graph = graph_of_every_function()
    rng = np.random.default_rng(3)
    arrays = {"x": rng.normal(size=(4, 3)), "y": rng.normal(size=3)}
    model = gc.compile(graph, wrt=["x", "y"], simplify=simplify)
    _, grads = model.load().gradients(**arrays)
    formulas = model.gradient_latex()
    for name, latex in formulas.items():
        reader = Reader({**{symbol(k): v for k, v in arrays.items()}, "N": 4}, 4)
        pairs = equations(latex)
        reader.define(pairs[1:])
        np.testing.assert_allclose(np.broadcast_to(reader.evaluate(pairs[0][1]), grads[name].shape), grads[name],
                                   rtol=1e-9, atol=1e-12, err_msg=latex)
    assert not katex_errors(list(formulas.values()))


def test_the_derivation_at_a_point_reads_back_and_renders():
    graph = graph_of_every_function()
    model = gc.compile(graph, wrt=["x", "y"])
    rng = np.random.default_rng(4)
    latex = model.derivation(at={"x": rng.normal(size=(2, 3)), "y": rng.normal(size=3)}).latex()
    assert r"\arcsin" in latex and r"\operatorname{clip}" in latex and r"\mathbb{1}\left[x > y\right]" in latex
    assert not katex_errors([latex])


# ---------------------------------------------------------------- specs and errors

SPEC = """
[model]
name = "conditions"
[inputs]
x = [3]
[nodes]
a = "where(x > 0, log1p(x), expm1(x))"
b = "clip(x, -0.5, 0.5) + where(x == 1, 2 * x, 0) + where(0.5 < x, tan(x), arcsin(tanh(x)))"
[outputs]
loss = "sum(a * b + square(sinh(x)) + cosh(x) * arctan(x) + sin(x) * cos(x) + (x != 0.25) * x)"
"""


def parse_spec(text: str, file: str):
    return specs.build(tomllib.loads(text), file)


def test_a_spec_writes_conditions_as_comparisons():
    graph = parse_spec(SPEC, "conditions.toml").graph
    model = gc.compile(graph, wrt=["x"])
    x = np.array([-0.3, 0.2, 1.0])
    _, grads = model.load().gradients(x=x)
    tx = torch.tensor(x, requires_grad=True)
    a = torch.where(tx > 0, torch.log1p(tx), torch.expm1(tx))
    b = (torch.clamp(tx, -0.5, 0.5) + torch.where(tx == 1, 2 * tx, torch.zeros(())) +
         torch.where(0.5 < tx, torch.tan(tx), torch.asin(torch.tanh(tx))))
    loss = (a * b + torch.sinh(tx) ** 2 + torch.cosh(tx) * torch.atan(tx) + torch.sin(tx) * torch.cos(tx)
            + (tx != 0.25).double() * tx).sum()
    loss.backward()
    np.testing.assert_allclose(grads["x"], tx.grad.numpy(), rtol=1e-10)


@pytest.mark.parametrize("expression, problem", [
    ("where(0 < x < 1, x, 0)", "chained comparison"),
    ("where(x in y, x, 0)", "comparisons"),
    ("1 > 0", "numbers alone"),
    ("where(1, x, 0)", "condition must be a graph value"),
    ("clip(x)", "one of them at least"),
    ("clip(x, 1, -1)", "lo <= hi"),
    ("clip(x, hi='a')", "must be a number"),
])
def test_bad_conditions_in_a_spec_name_the_problem(expression, problem):
    spec = f'[model]\nname = "bad"\n[inputs]\nx = [3]\ny = [3]\n[outputs]\nloss = "sum({expression})"\n'
    with pytest.raises(SpecError, match=problem):
        parse_spec(spec, "bad.toml")


def test_bad_conditions_in_python_name_the_problem():
    g = gc.Graph("bad")
    x = g.input("x", (3,))
    with pytest.raises(gc.GraphError, match="condition must be a graph value"):
        gc.where(True, x, 0)
    with pytest.raises(gc.GraphError, match="graph values or numbers"):
        gc.where(x > 0, "a", 0)
    with pytest.raises(gc.GraphError, match="numbers alone"):
        gc.equal(1, 2)
    with pytest.raises(gc.GraphError, match="finite number"):
        gc.clip(x, float("nan"), 1)
    with pytest.raises(gc.GraphError, match="no truth value"):  # x > 0 is a mask, not a bool
        if x > 0:
            pass


# ---------------------------------------------------------------- forward mode's rules

@pytest.mark.parametrize("build", [
    lambda x, y: gc.where(x > y, x * y, gc.sin(y)),
    lambda x, y: gc.where(x - 0.25, 2.0, y),
    lambda x, y: gc.clip(x * y, -0.5, 0.75),
    lambda x, y: gc.clip(x, lo=0) + (x <= y) * y,
], ids=["where", "where of numbers and a value", "clip", "one-sided clip and a mask"])
def test_the_tangent_rules_give_the_directional_derivative(build):
    """Each op's jvp row, applied node by node as forward mode will, gives the tangent of the output: central
    differences along the direction (dx, dy), away from the kinks."""
    from graphcomp.ir import toposort
    from graphcomp.ops import OPS
    g = gc.Graph("jvp")
    x, y, dx, dy = (g.input(name, (4,)) for name in ("x", "y", "dx", "dy"))
    out = build(x, y)
    tangents = {x: dx, y: dy}
    for node in toposort([out]):
        if node in tangents or node.is_leaf:
            continue
        operands = tuple(tangents.get(v) for v in node.inputs)
        op = OPS[node.op]
        if all(t is None for t in operands):
            continue
        if op.jvp is not None:
            tangent = op.jvp(node, operands)
        else:  # a formula: the sum of its local derivatives times the tangents
            tangent = None
            for i, t in enumerate(operands):
                if t is not None:
                    part = op.vjp(node, t)[i]  # linear and elementwise: the same as the tangent's share
                    tangent = part if tangent is None else tangent + part
        if tangent is not None:
            tangents[node] = tangent
    g.output("out", out)
    g.output("tangent", tangents[out] if tangents.get(out) is not None else 0 * x)
    g.output("loss", gc.sum(out))
    module = gc.compile(g, loss="loss", wrt=["x"]).load()
    rng = np.random.default_rng(5)
    arrays = {"x": rng.uniform(-1.5, 1.5, 4), "y": rng.uniform(-1.5, 1.5, 4), "dx": rng.normal(size=4), "dy": rng.normal(size=4)}
    h = 1e-6
    plus = module.forward(**{**arrays, "x": arrays["x"] + h * arrays["dx"], "y": arrays["y"] + h * arrays["dy"]})["out"]
    minus = module.forward(**{**arrays, "x": arrays["x"] - h * arrays["dx"], "y": arrays["y"] - h * arrays["dy"]})["out"]
    np.testing.assert_allclose(module.forward(**arrays)["tangent"], (plus - minus) / (2 * h), rtol=1e-6, atol=1e-8)
