"""Named regression tests: every graph that once gave a wrong number, a crash or a hang.

Each is compiled with and without simplification, and both modules are checked against
each other and against central differences (random_graphs.check_case).
"""
import numpy as np
import pytest
import sympy as sp

import graphcomp as gc
from graphcomp.formulas.derivatives import local_derivative, placeholder, sigmoid
from random_graphs import Case, check_case, random_case, report

rng = np.random.default_rng(0)


def graph_of(**shapes):
    g = gc.Graph("regression")
    return g, [g.input(name, shape=shape) for name, shape in shapes.items()]


def checked(g: gc.Graph, **arrays) -> dict:
    """Both modules agree with central differences and with each other; the literal module's outputs."""
    arrays = {k: np.asarray(v, dtype=float) for k, v in arrays.items()}
    case = Case(-1, g, [], arrays, list(g.leaves))
    outcome = check_case(case)
    assert not outcome.problems and not outcome.degenerate, outcome.problems
    return {simplify: gc.compile(g, simplify=simplify).load().forward(**arrays) for simplify in (False, True)}


# ---- constant gradients that were reshaped emitted `1.reshape(1)` ---------------------------

def test_inner_product_of_a_vector_with_itself():
    g, (x,) = graph_of(x=(3,))
    g.output("loss", x @ x)
    out = checked(g, x=[1.0, 2.0, -2.0])
    assert out[True]["loss"] == out[False]["loss"] == 9.0


def test_logsumexp_of_a_vector():
    g, (p,) = graph_of(p=(3,))
    g.output("loss", gc.logsumexp(p))
    checked(g, p=[0.5, -1.0, 2.0])


def test_cross_entropy_of_a_one_dimensional_log_softmax():
    g, (y, z) = graph_of(y=(3,), z=(3,))
    g.output("loss", -gc.sum(y * gc.log_softmax(z)))
    checked(g, y=[0.0, 1.0, 0.0], z=[0.3, -0.2, 1.1])


def test_half_an_inner_product():
    g, (a, b) = graph_of(a=(3,), b=(3,))
    g.output("loss", (a @ b) / 2)
    checked(g, a=[1.0, 2.0, 3.0], b=[0.5, -1.0, 0.25])


def test_a_constant_operand_of_a_tensor_op_is_printed_as_an_array():
    g, (x,) = graph_of(x=(None, 2))
    g.output("loss", gc.sum(x * gc.reshape(2, (1, 1))))
    assert "2.reshape" not in gc.compile(g).source
    checked(g, x=rng.normal(size=(3, 2)))


# ---- keepdims in logsumexp's shape rule ------------------------------------------------

def test_logsumexp_with_keepdims_keeps_the_axis():
    g, (x,) = graph_of(x=(None, 3))
    assert gc.logsumexp(x, axis=-1, keepdims=True).shape == (None, 1)
    g.output("loss", gc.sum((x - gc.logsumexp(x, axis=-1, keepdims=True)) ** 2))
    checked(g, x=rng.normal(size=(4, 3)))


# ---- a folded constant keeps its node's shape (was silently wrong) ---------------------------

def test_a_formula_that_cancels_to_a_constant_keeps_its_shape():
    g, (x,) = graph_of(x=(None, 3))
    g.output("loss", gc.sum(gc.exp(x - x)))
    out = checked(g, x=np.ones((4, 3)))
    assert out[True]["loss"] == out[False]["loss"] == 12.0


def test_a_cancelled_output_keeps_the_batch_shape():
    g, (x,) = graph_of(x=(None, 1))
    h = g.output("h", x - x + 1)
    g.output("loss", gc.sum(h.T @ x))
    out = checked(g, x=rng.normal(size=(5, 1)))
    assert np.shape(out[True]["h"]) == np.shape(out[False]["h"]) == (5, 1)


def test_a_constant_formula_sympy_cannot_turn_into_a_float():
    g, (x,) = graph_of(x=(2, 3))
    t = x - x
    g.output("loss", gc.sum(gc.log(gc.sigmoid(t))) + gc.sum(gc.log(1 + gc.exp(t))))
    out = checked(g, x=rng.normal(size=(2, 3)))
    assert out[True]["loss"] == pytest.approx(0.0, abs=1e-12)


