"""[scan.NAME] tables: a loop written in a spec file. Each spec is compared with the same model written in
Python with gc.scan (values and every gradient to 1e-10), with central differences in float64, and
with a loop written in NumPy at two lengths run by one module; the command line compiles, differentiates
and trains it; and each kind of bad table is one line naming the table and the key."""
import importlib.util
import re
import tomllib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graphcomp as gc
from graphcomp.frontend.cli import main
from graphcomp.frontend.spec import build, load
from gradcheck import check_gradients

ROOT = Path(__file__).parents[1]
EXAMPLE = ROOT / "examples" / "rnn_loop.toml"
B, D, H = 3, 2, 4  # examples, input width, carry width

LEAVES = """
[model]
name = "m"
loss = "loss"
[inputs]
x = ["N", "T", 2]
h0 = ["N", 4]
c0 = ["N", 4]
w = ["N", "T", 4]
[params]
Wx = [2, 4]
Wh = [4, 4]
b = [4]
"""

RNN = LEAVES + """
[scan.rnn]
xs = { x_t = "x" }
axis = 1
init = { h = "h0" }
step = { h = "tanh(x_t @ Wx + h @ Wh + b)" }
ys = { hs = "h" }
reverse = REVERSE
[outputs]
loss = "sum(rnn.h * rnn.h) + sum(rnn.hs * w) + sum(c0)"
"""

# Two carries, and let values written before the gates they read (lets are sorted as [nodes] are).
GATES = "".join(f"W{k} = [2, 4]\nU{k} = [4, 4]\n" for k in "ifgo")
LSTM = LEAVES + GATES + """
[scan.cell]
xs = { x_t = "x" }
axis = 1
init = { h = "h0", c = "c0" }
step = { h = "o * tanh(c_next)", c = "c_next" }
ys = { hs = "h" }
[scan.cell.let]
c_next = "f * c + i * g"
i = "sigmoid(x_t @ Wi + h @ Ui + b)"
f = "sigmoid(x_t @ Wf + h @ Uf)"
g = "tanh(x_t @ Wg + h @ Ug)"
o = "sigmoid(x_t @ Wo + h @ Uo)"
[outputs]
loss = "sum(cell.h * cell.c) + sum(cell.hs * w) + sum(Wx) + sum(Wh)"
"""


def rnn_spec(reverse: bool = False) -> str:
    return RNN.replace("REVERSE", "true" if reverse else "false")


def python_leaves(g: gc.Graph, gates: bool = False) -> dict:
    leaves = {name: g.input(name, shape) for name, shape in
              (("x", (None, "T", D)), ("h0", (None, H)), ("c0", (None, H)), ("w", (None, "T", H)))}
    leaves |= {"Wx": g.param("Wx", (D, H)), "Wh": g.param("Wh", (H, H)), "b": g.param("b", (H,))}
    for k in "ifgo" if gates else "":
        leaves |= {f"W{k}": g.param(f"W{k}", (D, H)), f"U{k}": g.param(f"U{k}", (H, H))}
    return leaves


def python_rnn(reverse: bool = False) -> gc.Graph:
    g = gc.Graph("m")
    v = python_leaves(g)

    def step(h, x_t):
        h = gc.tanh(x_t @ v["Wx"] + h @ v["Wh"] + v["b"])
        return h, h

    hT, hs = gc.scan(step, v["h0"], v["x"], axis=1, reverse=reverse)
    g.output("loss", gc.sum(hT * hT) + gc.sum(hs * v["w"]) + gc.sum(v["c0"]))
    return g


