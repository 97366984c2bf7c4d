"""The documented conventions at points where a derivative is not defined."""
import numpy as np

import graphcomp as gc


def grads(build, shapes, **arrays):
    g = gc.Graph("tie")
    leaves = [g.input(name, shape) for name, shape in shapes.items()]
    g.output("loss", gc.sum(build(*leaves)))
    return gc.compile(g).load().gradients(**arrays)[1]


def test_maximum_and_minimum_send_the_gradient_to_b_at_a_tie():
    # The Max module of the lecture notes on layers as modules: dY/dX1 = 1 if X1 > X2 else 0.
    d = grads(gc.maximum, {"a": (3,), "b": (3,)}, a=[1.0, 2.0, 3.0], b=[1.0, 0.0, 5.0])
    np.testing.assert_array_equal(d["a"], [0, 1, 0])
    np.testing.assert_array_equal(d["b"], [1, 0, 1])
    d = grads(gc.minimum, {"a": (3,), "b": (3,)}, a=[1.0, 2.0, 3.0], b=[1.0, 0.0, 5.0])
    np.testing.assert_array_equal(d["a"], [0, 0, 1])
    np.testing.assert_array_equal(d["b"], [1, 1, 0])


def test_relu_leaky_relu_and_abs_at_zero():
    x = np.array([-1.0, 0.0, 2.0])
    np.testing.assert_array_equal(grads(gc.relu, {"x": (3,)}, x=x)["x"], [0, 0, 1])
    np.testing.assert_array_equal(grads(lambda a: gc.leaky_relu(a, 0.1), {"x": (3,)}, x=x)["x"], [0.1, 0.1, 1])
    np.testing.assert_array_equal(grads(gc.abs, {"x": (3,)}, x=x)["x"], [-1, 0, 1])


def test_max_and_min_reductions_share_the_gradient_at_ties():
    x = np.array([[1.0, 3.0, 3.0], [2.0, 0.0, 1.0]])
    np.testing.assert_allclose(grads(lambda a: gc.max(a, axis=1), {"x": (None, 3)}, x=x)["x"],
                               [[0, 0.5, 0.5], [1, 0, 0]])
    np.testing.assert_allclose(grads(lambda a: gc.max(a), {"x": (None, 3)}, x=x)["x"],
                               [[0, 0.5, 0.5], [0, 0, 0]])
    np.testing.assert_allclose(grads(lambda a: gc.min(a, axis=0), {"x": (None, 3)}, x=x)["x"],
                               [[1, 0, 0], [0, 1, 1]])
