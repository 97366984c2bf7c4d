"""Properties of the generated module: numpy only, deterministic, derivatives through forward values."""
import ast
import functools
import os
import py_compile
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import graphcomp as gc
from models import sigmoid_net_source

HERE = Path(__file__).parent


def backward_lines(source):
    body = source.split("# Backward pass")[1].split("outputs = {")[0]
    return [line.strip() for line in body.splitlines()[1:] if line.strip()]


def test_sigmoid_derivative_reuses_the_forward_output():
    lines = backward_lines(sigmoid_net_source())
    assert lines, "no backward pass was generated"
    assert not any("np.exp" in line or "np.tanh" in line for line in lines), lines
    assert "d_t1 = d_h*h*(1 - h)  # h = sigmoid(b1 + t1); dh/dt1 = h*(1 - h)" in lines


def test_every_backward_line_has_a_comment():
    for line in backward_lines(sigmoid_net_source()):
        assert "  # " in line and line.split("  # ")[1].strip(), line


def test_imports_numpy_only_and_compiles(tmp_path):
    source = sigmoid_net_source()
    tree = ast.parse(source)
    top_level = {alias.name for node in tree.body if isinstance(node, ast.Import) for alias in node.names}
    assert top_level == {"numpy"}
    assert not any(isinstance(node, ast.ImportFrom) for node in ast.walk(tree))
    # the command line and the clock import standard-library modules where they are used; other array
    # libraries are imported only when their arrays are given (or asked for as a backend)
    inner = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert inner - {"numpy", "array_api_compat", "dask"} <= set(sys.stdlib_module_names)
    path = tmp_path / "net.py"
    path.write_text(source)
    py_compile.compile(str(path), doraise=True)


