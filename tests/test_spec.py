"""Spec files: what builds, and bad specs that fail with one line naming the file and the entry."""
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import graphcomp as gc
from graphcomp.frontend import spec
from graphcomp.frontend.cli import main
from gradcheck import check_gradients

EXAMPLES = Path(__file__).parents[1] / "examples"


def write(tmp_path, text, name="model.toml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


GOOD = """
    [model]
    name = "net"
    loss = "loss"

    [inputs]
    x = ["N", 3]
    y = ["N"]

    [params]
    W = { shape = [3, 2], init = "kaiming" }
    v = [2]

    [nodes]
    h = "tanh(x @ W)"
    score = "sum(h * v, axis=1)"

    [outputs]
    loss = "mean((score - y) ** 2) + 0.01 * sum(W ** 2)"
"""


def test_a_general_spec_builds_the_graph_it_describes(tmp_path):
    s = spec.load(write(tmp_path, GOOD))
    assert s.graph.name == "net" and s.loss == "loss"
    assert {k: v.shape for k, v in s.graph.leaves.items()} == {"x": (None, 3), "y": (None,), "W": (3, 2), "v": (2,)}
    assert s.graph.params["W"].attr("init") == "kaiming"
    assert sorted(s.graph.labels.values()) == ["h", "score"]
    m = gc.compile(s.graph, loss=s.loss).load()
    rng = np.random.default_rng(0)
    x, y, W, v = rng.normal(size=(4, 3)), rng.normal(size=4), rng.normal(size=(3, 2)), rng.normal(size=2)
    expected = np.mean((np.tanh(x @ W) @ v - y) ** 2) + 0.01 * np.sum(W ** 2)
    assert np.isclose(m.forward(x=x, y=y, W=W, v=v)["loss"], expected)


def test_nodes_may_come_in_any_order(tmp_path):
    s = spec.load(write(tmp_path, """
        [inputs]
        a = []
        [nodes]
        c = "b * 2"
        b = "a + 1"
        [outputs]
        out = "c"
    """))
    assert gc.compile(s.graph).load().forward(a=1.0) == {"out": 4.0}


def test_examples_specs_load():
    for path in sorted(EXAMPLES.glob("*.toml")):
        s = spec.load(path)
        assert gc.compile(s.graph, loss=s.loss).loss in s.graph.outputs, path


BAD = [
    ("syntax error", '[inputs]\nx = []\n[outputs]\ny = "x +"', "outputs.y", "syntax error"),
    ("unknown name", '[inputs]\nx = []\n[outputs]\ny = "x + q"', "outputs.y", "unknown name 'q'"),
    ("unknown function", '[inputs]\nx = []\n[outputs]\ny = "erfc(x)"', "outputs.y", "unknown function 'erfc'"),
    ("shape mismatch", '[inputs]\nx = ["N", 3]\n[params]\nW = [4, 2]\n[outputs]\ny = "sum(x @ W)"',
     "outputs.y", r"\(None, 3\) and \(4, 2\)"),
    ("cycle", '[inputs]\nx = []\n[nodes]\na = "b + x"\nb = "a * 2"\n[outputs]\ny = "a"', "nodes.a", "cycle: a -> b -> a"),
    ("duplicate key", '[inputs]\nx = []\nx = []\n[outputs]\ny = "x"', "", "not valid TOML"),
    ("name used twice", '[inputs]\nx = []\n[params]\nx = []\n[outputs]\ny = "x"', "params.x", "already used"),
    ("invalid identifier", '[inputs]\n"my-x" = []\n[outputs]\ny = "1"', "inputs.my-x", "not a valid Python identifier"),
    ("keyword", '[inputs]\nclass = []\n[outputs]\ny = "1"', "inputs.class", "Python keyword"),
    ("attribute access", '[inputs]\nx = ["N", 2]\n[outputs]\ny = "sum(x.T)"', "outputs.y", "attribute access '.T'"),
    ("import", '[inputs]\nx = []\n[outputs]\ny = "__import__(\'os\')"', "outputs.y", "unknown function '__import__'"),
    ("dunder attribute", '[inputs]\nx = []\n[outputs]\ny = "x.__class__"', "outputs.y", "attribute access"),
    ("lambda", '[inputs]\nx = []\n[outputs]\ny = "(lambda: x)()"', "outputs.y", "cannot be called"),
    ("keyword value", '[inputs]\nx = ["N", 2]\n[outputs]\ny = "sum(x, axis=x)"', "outputs.y", "not allowed as a keyword value"),
    ("bad keyword", '[inputs]\nx = []\n[outputs]\ny = "exp(x, base=2)"', "outputs.y", "unexpected keyword argument 'base'"),
    ("no outputs", '[inputs]\nx = []', "outputs", "no output"),
    ("unknown table", '[inputz]\nx = []\n[outputs]\ny = "1"', "top level", "unknown key"),
    ("unknown init", '[params]\nW = { shape = [2], init = "twos" }\n[outputs]\ny = "sum(W)"', "params.W", "unknown init 'twos'"),
    ("bad training", '[inputs]\nx = []\n[outputs]\ny = "x"\n[training]\nlr = "fast"', "training.lr", "expected a number"),
    ("unknown kind", '[model]\nkind = "transformer"', "model.kind", "unknown kind"),
    ("bad loss name", '[model]\nloss = "z"\n[inputs]\nx = []\n[outputs]\ny = "x"', "model.loss", "'z' is not an output"),
]


@pytest.mark.parametrize("text, entry, message", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_specs_fail_on_one_line_with_exit_2_and_no_output(tmp_path, capsys, text, entry, message):
    path = write(tmp_path, text)
    out = tmp_path / "model.py"
    assert main(["compile", str(path), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith(f"graphcomp: error: {path}: {entry + ': ' if entry else ''}"), err
    assert __import__("re").search(message, err), err
    assert not out.exists()


def test_names_cannot_inject_code(tmp_path, capsys):
    for attempt in ['"x = 1\\nimport os" = []', '"__class__" = []', '"print(1)" = []', '"x; import os" = []']:
        path = write(tmp_path, f'[inputs]\n{attempt}\n[outputs]\ny = "1"')
        assert main(["compile", str(path), "-o", str(tmp_path / "m.py")]) == 2
        assert "graphcomp: error" in capsys.readouterr().err
        assert not (tmp_path / "m.py").exists()
    # a valid name that is also the module's own (np) compiles under a variable of its own
    path = write(tmp_path, '[inputs]\nnp = []\n[outputs]\ny = "np * 2"')
    assert main(["compile", str(path), "-o", str(tmp_path / "m.py")]) == 0
    source = (tmp_path / "m.py").read_text()
    assert "    xp, np_, = _read(\"forward\", arrays, ('np',))\n    y = np_ * 2\n" in source


def test_the_command_reports_a_bad_spec_without_a_traceback(tmp_path):
    path = write(tmp_path, '[inputs]\nx = []\n[outputs]\ny = "x +"')
    result = subprocess.run([sys.executable, "-m", "graphcomp", "compile", str(path), "-o", str(tmp_path / "m.py")],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"graphcomp: error: {path}: outputs.y: syntax error in 'x +'"]


def test_mlp_shorthand_builds_and_trains(tmp_path):
    s = spec.load(write(tmp_path, """
        [model]
        kind = "mlp"
        inputs = 2
        layers = [16, 3]
        activation = "tanh"
        [training]
        lr = 0.5
    """))
    assert (s.loss, s.predict, s.target, s.classes) == ("loss", "logits", "labels", {"labels": 3})
    assert s.graph.params["W1"].shape == (2, 16) and s.graph.params["W2"].shape == (16, 3)
    m = gc.compile(s.graph, loss=s.loss, predict=s.predict, target=s.target).load()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(150, 2))
    labels = (x[:, 0] > 0).astype(float) + (x[:, 1] > 0)
    records = []
    m.train(m.init_params(), {"x": x, "labels": labels}, epochs=40, lr=0.5, batch_size=16, on_epoch=records.append)
    assert records[-1]["accuracy"] > 0.9


def test_a_reshape_to_none_and_minus_one_keeps_the_batch_axis_and_infers_the_rest(tmp_path):
    s = spec.load(write(tmp_path, """
        [inputs]
        x = ["N", 2, 3]
        [params]
        W = [6, 2]
        [nodes]
        flat = "reshape(x, (None, -1))"
        [outputs]
        loss = "sum(tanh(flat @ W) ** 2)"
    """))
    flat = next(node for node, name in s.graph.labels.items() if name == "flat")
    assert flat.shape == (None, 6)
    m = gc.compile(s.graph, loss=s.loss).load()
    rng = np.random.default_rng(0)
    arrays = {"x": rng.normal(size=(4, 2, 3)), "W": rng.normal(size=(6, 2))}
    expected = np.sum(np.tanh(arrays["x"].reshape(4, 6) @ arrays["W"]) ** 2)
    assert np.isclose(m.forward(**arrays)["loss"], expected)
    check_gradients(m, arrays, "loss")


@pytest.mark.parametrize("target, shape", [((None, -1), (None, 6)), ((-1, 6), (None, 6)), ((None, 3, -1), (None, 3, 2)),
                                           ((None, -1, 1), (None, 6, 1))])
def test_python_reshape_infers_minus_one_beside_the_batch_axis(target, shape):
    g = gc.Graph("r")
    x = g.input("x", (None, 2, 3))
    y = gc.reshape(x, target)
    assert y.shape == shape
    g.output("loss", gc.sum(gc.exp(y) * 0.5))
    m = gc.compile(g).load()
    x_value = np.random.default_rng(1).normal(size=(5, 2, 3))
    assert m.forward(x=x_value)["loss"] == pytest.approx(np.sum(np.exp(x_value)) * 0.5)
    check_gradients(m, {"x": x_value}, "loss")


@pytest.mark.parametrize("make, message", [
    (lambda x: gc.leaky_relu(x, slope=float("nan")), "leaky_relu: slope must be a finite number, got nan"),
    (lambda x: gc.leaky_relu(x, slope=float("inf")), "leaky_relu: slope must be a finite number, got inf"),
    (lambda x: gc.leaky_relu(x, slope="0.1"), "leaky_relu: slope must be a number, got '0.1'"),
    (lambda x: gc.concat([x, x], axis=(0, 1)), "concat: axis must be one int, got (0, 1)"),
    (lambda x: gc.sum(x, axis=1, keepdims="yes"), "sum: keepdims must be True or False, got 'yes'"),
    (lambda x: gc.dropout(x, True), "dropout: rate must be in [0, 1), got True"),
    (lambda x: gc.reshape(x, (None, 4, -1)), "reshape: cannot infer -1 in (None, 4, -1) from shape (None, 2, 3)"),
])
def test_python_functions_check_the_numbers_they_take(make, message):
    x = gc.Graph("g").input("x", (None, 2, 3))
    with pytest.raises(gc.GraphcompError) as error:
        make(x)
    assert str(error.value) == message


def test_a_leaky_relu_slope_given_as_a_numpy_number_is_a_number():
    x = gc.Graph("g").input("x", (3,))
    assert gc.leaky_relu(x, slope=np.float32(0.25)).attr("slope") == 0.25


def test_a_long_flat_sum_builds_without_deep_recursion(tmp_path):
    terms = " + ".join(f"x * {k}" for k in range(1, 1201))
    s = spec.load(write(tmp_path, f'[inputs]\nx = []\n[outputs]\ny = "{terms}"'))
    assert gc.compile(s.graph, simplify=False).load().forward(x=1.0)["y"] == pytest.approx(1200 * 1201 / 2)


@pytest.mark.parametrize("examples", [1, 2, 3, 4, 7])
def test_a_validation_fraction_is_refused_before_training_exactly_when_training_would_find_no_example(examples):
    g = gc.Graph("v")
    x, w = g.input("x", (None, 2)), g.param("w", (2,))
    g.output("loss", gc.mean((x @ w) ** 2))
    m = gc.compile(g).load()
    data = {"x": np.ones((examples, 2))}
    for validation in (0.0, 0.1, 0.3, 0.5, 0.6, 0.7, 0.75, 0.8, 0.84, 0.9, 0.99):
        try:
            m._examples(data, validation)  # what `graphcomp train` calls before it writes anything
            refused = None
        except ValueError as error:
            refused = str(error)
        try:
            m.train(m.init_params(), data, epochs=1, lr=0.1, batch_size=2, validation=validation)
            failed = False
        except ValueError as error:
            failed = "no examples to train on" in str(error)
        assert (refused is not None) == failed, (examples, validation, refused)
        if refused:
            assert refused == f"no examples to train on (validation={validation} holds out all {examples})"