# ---- broadcast conditions in a clamp (np.logical_and.reduce of arrays of different shapes) ---

def test_clamp_between_scalar_params():
    g = gc.Graph("clamp")
    lo, hi, x = g.param("lo", ()), g.param("hi", ()), g.input("x", shape=(None, 3))
    g.output("loss", gc.sum(gc.minimum(hi, gc.maximum(lo, x))))
    source = gc.compile(g).source
    assert "logical_and.reduce" not in source and "logical_or.reduce" not in source
    checked(g, lo=-0.5, hi=0.5, x=rng.normal(size=(4, 3)))


# ---- paths that cancel ------------------------------------------------------------------

def test_a_value_minus_itself():
    g, (u,) = graph_of(u=())
    t = gc.tanh(u)
    g.output("loss", t - t)
    checked(g, u=0.7)
    _, grads = gc.compile(g).load().gradients(u=0.7)
    assert grads == {"u": 0.0}


# ---- SymPy with a budget (these took from 10 s to over 500 s) ----------------------------

@pytest.mark.parametrize("build", [
    lambda p: gc.sum(gc.sigmoid(p) ** 3),
    lambda p: gc.sum(gc.tanh(p) ** 3),
    lambda p: gc.sum(gc.tanh(gc.tanh(p))),
], ids=["sigmoid cubed", "tanh cubed", "tanh of tanh"])
def test_powers_and_compositions_of_activations_compile_at_once(build):
    g, (p,) = graph_of(p=(None, 3))
    g.output("loss", build(p))
    checked(g, p=rng.normal(size=(2, 3)))


def test_through_output_derivatives_are_still_found_within_the_budget():
    a = placeholder(0)
    y = sp.Symbol("y", real=True)
    assert local_derivative(sigmoid(a), 0) == y * (1 - y)
    assert local_derivative(sp.tanh(a), 0) == 1 - y ** 2
    assert local_derivative(sp.exp(a), 0) == y


# ---- found by the random-graph test ---------------------------------------------------------

def test_second_derivative_through_max_pooling():
    g = gc.Graph("pool2")
    x = g.input("x", shape=(None, 1, 4, 4))
    pooled = gc.max_pool2d(x)
    (dx,) = gc.grad(gc.sum(pooled * pooled), [x])
    g.output("loss", gc.sum(dx * dx) + gc.sum(gc.tanh(pooled)))
    checked(g, x=rng.normal(size=(2, 1, 4, 4)))


def test_second_derivative_through_convolution():
    g = gc.Graph("conv2")
    x, w = g.input("x", shape=(None, 2, 5, 5)), g.param("w", (3, 2, 2, 2))
    out = gc.conv2d(x, w, stride=2, padding=1)
    dx, dw = gc.grad(gc.sum(gc.tanh(out)), [x, w])
    g.output("loss", gc.sum(dx * dx) + gc.sum(dw * dw))
    checked(g, x=rng.normal(size=(2, 2, 5, 5)), w=rng.normal(size=(3, 2, 2, 2)))


def test_second_derivative_of_abs_has_no_dirac_delta():
    g, (x,) = graph_of(x=(3,))
    (dx,) = gc.grad(gc.sum(gc.abs(x) * x), [x])
    g.output("loss", gc.sum(dx * dx))
    checked(g, x=[0.5, -1.5, 2.0])


def test_batch_axes_that_broadcast_against_each_other():
    g, (a, b) = graph_of(a=(None, 1, 1), b=(None, 1))
    h = a / (b * b + 0.5)
    assert h.shape == (None, None, 1)
    g.output("loss", gc.sum(gc.tanh(h)) + gc.sum(gc.mean(h, axis=1) * b))
    checked(g, a=rng.normal(size=(3, 1, 1)), b=rng.normal(size=(3, 1)))


def test_gram_matrix_of_a_batch_and_a_vector_product_of_it():
    g, (x, v) = graph_of(x=(None, 3), v=(3,))
    gram = x @ x.T
    assert gram.shape == (None, None)
    g.output("loss", gc.sum(gc.tanh(gram)) + gc.sum((gc.reshape(gram, (None, None, 1)) * x) @ v))
    checked(g, x=rng.normal(size=(4, 3)), v=rng.normal(size=3))
    with pytest.raises(gc.ShapeError, match="only add or remove axes of size 1"):
        gc.reshape(gram, (None, 2))