def test_runs_where_only_numpy_is_installed(tmp_path):
    """The numpy-only guarantee: with every optional array library made unimportable, the module
    still imports, computes gradients and trains on NumPy arrays."""
    path = tmp_path / "net.py"
    path.write_text(sigmoid_net_source())
    script = (
        "import sys\n"
        "for name in ('array_api_compat', 'dask', 'torch', 'jax', 'cupy', 'array_api_strict', 'sympy', 'graphcomp'):\n"
        "    sys.modules[name] = None  # an import of it now fails\n"
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        "import numpy as np, net\n"
        "params = net.init_params(0)\n"
        "data = {'x': np.random.default_rng(0).normal(size=(8, 4)), 'y': np.ones((8, 1))}\n"
        "print(net.gradients(**data, **params)[0])\n"
        "print(net.train(params, data, epochs=2, lr=0.1, batch_size=4)[1])\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "loss" in result.stdout


def test_byte_identical_across_processes_and_hash_seeds():
    script = f"import sys; sys.path.insert(0, {str(HERE)!r}); import models; sys.stdout.write(models.sigmoid_net_source())"
    outputs = []
    for seed in ("0", "1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        outputs.append(subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                                      text=True, check=True).stdout)
    assert outputs[0] == outputs[1] == outputs[2]
    assert outputs[0] == sigmoid_net_source()


def test_save_writes_the_source_and_load_imports_it(tmp_path):
    g = gc.Graph("sq")
    a = g.input("a")
    g.output("y", a * a)
    model = gc.compile(g)
    path = model.save(tmp_path / "sq_model.py")
    assert path.read_text() == model.source
    m = model.load()
    assert m.__file__ == str(path)
    assert m.gradients(a=3.0) == ({"y": 9.0}, {"a": 6.0})


def test_float32_models_compute_in_float32():
    g = gc.Graph("f32")
    x = g.input("x", shape=(None, 2))
    w = g.param("w", (2,))
    g.output("loss", gc.sum(gc.tanh(x @ w)))
    m = gc.compile(g, dtype="float32").load()
    params = m.init_params()
    assert params["w"].dtype.name == "float32"
    _, grads = m.gradients(x=[[1, 2], [3, 4]], **params)
    assert grads["w"].dtype.name == "float32"


@functools.lru_cache(maxsize=None)
def classifier():
    """x (N, 2) @ W (2, 3) with integer labels and softmax cross-entropy, compiled once for these tests."""
    g = gc.Graph("classifier")
    x, labels, W = g.input("x", (None, 2)), g.input("labels", (None,)), g.param("W", (2, 3))
    logits = g.output("logits", x @ W)
    g.output("loss", gc.softmax_cross_entropy(logits, labels))
    return gc.compile(g, loss="loss").load()


def test_training_refuses_zero_examples():
    module = classifier()
    params = module.init_params()
    with pytest.raises(ValueError, match="no examples to train on"):
        module.train(params, {"x": np.ones((0, 2)), "labels": np.zeros(0)}, epochs=1, lr=0.1, batch_size=2)
    with pytest.raises(ValueError, match=r"validation=0.9 holds out all 1"):
        module.train(params, {"x": np.ones((1, 2)), "labels": np.zeros(1)}, epochs=1, lr=0.1, batch_size=2,
                     validation=0.9)
    with pytest.raises(ValueError, match="no examples to score"):
        module.evaluate(params, {"x": np.ones((0, 2)), "labels": np.zeros(0)})


def test_loading_a_model_leaves_no_file_behind():
    import glob
    import os
    import tempfile

    import graphcomp as gc
    before = set(glob.glob(os.path.join(tempfile.gettempdir(), "*")))
    g = gc.Graph("nofile")
    x = g.input("x", (None, 2))
    g.output("loss", gc.sum(gc.tanh(x)))
    model = gc.compile(g)
    module = model.load()
    model.derivation(at={"x": np.ones((2, 2))})
    assert set(glob.glob(os.path.join(tempfile.gettempdir(), "*"))) == before
    with pytest.raises(TypeError) as caught:
        module._gradients(np, None)
    assert "t1 = xp.tanh(x)" in "".join(__import__("traceback").format_tb(caught.tb))  # tracebacks show the line


RUNTIME_CASES = [  # (id, how the arrays differ from good ones, the error, words of its message)
    ("missing input", dict(x=...), TypeError, "is missing array(s) x"),
    ("missing param", dict(W=...), TypeError, "is missing array(s) W"),
    ("unknown array", dict(z=np.ones(2)), TypeError, "got unknown array(s) z"),
    ("None input", dict(x=None), TypeError, "array 'x' is None"),
    ("None param", dict(W=None), TypeError, "array 'W' is None"),
    ("string input", dict(x="abc"), TypeError, "array 'x' is not numeric"),
    ("ragged list", dict(x=[[1.0, 2.0], [3.0]]), TypeError, "array 'x' is not numeric"),
    ("dict input", dict(x={"a": 1}), TypeError, "array 'x' is not numeric"),
    ("vector for a batch", dict(x=np.ones(2)), ValueError, "'x' has shape (2,), expected (N, 2)"),
    ("3-d for 2-d", dict(x=np.ones((2, 2, 1))), ValueError, "'x' has shape (2, 2, 1), expected (N, 2)"),
    ("wrong width", dict(x=np.ones((2, 3))), ValueError, "'x' has shape (2, 3), expected (N, 2)"),
    ("param transposed", dict(W=np.ones((3, 2))), ValueError, "'W' has shape (3, 2), expected (2, 3)"),
    ("scalar param", dict(W=1.0), ValueError, "'W' has shape (), expected (2, 3)"),
    ("labels as a matrix", dict(labels=np.zeros((2, 3))), ValueError, "'labels' has shape (2, 3), expected (N,)"),
    ("fewer labels", dict(labels=np.zeros(1)), ValueError, "different numbers of examples: x 2, labels 1"),
    ("more labels", dict(labels=np.zeros(5)), ValueError, "different numbers of examples: x 2, labels 5"),
    ("label too large", dict(labels=np.array([0.0, 3.0])), ValueError, "from 0 to 2; got 3"),
    ("negative label", dict(labels=np.array([-1.0, 0.0])), ValueError, "got -1"),
    ("fractional label", dict(labels=np.array([0.0, 1.5])), ValueError, "got 1.5"),
    ("NaN label", dict(labels=np.array([0.0, np.nan])), ValueError, "got nan"),
    ("infinite label", dict(labels=np.array([0.0, np.inf])), ValueError, "got inf"),
    ("label 7", dict(labels=np.array([0.0, 7.0])), ValueError, "'labels' holds class labels, whole numbers from 0 to 2; got 7"),
]


@pytest.mark.parametrize("change, error, words", [c[1:] for c in RUNTIME_CASES], ids=[c[0] for c in RUNTIME_CASES])
def test_a_bad_runtime_input_gets_an_error_naming_it(change, error, words):
    module = classifier()
    arrays = {"x": np.ones((2, 2)), "labels": np.array([0.0, 2.0]), **module.init_params()}
    arrays.update(change)
    arrays = {k: v for k, v in arrays.items() if v is not ...}
    for call in (module.gradients, module.forward):
        with pytest.raises(error) as caught:
            call(**arrays)
        assert words in str(caught.value) and "\n" not in str(caught.value)


def test_boolean_labels_are_classes_0_and_1():
    module = classifier()
    _, grads = module.gradients(x=np.ones((2, 2)), labels=np.array([True, False]), **module.init_params())
    assert np.all(np.isfinite(grads["W"]))


def test_forward_computes_the_outputs_whose_inputs_are_given():
    module = classifier()
    params = module.init_params()
    x_values = np.arange(4.0).reshape(2, 2)
    partial = module.forward(x=x_values, **params)
    assert list(partial) == ["logits"]
    assert np.array_equal(partial["logits"], module.forward(x=x_values, labels=np.zeros(2), **params)["logits"])
    assert module.NEEDS == {"logits": ("x",), "loss": ("x", "labels")}
    with pytest.raises(TypeError, match="forward\\(\\) is missing array\\(s\\) x, labels, which every output needs"):
        module.forward(**params)


TRAINING_CASES = [  # (id, settings, the error, words of its message)
    ("negative lr", dict(lr=-1.0), ValueError, "lr must be a number > 0, got -1.0"),
    ("zero batch", dict(batch_size=0), ValueError, "batch_size must be a whole number >= 1, got 0"),
    ("fractional epochs", dict(epochs=2.5), ValueError, "epochs must be a whole number >= 0, got 2.5"),
    ("unknown optimizer", dict(optimizer="rmsprop"), ValueError, "optimizer must be one of sgd, momentum, adam, adamw, got 'rmsprop'"),
    ("unknown schedule", dict(schedule="linear"), ValueError, "schedule must be none, or one of step, exponential, cosine, got 'linear'"),
    ("validation of all", dict(validation=1.0), ValueError, "validation must be a fraction in [0, 1), got 1.0"),
    ("unknown setting", dict(learning_rate=0.1), TypeError, "learning_rate"),
    ("data without labels", dict(data={"x": np.ones((4, 2))}), TypeError, "missing array(s) labels"),
    ("data of another width", dict(data={"x": np.ones((4, 5)), "labels": np.zeros(4)}), ValueError, "'x' has shape (4, 5), expected (N, 2)"),
    ("params missing one", dict(params={}), TypeError, "missing array(s) W"),
]


@pytest.mark.parametrize("change, error, words", [c[1:] for c in TRAINING_CASES], ids=[c[0] for c in TRAINING_CASES])
def test_bad_training_calls_get_errors_that_say_what_is_wrong(change, error, words):
    module = classifier()
    change = dict(change)
    params = change.pop("params", module.init_params())
    data = change.pop("data", {"x": np.ones((4, 2)), "labels": np.zeros(4)})
    settings = {"epochs": 1, "lr": 0.1, "batch_size": 2, **change}
    with pytest.raises(error) as caught:
        module.train(params, data, **settings)
    assert words in str(caught.value)


def test_params_files_are_checked_by_name_and_shape(tmp_path):
    g = gc.Graph("files")
    x, W = g.input("x", (None, 2)), g.param("W", (2, 3))
    g.output("loss", gc.sum(x @ W))
    module = gc.compile(g).load()
    np.savez(tmp_path / "wrong.npz", W=np.ones((3, 2)))
    with pytest.raises(ValueError, match="'W' has shape \\(3, 2\\), expected \\(2, 3\\)"):
        module.load_params(tmp_path / "wrong.npz")
    np.savez(tmp_path / "other.npz", V=np.ones((2, 3)))
    with pytest.raises(ValueError, match="other.npz: load_params\\(\\) got unknown array\\(s\\) V"):
        module.load_params(tmp_path / "other.npz")
    with pytest.raises(TypeError, match="missing array\\(s\\) W"):
        module.save_params(tmp_path / "none.npz", {})
    with pytest.raises(ValueError, match="data files are .npz or .csv"):
        module.load_data(tmp_path / "data.json")


def test_user_names_that_are_the_modules_own_get_an_underscore():
    g = gc.Graph("names")
    needs, labels_, absent = g.input("NEEDS", (None, 2)), g.input("LABELS", (None,)), g.input("absent", (None, 2))
    W = g.param("GRADIENT_ARGS", (2, 3))
    g.output("loss", gc.softmax_cross_entropy((needs + absent) @ W, labels_))
    model = gc.compile(g)
    module = model.load()
    arrays = {"NEEDS": np.ones((2, 2)), "LABELS": np.array([0.0, 2.0]), "absent": np.ones((2, 2)),
              "GRADIENT_ARGS": np.ones((2, 3))}
    _, grads = module.gradients(**arrays)
    assert grads["GRADIENT_ARGS"].shape == (2, 3)
    assert module.NEEDS == {"loss": ("NEEDS", "LABELS", "absent")}
    assert "def _gradients(xp, NEEDS_, LABELS_, absent_, GRADIENT_ARGS_):" in model.source
