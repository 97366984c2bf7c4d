"""Derivations of graphs where a use carries no gradient (stop_gradient, a dropout mask), and of models
with integer inputs (token ids): each value gets one step, and the steps' arrays are the module's."""
import numpy as np

import graphcomp as gc


def test_a_use_through_stop_gradient_has_no_path_and_the_derivation_says_so_once():
    g = gc.Graph("stopped")
    x = g.input("x", (3,))
    g.output("loss", gc.sum(x * gc.stop_gradient(x)))
    model = gc.compile(g, wrt=["x"])
    at = {"x": np.array([1.0, -2.0, 3.0])}
    derived = model.derivation(at=at)
    targets = [step.target for step in derived.steps]
    assert len(targets) == len(set(targets))  # one step per value
    d_x = derived.step("d_x" if "d_x" in targets else "x")
    assert len(d_x.terms) == 1  # only the use that is not stopped carries gradient
    _, grads = model.load().gradients(**at)
    np.testing.assert_allclose(d_x.array, grads["x"])
    np.testing.assert_allclose(d_x.array, at["x"])  # d(x * stop(x))/dx = stop(x)


def test_a_dropout_masks_use_has_no_path_and_the_gradient_below_it_is_the_modules():
    g = gc.Graph("masked")
    x, W = g.input("x", (None, 3)), g.param("W", (3, 2))
    h = x @ W
    g.output("loss", gc.sum(gc.dropout(h, 0.5)))  # h * dropout_mask(h)
    model = gc.compile(g)
    rng = np.random.default_rng(1)
    at = {"x": rng.normal(size=(4, 3)), "W": rng.normal(size=(3, 2))}
    derived = model.derivation(at=at)
    targets = [step.target for step in derived.steps]
    assert len(targets) == len(set(targets))
    (w_step,) = [step for step in derived.steps if step.target == "W"]
    _, grads = model.load().gradients(**at)
    np.testing.assert_allclose(w_step.array, grads["W"])  # no mask outside training: x^T 1
    np.testing.assert_allclose(w_step.array, at["x"].T @ np.ones((4, 2)))