def python_lstm() -> gc.Graph:
    g = gc.Graph("m")
    v = python_leaves(g, gates=True)

    def step(carry, x_t):
        h, c = carry
        i = gc.sigmoid(x_t @ v["Wi"] + h @ v["Ui"] + v["b"])
        f = gc.sigmoid(x_t @ v["Wf"] + h @ v["Uf"])
        cell = gc.tanh(x_t @ v["Wg"] + h @ v["Ug"])
        o = gc.sigmoid(x_t @ v["Wo"] + h @ v["Uo"])
        c = f * c + i * cell
        h = o * gc.tanh(c)
        return (h, c), h

    (h, c), hs = gc.scan(step, (v["h0"], v["c0"]), v["x"], axis=1)
    g.output("loss", gc.sum(h * c) + gc.sum(hs * v["w"]) + gc.sum(v["Wx"]) + gc.sum(v["Wh"]))
    return g


def from_spec(text: str) -> gc.Graph:
    return build(tomllib.loads(text), "model.toml").graph


def module(graph: gc.Graph):
    return gc.compile(graph, wrt=sorted(graph.leaves), loss="loss", runtime=False).load()


def arrays(graph: gc.Graph, steps: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    sizes = {None: B, "T": steps}
    return {name: 0.5 * rng.normal(size=tuple(sizes.get(d, d) for d in leaf.shape))
            for name, leaf in graph.leaves.items()}


def assert_same_model(spec_graph: gc.Graph, python_graph: gc.Graph, steps: int = 5) -> dict:
    """Both graphs compile to modules with the same loss and the same gradient of every leaf."""
    values = arrays(spec_graph, steps)
    (out_spec, grad_spec), (out_py, grad_py) = (module(g).gradients(**values) for g in (spec_graph, python_graph))
    np.testing.assert_allclose(out_spec["loss"], out_py["loss"], rtol=1e-10, atol=1e-10)
    assert set(grad_spec) == set(grad_py) == set(values)
    for name in grad_py:
        np.testing.assert_allclose(grad_spec[name], grad_py[name], rtol=1e-10, atol=1e-10, err_msg=name)
    return values


def test_a_spec_rnn_is_the_python_scan():
    assert_same_model(from_spec(rnn_spec()), python_rnn())


def test_a_spec_of_two_carries_with_let_values_is_the_python_lstm_step():
    assert_same_model(from_spec(LSTM), python_lstm())


def test_reverse_walks_from_the_last_step_and_stacks_in_time_order():
    values = assert_same_model(from_spec(rnn_spec(reverse=True)), python_rnn(reverse=True))
    forward = module(from_spec(rnn_spec())).forward(**values)["loss"]
    backward = module(from_spec(rnn_spec(reverse=True))).forward(**values)["loss"]
    assert abs(forward - backward) > 1e-3  # the direction matters for this loss


@pytest.mark.parametrize("text", [rnn_spec(), rnn_spec(reverse=True), LSTM], ids=["rnn", "reversed", "two carries"])
def test_spec_loops_match_central_differences(text):
    graph = from_spec(text)
    check_gradients(module(graph), arrays(graph, 4, seed=2), "loss", tolerance=1e-6)


def numpy_rnn(x, Wx, Wh, b, Wy, by):
    """The example's model as a NumPy loop, from zeros."""
    h = np.zeros((x.shape[0], Wh.shape[0]))
    for t in range(x.shape[1]):
        h = np.tanh(x[:, t, :] @ Wx + h @ Wh + b)
    return h @ Wy + by


def load_module(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


def test_the_example_compiles_once_and_runs_any_length(tmp_path, capsys):
    out = tmp_path / "rnn_loop_model.py"
    assert main(["compile", str(EXAMPLE), "-o", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    generated = load_module(out)
    params = generated.init_params(3)
    rng = np.random.default_rng(1)
    for steps in (3, 11):
        x = rng.uniform(-1, 1, size=(5, steps, 1))
        want = numpy_rnn(x, *(params[k] for k in ("Wx", "Wh", "b", "Wy", "by")))
        np.testing.assert_allclose(generated.forward(x=x, **params)["prediction"], want, rtol=1e-12, atol=1e-12)
    text = out.read_text()
    text = text[:text.index("def _buffers(")]  # (train()'s in-place step repeats _gradients' loops)
    # a loop in forward and in _gradients, and one reversed loop for the gradients, whatever T is
    assert text.count("for t in range(T):") == 2
    assert len(re.findall(r"for (t_\d+) in range\((T_\d+) - 1, -1, -1\):", text)) == 1
    assert "rnn_h = h0" in text  # the loop's carry is named after the table and the carry


def test_graphcomp_grad_shows_the_loop_results_by_name(capsys):
    assert main(["grad", str(EXAMPLE)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "prediction = t" in "\n".join(lines) and any(re.fullmatch(r"t\d+ = rnn_h @ Wy", line) for line in lines)
    assert "d_rnn_h = d_prediction @ Wy.T" in lines
    assert main(["grad", str(EXAMPLE), "--steps"]) == 0
    steps = capsys.readouterr().out.splitlines()  # the loop written out for its first 3 steps
    assert [line.split(" = ")[0] for line in steps if re.match(r"(h\d|rnn_h) = tanh\(", line)] == ["h1", "h2", "rnn_h"]


SMALL = """
[inputs]
x = ["N", "T", 2]
h0 = ["N", 4]
[params]
Wx = [2, 4]
Wh = [4, 4]
[scan.rnn]
xs = { x_t = "x" }
axis = 1
init = { h = "h0" }
step = { h = "tanh(x_t @ Wx + h @ Wh)" }
ys = { hs = "h" }
[outputs]
loss = "sum(rnn.h * rnn.h) + sum(rnn.hs)"
"""


def numbers_of(line: str) -> np.ndarray:
    return np.array([float(v) for v in re.findall(r"-?\d+\.?\d*(?:e-?\d+)?", line.rsplit(" = ", 1)[1])])


def test_graphcomp_grad_at_values_writes_each_step_with_the_module_numbers(tmp_path, capsys):
    spec = tmp_path / "rnn.toml"
    spec.write_text(SMALL)
    values = arrays(from_spec(SMALL), 2, seed=4)
    values = {name: value[:1] if name in ("x", "h0") else value for name, value in values.items()}  # one example
    at = tmp_path / "at.npz"
    np.savez(at, **values)
    assert main(["grad", str(spec), "--at", str(at)]) == 0
    lines = capsys.readouterr().out.splitlines()
    outputs, grads = module(from_spec(SMALL)).gradients(**values)
    by_name = {line.split(" = ")[0]: line for line in lines if " = " in line}
    assert re.match(r"d_Wx = transpose\(x_2\) @ d_t\d+ \+ transpose\(x_1\) @ d_t\d+ = ", by_name["d_Wx"])
    assert by_name["rnn_hs"].startswith("rnn_hs = concat(")
    np.testing.assert_allclose(numbers_of(by_name["loss"]), [outputs["loss"]], rtol=1e-4)
    for name in ("Wx", "Wh"):
        np.testing.assert_allclose(numbers_of(by_name[f"d_{name}"]), grads[name].ravel(), rtol=2e-3, atol=1e-4)


def test_graphcomp_train_learns_the_mean_of_any_length(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(512, 6, 1))
    data = tmp_path / "sequences.npz"
    np.savez(data, x=x, y=x.mean(axis=1))
    out, params_file = tmp_path / "rnn_loop.py", tmp_path / "params.npz"
    assert main(["train", str(EXAMPLE), "--data", str(data), "-o", str(out), "--out", str(params_file), "--quiet"]) == 0
    capsys.readouterr()
    trained = load_module(out)
    params = {name: value for name, value in np.load(params_file).items() if name in trained.PARAMS}  # not the run state
    for steps, fraction in ((6, 0.2), (4, 0.5), (9, 0.5)):  # trained on 6 steps; the same module at other lengths
        x_test = np.random.default_rng(steps).uniform(-1, 1, size=(256, steps, 1))
        y_test = x_test.mean(axis=1)
        loss = trained.forward(x=x_test, y=y_test, **params)["loss"]
        untrained = trained.forward(x=x_test, y=y_test, **trained.init_params(0))["loss"]
        # below a fraction of the error of predicting the average, y_test.var()
        assert loss < fraction * y_test.var() < untrained, (steps, loss, y_test.var(), untrained)


def test_the_example_loads_as_a_spec_with_its_training_settings():
    spec = load(EXAMPLE)
    assert spec.loss == "loss" and spec.training["epochs"] == 40
    assert spec.graph.inputs["x"].shape == (None, "T", 1)


def test_a_loop_may_walk_the_outputs_of_another_written_before_it_in_the_file():
    text = LEAVES + """
[outputs]
loss = "sum(back.h * rnn.h) + sum(back.gs * w)"
[scan.back]
xs = { h_t = "rnn.hs" }
axis = 1
init = { h = "rnn.h" }
step = { h = "tanh(h_t @ Wh + h @ Wh + b)" }
ys = { gs = "h * h_t" }
reverse = true
[scan.rnn]
xs = { x_t = "x" }
axis = 1
init = { h = "h0 + c0" }
step = { h = "tanh(x_t @ Wx + h @ Wh + b)" }
ys = { hs = "h" }
"""
    g = gc.Graph("m")
    v = python_leaves(g)
    forward = lambda h, x_t: (gc.tanh(x_t @ v["Wx"] + h @ v["Wh"] + v["b"]),) * 2  # noqa: E731

    def backward(h, h_t):
        h = gc.tanh(h_t @ v["Wh"] + h @ v["Wh"] + v["b"])
        return h, h * h_t

    hT, hs = gc.scan(forward, v["h0"] + v["c0"], v["x"], axis=1)
    h_back, gs = gc.scan(backward, hT, hs, axis=1, reverse=True)
    g.output("loss", gc.sum(h_back * hT) + gc.sum(gs * v["w"]))
    assert_same_model(from_spec(text), g)


# ------------------------------------------------------------------ bad tables: one line each

BAD = """[inputs]
x = ["N", "T", 2]
h0 = ["N", 4]
c0 = ["N", 4]
v = ["N", 5, 2]
[params]
Wx = [2, 4]
Wh = [4, 4]
W3 = [2, 3]
{extra}
[scan.rnn]
{scan}
[outputs]
{outputs}
"""
GOOD_OUTPUT = 'loss = "sum(rnn.h) + sum(rnn.hs)"'


def loop(**changes) -> str:
    """The lines of a good [scan.rnn] table with some keys changed (None: left out)."""
    keys = dict(xs='{ x_t = "x" }', axis="1", init='{ h = "h0" }', step='{ h = "tanh(x_t @ Wx + h @ Wh)" }',
                ys='{ hs = "h" }') | changes
    return "\n".join(f"{key} = {value}" for key, value in keys.items() if value is not None)


LOOPS = "the loop 'rnn' has no result 'c'; its results: rnn.h (final carry), rnn.hs (stacked along axis 1)"
BAD_TABLES = [
    ("an unknown key", dict(scan=loop(carry='"h"')), "scan.rnn: unknown key(s) 'carry'; allowed: axis, init, let, reverse, step, xs, ys"),
    ("a step missing a carry", dict(scan=loop(init='{ h = "h0", c = "c0" }')), "scan.rnn.step: no new value for the carry 'c'"),
    ("a step of no carry", dict(scan=loop(step='{ h = "h", q = "h" }')), "scan.rnn.step.q: 'q' is not a carry (carries: h)"),
    ("a carry changing shape", dict(scan=loop(step='{ h = "x_t @ W3" }')),
     "scan.rnn.step.h: the carry 'h' starts with shape (None, 4) (init) but the step gives it shape (None, 3)"),
    ("an element named like an input", dict(scan=loop(xs='{ x = "x" }')), "scan.rnn.xs.x: 'x' is already the name of input 'x'"),
    ("a carry named like an element", dict(scan=loop(xs='{ h = "x" }')), "scan.rnn.init.h: 'h' is already the name of an element of the loop"),
    ("a let named like a node", dict(scan=loop(let='{ a = "h" }'), extra='[nodes]\na = "h0"'),
     "scan.rnn.let.a: 'a' is already the name of the node 'a'"),
    ("a loop named like an input", dict(extra='[scan.x]\nxs = { x_t = "x" }\ninit = { h = "h0" }\nstep = { h = "h" }', scan=loop()),
     "scan.x: 'x' is already the name of input 'x'"),
    ("an unknown sequence", dict(scan=loop(xs='{ x_t = "q" }')), "scan.rnn.xs.x_t: unknown name 'q'"),
    ("a number as sequence", dict(scan=loop(xs='{ x_t = "3" }')), "scan.rnn.xs.x_t: a sequence must be a graph value"),
    ("a sequence as text", dict(scan=loop(xs='"x"')), "scan.rnn.xs: expected a table of name = \"expression\", got 'x'"),
    ("no sequence", dict(scan=loop(xs="{}")), "scan.rnn.xs: give at least one name = \"expression\""),
    ("sequences of two lengths", dict(scan=loop(xs='{ a = "x", b = "v" }', step='{ h = "h" }')),
     "scan.rnn.xs: the sequences differ in length along axis 1 (a T, b 5)"),
    ("ys of an unknown name", dict(scan=loop(ys='{ hs = "z" }')), "scan.rnn.ys.hs: unknown name 'z'"),
    ("ys named like a carry", dict(scan=loop(ys='{ h = "h" }')), "scan.rnn.ys.h: 'h' is also a carry"),
    ("a cycle through the loop", dict(scan=loop(init='{ h = "a" }'), extra='[nodes]\na = "rnn.h"'), "nodes.a: cycle: a -> rnn -> a"),
    ("a cycle of lets", dict(scan=loop(let='{ a = "b + h", b = "a * 2" }')), "scan.rnn.let.a: cycle: a -> b -> a"),
    ("a result the loop has not", dict(outputs='loss = "sum(rnn.c)"'), f"outputs.loss: {LOOPS}"),
    ("a loop read whole", dict(outputs='loss = "sum(rnn)"'), "outputs.loss: 'rnn' is a loop ([scan.rnn]): read one of its results"),
    ("an attribute of a result", dict(outputs='loss = "sum(rnn.h.T)"'), "outputs.loss: attribute access '.T' is not allowed"),
    ("an element read outside", dict(outputs='loss = "sum(x_t)"'), "outputs.loss: unknown name 'x_t'"),
    ("an axis out of range", dict(scan=loop(axis="3")), "scan.rnn.axis: axis 3 is out of range for the sequence of 'x_t', of shape (None, T, 2)"),
    ("the batch axis as time", dict(scan=loop(axis="0")), "scan.rnn.axis: axis 0 of the sequence of 'x_t', of shape (None, T, 2), is the batch axis"),
    ("an axis as text", dict(scan=loop(axis='"time"')), "scan.rnn.axis: expected a whole number (the time axis), got 'time'"),
    ("reverse as text", dict(scan=loop(reverse='"yes"')), "scan.rnn.reverse: expected true or false, got 'yes'"),
    ("no step", dict(scan=loop(step=None)), "scan.rnn: missing 'step'"),
    ("a step of a number", dict(scan=loop(step='{ h = "2" }')), "scan.rnn.step.h: the expression gives 2, not a graph value"),
    ("a name that is no identifier", dict(scan=loop(xs='{ "x-t" = "x" }')), "scan.rnn.xs.x-t: 'x-t' cannot name an element"),
    ("a keyword as element", dict(scan=loop(xs='{ "lambda" = "x" }')), "scan.rnn.xs.lambda: 'lambda' cannot name an element"),
    ("a loop that is no table", dict(scan="", extra="[scan]\nlstm = 3"), "scan.lstm: expected a table [scan.lstm]"),
]


@pytest.mark.parametrize("parts, message", [(parts, message) for _, parts, message in BAD_TABLES],
                         ids=[name for name, _, _ in BAD_TABLES])
def test_a_bad_loop_gets_one_line_naming_the_table_and_key(tmp_path, capsys, parts, message):
    spec = tmp_path / "model.toml"
    spec.write_text(BAD.format(extra=parts.get("extra", ""), scan=parts.get("scan", loop()),
                               outputs=parts.get("outputs", GOOD_OUTPUT)))
    out = tmp_path / "out.py"
    code = main(["compile", str(spec), "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith(f"graphcomp: error: {spec}: "), err
    assert message in err, err
    assert not out.exists()


def test_the_good_table_of_the_error_cases_compiles(tmp_path, capsys):
    spec = tmp_path / "model.toml"
    spec.write_text(BAD.format(extra="", scan=loop(), outputs=GOOD_OUTPUT))
    assert main(["compile", str(spec), "-o", str(tmp_path / "out.py")]) == 0


def test_time_major_sequences_walked_together_with_a_let_read_by_ys():
    text = """
[inputs]
x = ["T", "N", 2]
u = ["T", "N", 4]
h0 = ["N", 4]
[params]
Wx = [2, 4]
Wh = [4, 4]
[scan.rnn]
xs = { x_t = "x", u_t = "u" }
init = { h = "h0" }
let = { z = "x_t @ Wx + h @ Wh" }
step = { h = "tanh(z) * u_t" }
ys = { hs = "h", zs = "z" }
reverse = true
[outputs]
loss = "sum(rnn.h) + sum(rnn.hs * rnn.zs)"
"""
    g = gc.Graph("m")
    x, u, h0 = g.input("x", ("T", None, D)), g.input("u", ("T", None, H)), g.input("h0", (None, H))
    Wx, Wh = g.param("Wx", (D, H)), g.param("Wh", (H, H))

    def step(h, elements):
        x_t, u_t = elements
        z = x_t @ Wx + h @ Wh
        h = gc.tanh(z) * u_t  # ys read the carry after the step, and the let value z
        return h, (h, z)

    hT, (hs, zs) = gc.scan(step, h0, (x, u), reverse=True)
    g.output("loss", gc.sum(hT) + gc.sum(hs * zs))
    spec_graph = from_spec(text)
    assert spec_graph.inputs["x"].shape == ("T", None, D)
    assert_same_model(spec_graph, g)
    check_gradients(module(spec_graph), arrays(spec_graph, 4, seed=5), "loss", tolerance=1e-6)


# ------------------------------------------------------------------ properties

ACTIVATIONS = ("tanh", "sigmoid", "softsign")


@st.composite
def loops(draw):
    """A loop of one to three carries, each updated from the element and another carry through an
    activation, maybe through a let value; reversed or not, batch or time first, with some ys."""
    carries = draw(st.integers(1, 3))
    return dict(carries=carries, activations=draw(st.lists(st.sampled_from(ACTIVATIONS), min_size=carries, max_size=carries)),
                lets=draw(st.lists(st.booleans(), min_size=carries, max_size=carries)), reverse=draw(st.booleans()),
                time_major=draw(st.booleans()), ys=draw(st.lists(st.integers(0, carries - 1), max_size=3, unique=True)),
                steps=draw(st.integers(1, 5)))


def loop_spec(d: dict) -> str:
    n = d["carries"]
    shape = '["T", "N", 2]' if d["time_major"] else '["N", "T", 2]'
    lines = [f"[inputs]\nx = {shape}"] + [f'h0_{j} = ["N", 3]' for j in range(n)] + ["[params]"]
    lines += [f"W{j} = [2, 3]\nU{j} = [3, 3]" for j in range(n)]
    init = ", ".join(f'c{j} = "h0_{j}"' for j in range(n))
    pre = {j: f"x_t @ W{j} + c{(j + 1) % n} @ U{j}" for j in range(n)}
    step = ", ".join(f'c{j} = "{d["activations"][j]}({f"z{j}" if d["lets"][j] else pre[j]})"' for j in range(n))
    lets = ", ".join(f'z{j} = "{pre[j]}"' for j in range(n) if d["lets"][j])
    ys = ", ".join(f'y{j} = "c{j} * c{j}"' for j in d["ys"])
    lines += ["[scan.loop]", 'xs = { x_t = "x" }', f"axis = {0 if d['time_major'] else 1}", f"init = {{ {init} }}",
              f"step = {{ {step} }}", f"ys = {{ {ys} }}", f"reverse = {str(d['reverse']).lower()}"]
    if lets:
        lines.append(f"let = {{ {lets} }}")
    loss = " + ".join([f"sum(loop.c{j} * loop.c{j})" for j in range(n)] + [f"sum(loop.y{j})" for j in d["ys"]])
    return "\n".join(lines + ["[outputs]", f'loss = "{loss}"'])


def loop_python(d: dict) -> gc.Graph:
    n, g = d["carries"], gc.Graph("m")
    x = g.input("x", ("T", None, 2) if d["time_major"] else (None, "T", 2))
    h0 = [g.input(f"h0_{j}", (None, 3)) for j in range(n)]
    W = [g.param(f"W{j}", (2, 3)) for j in range(n)]
    U = [g.param(f"U{j}", (3, 3)) for j in range(n)]

    def step(carry, x_t):
        new = tuple(getattr(gc, d["activations"][j])(x_t @ W[j] + carry[(j + 1) % n] @ U[j]) for j in range(n))
        return new, tuple(new[j] * new[j] for j in d["ys"]) or None

    finals, ys = gc.scan(step, tuple(h0), x, axis=0 if d["time_major"] else 1, reverse=d["reverse"])
    terms = [gc.sum(c * c) for c in finals] + [gc.sum(y) for y in ys or ()]
    g.output("loss", sum(terms[1:], terms[0]))
    return g


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(loops())
def test_any_spec_loop_is_its_python_scan(description):
    assert_same_model(from_spec(loop_spec(description)), loop_python(description), steps=description["steps"])


STEP_PARTS = st.sampled_from(["h", "x_t", "Wx", "Wh", "rnn", "rnn.h", "rnn.hs", "x", "h0", "2", "x_t.T", "q",
                              "rnn.h.T", "(1, 2)", "zeros_like(h)", "tanh(h)", "sum(h, axis=1)", "h[:, 0:2]"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(STEP_PARTS, st.sampled_from([" + ", " * ", " @ ", " - "])), min_size=1, max_size=4),
       st.sampled_from(["step", "ys", "init", "xs", "outputs"]))
def test_any_step_expression_compiles_or_is_one_line_naming_the_entry(tmp_path, capsys, parts, entry):
    text = "".join(a + op for a, op in parts)[:-3]
    keys = {"step": f'step = {{ h = "{text}" }}', "ys": f'ys = {{ hs = "{text}" }}', "init": f'init = {{ h = "{text}" }}',
            "xs": f'xs = {{ x_t = "{text}" }}'}
    table = loop(**{key: value.split(" = ", 1)[1] for key, value in keys.items() if key == entry})
    outputs = f'loss = "sum({text})"' if entry == "outputs" else GOOD_OUTPUT
    spec = tmp_path / "fuzz.toml"
    spec.write_text(BAD.format(extra="", scan=table, outputs=outputs))
    out = tmp_path / "fuzz.py"
    out.unlink(missing_ok=True)
    code = main(["compile", str(spec), "-o", str(out)])
    err = capsys.readouterr().err
    if code == 0:
        assert out.exists() and not err
    else:
        assert code == 2 and err.count("\n") == 1 and err.startswith(f"graphcomp: error: {spec}: "), err
        assert not out.exists()
