"""The command line's contract for bad input, table-driven: one line `graphcomp: error: FILE: ENTRY:
problem`, exit code 2, no traceback, nothing written — for each spec below."""
import pytest

from graphcomp.cli import main

BASE = """[model]
name = "m"
{model}
[inputs]
x = ["N", 3]
labels = {{ shape = ["N"], classes = 3 }}
[params]
W = {{ shape = [3, 3] }}
{params}
[outputs]
{outputs}
{extra}
"""
FINE = 'loss = "sum(x @ W)"'

# (id, the parts of the spec that differ, the end of the expected message)
CASES = [
    ("number for softmax", dict(outputs='loss = "sum(softmax(3))"'), "outputs.loss: a number was given where a tensor is expected"),
    ("number for flatten", dict(outputs='loss = "sum(flatten(2))"'), "outputs.loss: a number was given where a tensor is expected"),
    ("number as logits", dict(outputs='loss = "softmax_cross_entropy(3, labels)"'), "outputs.loss: a number was given where a tensor is expected"),
    ("conv of a matrix", dict(outputs='loss = "sum(conv2d(x, W, 5))"'), "outputs.loss: conv2d: input (N, C, H, W) and weight (out, in, kh, kw) must be 4-d, got (None, 3) and (3, 3)"),
    ("wrt a number", dict(model="wrt = 3", outputs=FINE), "model.wrt: expected a list of leaf names, got 3"),
    ("axis a tuple", dict(outputs='loss = "sum(softmax(x @ W, axis=(1, 2)))"'), "outputs.loss: softmax: axis must be one int, got (1, 2)"),
    ("a very long sum", dict(outputs='loss = "sum(' + " + ".join(["x"] * 3000) + ')"'), "outputs.loss: the expression is nested too deeply; name parts of it in [nodes]"),
    ("deeply nested minus", dict(outputs='loss = "sum(' + "-" * 3000 + 'x)"'), "outputs.loss: the expression is nested too deeply; name parts of it in [nodes]"),
    ("step size 0", dict(outputs=FINE, extra='[training]\nschedule = { kind = "step", step_size = 0 }'), "training.step_size: must be a whole number >= 1, got 0"),
    ("float seed", dict(outputs=FINE, extra="[training]\nseed = 1.5"), "training.seed: must be a whole number >= 0, got 1.5"),
    ("negative lr", dict(outputs=FINE, extra="[training]\nlr = -1"), "training.lr: must be a number > 0, got -1"),
    ("unknown optimizer", dict(outputs=FINE, extra='[training]\noptimizer = "rmsprop"'), "training.optimizer: must be one of sgd, momentum, adam, got 'rmsprop'"),
    ("unknown schedule", dict(outputs=FINE, extra='[training]\nschedule = "linear"'), "training.schedule: must be none, or one of step, exponential, cosine, got 'linear'"),
    ("batch size 0", dict(outputs=FINE, extra="[training]\nbatch_size = 0"), "training.batch_size: must be a whole number >= 1, got 0"),
    ("fractional epochs", dict(outputs=FINE, extra="[training]\nepochs = 2.5"), "training.epochs: must be a whole number >= 0, got 2.5"),
    ("validation of all", dict(outputs=FINE, extra="[training]\nvalidation = 1.0"), "training.validation: must be a fraction in [0, 1), got 1.0"),
    ("momentum of 1", dict(outputs=FINE, extra="[training]\nmomentum = 1"), "training.momentum: must be a number in [0, 1), got 1"),
    ("negative weight decay", dict(outputs=FINE, extra="[training]\nweight_decay = -0.1"), "training.weight_decay: must be a number >= 0, got -0.1"),
    ("unknown setting", dict(outputs=FINE, extra="[training]\nlearning_rate = 0.1"), "training: unknown key"),
    ("division by zero", dict(outputs='loss = "sum(x / 0)"'), "outputs.loss: division by the constant 0"),
    ("a name as keyword value", dict(outputs='loss = "sum(leaky_relu(x, slope=nan))"'), "outputs.loss: a Name expression is not allowed as a keyword value"),
    ("a param of 1e13 elements", dict(params="V = { shape = [100000, 100000, 1000] }", outputs=FINE), "params.V: param 'V': shape (100000, 100000, 1000) has 1e+13 elements (per example)"),
    ("two scalar outputs", dict(outputs='a = "sum(x)"\nb = "sum(x @ W)"'), "graph 'm' has several outputs (a, b); say which is the loss"),
    ("predict without target", dict(model='predict = "a"', outputs='a = "sum(x @ W)"'), "accuracy needs both predict (an output) and target (an input)"),
    ("unknown wrt", dict(model='wrt = ["q"]', outputs=FINE), "wrt names 'q', which graph 'm' does not have"),
    ("a newline in a name", dict(outputs='"a\\nb" = "sum(x)"'), "outputs.a\\nb: output name 'a\\nb' is not a valid Python identifier"),
    ("unknown name", dict(outputs='loss = "sum(q)"'), "outputs.loss: unknown name 'q'"),
    ("unknown function", dict(outputs='loss = "sum(fft(x))"'), "outputs.loss: unknown function 'fft'"),
    ("attribute access", dict(outputs='loss = "sum(x.T)"'), "outputs.loss:"),
    ("dunder import", dict(outputs='loss = "__import__(\'os\')"'), "outputs.loss:"),
    ("shape mismatch", dict(outputs='loss = "sum(x @ x)"'), "outputs.loss: matmul: shapes (None, 3) and (None, 3) do not fit"),
    ("syntax error", dict(outputs='loss = "sum(x @"'), "outputs.loss: syntax error"),
    ("a cycle", dict(outputs=FINE, extra='[nodes]\na = "b + 1"\nb = "a + 1"'), "cycle"),
    ("a keyword as name", dict(outputs='"lambda" = "sum(x)"'), "is a Python keyword"),
    ("batch axis not first", dict(params="V = { shape = [3, \"N\"] }", outputs=FINE), "params.V:"),
    ("negative size", dict(params="V = { shape = [3, -2] }", outputs=FINE), "params.V:"),
    ("an infinite number", dict(outputs='loss = "sum(x * 1e999)"'), "outputs.loss: the number inf is not finite"),
    ("an infinite keyword", dict(outputs='loss = "sum(leaky_relu(x, slope=1e999))"'), "outputs.loss: the number inf is not finite"),
    ("minus a tuple", dict(outputs='loss = "sum(x) + -(1, 2)"'), "outputs.loss: a sign applies to a value or a number, not to a list"),
]


