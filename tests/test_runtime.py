"""The runtime of the generated modules is real Python (templates/runtime/): each file imports, every
global name its functions read exists, its pieces are tested here directly, and a generated module
carries them as written (without their imports), the op helpers only when its code calls them."""
import builtins
import importlib
import inspect
import os

import numpy as np
import pytest

import graphcomp as gc
from graphcomp.codegen.runtime import CORE, TRAINING, runtime_source
from graphcomp.templates.runtime import _model, files, training

PARTS = CORE + TRAINING + ("helpers",)


@pytest.mark.parametrize("part", PARTS)
def test_every_global_a_runtime_function_reads_is_defined(part):
    module = importlib.import_module(f"graphcomp.templates.runtime.{part}")
    undefined = []
    for name, function in vars(module).items():
        functions = [function] if inspect.isfunction(function) else [
            member for member in vars(function).values() if inspect.isfunction(member)] if inspect.isclass(function) else []
        for code in (f.__code__ for f in functions if f.__module__ == module.__name__):
            for read in _global_reads(code):
                if not hasattr(module, read) and not hasattr(builtins, read):
                    undefined.append(f"{name} reads {read}")
    assert not undefined, f"runtime/{part}.py: " + "; ".join(undefined)


def _global_reads(code):
    """The global names a function's code (and the code of functions inside it) reads."""
    import dis
    names = {instruction.argval for instruction in dis.get_instructions(code)
             if instruction.opname in ("LOAD_GLOBAL", "LOAD_NAME")}
    for constant in code.co_consts:
        if inspect.iscode(constant):
            names |= _global_reads(constant)
    return names


def test_the_module_carries_the_runtime_files_as_written():
    g = gc.Graph("carry")
    x = g.input("x", (None, 3))
    w = g.param("w", (3,))
    g.output("loss", gc.mean(gc.sigmoid(x @ w)))
    source = gc.compile(g).source
    for part in TRAINING + CORE:
        text = (importlib.resources.files("graphcomp.templates") / "runtime" / f"{part}.py").read_text()
        body = text[text.index("\n\n\n") + 3:]  # after the docstring and imports
        assert body.strip() in source, part
    assert "from ._model" not in source and "from .arrays" not in source
    assert "def _conv2d(" not in source  # op helpers only when called


def test_helpers_come_with_the_helpers_they_call():
    text = runtime_source(["fold"], training=False)
    assert "def _fold(" in text and "def _device(" in text and "def _added(" in text
    assert "def _conv2d(" not in text and "def train(" not in text
    assert "def _read(" in text  # forward and gradients read their arrays through it


def test_a_module_without_the_runtime_has_forward_and_gradients_only(tmp_path):
    g = gc.Graph("bare")
    x, y = g.input("x", (None, 2)), g.input("y", (None,))
    w = g.param("w", (2,), init="zeros")
    g.output("loss", gc.mse(x @ w, y))
    model = gc.compile(g, runtime=False)
    source = model.source
    assert "def train(" not in source and "def main(" not in source and "__main__" not in source
    m = model.load()
    _, grads = m.gradients(x=np.ones((4, 2)), y=np.ones(4), w=np.zeros(2))
    np.testing.assert_allclose(grads["w"], [-2.0, -2.0])
    assert len(source.splitlines()) < 0.5 * len(gc.compile(g).source.splitlines())


def as_model(monkeypatch, **names):
    """Give the runtime files a small model's names, as a generated module defines them."""
    for part in ("_model",) + PARTS:
        module = importlib.import_module(f"graphcomp.templates.runtime.{part}")
        for name, value in names.items():
            if hasattr(module, name):
                monkeypatch.setattr(module, name, value)


def test_schedules_and_adam_as_plain_functions():
    assert training._rate(0.1, 3, 10, "step", 2, 0.5) == pytest.approx(0.05)
    assert training._rate(0.1, 2, 10, "exponential", 1, 0.5) == pytest.approx(0.025)
    assert training._rate(0.1, 5, 10, "cosine", 1, 0.5) == pytest.approx(0.05)
    grad = np.array([0.3, -2.0])
    change, (first, second) = training._update(np, "adam", (np.zeros(2), np.zeros(2)), grad, 0.01, 1, 0.9, 0.9, 0.999)
    np.testing.assert_allclose(change, 0.01 * np.sign(grad), rtol=1e-6)  # Adam's first step: lr * sign(g)
    np.testing.assert_allclose(first, 0.1 * grad)


