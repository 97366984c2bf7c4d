"""The training step's in-place form (_gradients_in_place, for NumPy arrays) against the functional
_gradients it is made from, which stays the reference: the same values on random graphs and on the
models of the examples, with its arrays reused from one call to the next; train() the same either way;
and the formulas written into one array, one operation at a time, against their ordinary line."""
from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings, strategies as st

import graphcomp as gc
from graphcomp.formulas.derivatives import sigmoid
from graphcomp.formulas.in_place import in_place_lines
from graphcomp.formulas.printing import numpy_text
from graphcomp.templates.runtime.arrays import _NP
from graphcomp.templates.runtime.helpers import _sigmoid, _sigmoid_into
from models import sigmoid_net
from random_graphs import BATCH, random_case

A, B, C = sp.symbols("a b c", real=True)


def _mlp(activation: str = "sigmoid") -> gc.Graph:
    g = gc.Graph("mlp")
    x, labels = g.input("x", (None, 6)), g.input("labels", (None,))
    logits = g.output("logits", gc.mlp(g, x, [5, 3], activation=activation))
    g.output("loss", gc.softmax_cross_entropy(logits, labels))
    return g


def _both(module, arrays: dict, examples: int):
    """(functional, in-place) results of one step at `arrays`, the in-place one in fresh arrays."""
    xp, *args = module._read("gradients", arrays, module.GRADIENT_ARGS)
    before = (None,) if module.USES_DROPOUT else ()  # dropout: no generator, the identity
    with np.errstate(all="ignore"):
        return (module._gradients(*before, xp, *args),
                module._gradients_in_place(module._buffers(examples), *before, xp, *args))


def _close(a, b) -> bool:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return a.shape == b.shape and np.allclose(a, b, rtol=1e-12, atol=1e-12, equal_nan=True)


@pytest.mark.parametrize("seed", [*range(60), 98, 210, 212])  # (98, 210, 212: a gradient that is a number)
def test_random_graphs_give_the_functional_values(seed):
    case = random_case(seed, new_ops=True)
    model = gc.compile(case.graph, wrt=case.wrt, loss="loss")
    module = model.load()
    if not module.IN_PLACE:  # no value of it can be written in place: train() takes _gradients
        assert "def _gradients_in_place" not in model.source
        return
    (outputs, grads, *_), (outputs_here, grads_here, *_) = _both(module, case.arrays, BATCH)
    for name in outputs:
        assert _close(outputs[name], outputs_here[name]), (seed, name)
    for name in grads:
        assert _close(grads[name], grads_here[name]), (seed, name)


def test_a_common_part_of_a_formula_reads_the_array_that_holds_its_operand():
    g = gc.Graph("digits_like")  # relu(x/16 @ W1 + b1): the sum is a common part of relu's fused formula
    x, labels = g.input("x", (None, 6)), g.input("labels", (None,))
    W1, b1, W2 = g.param("W1", (6, 5)), g.param("b1", (5,)), g.param("W2", (5, 3))
    h = g.let("h", gc.relu((x / 16) @ W1 + b1))
    g.output("loss", gc.softmax_cross_entropy(h @ W2, labels))
    module = gc.compile(g, loss="loss").load()
    rng = np.random.default_rng(0)
    arrays = {"x": rng.normal(size=(8, 6)) * 16, "labels": rng.integers(0, 3, size=8).astype(float),
              **module.init_params(seed=0)}
    (outputs, grads), (outputs_here, grads_here) = _both(module, arrays, 8)
    assert all(_close(grads[name], grads_here[name]) for name in grads)


def test_arrays_reused_from_one_step_to_the_next_hold_the_new_step():
    module = gc.compile(_mlp(), loss="loss").load()
    rng = np.random.default_rng(0)
    params = module.init_params(seed=1)
    buffers = module._buffers(8)
    for _ in range(3):  # each call with other data: nothing of the call before may remain
        arrays = {"x": rng.normal(size=(8, 6)), "labels": rng.integers(0, 3, size=8).astype(float), **params}
        xp, *args = module._read("gradients", arrays, module.GRADIENT_ARGS)
        outputs, grads = module._gradients(xp, *args)
        outputs_here, grads_here = module._gradients_in_place(buffers, xp, *args)
        assert all(_close(grads[name], grads_here[name]) for name in grads)
        assert _close(outputs["logits"], outputs_here["logits"])


