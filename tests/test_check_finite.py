"""check_finite: a module compiled with it stops at the first value that is not finite, naming the line,
the formula, the operands' values there and where the user declared the value; `train --check-finite`
stops the same way (exit 1, the params file untouched); derivations note values on a kink."""
import inspect
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import graphcomp as gc
from graphcomp.frontend.spec import load
from graphcomp.frontend.spec_lines import entry_place, reading

# this file as a report shows it: relative to the working folder when under it
HERE = __file__ if os.path.relpath(__file__).startswith("..") else os.path.relpath(__file__)


def _line_of(text: str) -> int:
    """The line of this file that holds `text` (where a test builds the value a report names)."""
    lines = inspect.getsource(sys.modules[__name__]).splitlines()
    return next(k for k, line in enumerate(lines, 1) if text in line)


def _report(call) -> str:
    with np.errstate(all="ignore"), pytest.raises(FloatingPointError) as caught:
        call()
    return str(caught.value)


def _source_line(model, report: str) -> str:
    number = int(re.search(r"line (\d+):", report).group(1))
    return model.source.splitlines()[number - 1].strip()


def test_log_of_zero_in_forward_names_line_formula_operands_and_the_dsl_line():
    g = gc.Graph("logs")
    x = g.input("x", (None, 3))
    w = g.param("w", (3,), init="ones")
    z = gc.log(x * w)  # the value the report names
    g.output("loss", gc.sum(z))
    model = gc.compile(g, check_finite=True)
    report = _report(lambda: model.load().forward(x=np.array([[1.0, 0.0, 2.0]]), w=np.ones(3)))
    assert _source_line(model, report) == "t2 = xp.log(w*x)"  # the line the report names is the line of the code
    assert "t2 = xp.log(w*x)" in report.splitlines()[0]
    assert "formula:  t2 = log(w*x)" in report
    assert f"declared: {HERE} line {_line_of('z = gc.log(x * w)  # the value')}" in report
    assert "t2[0, 1] = -inf" in report and "x[0, 1] = 0.0" in report and "w[1] = 1.0" in report


def test_zero_over_zero_is_nan():
    g = gc.Graph("ratio")
    x = g.input("x", (None,))
    g.output("loss", gc.sum(g.let("r", x / x)))
    report = _report(lambda: gc.compile(g, wrt=["x"], check_finite=True).load().forward(x=np.array([1.0, 0.0])))
    assert "r[1] = nan" in report and "(1 of 2 not finite: 1 nan)" in report


def test_a_gradient_that_is_not_finite_is_found_in_the_backward_pass():
    g = gc.Graph("roots")
    x = g.input("x", (None,))
    w = g.param("w", (), init="ones")
    root = gc.sqrt(x * w)  # its derivative at 0 is infinite
    g.output("loss", gc.sum(root))
    model = gc.compile(g, check_finite=True, simplify=False)
    arrays = {"x": np.array([4.0, 0.0]), "w": np.float64(1.0)}
    assert np.isfinite(model.load().forward(**arrays)["loss"])  # forward is fine: sqrt(0) = 0
    report = _report(lambda: model.load().gradients(**arrays))
    line = _source_line(model, report)
    assert line.startswith("d_") and "# Backward" not in line
    assert "inf" in report
    assert f"in the derivative of t2 ({HERE} line {_line_of('root = gc.sqrt(x * w)  # its')})" in report


def test_a_value_inside_a_loop():
    g = gc.Graph("loop")
    xs = g.input("xs", (None, "T", 2))
    h0 = g.input("h0", (None, 2))

    def step(h, x):
        return gc.log(h * x), None

    h, _ = gc.scan(step, h0, xs, axis=1)
    g.output("loss", gc.sum(h))
    model = gc.compile(g, wrt=["h0"], check_finite=True)
    inside = re.search(r"\n( +)for t in range\(T\):\n(.*?)\n\1\S", model.source, re.S).group(2)
    assert "_expect_finite(xp" in inside  # checked inside the loop's body
    data = {"xs": np.array([[[1.0, 1.0], [1.0, 0.0]]]), "h0": np.array([[2.0, 2.0]])}
    report = _report(lambda: model.load().forward(**data))
    assert "xp.log(" in _source_line(model, report) and "[0, 1] = -inf" in report
    assert f"declared: {HERE} line {step.__code__.co_firstlineno + 1}" in report  # the line inside step
    assert "xs_t[0, 1] = 0.0" in report


