"""Users' own derivative rules in spec files: [ops.NAME] tables give the same ops as gc.custom_op (the
README's three use cases, in values and gradients), `graphcomp check` checks each rule and reports the
ones declared unchecked, and every bad table is one line naming the file, the entry and the problem."""
import re

import numpy as np
import pytest

import graphcomp as gc
from graphcomp.frontend.cli import main
from graphcomp.frontend.spec import load
from test_bad_specs import BASE
from test_custom_ops import binarize, clip_gradient, softplus_stable

OPS = """
[ops.softplus_stable]
inputs = ["x"]
forward = "maximum(x, 0) + log(1 + exp(-abs(x)))"
vjp.x = "g * sigmoid(x)"
jvp = "dot_x * sigmoid(x)"

[ops.binarize]
inputs = ["x"]
forward = "sign(x)"
vjp.x = "g"
check = false

[ops.clip_gradient]
inputs = ["x"]
forward = "x"
vjp.x = "minimum(maximum(g, -1), 1)"
check = false
"""
SPEC = """
[model]
name = "custom_rules"
loss = "loss"
{ops}
[inputs]
x = ["N", 3]
r = ["N", 3]

[params]
W = [3, 3]

[nodes]
h = "binarize(x @ W)"
s = "softplus_stable(clip_gradient(4 * h + x))"

[outputs]
loss = "sum(s * r)"
"""


def python_model() -> gc.Graph:
    g = gc.Graph("custom_rules")
    x, r, W = g.input("x", (None, 3)), g.input("r", (None, 3)), g.param("W", (3, 3))
    h = g.let("h", binarize(x @ W))
    s = g.let("s", softplus_stable(clip_gradient(4 * h + x)))
    g.output("loss", gc.sum(s * r))
    return g


def test_a_spec_and_python_give_the_same_ops(tmp_path):
    path = tmp_path / "custom.toml"
    path.write_text(SPEC.format(ops=OPS))
    spec = load(path)
    from_spec = gc.compile(spec.graph, wrt=["x", "W"]).load()
    from_python = gc.compile(python_model(), wrt=["x", "W"]).load()
    rng = np.random.default_rng(0)
    arrays = {"x": rng.normal(size=(5, 3)), "r": 3 * rng.normal(size=(5, 3)), "W": rng.normal(size=(3, 3))}
    (want_out, want), (got_out, got) = from_python.gradients(**arrays), from_spec.gradients(**arrays)
    assert got_out["loss"] == want_out["loss"]
    for name in want:
        np.testing.assert_array_equal(got[name], want[name])
    # by hand: s = softplus(4 sign(x W) + x); the clipped gradient flows into x directly and, passed
    # through the sign unchanged, into W
    z = 4 * np.sign(arrays["x"] @ arrays["W"]) + arrays["x"]
    d_z = np.clip(arrays["r"] / (1 + np.exp(-z)), -1, 1)
    np.testing.assert_allclose(got["x"], d_z + 4 * d_z @ arrays["W"].T, rtol=1e-12)
    np.testing.assert_allclose(got["W"], 4 * arrays["x"].T @ d_z, rtol=1e-12)
    np.testing.assert_allclose(got_out["loss"], np.sum(np.logaddexp(0, z) * arrays["r"]), rtol=1e-12)