@pytest.mark.parametrize("activation", ["sigmoid", "relu", "tanh"])
@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam", "adamw"])
def test_train_ends_with_the_params_of_the_functional_step(activation, optimizer, monkeypatch):
    module = gc.compile(_mlp(activation), loss="loss").load()
    rng = np.random.default_rng(0)
    data = {"x": rng.normal(size=(50, 6)), "labels": rng.integers(0, 3, size=50).astype(float)}  # last batch: 2
    options = dict(epochs=3, lr=0.05, batch_size=16, optimizer=optimizer, weight_decay=0.01, seed=3)
    in_place, losses = module.train(module.init_params(seed=0), data, **options)
    monkeypatch.setattr(module, "IN_PLACE", False)
    functional, reference = module.train(module.init_params(seed=0), data, **options)
    assert np.allclose(losses, reference, rtol=1e-12)
    for name in functional:
        assert _close(in_place[name], functional[name]), name


def test_dropout_draws_the_same_masks_in_place(monkeypatch):
    g = gc.Graph("dropped")
    x, labels = g.input("x", (None, 6)), g.input("labels", (None,))
    W1, W2 = g.param("W1", (6, 8)), g.param("W2", (8, 3))
    h = gc.dropout(gc.tanh(x @ W1), 0.5)
    g.output("loss", gc.softmax_cross_entropy(h @ W2, labels))
    module = gc.compile(g, loss="loss").load()
    assert module.USES_DROPOUT and module.IN_PLACE
    rng = np.random.default_rng(0)
    data = {"x": rng.normal(size=(40, 6)), "labels": rng.integers(0, 3, size=40).astype(float)}
    in_place, _ = module.train(module.init_params(seed=0), data, epochs=2, lr=0.1, batch_size=16, seed=5)
    monkeypatch.setattr(module, "IN_PLACE", False)
    functional, _ = module.train(module.init_params(seed=0), data, epochs=2, lr=0.1, batch_size=16, seed=5)
    assert all(_close(in_place[name], functional[name]) for name in functional)


def test_the_in_place_step_reads_like_the_functional_one():
    source = gc.compile(sigmoid_net(), loss="loss").source
    made = source[source.index("def _buffers("):source.index("def _gradients_in_place(")]
    step = source[source.index("def _gradients_in_place("):source.index("# The runtime:")]
    assert "IN_PLACE = True" in source
    assert "_sigmoid_into(" in step and "np.matmul(" in step
    names = [line.split("# ")[1] for line in made.splitlines() if "np.empty(" in line]
    assert names and step.count(" = buffers") == 1
    for name in names:  # the first line writing each array gives the functional line it stands for
        assert f"out={name})  # {name} = " in step or f"(in {name})" in step, name


def test_a_value_read_once_lends_its_array_to_the_value_computed_from_it():
    source = gc.compile(_mlp(), loss="loss").source
    step = source[source.index("def _gradients_in_place("):source.index("# The runtime:")]
    assert "np.matmul(x, W1, out=h1)  # t1 = x @ W1 (in h1)" in step
    assert "h1 += b1  # a1 = t1 + b1 (in h1)" in step
    assert "_sigmoid_into(h1, h1)  # h1 = _sigmoid(xp, a1)" in step
    unpacked = next(line for line in step.splitlines() if line.endswith(" = buffers")).split(" = ")[0].strip().split(", ")
    assert "h1" in unpacked and "t1" not in unpacked and "a1" not in unpacked  # no arrays of their own


def test_modules_that_check_every_line_have_no_in_place_step():
    for options in ({"check_shapes": True}, {"check_finite": True}, {"runtime": False}):
        source = gc.compile(_mlp(), loss="loss", **options).source
        assert "def _gradients_in_place" not in source and "IN_PLACE = False" in source, options


