"""The command line's contract for bad input, table-driven: one line `graphcomp: error: FILE: ENTRY:
problem`, exit code 2, no traceback, nothing written — for each spec below."""
import pytest

from graphcomp.frontend.cli import main

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
    ("number for softmax", dict(outputs='loss = "sum(softmax(3))"'), "outputs.loss: softmax: axis -1 is out of range for 0 dimension(s)"),
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
    ("unknown optimizer", dict(outputs=FINE, extra='[training]\noptimizer = "rmsprop"'), "training.optimizer: must be one of sgd, momentum, adam, adamw, got 'rmsprop'"),
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
    # inputs and params
    ("an input shape as text", dict(outputs=FINE, extra='[nodes]\nq = "x"', params='Z = { shape = "3" }'), "params.Z:"),
    ("an input size 0", dict(params='Z = { shape = [3, 0] }', outputs=FINE), "params.Z:"),
    ("an unknown init", dict(params='Z = { shape = [3], init = "he" }', outputs=FINE), "params.Z:"),
    ("a param key unknown", dict(params='Z = { shape = [3], size = 3 }', outputs=FINE), "params.Z:"),
    ("a param named like an input", dict(params='x = { shape = [3] }', outputs=FINE), "x"),
    # expressions
    ("a lambda", dict(outputs='loss = "(lambda: x)()"'), "outputs.loss:"),
    ("a comprehension", dict(outputs='loss = "sum([v for v in x])"'), "outputs.loss:"),
    ("a string", dict(outputs='loss = "\'x\'"'), "outputs.loss:"),
    ("a chained comparison", dict(outputs='loss = "sum(0 < x < 1)"'), "outputs.loss: a chained comparison"),
    ("a boolean and", dict(outputs='loss = "sum(x and W)"'), "outputs.loss:"),
    ("a conditional", dict(outputs='loss = "sum(x if W else x)"'), "outputs.loss:"),
    ("an f-string", dict(outputs='loss = "f\'{x}\'"'), "outputs.loss:"),
    ("a starred argument", dict(outputs='loss = "sum(*x)"'), "outputs.loss:"),
    ("double-star arguments", dict(outputs='loss = "sum(x, **{})"'), "outputs.loss:"),
    ("a slice step 0", dict(outputs='loss = "sum(x[:, ::0])"'), "outputs.loss: index: slice steps must be positive, got 0"),
    ("an index out of range", dict(outputs='loss = "sum(x[:, 5])"'), "outputs.loss: index: 5 is out of range for axis 1 of size 3"),
    ("an example of the batch", dict(outputs='loss = "sum(x[1])"'), "outputs.loss: index: cannot pick one example of the batch axis"),
    ("two ellipses", dict(outputs='loss = "sum(x[..., ..., 0])"'), "outputs.loss: index: at most one '...' is allowed"),
    ("an unknown keyword", dict(outputs='loss = "sum(x, axs=1)"'), "outputs.loss:"),
    ("an axis out of range", dict(outputs='loss = "sum(x, axis=3)"'), "outputs.loss: sum: axis 3 is out of range for 2 dimension(s)"),
    ("a text axis", dict(outputs='loss = "sum(x, axis=\'a\')"'), "outputs.loss:"),
    ("reshape to another size", dict(outputs='loss = "sum(reshape(W, (4, 2)))"'), "outputs.loss: reshape: cannot reshape (3, 3) to (4, 2)"),
    ("transpose axes not a permutation", dict(outputs='loss = "sum(transpose(W, (0, 0)))"'), "outputs.loss: transpose: axes (0, 0) are not a permutation"),
    ("pooling a matrix", dict(outputs='loss = "sum(max_pool2d(x))"'), "outputs.loss: max_pool2d: input must be 4-d"),
    ("dropout of everything", dict(outputs='loss = "sum(dropout(x, 1.0))"'), "outputs.loss: dropout: rate must be in [0, 1), got 1.0"),
    ("a text slope", dict(outputs='loss = "sum(leaky_relu(x, slope=\'a\'))"'), "outputs.loss:"),
    ("one-hot of no class", dict(outputs='loss = "sum(one_hot(labels, 0))"'), "outputs.loss: one_hot: classes must be a positive int, got 0"),
    ("mse of different shapes", dict(outputs='loss = "mse(x, W)"'), "outputs.loss: mse: prediction (None, 3) and target (3, 3) differ in shape"),
    ("cross-entropy labels of another shape", dict(outputs='loss = "softmax_cross_entropy(x @ W, W)"'), "outputs.loss: softmax_cross_entropy: labels of shape (3, 3) fit neither"),
    ("a matmul with a number", dict(outputs='loss = "sum(x @ 2)"'), "outputs.loss: matmul: operands must have at least one dimension"),
    ("numbers alone", dict(outputs='loss = "1 + 2"'), "outputs.loss: an operation on numbers alone"),
    ("a concat of one value", dict(outputs='loss = "sum(concat(x))"'), "outputs.loss:"),
    ("a concat along the batch", dict(outputs='loss = "sum(concat((x, x), axis=0))"'), "outputs.loss: concat: cannot join along the batch axis"),
    ("an empty expression", dict(outputs='loss = ""'), "outputs.loss: syntax error"),
    ("a number as expression text", dict(outputs="loss = 3"), "outputs.loss: expected an expression string, got 3"),
    ("a statement", dict(outputs='loss = "import os"'), "outputs.loss: syntax error"),
    ("an assignment", dict(outputs='loss = "y = x"'), "outputs.loss: syntax error"),
    ("a walrus", dict(outputs='loss = "(y := x)"'), "outputs.loss:"),
    ("an attribute of a function", dict(outputs='loss = "sum.__globals__"'), "outputs.loss:"),
    ("a subscript of a call result name", dict(outputs='loss = "sum(x)[0]"'), "outputs.loss:"),
    # tables and names
    ("a node named like an input", dict(outputs=FINE, extra='[nodes]\nx = "W"'), "nodes.x: 'x' is already the name of input 'x'"),
    ("an output named like a param", dict(outputs='W = "sum(x)"'), "outputs.W: 'W' is already the name of param 'W'"),
    ("a node using itself", dict(outputs=FINE, extra='[nodes]\nh = "h + 1"'), "h"),
    ("no outputs", dict(outputs=""), "no output"),
    # the model table and settings
    ("a text where a table goes", dict(outputs=FINE, extra='[nodes]\nh = "x"\n[training]\nschedule = 3'), "training.schedule: expected a name, got 3"),
    ("an unknown model key", dict(model='colour = "red"', outputs=FINE), "model: unknown key"),
    ("an unknown kind", dict(model='kind = "rnn"', outputs=FINE), "model.kind"),
    ("a loss that is no output", dict(model='loss = "nope"', outputs=FINE), "model.loss: 'nope' is not an output (outputs: loss)"),
    ("a loss that is a number", dict(model="loss = 3", outputs=FINE), "3"),
    ("a target that is no input", dict(model='predict = "loss"\ntarget = "nope"', outputs=FINE), "model.target: 'nope' is not an input (inputs: x, labels)"),
    ("an integer label of no class", dict(outputs=FINE, extra='[nodes]\nh = "one_hot(labels, 2.5)"'), "nodes.h: one_hot: classes must be a positive int, got 2.5"),
    ("gamma zero", dict(outputs=FINE, extra="[training]\ngamma = 0"), "training.gamma: must be a number > 0, got 0"),
    ("beta2 one", dict(outputs=FINE, extra="[training]\nbeta2 = 1"), "training.beta2: must be a number in [0, 1), got 1"),
    ("negative l1", dict(outputs=FINE, extra="[training]\nl1 = -1"), "training.l1: must be a number >= 0, got -1"),
    ("negative epochs", dict(outputs=FINE, extra="[training]\nepochs = -1"), "training.epochs: must be a whole number >= 0, got -1"),
    ("fractional batch", dict(outputs=FINE, extra="[training]\nbatch_size = 2.5"), "training.batch_size: must be a whole number >= 1, got 2.5"),
    ("an optimizer number", dict(outputs=FINE, extra="[training]\noptimizer = 3"), "training.optimizer: expected a name, got 3"),
    ("an unknown schedule key", dict(outputs=FINE, extra='[training]\nschedule = { kind = "step", every = 3 }'), "training.schedule: unknown key"),
    ("a text lr", dict(outputs=FINE, extra='[training]\nlr = "fast"'), "training.lr: expected a number, got 'fast'"),
    ("a boolean epochs", dict(outputs=FINE, extra="[training]\nepochs = true"), "training.epochs: expected a number, got True"),
    ("a float shape", dict(outputs='loss = "sum(reshape(x, 2.5))"'), "outputs.loss: reshape: the shape must be a tuple of ints (None for the batch axis), got 2.5"),
    ("a float in a shape", dict(outputs='loss = "sum(reshape(W, (9, 1.0)))"'), "outputs.loss: reshape: the shape must be a tuple of ints"),
    ("minus a tuple", dict(outputs='loss = "sum(x) + -(1, 2)"'), "outputs.loss: a sign applies to a value or a number, not to a list"),
    # numbers an op takes: finite numbers of the right kind, not text that Python would convert
    ("a slope of nan as text", dict(outputs='loss = "sum(leaky_relu(x, slope=\'nan\'))"'), "outputs.loss: leaky_relu: slope must be a number, got 'nan'"),
    ("a slope of inf as text", dict(outputs='loss = "sum(leaky_relu(x, slope=\'inf\'))"'), "outputs.loss: leaky_relu: slope must be a number, got 'inf'"),
    ("a slope of minus infinity", dict(outputs='loss = "sum(leaky_relu(x, slope=-1e999))"'), "outputs.loss: leaky_relu: slope must be a finite number, got -inf"),
    ("a slope that is true", dict(outputs='loss = "sum(leaky_relu(x, slope=True))"'), "outputs.loss: leaky_relu: slope must be a number, got True"),
    ("a dropout rate as text", dict(outputs='loss = "sum(dropout(x, rate=\'0.5\'))"'), "outputs.loss: dropout: rate must be in [0, 1), got '0.5'"),
    ("keepdims as text", dict(outputs='loss = "sum(mean(x, axis=1, keepdims=\'no\'))"'), "outputs.loss: mean: keepdims must be True or False, got 'no'"),
    ("a float axis", dict(outputs='loss = "sum(x, axis=1.5)"'), "outputs.loss: sum: axis must be an int or a tuple of ints, got 1.5"),
    ("a concat along a tuple of axes", dict(outputs='loss = "sum(concat([W, W], axis=(0, 1)))"'), "outputs.loss: concat: axis must be one int, got (0, 1)"),
    ("a concat along a float axis", dict(outputs='loss = "sum(concat([W, W], axis=1.0))"'), "outputs.loss: concat: axis must be one int, got 1.0"),
    ("a reshape size 0", dict(outputs='loss = "sum(reshape(W, (0, -1)))"'), "outputs.loss: reshape: sizes must be positive (or -1 to infer one, None for the batch axis)"),
    ("a -1 that does not divide", dict(outputs='loss = "sum(reshape(x, (None, 2, -1)))"'), "outputs.loss: reshape: cannot infer -1 in (None, 2, -1) from shape (None, 3)"),
    ("a -1 for the batch and more", dict(outputs='loss = "sum(reshape(x, (-1,)))"'), "outputs.loss: reshape: cannot infer -1 in (-1,) from shape (None, 3)"),
    # deep and long specs: one line, never a RecursionError
    ("600 minus signs", dict(outputs='loss = "sum(' + "-" * 600 + 'x)"'), "outputs.loss: the expression is nested too deeply; name parts of it in [nodes]"),
    ("a cycle of three", dict(outputs='loss = "sum(c)"', extra='[nodes]\na = "b + 1"\nb = "c * 2"\nc = "a - x"'), "nodes.a: cycle: a -> b -> c -> a"),
    ("a cycle of 10,000 nodes", dict(outputs='loss = "sum(c0)"', extra="[nodes]\n" + "\n".join(f'c{k} = "c{(k + 1) % 10000} + 1"' for k in range(10000))),
     "nodes.c0: cycle: c0 -> c1 -> c2 -> c3 -> c4 -> c5 -> ... (9989 more) -> c9995 -> c9996 -> c9997 -> c9998 -> c9999 -> c0"),
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


def test_an_axis_of_run_time_length_is_indexed_whole_or_walked_by_scan():
    import graphcomp as gc
    g = gc.Graph("loop")
    xs = g.input("xs", ("T", None, 3))
    assert xs[:, :, 1].shape == ("T", None)
    for index in (0, -1, slice(1, 3)):
        with pytest.raises(gc.ShapeError, match="'T'.*gc.scan"):
            xs[index]
