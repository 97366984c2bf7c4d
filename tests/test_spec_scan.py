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
    assert text.count("for t in range(T)") == 2  # one loop forward, one reversed loop backward... at any T
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