SPEC = """[model]
name = "spec_logs"
loss = "loss"

[inputs]
x = ["N", 3]

[params]
w = { shape = [3], init = "ones" }

[nodes]
z = "log(x * w + 1)"

[scan.run]
xs = { x_t = "x" }
axis = 1
init = { s = "sum(z, axis=1)" }
step = { s = "s / x_t" }

[outputs]
loss = "sum(run.s)"
"""


def test_a_spec_file_names_its_file_line_and_key(tmp_path):
    path = tmp_path / "logs.toml"
    path.write_text(SPEC, encoding="utf-8")
    spec = load(path)
    model = gc.compile(spec.graph, loss=spec.loss, check_finite=True)
    report = _report(lambda: model.load().forward(x=np.array([[-1.0, 1.0, 2.0]]), w=np.ones(3)))
    assert f"{path} line 12, [nodes] z" in report and "z[0, 0] = -inf" in report
    report = _report(lambda: model.load().forward(x=np.array([[1.0, 0.0, 2.0]]), w=np.ones(3)))
    assert f"{path} line 18, [scan.run] step.s" in report  # s / 0 inside the loop


def test_default_modules_are_unchanged():
    g = gc.Graph("plain")
    x = g.input("x", (None, 3))
    w = g.param("w", (3,))
    g.output("loss", gc.sum(gc.log(gc.exp(x * w))))
    plain, checked = gc.compile(g), gc.compile(g, check_finite=True)
    model = plain.source.split("# The runtime")[0]
    assert "_expect_finite(" not in plain.source and "_FINITE_LINES = {" not in model
    assert "class NotFiniteValue" not in plain.source  # the helper is carried only by modules that call it
    checked_model = checked.source.split("# The runtime")[0]
    assert checked_model.count("_expect_finite(xp,") == checked_model.count("\n    _expect_finite(xp, ") > 0
    stripped = [line for line in checked_model.splitlines() if "_expect_finite(xp," not in line]
    start = stripped.index("def init_params(seed=0):")
    # the plain module also has train()'s in-place step, which a module checking every line leaves out
    assert "IN_PLACE = True" in model and "IN_PLACE = False" in checked_model
    functional = model[:model.index("def _buffers(")].splitlines()
    assert "\n".join(stripped[start:]).rstrip() == "\n".join(functional[functional.index("def init_params(seed=0):"):]).rstrip()


def test_with_check_shapes_too():
    g = gc.Graph("both")
    x = g.input("x", (None, 2))
    g.output("loss", gc.sum(gc.log(x)))
    model = gc.compile(g, wrt=["x"], check_finite=True, check_shapes=True)
    assert "_expect_finite(xp, t1, line=" in model.source and '_expect_shape(t1, (N, 2), "t1")' in model.source
    assert model.load().forward(x=np.ones((3, 2)))["loss"] == 0.0
    assert "t1[1, 0] = -inf" in _report(lambda: model.load().forward(x=np.array([[1.0, 1.0], [0.0, 1.0]])))


def test_any_array_library():
    import array_api_strict as strict

    g = gc.Graph("strict")
    x = g.input("x", (None, 2))
    g.output("loss", gc.sum(gc.log(x)))
    module = gc.compile(g, wrt=["x"], check_finite=True).load()
    assert float(module.gradients(x=strict.asarray([[1.0, 2.0]], dtype=strict.float64))[1]["x"][0, 1]) == 0.5
    report = _report(lambda: module.forward(x=strict.asarray([[1.0, -2.0]], dtype=strict.float64)))
    assert "t1[0, 1] = nan" in report and "x[0, 1] = -2.0" in report


def _train(module_path, data, out, *flags):
    return subprocess.run([sys.executable, str(module_path), "train", "--data", str(data), "--out", str(out),
                           "--epochs", "2", "--quiet", *flags], capture_output=True, text=True)


def _sqrt_model() -> gc.Graph:
    g = gc.Graph("roots")
    x = g.input("x", (None, 2))
    y = g.input("y", (None,))
    w = g.param("w", (2,), init="zeros")
    g.output("loss", gc.mean((gc.sqrt(gc.sum(x * w, axis=1)) - y) ** 2))
    return g


