"""Users' own derivative rules (gc.custom_op): the README's three use cases — a straight-through
estimator, a gradient-clipping identity, a numerically stable log(1 + e^x) — in values and gradients
(against central differences in float64 and PyTorch), the finite-difference check of a rule and its
one error, the rule's shapes, second derivatives through a rule, the code and the formulas."""
import re

import numpy as np
import pytest
import torch

import graphcomp as gc
from graphcomp.errors import DifferentiationError, GraphError
from graphcomp.formulas.symbols import symbol
from graphcomp.frontend.custom_check import RuleCheckError, check_rule
from graphcomp.ir import OPS
from latex_check import katex_errors
from latex_reader import Reader, equations

BATCH = 4


def stable_softplus_forward(x):
    """log(1 + e^x) = max(x, 0) + log(1 + e^(-|x|)): no e^x of a large x."""
    return gc.maximum(x, 0) + gc.log(1 + gc.exp(-gc.abs(x)))


softplus_stable = gc.custom_op("softplus_stable", stable_softplus_forward,
                               vjp=lambda inputs, y, g: g * gc.sigmoid(inputs[0]),
                               jvp=lambda inputs, y, tangents: tangents[0] * gc.sigmoid(inputs[0]))
# sign(x) forward, the gradient passed through unchanged (as if the op were the identity)
binarize = gc.custom_op("binarize", lambda x: gc.sign(x), vjp=lambda inputs, y, g: g, check=False)
# the identity forward, its gradient clipped to [-1, 1]
clip_gradient = gc.custom_op("clip_gradient", lambda x: x,
                             vjp=lambda inputs, y, g: gc.minimum(gc.maximum(g, -1), 1), check=False)


def weighted(op, shape=(None, 3), **options):
    """sum(op(x) ⊙ r): the gradient with respect to x is the rule applied to g = r."""
    g = gc.Graph("weighted")
    x, r = g.input("x", shape), g.input("r", shape)
    g.output("y", op(x))
    g.output("loss", gc.sum(op(x) * r))
    return gc.compile(g, wrt=["x"], loss="loss", **options).load()


def test_the_straight_through_estimator_passes_the_gradient_through():
    m = weighted(binarize)
    x, r = np.array([[-1.5, 0.2, 3.0], [0.7, -0.1, -2.0]]), np.array([[0.3, -2.0, 1.0], [4.0, 0.5, -0.25]])
    outputs, grads = m.gradients(x=x, r=r)
    np.testing.assert_array_equal(m.forward(x=x, r=r)["y"], np.sign(x))
    assert outputs["loss"] == pytest.approx(np.sum(np.sign(x) * r))
    np.testing.assert_array_equal(grads["x"], r)  # sign's own derivative would give 0


def test_the_clipping_identity_clips_the_gradient():
    m = weighted(clip_gradient)
    x, r = np.array([[-1.5, 0.2, 3.0]]), np.array([[0.3, -2.0, 7.0]])
    np.testing.assert_array_equal(m.forward(x=x, r=r)["y"], x)
    np.testing.assert_array_equal(m.gradients(x=x, r=r)[1]["x"], np.clip(r, -1, 1))