def test_other_libraries_take_the_functional_step():
    strict = pytest.importorskip("array_api_strict")
    module = gc.compile(_mlp(), loss="loss").load()
    rng = np.random.default_rng(0)
    data = {"x": rng.normal(size=(20, 6)), "labels": rng.integers(0, 3, size=20).astype(float)}
    params = module.init_params(seed=0)
    got, _ = module.train({k: strict.asarray(v) for k, v in params.items()},
                          {k: strict.asarray(v) for k, v in data.items()}, epochs=2, lr=0.1, batch_size=8)
    want, _ = module.train(params, data, epochs=2, lr=0.1, batch_size=8)
    for name in want:
        assert np.allclose(np.asarray(got[name]), want[name], rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------- formulas into one array

def _evaluated(formula: sp.Expr, values: dict) -> np.ndarray:
    namespace = {"np": np, "xp": _NP, "_sigmoid": _sigmoid, "_sigmoid_into": _sigmoid_into, **values}
    return eval(numpy_text(formula), namespace)  # noqa: S307 - text this file's formulas printed


def _written(lines: list[str], values: dict, shape: tuple) -> np.ndarray:
    namespace = {"np": np, "_sigmoid_into": _sigmoid_into, **values, "out": np.full(shape, np.nan)}
    for line in lines:
        exec(line, namespace)  # noqa: S102 - lines this file's formulas made
    return namespace["out"]


def _values() -> dict:
    rng = np.random.default_rng(0)
    return {"a": rng.uniform(0.2, 2.0, (4, 3)), "b": rng.uniform(0.2, 2.0, (3,)), "c": rng.uniform(-2.0, 2.0, (4, 3))}


@pytest.mark.parametrize("formula, first", [
    (C * B * (1 - B), "np.subtract(1, b, out=out)"),
    (C * (1 - sp.tanh(A) ** 2), "np.tanh(a, out=out)"),
    (sigmoid(A + B), "np.add(a, b, out=out)"),
    (sp.Piecewise((C, A > 1), (0, True)), "np.multiply(c, (a > 1), out=out)"),
    (sp.Piecewise((C, C > 0), (0, True)), "np.maximum(c, 0, out=out)"),
    (A ** 3, "np.square(a, out=out)"),
    (-A - B ** 2, "np.square(b, out=out)"),
    (C / (A + B), "np.add(a, b, out=out)"),
])
def test_a_chain_is_written_into_one_array(formula, first):
    values = _values()
    lines = in_place_lines(formula, "out")
    assert lines[0] == first
    assert np.allclose(_written(lines, values, (4, 3)), _evaluated(formula, values), rtol=1e-14)


@pytest.mark.parametrize("formula", [A, sp.Float(2.0), 2 * A - 3 * B, sp.exp(A) * sp.exp(B) + A * B])
def test_what_needs_a_second_array_keeps_its_ordinary_line(formula):
    assert in_place_lines(formula, "out") is None


def _formulas():
    leaves = st.sampled_from([A, B, C, sp.Integer(1), sp.Rational(1, 2), sp.Integer(-2)])
    unary = [sp.exp, sp.tanh, sigmoid, lambda x: x ** 2, lambda x: -x, lambda x: 1 / (1 + x ** 2), sp.sin]
    binary = [lambda x, y: x + y, lambda x, y: x * y, lambda x, y: x - y, lambda x, y: x / (1 + y ** 2)]
    return st.recursive(leaves, lambda inner: st.one_of(
        st.builds(lambda f, x: f(x), st.sampled_from(unary), inner),
        st.builds(lambda f, x, y: f(x, y), st.sampled_from(binary), inner, inner)), max_leaves=6)


@settings(max_examples=300, deadline=None)
@given(_formulas())
def test_any_formula_written_in_place_equals_its_ordinary_line(formula):
    lines = in_place_lines(formula, "out")
    if lines is None:
        return
    values = _values()
    with np.errstate(all="ignore"):
        want = np.broadcast_to(_evaluated(formula, values), (4, 3))
        got = _written(lines, values, (4, 3))
    assert np.allclose(got, want, rtol=1e-12, atol=1e-12, equal_nan=True), (formula, lines)


def test_sigmoid_through_exp_is_exact_in_the_tail_and_silent_where_exp_overflows():
    import warnings

    x = np.array([-1000.0, -40.0, 0.0, 40.0, 1000.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # NumPy's overflow warning would be an error here
        values = _sigmoid(_NP, x)
        scalar = _sigmoid(_NP, np.float64(-1000.0))
    assert values[0] == 0.0 and scalar == 0.0 and values[2] == 0.5 and values[4] == 1.0
    assert abs(values[1] - np.exp(-40.0) / (1 + np.exp(-40.0))) <= 1e-30  # the tanh form gave 0
    out = np.empty(5)
    with np.errstate(over="ignore"):
        assert np.array_equal(_sigmoid_into(x, out), values)