@pytest.mark.parametrize("parts, message", [(parts, message) for _, parts, message in CASES],
                         ids=[name for name, _, _ in CASES])
def test_a_bad_spec_gets_one_line_naming_file_entry_and_problem(tmp_path, capsys, parts, message):
    spec = tmp_path / "model.toml"
    spec.write_text(BASE.format(model=parts.get("model", ""), params=parts.get("params", ""),
                                outputs=parts["outputs"], extra=parts.get("extra", "")))
    out = tmp_path / "out.py"
    code = main(["compile", str(spec), "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith(f"graphcomp: error: {spec}: "), err
    assert message in err, err
    assert not out.exists()


@pytest.mark.parametrize("name, text, message", [
    ("exit.py", "import sys\nsys.exit(0)\n", "running it called sys.exit(0) before defining a model"),
    ("empty.py", "import graphcomp as gc\ngraph = gc.Graph('g')\nx = graph.input('x')\n", "graph 'g' has no output"),
    ("raises.py", "raise RuntimeError('no model today')\n", "running it raised RuntimeError: no model today"),
    ("bytes.toml", b'[model]\nname = "\xff"\n', "not UTF-8 text"),
])
def test_bad_spec_files_name_the_file(tmp_path, capsys, name, text, message):
    spec = tmp_path / name
    spec.write_bytes(text if isinstance(text, bytes) else text.encode())
    code = main(["compile", str(spec), "-o", str(tmp_path / "out.py")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"graphcomp: error: {spec}: ") and message in err, err
    assert not (tmp_path / "out.py").exists()
