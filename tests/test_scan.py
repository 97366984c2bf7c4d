"""gc.scan: a loop kept a loop. Each scan is compared with the same computation unrolled by Python
into a flat graph (values and every gradient to 1e-10) and with central differences in float64; the
generated code is one `for` loop forward and one reversed `for` loop backward, whatever the length."""
import re
import subprocess
import sys

import numpy as np
import pytest

import graphcomp as gc
from gradcheck import check_gradients
from models import readme_rnn

B, T, D, H = 3, 6, 2, 4  # examples, steps, input width, carry width


def unrolled(step, init, xs, axis=1, reverse=False):
    """The scan written out by Python: one copy of the step per time step, in the flat graph."""
    single = not isinstance(xs, tuple)
    seqs = (xs,) if single else xs
    carry, ys = init, [None] * seqs[0].shape[axis]
    order = range(len(ys) - 1, -1, -1) if reverse else range(len(ys))
    for t in order:
        elements = tuple(s[(slice(None),) * axis + (t,)] for s in seqs)
        carry, ys[t] = step(carry, elements[0] if single else elements)
    return carry, ys


def stacked_loss(ys, weights, unrolled_ys=None, axis=1):
    """sum(ys * weights): time order matters. The unrolled form takes each step's slice of weights."""
    if unrolled_ys is None:
        return gc.sum(ys * weights)
    return sum(gc.sum(y * weights[(slice(None),) * axis + (t,)]) for t, y in enumerate(unrolled_ys))


def compare(build, arrays, wrt, tolerance=1e-10):
    """Compile the graph built by `build(g, looped)` as a scan and unrolled; both must agree, as values
    and gradients, and match central differences."""
    modules = []
    for looped in (True, False):
        g = gc.Graph("loop" if looped else "flat")
        build(g, looped)
        modules.append(gc.compile(g, wrt=wrt, runtime=False).load())
    rng = np.random.default_rng(0)
    params = {name: 0.5 * rng.normal(size=shape) for name, shape in modules[0].PARAMS.items()}
    values = {**arrays, **params}
    (out_loop, grad_loop), (out_flat, grad_flat) = (m.gradients(**values) for m in modules)
    for name in out_flat:
        np.testing.assert_allclose(out_loop[name], out_flat[name], rtol=tolerance, atol=tolerance, err_msg=name)
    for name in grad_flat:
        np.testing.assert_allclose(grad_loop[name], grad_flat[name], rtol=tolerance, atol=tolerance, err_msg=name)
    check_gradients(modules[0], values, "loss", tolerance=1e-6)
    return modules[0]


def data(*shapes, seed=1):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=shape) for shape in shapes]


def rnn_graph(g, looped, reverse=False):
    xs, h0 = g.input("xs", (None, T, D)), g.input("h0", (None, H))
    weights = g.input("weights", (None, T, H))
    W, U, b = g.param("W", (D, H)), g.param("U", (H, H)), g.param("b", (H,))

    def step(h, x):
        h = gc.tanh(x @ W + h @ U + b)
        return h, h

    if looped:
        hT, hs = gc.scan(step, h0, xs, axis=1, reverse=reverse)
        g.output("loss", gc.sum(hT * hT) + stacked_loss(hs, weights))
    else:
        hT, hs = unrolled(step, h0, xs, reverse=reverse)
        g.output("loss", gc.sum(hT * hT) + stacked_loss(None, weights, hs))


RNN_ARRAYS = dict(zip(("xs", "h0", "weights"), data((B, T, D), (B, H), (B, T, H))))


def test_an_rnn_is_the_unrolled_rnn_and_its_gradients_match_central_differences():
    compare(rnn_graph, RNN_ARRAYS, ["W", "U", "b", "xs", "h0"])


def test_a_reversed_scan_walks_from_the_last_step_and_stacks_in_time_order():
    compare(lambda g, looped: rnn_graph(g, looped, reverse=True), RNN_ARRAYS, ["W", "U", "b", "xs", "h0"])


