"""Properties of the generated module: numpy only, deterministic, derivatives through forward values."""
import ast
import os
import py_compile
import subprocess
import sys
from pathlib import Path

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
    # the command line and the clock import standard-library modules where they are used
    inner = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert inner - {"numpy"} <= set(sys.stdlib_module_names)
    path = tmp_path / "net.py"
    path.write_text(source)
    py_compile.compile(str(path), doraise=True)


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