def test_the_stable_softplus_matches_torch_and_finite_differences_and_does_not_overflow():
    m = weighted(softplus_stable)
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(scale=3, size=(BATCH, 3)), [[1000.0, -1000.0, 0.0]]])
    r = rng.normal(size=x.shape)
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # no overflow anywhere
        outputs, grads = m.gradients(x=x, r=r)
        y = m.forward(x=x, r=r)["y"]
    tx = torch.tensor(x, requires_grad=True)
    want = torch.nn.functional.softplus(tx)  # x itself above 20, where log(1 + e^-x) < 3e-9 x: within 1e-10
    (want * torch.tensor(r)).sum().backward()
    np.testing.assert_allclose(y, want.detach().numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(grads["x"], tx.grad.numpy(), rtol=1e-10, atol=1e-10)
    assert y[-1, 0] == 1000.0 and y[-1, 1] == 0.0 and np.isfinite(outputs["loss"])
    np.testing.assert_array_equal(grads["x"][-1], r[-1] * [1.0, 0.0, 0.5])
    errors = gc.gradient_errors(m, {"x": x[:BATCH], "r": r[:BATCH]}, "loss")
    assert errors["x"] < 1e-8, errors


def test_a_wrong_rule_is_one_error_naming_the_op_the_input_and_the_size():
    half = gc.custom_op("scaled", lambda a, b: a * b, vjp=lambda inputs, y, g: (g * inputs[1], 0.5 * g * inputs[0]))
    g = gc.Graph("wrong")
    a, b = g.input("a", (None, 3)), g.input("b", (3,))
    g.output("loss", gc.sum(half(a, b)))
    with pytest.raises(RuleCheckError, match=r"custom op 'scaled': its vjp for input 'b' \(input 2\) disagrees "
                                             r"with central finite differences of its forward: max abs error [\d.]+, "
                                             r"relative 0\.5\d* \(tolerance 1e-06\)") as error:
        gc.compile(g)
    assert "check=False" in str(error.value)
    # declared unchecked, it compiles: the rule is then the user's word
    trusted = gc.custom_op("scaled", lambda a, b: a * b, check=False,
                           vjp=lambda inputs, y, g: (g * inputs[1], 0.5 * g * inputs[0]))
    g = gc.Graph("trusted")
    a, b = g.input("a", (None, 3)), g.input("b", (3,))
    g.output("loss", gc.sum(trusted(a, b)))
    gc.compile(g)


def test_a_step_declared_checked_is_caught():
    """The straight-through estimator is wrong as a derivative: unless declared, the check says so."""
    undeclared = gc.custom_op("binarize", lambda x: gc.sign(x), vjp=lambda inputs, y, g: g)
    with pytest.raises(RuleCheckError, match=r"custom op 'binarize': its vjp for input 'x' disagrees.*max abs error [\d.]+, relative 1 "):
        weighted(undeclared)


def test_a_wrong_jvp_is_caught():
    op = gc.custom_op("softplus_jvp", stable_softplus_forward, vjp=lambda inputs, y, g: g * gc.sigmoid(inputs[0]),
                      jvp=lambda inputs, y, tangents: tangents[0] * y)
    with pytest.raises(RuleCheckError, match="custom op 'softplus_jvp': its jvp disagrees"):
        weighted(op)


def test_the_rules_shapes_are_checked_and_broadcast_gradients_summed_back():
    add = gc.custom_op("add_bias", lambda x, b: x + b, vjp=lambda inputs, y, g: (g, g))  # g for b: summed back
    g = gc.Graph("bias")
    x, b, r = g.input("x", (None, 3)), g.param("b", (3,)), g.input("r", (None, 3))
    g.output("loss", gc.sum(add(x, b) * r))
    m = gc.compile(g, wrt=["x", "b"]).load()
    rng = np.random.default_rng(1)
    arrays = {"x": rng.normal(size=(BATCH, 3)), "b": rng.normal(size=3), "r": rng.normal(size=(BATCH, 3))}
    np.testing.assert_allclose(m.gradients(**arrays)[1]["b"], arrays["r"].sum(axis=0), rtol=1e-12)
    wrong = gc.custom_op("wrong_shape", lambda x: gc.sum(x, axis=1), vjp=lambda inputs, y, g: g)
    with pytest.raises(DifferentiationError, match=r"custom op 'wrong_shape': its vjp gave shape \(None,\) for "
                                                   r"input 'x', of shape \(None, 3\)"):
        gc.grad(gc.sum(wrong(x)), [x])
    few = gc.custom_op("too_few", lambda x, b: x * b, vjp=lambda inputs, y, g: g * inputs[1])
    with pytest.raises(DifferentiationError, match=r"custom op 'too_few': its vjp gave 1 value\(s\) for 2 input\(s\)"):
        gc.grad(gc.sum(few(x, b)), [x])


def test_hessian_vector_products_go_through_a_rule_built_from_differentiable_ops():
    g = gc.Graph("hvp")
    x, v, w = g.input("x", (None, 3)), g.input("v", (3,)), g.param("w", (3,))
    (grad_w,) = gc.grad(gc.sum(softplus_stable(x * w)), [w])
    g.output("hv", gc.sum(grad_w * v))  # its gradient for w is H v
    m = gc.compile(g, wrt=["w"], loss="hv").load()
    rng = np.random.default_rng(2)
    arrays = {"x": rng.normal(size=(BATCH, 3)), "v": rng.normal(size=3), "w": rng.normal(size=3)}
    tx, tw = torch.tensor(arrays["x"]), torch.tensor(arrays["w"], requires_grad=True)
    (gw,) = torch.autograd.grad(torch.nn.functional.softplus(tx * tw).sum(), tw, create_graph=True)
    (hv,) = torch.autograd.grad((gw * torch.tensor(arrays["v"])).sum(), tw)
    np.testing.assert_allclose(m.gradients(**arrays)[1]["w"], hv.numpy(), rtol=1e-10, atol=1e-12)


def test_a_rule_inside_a_loop_step():
    g = gc.Graph("loop")
    xs, W = g.input("xs", (None, 4, 3)), g.param("W", (3, 3))

    def step(carry, elements):
        return (softplus_stable(elements[0] @ W + carry[0]),), None
    (h,), _ = gc.scan(step, (gc.zeros_like(xs[:, 0, :]),), (xs,), axis=1)
    g.output("loss", gc.sum(h * h))
    m = gc.compile(g).load()
    rng = np.random.default_rng(3)
    assert gc.gradient_errors(m, {"xs": rng.normal(size=(2, 4, 3)), "W": rng.normal(size=(3, 3))}, "loss")["W"] < 1e-7


def test_bad_declarations_are_named():
    outside = gc.Graph("outside")
    W = outside.param("W", (3, 3))
    leaky = gc.custom_op("leaky", lambda x: x @ W, vjp=lambda inputs, y, g: g @ W.T)
    x = outside.input("x", (None, 3))
    with pytest.raises(GraphError, match="custom op 'leaky': its forward reads param 'W', which is not one of its inputs"):
        leaky(x)
    with pytest.raises(GraphError, match="'exp' is already a graphcomp function"):
        gc.custom_op("exp", lambda x: x, vjp=lambda inputs, y, g: g)
    with pytest.raises(GraphError, match="custom op 'f' takes 1 input"):
        gc.custom_op("f", lambda x: x, vjp=lambda inputs, y, g: g)(x, x)
    with pytest.raises(GraphError, match="vjp must be a function"):
        gc.custom_op("f", lambda x: x, vjp=None)
    twin = gc.custom_op("binarize", lambda x: gc.sign(x), vjp=lambda inputs, y, g: 2 * g, check=False)
    g = gc.Graph("twins")
    x = g.input("x", (None, 3))
    g.output("loss", gc.sum(binarize(x) + twin(x)))
    with pytest.raises(GraphError, match="graph 'twins' uses two different custom ops named 'binarize'"):
        gc.compile(g)


def test_one_call_is_one_node_and_its_forward_mode_rule_is_the_users():
    g = gc.Graph("shared")
    x = g.input("x", (None, 3))
    assert softplus_stable(x) is softplus_stable(x)  # structural sharing keys on the rule
    node = softplus_stable(x)
    tangent = OPS["custom"].jvp(node, (None, x))
    assert tangent.shape == node.shape
    assert OPS["custom"].jvp(node, (None, None)) is None
    with pytest.raises(DifferentiationError, match="custom op 'binarize' has no forward-mode rule"):
        OPS["custom"].jvp(binarize(x), (None, x))


def test_a_rule_passes_once_per_shapes():
    calls = []
    op = gc.custom_op("counted", lambda x: 2 * x, vjp=lambda inputs, y, g: calls.append(1) or 2 * g)
    check_rule(op.rule, ((None, 3),))
    check_rule(op.rule, ((None, 3),))
    check_rule(op.rule, ((2,),))
    assert len(calls) == 2


def test_the_code_writes_the_forward_under_the_ops_name_and_the_rule_as_written():
    g = gc.Graph("coded")
    x, W = g.input("x", (None, 3)), g.param("W", (3, 3))
    h = g.let("h", binarize(x @ W))
    g.output("loss", gc.sum(softplus_stable(h)))
    source = gc.compile(g).source
    code = source.split("def _gradients", 1)[1].split("return outputs, grads", 1)[0]
    assert "    h = xp.sign(t1)\n" in code  # the forward in the op's own line, under its name
    assert re.search(r"d_h = .* # t\d+ = softplus_stable\(h\); into h\n", code), code
    assert "d_W = x.T @ d_h  # t1 = x @ W; into W" in code  # the estimator's rule is g itself: no line of its own
    imports = {line.split()[1] for line in source.splitlines() if line.startswith(("import ", "from "))}
    assert imports == {"numpy"}, imports
    compile(source, "coded.py", "exec")


def test_the_formulas_print_the_op_by_name_and_read_back():
    g = gc.Graph("printed")
    x, W = g.input("x", (None, 3)), g.param("W", (3, 3))
    g.output("loss", gc.sum(softplus_stable(x @ W)))
    model = gc.compile(g)
    latex = model.gradient_latex()["W"]
    assert r"\operatorname{softplus\_stable}\left(" in latex and r"\sigma\left(" in latex, latex
    derivation = model.derivation(at={"x": np.ones((2, 3)), "W": np.eye(3)})
    assert r"\operatorname{softplus\_stable}" in derivation.latex()
    assert not katex_errors([latex, derivation.latex()])
    rng = np.random.default_rng(4)
    arrays = {"x": rng.normal(size=(BATCH, 3)), "W": rng.normal(size=(3, 3))}
    reader = Reader({**{symbol(n): v for n, v in arrays.items()}, "N": BATCH}, BATCH)
    reader.functions["softplus_stable"] = lambda a: np.logaddexp(0, a)
    pairs = equations(latex)
    reader.define(pairs[1:])
    np.testing.assert_allclose(reader.evaluate(pairs[0][1]), model.load().gradients(**arrays)[1]["W"], rtol=1e-10)


def test_a_custom_op_computes_within_the_array_api_standard():
    import array_api_strict
    g = gc.Graph("strict")
    x, W = g.input("x", (None, 3)), g.param("W", (3, 3))
    g.output("loss", gc.sum(softplus_stable(clip_gradient(binarize(x @ W) + x))))
    m = gc.compile(g, wrt=["x", "W"]).load()
    rng = np.random.default_rng(5)
    arrays = {"x": rng.normal(size=(BATCH, 3)), "W": rng.normal(size=(3, 3))}
    want = m.gradients(**arrays)[1]
    got = m.gradients(**{k: array_api_strict.asarray(v, dtype=array_api_strict.float64) for k, v in arrays.items()})[1]
    for name in want:
        np.testing.assert_allclose(np.asarray(got[name]), want[name], rtol=1e-12)


def test_a_large_input_is_checked_at_some_entries_and_a_wrong_rule_still_caught():
    import time
    doubled = gc.custom_op("doubled", lambda x: 2 * x, vjp=lambda inputs, y, g: 3 * g)
    start = time.perf_counter()
    with pytest.raises(RuleCheckError, match="custom op 'doubled': its vjp for input 'x' disagrees"):
        check_rule(doubled.rule, ((None, 2000),))
    assert time.perf_counter() - start < 5  # 24 entries, not 6000


def test_an_error_inside_a_users_function_names_the_op():
    g = gc.Graph("raising")
    x = g.input("x", (None, 3))
    typo = gc.custom_op("typo", lambda x: x * 2, vjp=lambda inputs, y, g: g * inputs)  # a tuple, not a value
    with pytest.raises(GraphError, match="custom op 'typo', in its vjp: cannot use a tuple"):
        gc.grad(gc.sum(typo(x)), [x])
    broken = gc.custom_op("broken", lambda x: x.nope, vjp=lambda inputs, y, g: g)
    with pytest.raises(GraphError, match="custom op 'broken': its forward raised AttributeError"):
        broken(x)
    mismatch = gc.custom_op("mismatch", lambda x: x * 2, vjp=lambda inputs, y, g: g @ g)
    with pytest.raises(gc.ShapeError, match="custom op 'mismatch', in its vjp: matmul"):
        gc.grad(gc.sum(mismatch(x)), [x])