def test_tuple_carries_tuple_sequences_and_tuple_outputs():
    """An LSTM-like pair (h, c), two sequences, two outputs per step, one of them not a carry."""
    def build(g, looped):
        xs, zs = g.input("xs", (None, T, D)), g.input("zs", (None, T, H))
        h0, c0 = g.input("h0", (None, H)), g.input("c0", (None, H))
        w1, w2 = g.input("w1", (None, T, H)), g.input("w2", (None, T, H))
        W, U = g.param("W", (D, H)), g.param("U", (H, H))

        def step(carry, inputs):
            h, c = carry
            x, z = inputs
            c = gc.sigmoid(z) * c + gc.tanh(x @ W)
            h = gc.tanh(c) * gc.sigmoid(h @ U)
            return (h, c), (h, c * z)

        if looped:
            (hT, cT), (hs, cz) = gc.scan(step, (h0, c0), (xs, zs), axis=1)
            g.output("loss", gc.sum(hT) + gc.sum(cT * cT) + stacked_loss(hs, w1) + stacked_loss(cz, w2))
        else:
            (hT, cT), ys = unrolled(step, (h0, c0), (xs, zs))
            g.output("loss", gc.sum(hT) + gc.sum(cT * cT) + stacked_loss(None, w1, [y[0] for y in ys])
                     + stacked_loss(None, w2, [y[1] for y in ys]))
    arrays = dict(zip(("xs", "zs", "h0", "c0", "w1", "w2"), data((B, T, D), (B, T, H), (B, H), (B, H), (B, T, H), (B, T, H))))
    compare(build, arrays, ["W", "U", "xs", "zs", "h0", "c0"])


def test_time_major_sequences_and_no_per_step_output():
    """axis=0 (time first, unbatched), a step that returns None as its output, and a scalar carry."""
    def build(g, looped):
        xs = g.input("xs", (T, D))
        w = g.param("w", (D,))

        def step(s, x):
            return s * 0.9 + gc.sum(gc.tanh(x) * w), None

        final, ys = gc.scan(step, 1.0, xs, axis=0) if looped else unrolled(step, 1.0, xs, axis=0)
        assert ys is None or not looped
        g.output("loss", final * final)
    compare(build, {"xs": data((T, D))[0]}, ["w", "xs"])


def test_a_scan_inside_a_larger_graph():
    """Sequences computed by the graph before the loop, the loop's outputs used after it by a second
    loop, and the parts of the step that depend on neither the carry nor the element (W.T, b * 2)
    computed once, before the loop."""
    def build(g, looped):
        x, h0 = g.input("x", (None, T, D)), g.input("h0", (None, H))
        W_in, W, U, V = g.param("W_in", (D, D)), g.param("W", (D, H)), g.param("U", (H, H)), g.param("V", (H, 1))
        b = g.param("b", (H,))
        xs = gc.relu(x @ W_in) + x

        def first(h, xt):
            h = gc.tanh(xt @ W + h @ U.T.T + b * 2)
            return h, h @ V

        def second(s, v):
            return s + v * s, s

        hT, outs = gc.scan(first, h0, xs, axis=1) if looped else unrolled(first, h0, xs)
        if not looped:
            outs = gc.concat(outs, axis=1)
        sT, ss = gc.scan(second, gc.sum(h0, axis=1, keepdims=True), outs, axis=1) if looped else unrolled(
            second, gc.sum(h0, axis=1, keepdims=True), gc.reshape(outs, (None, T, 1)))
        total = gc.sum(ss * ss) if looped else sum(gc.sum(s * s) for s in ss)
        g.output("loss", gc.mean(hT) + gc.sum(sT) + 0.1 * total)
    arrays = dict(zip(("x", "h0"), data((B, T, D), (B, H))))
    compare(build, arrays, ["W_in", "W", "U", "V", "b", "x", "h0"])