def test_a_graph_that_reads_no_array_and_a_loss_that_ignores_its_input():
    g, (x,) = graph_of(x=(3, 1))
    g.output("loss", gc.exp(gc.sum(x) - gc.sum(x)))
    module = gc.compile(g).load()
    assert module.forward(x=np.ones((3, 1))) == {"loss": 1.0}
    outputs, grads = module.gradients(x=np.ones((3, 1)))
    assert np.array_equal(grads["x"], np.zeros((3, 1)))
    assert "d_x = xp.zeros_like(x)" in gc.compile(g).source


def test_concat_of_one_value_keeps_its_shape():
    """gc.concat([x], axis=1) was emitted as `xp.concat((x), axis=1)`: (x) is x itself, not a tuple of
    one array, so the rows of a (3, 1, 4) value were joined into (1, 12), and nothing said so."""
    g, (x, w) = graph_of(x=(None, 1, 4), w=(1, 4))
    y = g.output("y", gc.concat([x], axis=1))
    g.output("loss", gc.sum(gc.tanh(y) * w))
    values = rng.normal(size=(3, 1, 4))
    out = checked(g, x=values, w=rng.normal(size=(1, 4)))  # with check_shapes: every line's shape
    for simplify in (False, True):
        np.testing.assert_array_equal(out[simplify]["y"], values)


# (seed, ops per graph): what they once did is in the commit that added them
@pytest.mark.parametrize("seed, steps", [
    (0, None), (65, None),                          # second derivatives through max-pooling
    (301, None), (318, None), (365, None),          # constant formulas; the derivative of a step
    (524, None), (722, None), (813, None),          # seconds to minutes in SymPy
    (539, None),                                    # a numeric check that met a complex number
    (874, None), (1246, None), (1936, None),        # rounding noise; a module that read no array
    (1493, None),                                   # nested cases that SymPy took seconds to fold
    (2202, None),                                   # log(1 - σ(z)) less accurate than its stable form
    (100034, 25), (100129, 25), (100155, 25),       # large graphs: factor_terms of an expansion
])
def test_random_graph_that_once_failed(seed, steps):
    case = random_case(seed, steps)
    outcome = check_case(case)
    assert not outcome.problems, report(case, outcome)


def test_max_pooling_shares_the_gradient_equally_at_ties():
    """Pooling works on strided slices, one per position in the window: a tie must still split the
    window's gradient evenly, also where windows overlap (size 3, stride 2)."""
    g = gc.Graph("ties")
    x, c = g.input("x", shape=(None, 1, 5, 5)), g.param("c", (1, 1, 2, 2))
    g.output("loss", gc.sum(gc.max_pool2d(x, size=3, stride=2) * c))
    weights = np.array([1.0, 2.0, 3.0, 4.0]).reshape(1, 1, 2, 2)
    module = gc.compile(g, loss="loss", wrt=["x"]).load()
    ties = module.gradients(x=np.zeros((1, 1, 5, 5)), c=weights)[1]["x"]
    want = np.zeros((5, 5))
    for k, (i, j) in enumerate([(0, 0), (0, 2), (2, 0), (2, 2)]):
        want[i:i + 3, j:j + 3] += weights.flat[k] / 9
    np.testing.assert_allclose(ties[0, 0], want, rtol=1e-15)


def test_a_chain_deeper_than_the_recursion_limit_compiles():
    """No step of code generation recurses along the graph: 1,200 elementwise ops in a row (the speed
    issue's chain) compile, and the module computes."""
    g = gc.Graph("deep")
    x, w = g.input("x", (None, 2)), g.param("w", (2,))
    h = x
    for _ in range(300):
        h = gc.tanh(h * 1.01 + w) * 0.9 + 0.1
    g.output("loss", gc.mean(h))
    module = gc.compile(g, simplify=False).load()
    _, grads = module.gradients(x=np.ones((3, 2)), w=np.zeros(2))
    assert np.all(np.isfinite(grads["w"]))