def test_check_reports_each_rule_and_the_leaves_behind_an_unchecked_one(tmp_path, capsys):
    path = tmp_path / "custom.toml"
    path.write_text(SPEC.format(ops=OPS))
    assert main(["check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "custom op softplus_stable: rule agrees with finite differences" in out
    assert "custom op binarize: unchecked (check = false: it differs on purpose)" in out
    assert "custom op clip_gradient: unchecked" in out
    assert re.search(r"\nW +worst relative error", out) and "unchecked (through binarize)" in out
    assert re.search(r"\nloss +forward mode not checked, custom op 'binarize' has no forward-mode rule", out)


def test_check_fails_on_a_wrong_rule_naming_op_input_and_size(tmp_path, capsys):
    path = tmp_path / "custom.toml"
    path.write_text(SPEC.format(ops=OPS.replace('vjp.x = "g * sigmoid(x)"', 'vjp.x = "g * sigmoid(2 * x)"')))
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("FAIL custom op 'softplus_stable': its vjp for input 'x' disagrees with central finite "
                          "differences of its forward: max abs error "), err
    assert main(["compile", str(path), "-o", str(tmp_path / "m.py")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"graphcomp: error: {path}: custom op 'softplus_stable': its vjp for input 'x'") and err.count("\n") == 1
    assert not (tmp_path / "m.py").exists()


ONE = '[ops.f]\ninputs = ["a"]\nforward = "2 * a"\nvjp.a = "2 * g"\n'
CASES = [
    ("an unknown key", ONE + "grad = 1", "ops.f: unknown key(s) 'grad'; allowed: check, forward, inputs, jvp, vjp"),
    ("no forward", '[ops.f]\ninputs = ["a"]\nvjp.a = "g"', "ops.f: missing 'forward'"),
    ("inputs not a list", '[ops.f]\ninputs = "a"\nforward = "a"\nvjp.a = "g"', "ops.f.inputs: expected a list of input names"),
    ("an input named g", '[ops.f]\ninputs = ["g"]\nforward = "g"\nvjp.g = "g"', "ops.f.inputs: 'g' cannot name an input"),
    ("an input named twice", '[ops.f]\ninputs = ["a", "a"]\nforward = "a"\nvjp.a = "g"', "ops.f.inputs: the inputs' names must differ"),
    ("a rule for no input", ONE + 'vjp.b = "g"', "ops.f.vjp.b: 'b' is not an input of the op (inputs: a)"),
    ("a rule missing", '[ops.f]\ninputs = ["a", "b"]\nforward = "a * b"\nvjp.a = "g * b"', "ops.f.vjp: no rule for input 'b'"),
    ("a rule as text", '[ops.f]\ninputs = ["a"]\nforward = "a"\nvjp = "g"', "ops.f.vjp: expected one rule per input"),
    ("an unknown name in a rule", '[ops.f]\ninputs = ["a"]\nforward = "a"\nvjp.a = "g * W"', "ops.f.vjp.a: unknown name 'W'; an op's expressions read only a, g, y"),
    ("a param in the forward", '[ops.f]\ninputs = ["a"]\nforward = "a @ W"\nvjp.a = "g"', "ops.f.forward: unknown name 'W'"),
    ("a tangent in a vjp", '[ops.f]\ninputs = ["a"]\nforward = "a"\nvjp.a = "dot_a"', "ops.f.vjp.a: unknown name 'dot_a'"),
    ("an unknown function", '[ops.f]\ninputs = ["a"]\nforward = "fft(a)"\nvjp.a = "g"', "ops.f.forward: unknown function 'fft'"),
    ("check as text", ONE + 'check = "no"', "ops.f.check: expected true or false, got 'no'"),
    ("an op named like a function", ONE.replace("ops.f", "ops.exp"), "ops.exp: 'exp' is already a graphcomp function"),
    ("an op named like a param", ONE.replace("ops.f", "ops.W"), "ops.W: 'W' is already the name of param 'W'"),
    ("an op not a table", "[ops]\nf = 3", "ops.f: expected a table [ops.f]"),
    ("a syntax error", '[ops.f]\ninputs = ["a"]\nforward = "a +"\nvjp.a = "g"', "ops.f.forward: syntax error"),
    ("an op read as a value", ONE + '[nodes]\nq = "f + x"', "nodes.q: 'f' is an op ([ops.f]): call it, e.g. f(x)"),
    ("an op given two values", ONE + '[nodes]\nq = "f(x, x)"', "nodes.q: custom op 'f' takes 1 input(s) (a), got 2"),
    ("a forward that is a number", '[ops.f]\ninputs = ["a"]\nforward = "2"\nvjp.a = "g"\n[nodes]\nq = "f(x)"', "ops.f.forward: the forward gives the number 2"),
    ("a rule that is a number", '[ops.f]\ninputs = ["a"]\nforward = "2 * a"\nvjp.a = "2"', "ops.f.vjp.a: the rule gives the number 2"),
    ("a wrong rule", '[ops.f]\ninputs = ["a"]\nforward = "2 * a"\nvjp.a = "3 * g"', "custom op 'f': its vjp for input 'a' disagrees"),
]


@pytest.mark.parametrize("extra, message", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_a_bad_op_table_gets_one_line_naming_file_entry_and_problem(tmp_path, capsys, extra, message):
    spec = tmp_path / "model.toml"
    uses = "f(x @ W)" if "[ops.f]" in extra and "[nodes]" not in extra else "x @ W"
    spec.write_text(BASE.format(model="", params="", outputs=f'loss = "sum({uses})"', extra=extra))
    out = tmp_path / "out.py"
    code = main(["compile", str(spec), "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith(f"graphcomp: error: {spec}: "), err
    assert message in err, err
    assert not out.exists()


def test_a_loop_step_calls_a_specs_op(tmp_path, capsys):
    path = tmp_path / "loop.toml"
    path.write_text('[model]\nname = "loop_ops"\n' + OPS.split("[ops.binarize]")[0] + """
[inputs]
xs = ["N", 5, 3]

[params]
Wx = [3, 4]
Wh = [4, 4]

[scan.rnn]
xs = { x_t = "xs" }
axis = 1
init = { h = "zeros_like(xs[:, 0, :] @ Wx)" }
step = { h = "softplus_stable(x_t @ Wx + h @ Wh)" }

[outputs]
loss = "sum(rnn.h * rnn.h)"
""")
    assert main(["check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "custom op softplus_stable: rule agrees" in out and re.search(r"\nWh +worst relative error", out) and "FAIL" not in out