def test_a_loop_inside_the_step_of_a_loop():
    """Nested scans: the inner loop runs over the second axis of each step's element."""
    def build(g, looped):
        x = g.input("x", (None, T, 3, D))
        W = g.param("W", (D, H))
        h0 = g.input("h0", (None, H))

        def inner(h, xt):
            return gc.tanh(xt @ W + h), None

        def outer(h, xt):
            h2, _ = gc.scan(inner, h, xt, axis=1) if looped else unrolled(inner, h, xt)
            return h2 * 0.5, gc.sum(h2, axis=1, keepdims=True)

        if looped:
            hT, ys = gc.scan(outer, h0, x, axis=1)
            g.output("loss", gc.sum(hT) + gc.sum(ys * ys))
        else:
            hT, ys = unrolled(outer, h0, x)
            g.output("loss", gc.sum(hT) + sum(gc.sum(y * y) for y in ys))
    arrays = dict(zip(("x", "h0"), data((B, T, 3, D), (B, H))))
    compare(build, arrays, ["W", "x", "h0"])


# ---- the generated code --------------------------------------------------------------------------

def rnn_source(length: int, simplify: bool = True) -> str:
    g = gc.Graph("rnn")
    xs, h0 = g.input("xs", (None, length, D)), g.input("h0", (None, H))
    W, U = g.param("W", (D, H)), g.param("U", (H, H))
    hT, hs = gc.scan(lambda h, x: (gc.tanh(x @ W + h @ U),) * 2, h0, xs, axis=1)
    g.output("loss", gc.sum(hT) + gc.mean(hs * hs))
    return gc.compile(g, simplify=simplify).source


def function_text(source: str, name: str) -> str:
    start = source.index(f"\ndef {name}(")
    return source[start:source.index("\ndef ", start + 1)]


def test_one_loop_forward_and_one_reversed_loop_backward_with_the_saved_values_named():
    source = rnn_source(T)
    forward, gradients = function_text(source, "forward"), function_text(source, "_gradients")
    loops = re.compile(r"^ +for \w+ in range\(", re.MULTILINE)
    assert len(loops.findall(forward)) == 1 and "    for t in range(T):\n" in forward
    head, backward = gradients.split("# Backward pass")
    assert len(loops.findall(head)) == 1 and len(loops.findall(backward)) == 1
    assert re.search(r"\n    for t_2 in range\(T_2 - 1, -1, -1\):\n", backward)
    comment = re.search(r"# Saved by the forward loop at every step, read backwards: (.*)\n", backward)
    assert comment, backward
    for saved in re.findall(r"(\w+) \(", comment.group(1)):  # each saved value is stacked forward, read backward
        assert f"{saved}.append(" in head and f"{saved}[t_2]" in backward  # a list of one array per step
    assert "import" not in source.split('"""', 2)[2].split("# The runtime")[0].replace("import numpy as np", "")


@pytest.mark.parametrize("simplify", [True, False])
def test_the_module_does_not_grow_with_the_sequence_length(simplify):
    short, long = rnn_source(10, simplify), rnn_source(10000, simplify)
    assert len(short.splitlines()) == len(long.splitlines())
    assert re.sub(r"\d+", "0", short) == re.sub(r"\d+", "0", long)  # numbers aside (T * 4 in the mean), the same text


