"""The worked examples of the lecture notes, exactly."""
import graphcomp as gc


def test_f_equals_u_plus_v_times_w():
    # The worked example of the lecture notes on computational graphs: f = (u + v) w at u=2, v=3, w=4 -> f = 20, ∂f/∂u = ∂f/∂v = w = 4, ∂f/∂w = u + v = 5.
    g = gc.Graph("fuv")
    u, v, w = g.input("u"), g.input("v"), g.input("w")
    g.output("f", (u + v) * w)
    model = gc.compile(g, wrt=["u", "v", "w"])
    assert "    d_u = w  # f = w*(u + v); df/du = df/dv = w\n" in model.source  # as the README shows
    assert "    d_t1 = w  # f = t1 * w; df/dt1 = w\n" in gc.compile(g, simplify=False).source
    m = model.load()
    assert m.forward(u=2.0, v=3.0, w=4.0) == {"f": 20.0}
    assert m.gradients(u=2.0, v=3.0, w=4.0) == ({"f": 20.0}, {"u": 4.0, "v": 4.0, "w": 5.0})


def test_fan_out_sums_both_paths():
    # The example of the lecture notes on micro-autograd: b = (x + y) y at x=2, y=-3 -> b = 3; y is used twice: -1 (through the product) + -3 (through a).
    g = gc.Graph("fanout")
    x, y = g.input("x"), g.input("y")
    g.output("b", (x + y) * y)
    literal, fused = gc.compile(g, simplify=False), gc.compile(g)
    for model in (literal, fused):
        outputs, grads = model.load().gradients(x=2.0, y=-3.0)
        assert outputs == {"b": 3.0}
        assert grads == {"x": -3.0, "y": -4.0}
    # As written, the generated code adds the two paths into y; fused, it is the formula x + 2y.
    assert "d_y = d_t1 + d_y_2  # y is used more than once: sum of its paths" in literal.source  # the 2nd use: the product
    assert "d_y = x + 2*y  # b = y*(x + y); db/dy = x + 2*y" in fused.source


def test_default_wrt_is_params_else_inputs():
    g = gc.Graph("lin")
    x = g.input("x", shape=(None, 3))
    w = g.param("w", (3,))
    g.output("loss", gc.sum(x @ w))
    assert gc.compile(g).wrt == ("w",)
    h = gc.Graph("noparams")
    a = h.input("a")
    h.output("y", a * a)
    assert gc.compile(h).wrt == ("a",)


def test_unusual_but_valid_graphs():
    g = gc.Graph("odd")
    x, w, unused = g.input("x", (None, 2)), g.param("w", (2,)), g.param("unused", (3,))
    g.output("x_again", x)
    g.output("loss", gc.sum(x @ w))
    m = gc.compile(g, loss="loss").load()
    outputs, grads = m.gradients(x=[[1.0, 2.0]], w=[0.5, 0.5], unused=[0.0, 0.0, 0.0])
    assert outputs["x_again"].tolist() == [[1.0, 2.0]] and outputs["loss"] == 1.5
    assert grads["w"].tolist() == [1.0, 2.0] and grads["unused"].tolist() == [0.0, 0.0, 0.0]