@pytest.mark.parametrize("checked", [True, False])
def test_train_check_finite_stops_with_the_report_and_keeps_the_params_file(tmp_path, checked):
    data = tmp_path / "data.npz"
    np.savez(data, x=np.ones((4, 2)), y=np.ones(4))
    module = gc.compile(_sqrt_model(), check_finite=checked).save(tmp_path / "model.py")
    out = tmp_path / "params.npz"
    out.write_bytes(b"before")
    result = _train(module, data, out, "--check-finite")
    assert result.returncode == 1, result.stderr
    assert out.read_bytes() == b"before"
    assert "error: training diverged at epoch 1, batch 1: step 1:" in result.stderr
    assert "nothing saved" in result.stderr
    if checked:
        assert "model.py line" in result.stderr and "formula:" in result.stderr and "declared:" in result.stderr
    else:  # the gradient that is not finite, and how to find its line
        assert "the gradient of 'w' holds -inf at index [0]" in result.stderr
        assert "check_finite=True" in result.stderr


def test_graphcomp_train_check_finite(tmp_path):
    spec = tmp_path / "logs.toml"
    spec.write_text(SPEC.replace('[scan.run]\nxs = { x_t = "x" }\naxis = 1\ninit = { s = "sum(z, axis=1)" }\n'
                                 'step = { s = "s / x_t" }\n', "").replace("sum(run.s)", "sum(z)"), encoding="utf-8")
    data = tmp_path / "data.npz"
    np.savez(data, x=np.array([[-1.0, 0.0, 2.0]] * 4))
    result = subprocess.run([sys.executable, "-m", "graphcomp", "train", str(spec), "--data", str(data),
                             "--out", str(tmp_path / "p.npz"), "--check-finite", "--quiet"], capture_output=True,
                            text=True)
    assert result.returncode == 1
    assert "[nodes] z" in result.stderr and "line 12" in result.stderr
    assert not (tmp_path / "p.npz").exists()


def _kink_model():
    g = gc.Graph("kinks")
    x = g.input("x", (3,))
    w = g.param("w", (3,))
    h = gc.relu(x * w)
    g.output("loss", gc.sum(gc.maximum(h, x)) + gc.max(h * 2.0))
    return gc.compile(g)


def test_kinks_are_noted_with_the_derivative_taken():
    derived = _kink_model().derivation(at={"x": np.array([0.0, 2.0, 2.0]), "w": np.array([1.0, 1.0, 1.0])})
    relu, maximum, ties = derived.kinks
    assert relu.startswith("t2 = relu(t1): 1 of 3 elements sit on the kink t1 = 0 (first at index [0]: t1 = 0)")
    assert relu.endswith("dt2/dt1 = 0")  # relu'(0) = 0
    assert maximum.startswith("t3 = maximum(t2, x): 3 of 3 elements sit on the kink t2 - x = 0")
    assert maximum.endswith("dt3/dt2 = 0, dt3/dx = 1")  # the second operand wins a tie
    assert ties.startswith("t6 = max(t5): a tie for the max in 1 of 1 results: 2 elements share the value 4")
    assert ties.endswith("(1/2 each)")
    gradient = derived.node_values[derived.backward.gradients[next(n for n in derived.backward.gradients
                                                                    if n.name == "w")]]
    assert gradient.tolist() == [0.0, 2.0, 2.0]  # x * (2 * 1/2 from the tie + 0 from maximum), relu'(0) = 0 at 0
    assert "kink: t2 = relu(t1)" in derived.text()


def test_where_spec_keys_are():
    text = '[nodes]\nz = "x"\n[scan.rnn.step]\nh = "h"\n[scan.gru]\nstep.h = "h"\n[scan.lstm]\nstep = { c = "c" }\n'
    with reading("m.toml", text):
        assert str(entry_place("m.toml", "nodes.z")) == "m.toml line 2, [nodes] z"
        assert str(entry_place("m.toml", "scan.rnn.step.h")) == "m.toml line 4, [scan.rnn] step.h"
        assert str(entry_place("m.toml", "scan.gru.step.h")) == "m.toml line 6, [scan.gru] step.h"
        assert str(entry_place("m.toml", "scan.lstm.step.c")) == "m.toml line 8, [scan.lstm] step.c"
    assert str(entry_place("m.toml", "nodes.z")) == "m.toml, [nodes] z"  # no text: no line