def test_generated_loops_compile_and_are_deterministic(tmp_path):
    first, second = rnn_source(T), rnn_source(T)
    assert first == second
    path = tmp_path / "rnn.py"
    path.write_text(first, encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "py_compile", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_check_shapes_runs_through_loops():
    g = gc.Graph("rnn")
    rnn_graph(g, looped=True)
    module = gc.compile(g, check_shapes=True, runtime=False).load()
    arrays = {**RNN_ARRAYS, **{name: np.ones(shape) * 0.1 for name, shape in module.PARAMS.items()}}
    module.gradients(**arrays)


# ---- bad steps -------------------------------------------------------------------------------------

def test_a_carry_whose_shape_changes_is_one_error_naming_the_carry_and_both_shapes():
    g = gc.Graph("bad")
    xs, h0 = g.input("xs", (None, T, D)), g.input("h0", (None, H))
    W = g.param("W", (D, 3))
    with pytest.raises(gc.ShapeError, match=re.escape("gc.scan: carry 0 starts with shape (None, 4), but the step "
                                                      "returns it with shape (None, 3)")):
        gc.scan(lambda h, x: (x @ W, None), h0, xs, axis=1)
    with pytest.raises(gc.ShapeError, match=re.escape("carry 1 starts with shape (4,), but the step returns it with shape (None, 4)")):
        gc.scan(lambda c, x: ((c[0], c[1] + c[0]), None), (h0, g.param("c", (H,))), xs, axis=1)


def test_a_step_returning_the_wrong_structure_is_one_error():
    g = gc.Graph("bad")
    xs, h0 = g.input("xs", (None, T, D)), g.input("h0", (None, H))
    with pytest.raises(gc.GraphError, match=r"the step must return a pair \(carry, y\), got a Node"):
        gc.scan(lambda h, x: h, h0, xs, axis=1)
    with pytest.raises(gc.GraphError, match=r"the step returned 2 carries, but init is one value of shape \(None, 4\)"):
        gc.scan(lambda h, x: ((h, h), None), h0, xs, axis=1)
    with pytest.raises(gc.GraphError, match=r"the step returned one carry, but init holds 2 \(shapes \(None, 4\), \(None, 4\)\)"):
        gc.scan(lambda c, x: (c[0], None), (h0, h0), xs, axis=1)
    with pytest.raises(gc.ShapeError, match="the sequences have different lengths 6, 5"):
        gc.scan(lambda h, x: (h, None), h0, (xs, g.input("zs", (None, 5, D))), axis=1)


# ---- a length known at run time ------------------------------------------------------------------

@pytest.mark.parametrize("shape, axis", [(("T", None, D), 0), ((None, "T", D), 1)], ids=["time-major", "batch-major"])
def test_one_module_runs_any_length_and_an_empty_sequence_returns_init_and_zero_gradients(shape, axis):
    g = gc.Graph("rnn")
    xs, h0 = g.input("xs", shape), g.input("h0", (None, H))
    W, U = g.param("W", (D, H)), g.param("U", (H, H))
    hT, hs = gc.scan(lambda h, x: (gc.tanh(x @ W + h @ U),) * 2, h0, xs, axis=axis)
    assert hs.shape == ((("T", None, H)) if axis == 0 else (None, "T", H))
    g.output("hT", hT)
    g.output("hs", hs)
    g.output("loss", gc.sum(hT * hT) + gc.sum(hs * hs))
    model = gc.compile(g, loss="loss", runtime=False)
    module = model.load()
    rng = np.random.default_rng(3)
    params = {"W": rng.normal(size=(D, H)), "U": 0.5 * rng.normal(size=(H, H))}
    h0_value = rng.normal(size=(B, H))
    for length in (0, 1, 7, 40):
        xs_value = rng.normal(size=(length, B, D) if axis == 0 else (B, length, D))
        arrays = {"xs": xs_value, "h0": h0_value, **params}
        outputs, grads = module.gradients(**arrays)
        assert outputs["hs"].shape == ((length, B, H) if axis == 0 else (B, length, H))
        h, steps = h0_value, []  # the same recursion in NumPy
        for t in range(length):
            h = np.tanh(np.take(xs_value, t, axis=axis) @ params["W"] + h @ params["U"])
            steps.append(h)
        np.testing.assert_allclose(outputs["hT"], h, rtol=1e-12, atol=1e-12)
        if length == 0:
            np.testing.assert_array_equal(outputs["hT"], h0_value)
            assert all(not np.any(grads[name]) for name in ("W", "U")) and grads["W"].shape == (D, H)
        else:
            np.testing.assert_allclose(outputs["hs"], np.stack(steps, axis=axis), rtol=1e-12, atol=1e-12)
            check_gradients(module, arrays, "loss")


def test_a_run_time_length_is_one_size_in_every_array():
    g = gc.Graph("two")
    xs, zs = g.input("xs", ("T", None, D)), g.input("zs", ("T", None, D))
    final, _ = gc.scan(lambda s, x: (s + gc.sum(x[0] * x[1]), None), 0.0, (xs, zs))
    g.output("y", final)
    module = gc.compile(g, runtime=False).load()
    with pytest.raises(ValueError, match=r"arrays 'xs' and 'zs' have T = 4 and 5"):
        module.forward(xs=np.ones((4, B, D)), zs=np.ones((5, B, D)))
    assert module.forward(xs=np.ones((4, B, D)), zs=np.ones((4, B, D)))["y"] == 4 * B * D


def test_run_time_lengths_are_names_and_params_have_fixed_sizes():
    g = gc.Graph("bad")
    with pytest.raises(gc.ShapeError, match="parameters need fixed sizes"):
        g.param("W", ("T", 3))
    with pytest.raises(gc.ShapeError, match="a run-time length must be a name such as 'T'"):
        g.input("x", ("1T", 3))
    with pytest.raises(gc.ShapeError, match="None at axis 1"):
        g.input("x", (3, None))


def test_the_readme_shows_the_backward_loop_the_compiler_writes():
    from pathlib import Path
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Loops: `gc.scan`"):]
    shown = re.findall(r"```python\n(.*?)```", section, flags=re.S)[1]
    assert "hT, hs = gc.scan(step, h0, xs, axis=1)" in section
    assert shown in gc.compile(readme_rnn()).source


def test_second_derivatives_through_a_loop():
    """A Hessian-vector product: gc.grad of a loop's loss, differentiated again (the derivative of the
    reversed loop is a forward loop again), against central differences of the first gradient."""
    g = gc.Graph("hvp")
    xs, h0, v = g.input("xs", (None, 5, D)), g.input("h0", (None, 3)), g.input("v", (D, 3))
    W, U = g.param("W", (D, 3)), g.param("U", (3, 3))
    hT, hs = gc.scan(lambda h, x: (gc.tanh(x @ W + h @ U),) * 2, h0, xs, axis=1)
    (dW,) = gc.grad(gc.sum(hT * hT) + gc.sum(hs), [W])
    g.output("hvp", gc.sum(dW * v))
    module = gc.compile(g, loss="hvp", wrt=["W", "U", "h0"], runtime=False).load()
    rng = np.random.default_rng(0)
    arrays = {"xs": rng.normal(size=(B, 5, D)), "h0": rng.normal(size=(B, 3)), "v": rng.normal(size=(D, 3)),
              "W": rng.normal(size=(D, 3)), "U": 0.5 * rng.normal(size=(3, 3))}
    check_gradients(module, arrays, "hvp")


# ---- random steps --------------------------------------------------------------------------------

def random_step(rng, carries: int, params: list, width: int):
    """A random step over `carries` carries and two sequence elements of shape (None, width): each new
    carry and each output a random smooth expression of the carries, the elements and the params."""
    unary = [gc.tanh, gc.sigmoid, lambda v: v * 0.5, lambda v: gc.softplus(v) - 0.5, lambda v: v * v * 0.1]
    plan = [[(int(rng.integers(0, 4)), int(rng.integers(0, len(unary))), int(rng.integers(0, len(params))),
              int(rng.integers(0, 3))) for _ in range(3)] for _ in range(carries + 2)]

    def expression(values, terms):
        total = None
        for source, f, p, how in terms:
            v = values[source % len(values)]
            v = v @ params[p] if how == 0 else v * gc.sum(params[p], axis=0) if how == 1 else v + gc.mean(v, axis=1, keepdims=True)
            v = unary[f](v)
            total = v if total is None else total + v
        return total

    def step(carry, x):
        values = list(carry) + list(x)
        news = tuple(expression(values, terms) for terms in plan[:carries])
        return news, (expression(values, plan[carries]), expression(values + list(news), plan[carries + 1]))
    return step


@pytest.mark.parametrize("seed", range(12))  # 60 seeds passed when written
def test_random_steps_are_their_unrolled_graphs(seed):
    rng = np.random.default_rng(seed)
    carries, reverse, steps = int(rng.integers(1, 3)), bool(rng.integers(0, 2)), int(rng.integers(1, 5))

    def build(g, looped):
        xs, zs = g.input("xs", (None, steps, H)), g.input("zs", (None, steps, H))
        inits = tuple(g.input(f"c{i}", (None, H)) for i in range(carries))
        params = [g.param(f"P{k}", (H, H)) for k in range(2)]
        weights = [g.input(f"w{j}", (None, steps, H)) for j in range(2)]
        step = random_step(np.random.default_rng(seed + 1000), carries, params, H)
        if looped:
            final, ys = gc.scan(step, inits, (xs, zs), axis=1, reverse=reverse)
            outs = sum(stacked_loss(y, w) for y, w in zip(ys, weights))
        else:
            final, ys = unrolled(step, inits, (xs, zs), reverse=reverse)
            outs = sum(stacked_loss(None, w, [y[j] for y in ys]) for j, w in enumerate(weights))
        g.output("loss", sum(gc.sum(f * f) for f in final) + outs)
    shapes = {"xs": (B, steps, H), "zs": (B, steps, H), "w0": (B, steps, H), "w1": (B, steps, H),
              **{f"c{i}": (B, H) for i in range(carries)}}
    arrays = {name: value for name, value in zip(shapes, data(*shapes.values(), seed=seed))}
    compare(build, arrays, ["P0", "P1", "xs", "zs", *[f"c{i}" for i in range(carries)]], tolerance=1e-9)


def test_check_shapes_checks_the_lines_of_a_loop_and_run_time_lengths():
    g = gc.Graph("rnn")
    xs, h0 = g.input("xs", (None, "T", D)), g.input("h0", (None, H))
    W, U = g.param("W", (D, H)), g.param("U", (H, H))
    hT, hs = gc.scan(lambda h, x: (gc.tanh(x @ W + h @ U),) * 2, h0, xs, axis=1)
    g.output("loss", gc.sum(hT) + gc.sum(hs * hs))
    model = gc.compile(g, check_shapes=True, runtime=False)
    body = function_text(model.source, "forward")
    length = re.search(r"\n    N = xs\.shape\[0\]\n    (T\w*) = xs\.shape\[1\]\n", body)[1]  # the checks' own T
    assert re.search(rf'\n        _expect_shape\(t\d+, \(N, {H}\), "t\d+"\)\n', body)  # inside the loop
    assert re.search(rf'_expect_shape\(t\d+, \(N, {length}, {H}\), "t\d+"\)', body)
    arrays = {"xs": np.ones((B, 5, D)), "h0": np.ones((B, H)), "W": np.full((D, H), 0.1), "U": np.full((H, H), 0.1)}
    model.load().gradients(**arrays)
    wrong = model.source.replace("t2 @ U\n", "(t2 @ U)[:, :2]\n", 1)
    assert wrong != model.source
    model.source = wrong
    with pytest.raises(ValueError, match=r"check_shapes: t\d+ = t2 @ U computed shape \(3, 2\), but the graph gives t\d+ the shape \(3, 4\)"):
        model.load().forward(**arrays)


def test_an_empty_sequence_gradient_reads_the_batch_size_off_an_array_not_a_saved_list():
    """T = 0, an unbatched carry and a batched sequence: the empty gradient of the sequence takes its
    batch size from an array (the loop's saved values are lists, empty at T = 0). Found by
    tests/random_scans.py."""
    g = gc.Graph("empty")
    xs = g.input("xs", (None, "T", D))
    w = g.param("w", (D,))
    final, _ = gc.scan(lambda s, x: (s + gc.sum(gc.tanh(x * w * s + x)), None), 0.5, xs, axis=1)
    g.output("loss", final * final)
    module = gc.compile(g, wrt=["xs", "w"], runtime=False).load()
    outputs, grads = module.gradients(xs=np.ones((B, 0, D)), w=np.ones(D))
    assert outputs["loss"] == 0.25 and grads["xs"].shape == (B, 0, D) and not grads["w"].any()
    arrays = {"xs": np.random.default_rng(0).normal(size=(B, 4, D)), "w": np.full(D, 0.3)}
    check_gradients(module, arrays, "loss")


def test_check_shapes_reads_the_batch_size_of_a_time_major_sequence():
    """("T", None, D): the number of examples is the second axis (found by tests/random_scans.py)."""
    g = gc.Graph("tm")
    xs, W = g.input("xs", ("T", None, D)), g.param("W", (D, H))
    start = gc.sum(gc.tanh(xs), axis=0) @ W  # (None, H)
    hT, hs = gc.scan(lambda h, x: (gc.tanh(x @ W + h), gc.sum(x, axis=1)), start, xs)
    g.output("loss", gc.sum(hT) + gc.sum(hs))
    model = gc.compile(g, check_shapes=True, runtime=False)
    assert "    N = xs.shape[1]\n" in model.source
    module = model.load()
    for length in (0, 3):
        module.gradients(xs=np.full((length, B, D), 0.1), W=np.full((D, H), 0.2))


# ---- checkpointed loops --------------------------------------------------------------------------

def _two_carry_graph(checkpoint, reverse):
    g = gc.Graph("cell")
    xs, h0 = g.input("xs", (None, "T", D)), g.input("h0", (None, 3))
    W, U = g.param("W", (D, 3)), g.param("U", (3, 3))

    def step(carry, x):
        h, c = carry
        c = c * gc.sigmoid(x @ W) + gc.tanh(h @ U)
        h = gc.tanh(c) * gc.sigmoid(h @ U)
        return (h, c), h

    (hT, cT), hs = gc.scan(step, (h0, h0), xs, axis=1, reverse=reverse, checkpoint=checkpoint)
    g.output("loss", gc.sum(hT * cT) + gc.sum(hs * hs))
    return g


@pytest.mark.parametrize("reverse", [False, True])
def test_a_checkpointed_loop_gives_the_gradients_of_the_loop_that_keeps_every_step(reverse):
    """checkpoint=k trades memory for time and nothing else: at every length (0, shorter than k, a
    multiple of k, not one) and every k, the same outputs and gradients as keeping every step."""
    rng = np.random.default_rng(1)
    reference = gc.compile(_two_carry_graph(None, reverse), loss="loss", wrt=["W", "U", "h0"], runtime=False).load()
    modules = {k: gc.compile(_two_carry_graph(k, reverse), loss="loss", wrt=["W", "U", "h0"], runtime=False).load()
               for k in (1, 2, 3, 5, 20)}
    for length in (0, 1, 5, 6, 12):
        arrays = {"xs": rng.normal(size=(B, length, D)), "h0": rng.normal(size=(B, 3)),
                  "W": rng.normal(size=(D, 3)), "U": 0.5 * rng.normal(size=(3, 3))}
        outputs, grads = reference.gradients(**arrays)
        for k, module in modules.items():
            got_outputs, got = module.gradients(**arrays)
            assert abs(got_outputs["loss"] - outputs["loss"]) < 1e-12
            for name in grads:
                np.testing.assert_allclose(got[name], grads[name], rtol=1e-12, atol=1e-12, err_msg=f"k={k} T={length} {name}")
    check_gradients(modules[3], {**arrays, "xs": arrays["xs"][:, :7]}, "loss")


def test_a_checkpointed_loop_keeps_its_carries_and_its_derivative_computes_the_steps_again():
    source = gc.compile(_two_carry_graph(4, False), loss="loss", wrt=["W", "U"]).source
    gradients = source[source.index("def _gradients("):]
    gradients = gradients[:gradients.index("\n\n\n")]  # (train()'s in-place step follows it)
    forward, backward = gradients.split("# Backward pass")
    assert "# t1 = scan(init=(h0, h0), xs=(xs)), keeping its carries every 4 steps" in forward
    assert re.search(r"\n        if t % 4 == 0:\n            checkpoints\.append\(\((\w+), (\w+)\)\)\n", forward)
    assert ".append(" not in forward.replace("checkpoints.append", "").replace("_steps.append", "")
    header = re.search(r"\n    for (t_\d+) in range\((T_\d+) - 1, -1, -1\):\n", backward)
    t = header.group(1)
    assert f"if {t} % 4 == 3 or {t} == T - 1:  # the steps since the last checkpoint, computed again" in backward
    assert f"= checkpoints[{t} // 4]" in backward and f"in range({t} - {t} % 4, {t} + 1):" in backward
    assert re.search(rf"= \w+\[{t} % 4\]\n", backward)


def test_lstm_and_gru_take_a_checkpoint_and_give_the_same_gradients():
    rng = np.random.default_rng(2)
    for layer in (gc.lstm, gc.gru):
        modules = []
        for checkpoint in (None, 4):
            g = gc.Graph("layer")
            xs = g.input("xs", (None, "T", D))
            hs, _ = layer(g, xs, 3, name="rnn", axis=1, checkpoint=checkpoint)
            g.output("loss", gc.sum(hs * hs))
            modules.append(gc.compile(g, loss="loss").load())
        params = modules[0].init_params(seed=0)
        arrays = {"xs": rng.normal(size=(B, 9, D)), **params}
        (_, expected), (_, got) = modules[0].gradients(**arrays), modules[1].gradients(**arrays)
        for name in expected:
            np.testing.assert_allclose(got[name], expected[name], rtol=1e-12, atol=1e-13)


def test_second_derivatives_through_a_checkpointed_loop_keep_every_step():
    """The derivative of the derivative reads the saved values too: that loop keeps them all."""
    g = gc.Graph("hvp")
    xs, h0, v = g.input("xs", (None, 5, D)), g.input("h0", (None, 3)), g.input("v", (D, 3))
    W, U = g.param("W", (D, 3)), g.param("U", (3, 3))
    hT, hs = gc.scan(lambda h, x: (gc.tanh(x @ W + h @ U),) * 2, h0, xs, axis=1, checkpoint=2)
    (dW,) = gc.grad(gc.sum(hT * hT) + gc.sum(hs), [W])
    g.output("hvp", gc.sum(dW * v))
    model = gc.compile(g, loss="hvp", wrt=["W", "U", "h0"], runtime=False)
    assert "checkpoints" not in model.source
    rng = np.random.default_rng(0)
    arrays = {"xs": rng.normal(size=(B, 5, D)), "h0": rng.normal(size=(B, 3)), "v": rng.normal(size=(D, 3)),
              "W": rng.normal(size=(D, 3)), "U": 0.5 * rng.normal(size=(3, 3))}
    check_gradients(model.load(), arrays, "hvp")


@pytest.mark.parametrize("bad", [0, -2, 2.5, True, "3"])
def test_a_checkpoint_that_is_no_whole_number_of_steps_is_one_error(bad):
    g = gc.Graph("bad")
    xs, h0 = g.input("xs", (None, 4, D)), g.input("h0", (None, D))
    with pytest.raises(gc.GraphError, match=rf"gc.scan: checkpoint must be a whole number of steps >= 1 \(or None\), got {re.escape(repr(bad))}"):
        gc.scan(lambda h, x: (h + x, None), h0, xs, axis=1, checkpoint=bad)


@pytest.mark.parametrize("checkpoint", [None, 2])
def test_loops_run_on_other_array_libraries(checkpoint):
    """The running sums `d_W += ...` change NumPy's and array-api-strict's arrays in place; on JAX, whose
    arrays cannot change, `+=` makes a new array: every library gives NumPy's gradients."""
    import array_api_strict
    import jax
    import jax.numpy as jnp
    jax.config.update("jax_enable_x64", True)
    g = gc.Graph("rnn")
    xs, h0 = g.input("xs", (None, "T", D)), g.input("h0", (None, H))
    W, U = g.param("W", (D, H)), g.param("U", (H, H))
    hT, hs = gc.scan(lambda h, x: (gc.tanh(x @ W + h @ U),) * 2, h0, xs, axis=1, checkpoint=checkpoint)
    g.output("loss", gc.sum(hT) + gc.sum(hs * hs))
    module = gc.compile(g).load()
    rng = np.random.default_rng(0)
    arrays = {"xs": rng.normal(size=(B, 5, D)), "h0": rng.normal(size=(B, H)), "W": rng.normal(size=(D, H)),
              "U": 0.5 * rng.normal(size=(H, H))}
    _, expected = module.gradients(**arrays)
    for library in (array_api_strict, jnp):
        _, got = module.gradients(**{name: library.asarray(value) for name, value in arrays.items()})
        for name in expected:
            np.testing.assert_allclose(np.asarray(got[name]), expected[name], rtol=1e-12, atol=1e-12)