def test_params_files_round_trip_with_a_run(monkeypatch, tmp_path):
    as_model(monkeypatch, PARAMS={"w": (2,)})
    run = {"epoch": 3, "step": 12, "losses": [1.0, 0.5, 0.25], "status": "interrupted", "rng": {"state": 1},
           "settings": {"optimizer": "adam", "lr": 0.1}, "moments": {"w": (np.ones(2), np.full(2, 2.0))}}
    path = files.save_params(tmp_path / "p", {"w": np.array([1.0, 2.0])}, run)
    assert path == str(tmp_path / "p.npz") and os.listdir(tmp_path) == ["p.npz"]
    loaded = files.load_run(path)
    assert (loaded["epoch"], loaded["step"], loaded["losses"], loaded["rng"]) == (3, 12, [1.0, 0.5, 0.25], {"state": 1})
    np.testing.assert_array_equal(loaded["moments"]["w"][1], [2.0, 2.0])
    np.testing.assert_array_equal(files.load_params(path)["w"], [1.0, 2.0])


@pytest.mark.parametrize("part", PARTS)
def test_a_runtime_file_imports_numpy_and_its_neighbours_only(part):
    """The module imports numpy once at its top and carries the neighbours' code: any other import a
    runtime file needs is made inside the function that needs it, so that the copy still runs."""
    import ast
    tree = ast.parse((importlib.resources.files("graphcomp.templates") / "runtime" / f"{part}.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Import):
            assert [(a.name, a.asname) for a in node.names] == [("numpy", "np")], part
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 1, f"{part} imports {node.module} at its top"


def test_train_and_both_command_lines_take_every_setting_of_the_table(capsys):
    from graphcomp.frontend.cli import _parser
    from graphcomp.templates.runtime.settings import SETTINGS
    signature = inspect.signature(training.train).parameters
    for name, setting in SETTINGS.items():
        assert name in signature, name
        default = signature[name].default
        assert default is inspect.Parameter.empty or default == setting.default, name
    flags = {action.dest for sub in _parser()._subparsers._group_actions[0].choices.values()
             if sub.prog.endswith("train") for action in sub._actions}
    assert set(SETTINGS) <= flags
    m = gc.compile(_tiny()).load()
    with pytest.raises(SystemExit):
        m.main(["train", "--help"])
    shown = capsys.readouterr().out
    assert all(setting.flag in shown for setting in SETTINGS.values())
    with pytest.raises(SystemExit):
        m.main(["train", "--data", "x.npz", "--momentum", "abc"])
    assert "--momentum: invalid float value: 'abc'" in capsys.readouterr().err


def _tiny():
    g = gc.Graph("tiny")
    x, y = g.input("x", (None, 2)), g.input("y", (None,))
    g.output("loss", gc.mse(x @ g.param("w", (2,)), y))
    return g


def test_the_helpers_a_module_carries_are_read_off_its_code():
    from graphcomp.codegen.runtime import helpers_called
    assert helpers_called(["d_a = d_y*_sigmoid(xp, a)", "t2 = obj._conv2d(x)", "t3 = _undefined(x)"]) == ["sigmoid"]
    g = gc.Graph("images")
    x, labels = g.input("x", (None, 1, 6, 6)), g.input("labels", (None,))
    w = g.param("w", (2, 1, 3, 3))
    h = gc.max_pool2d(gc.relu(gc.conv2d(x, w)), 2)
    g.output("loss", gc.softmax_cross_entropy(gc.flatten(h) @ g.param("v", (8, 3)), labels))
    source = gc.compile(g).source
    runtime = source[source.index("# The runtime:"):]
    called = {name for name in ("conv2d", "max_pool2d", "logsumexp", "windows", "fold", "conv2d_weight_grad")
              if f"_{name}(" in source[:source.index("# The runtime:")]}
    assert {"conv2d", "max_pool2d", "conv2d_weight_grad"} <= called
    for name in called:
        assert f"def _{name}(" in runtime
    assert "def _dropout_mask(" not in runtime and "def _sigmoid(" not in runtime


def test_a_new_params_file_gets_the_permissions_any_new_file_gets(monkeypatch, tmp_path):
    as_model(monkeypatch, PARAMS={"w": (2,)})
    umask = os.umask(0o022)
    try:
        path = files.save_params(tmp_path / "new.npz", {"w": np.zeros(2)})
        assert os.stat(path).st_mode & 0o777 == 0o644  # not the 0o600 of a private temporary file
        os.chmod(path, 0o640)
        files.save_params(path, {"w": np.ones(2)})
        assert os.stat(path).st_mode & 0o777 == 0o640  # an existing file keeps its own
    finally:
        os.umask(umask)