def test_no_note_off_the_kinks():
    derived = _kink_model().derivation(at={"x": np.array([1.0, 2.0, 3.0]), "w": np.array([-1.0, 3.0, 3.0])})
    assert derived.kinks == [] and "kink" not in derived.text()


def test_every_line_of_a_loop_and_its_derivative_is_checked_and_the_numbers_are_the_same():
    spec = load("examples/rnn_loop.toml")
    plain = gc.compile(spec.graph, loss=spec.loss)
    checked = gc.compile(spec.graph, loss=spec.loss, check_finite=True)
    lines = checked.source.split("# The runtime")[0].splitlines()
    sums = [k for k, line in enumerate(lines) if " += " in line]
    assert sums and all(lines[k + 1].strip().startswith(f"_expect_finite(xp, {lines[k].split()[0]}, line={k + 1},")
                        for k in sums)
    rng = np.random.default_rng(0)
    arrays = {"x": rng.normal(size=(3, 5, 1)), "y": rng.normal(size=(3, 1)), **plain.load().init_params(0)}
    expected, got = plain.load().gradients(**arrays), checked.load().gradients(**arrays)
    assert all(np.array_equal(expected[1][name], got[1][name]) for name in expected[1])
    arrays["x"][1, 3, 0] = np.inf
    report = _report(lambda: checked.load().gradients(**arrays))
    assert "examples/rnn_loop.toml line 24, [nodes] h0" in report  # mean(x) in h0 is the first inf


def test_graphcomp_grad_at_a_kink_notes_it(tmp_path, capsys):
    from graphcomp.frontend.cli import main

    spec = tmp_path / "kink.toml"
    spec.write_text('[model]\nname = "kink"\nloss = "f"\nwrt = ["u", "v"]\n\n[inputs]\nu = []\nv = []\n\n'
                    '[outputs]\nf = "relu(u) + maximum(u, v)"\n', encoding="utf-8")
    assert main(["grad", str(spec), "--at", "u=0,v=0"]) == 0
    text = capsys.readouterr().out
    assert "kink: t1 = relu(u): it sits on the kink u = 0 (u = 0); there the derivative takes the first case " \
           "whose condition holds: dt1/du = 0" in text
    assert "dt2/du = 0, dt2/dv = 1" in text
    assert main(["grad", str(spec), "--at", "u=0,v=0", "--latex"]) == 0
    assert "\n% kink: t1 = relu(u)" in capsys.readouterr().out
    assert main(["grad", str(spec), "--at", "u=1,v=0"]) == 0
    assert "kink" not in capsys.readouterr().out


def test_check_finite_must_be_true_or_false():
    g = gc.Graph("flag")
    g.output("y", g.input("x", ()) * 2)
    with pytest.raises(gc.GraphcompError, match="check_finite must be True or False, got 'yes'"):
        gc.compile(g, check_finite="yes")


def test_kinks_of_abs_leaky_relu_min_and_max_pooling():
    g = gc.Graph("more_kinks")
    x = g.input("x", (4,))
    w = g.param("w", (4,))
    image = g.input("image", (1, 1, 2, 4))
    v = x * w
    pooled = gc.max_pool2d(image * gc.reshape(w, (1, 1, 1, 4)), size=2, stride=2)
    g.output("loss", gc.sum(gc.abs(v)) + gc.sum(gc.leaky_relu(v, slope=0.25)) + gc.min(v) + gc.sum(pooled))
    at = {"x": np.array([0.0, 1.0, 1.0, 2.0]), "w": np.array([1.0, -1.0, -1.0, 1.0]),
          "image": np.array([[[[1.0, 2.0, 3.0, 3.0], [1.0, 0.0, 1.0, 1.0]]]])}  # times w: 1 twice in a window
    kinks = gc.compile(g).derivation(at=at).kinks
    assert any("= abs(" in k and "1 of 4 elements sit on the kink" in k and k.endswith("= 0") for k in kinks)
    assert any("= leaky_relu(" in k and k.endswith("= 0.25") for k in kinks)  # leaky_relu'(0) = slope
    assert any("= min(" in k and "2 elements share the value -1" in k and "(1/2 each)" in k for k in kinks)
    assert any("= max_pool2d(" in k and "a tie for the max of a pooling window in 1 of 2 results" in k for k in kinks)
