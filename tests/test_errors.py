"""Bad input gets an error that names the problem."""
import numpy as np
import pytest

import graphcomp as gc


def test_matmul_shape_mismatch_names_both_shapes():
    g = gc.Graph("bad")
    x, W = g.input("x", shape=(None, 3)), g.param("W", (4, 2))
    with pytest.raises(gc.ShapeError, match=r"\(None, 3\) and \(4, 2\)"):
        x @ W


def test_broadcast_mismatch_names_both_shapes():
    g = gc.Graph("bad")
    with pytest.raises(gc.ShapeError, match=r"\(None, 3\) and \(4,\)"):
        g.input("x", shape=(None, 3)) + g.param("b", (4,))


@pytest.mark.parametrize("shape, message", [
    ((3, None), "first axis"),
    ((0, 2), "positive integers"),
    ("3", "must be a tuple"),
])
def test_bad_input_shapes(shape, message):
    with pytest.raises(gc.ShapeError, match=message):
        gc.Graph("g").input("x", shape=shape)


def test_params_need_fixed_sizes():
    with pytest.raises(gc.ShapeError, match="batch dimension"):
        gc.Graph("g").param("W", (None, 3))


def test_unknown_init_is_named():
    with pytest.raises(gc.GraphError, match="'uniformish'"):
        gc.Graph("g").param("W", (2, 3), init="uniformish")


@pytest.mark.parametrize("name, message", [
    ("class", "keyword"),
    ("2x", "not a valid Python identifier"),
    ("x-y", "not a valid Python identifier"),
    ("_hidden", "starts with '_'"),
    ("import os", "not a valid Python identifier"),
])
def test_bad_names_are_refused(name, message):
    with pytest.raises(gc.GraphError, match=message):
        gc.Graph("g").input(name)


def test_duplicate_names_are_refused():
    g = gc.Graph("g")
    x = g.input("x")
    with pytest.raises(gc.GraphError, match="'x' is already used"):
        g.param("x", (2,))
    g.output("y", x * 2)
    with pytest.raises(gc.GraphError, match="'y' is declared twice"):
        g.output("y", x * 3)


def test_values_from_another_graph_are_refused():
    a, b = gc.Graph("a"), gc.Graph("b")
    x = a.input("x")
    with pytest.raises(gc.GraphError, match="input 'x', which belongs to another graph"):
        b.output("y", x * 2)


def test_non_numeric_operands_are_refused():
    g = gc.Graph("g")
    with pytest.raises(gc.GraphError, match="cannot use a str"):
        g.input("x") + "1"


def test_python_control_flow_on_nodes_is_refused():
    g = gc.Graph("g")
    x = g.input("x")
    with pytest.raises(gc.GraphError, match="no truth value.*gc.where"):  # x > 0 is a mask; max needs its truth
        max(x, 0)
    with pytest.raises(gc.GraphError, match="no truth value"):
        if x:
            pass


def test_compile_errors_name_the_problem():
    g = gc.Graph("g")
    x = g.input("x")
    with pytest.raises(gc.GraphError, match="has no output"):
        gc.compile(g)
    g.output("a", x * 2)
    g.output("b", x * 3)
    with pytest.raises(gc.GraphError, match="say which is the loss"):
        gc.compile(g)
    with pytest.raises(gc.GraphError, match="'z'"):
        gc.compile(g, loss="a", wrt=["z"])
    with pytest.raises(gc.GraphError, match="'c' is not an output"):
        gc.compile(g, loss="c")
    with pytest.raises(gc.GraphError, match="unknown training setting\\(s\\) learning_rate"):
        gc.compile(g, loss="a", training={"learning_rate": 0.1})


def make_model():
    g = gc.Graph("m")
    x = g.input("x", shape=(None, 2))
    w = g.param("w", (2,))
    g.output("loss", gc.mean(x @ w))
    return gc.compile(g).load()


def test_missing_and_unknown_arrays_are_named():
    m = make_model()
    with pytest.raises(TypeError, match="missing array\\(s\\) w"):
        m.forward(x=np.ones((3, 2)))
    with pytest.raises(TypeError, match="unknown array\\(s\\) q"):
        m.gradients(x=np.ones((3, 2)), w=np.ones(2), q=1.0)


def test_wrong_array_shape_is_named():
    m = make_model()
    with pytest.raises(ValueError, match=r"'w' has shape \(3,\), expected \(2,\)"):
        m.forward(x=np.ones((3, 2)), w=np.ones(3))


def test_gradients_of_a_non_scalar_output_raise_clearly():
    g = gc.Graph("vec")
    x = g.input("x", shape=(None, 3))
    g.output("y", gc.tanh(x))
    m = gc.compile(g).load()
    assert m.forward(x=np.zeros((2, 3)))["y"].shape == (2, 3)
    with pytest.raises(ValueError, match=r"scalar loss, but output 'y' has shape \(None, 3\)"):
        m.gradients(x=np.zeros((2, 3)))


def test_train_checks_its_settings():
    m = make_model()
    params, data = m.init_params(), {"x": np.ones((4, 2))}
    with pytest.raises(ValueError, match="batch_size"):
        m.train(params, data, epochs=1, lr=0.1, batch_size=0)
    with pytest.raises(ValueError, match="lr"):
        m.train(params, data, epochs=1, lr=-1.0, batch_size=2)
    with pytest.raises(TypeError, match="missing array\\(s\\) x"):
        m.train(params, {}, epochs=1, lr=0.1, batch_size=2)


def test_names_that_shadow_python_or_numpy_still_work():
    g = gc.Graph("shadow")
    np_, total, LOSS, grads_ = g.input("np"), g.input("sum"), g.input("LOSS"), g.input("grads")
    g.output("input", np_ * total + LOSS * grads_)
    g.output("outputs", np_ * 1)
    model = gc.compile(g, loss="input")
    outputs, grads = model.load().gradients(np=2.0, sum=3.0, LOSS=1.0, grads=5.0)
    assert outputs == {"input": 11.0, "outputs": 2.0}
    assert grads == {"np": 3.0, "sum": 2.0, "LOSS": 5.0, "grads": 1.0}


def test_dividing_by_the_number_zero_is_refused_where_it_is_written():
    g = gc.Graph("div")
    x = g.input("x", (None, 2))
    with pytest.raises(gc.GraphError, match="division by the constant 0"):
        x / 0
    with pytest.raises(gc.GraphError, match="division by the constant 0"):
        x / 0.0
    assert (1 / x).op == "div" and (x / 2).op == "div"
