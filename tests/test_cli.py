"""The graphcomp command and the generated module's own command line, end to end."""
import json
import py_compile
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import networkx as nx
import numpy as np

from graphcomp.frontend.cli import main

ROOT = Path(__file__).parents[1]
EXAMPLES = ROOT / "examples"


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_compile_writes_a_module_that_compiles(tmp_path, capsys):
    out = tmp_path / "fuv_model.py"
    code, stdout, _ = run(capsys, "compile", EXAMPLES / "fuv.toml", "-o", out)
    assert code == 0 and "wrote" in stdout
    py_compile.compile(str(out), doraise=True)


def test_compile_accepts_a_python_file_that_builds_a_graph(tmp_path, capsys):
    source = tmp_path / "model.py"
    source.write_text(textwrap.dedent("""
        import graphcomp as gc
        graph = gc.Graph("py")
        a = graph.input("a")
        graph.output("y", a * a * 3)
    """))
    code, _, _ = run(capsys, "compile", source, "-o", tmp_path / "out.py")
    assert code == 0
    code, stdout, _ = run(capsys, "grad", source)
    assert stdout.strip() == "dy/da = 6*a"
    broken = tmp_path / "broken.py"
    broken.write_text("import graphcomp as gc\nraise RuntimeError('no model today')\n")
    code, _, err = run(capsys, "compile", broken, "-o", tmp_path / "never.py")
    assert code == 2 and "RuntimeError: no model today" in err and not (tmp_path / "never.py").exists()


def test_grad_prints_formulas_and_the_numeric_derivation(capsys):
    _, stdout, _ = run(capsys, "grad", EXAMPLES / "fuv.toml")
    # fuv.toml names t1 = u + v: each gradient goes through it, as the lecture's slide does
    assert stdout.split("\n\n")[0].splitlines() == ["# gradient of f with respect to u", "d_t1 = w", "d_u = d_t1"]
    _, stdout, _ = run(capsys, "grad", EXAMPLES / "fuv.toml", "--latex")
    assert stdout.splitlines()[2:4] == [r"\frac{\partial f}{\partial u} &= \frac{\partial f}{\partial t_{1}} \\",
                                        r"\frac{\partial f}{\partial t_{1}} &= w"]
    _, stdout, _ = run(capsys, "grad", EXAMPLES / "fuv.toml", "--at", "u=2,v=3,w=4")
    assert "df/du = 1 * df/dt1 = 1 * 4 = 4" in stdout.splitlines()
    code, _, err = run(capsys, "grad", EXAMPLES / "fuv.toml", "--at", "u=2,v")
    assert code == 2 and "'v' is not name=number" in err


def test_graph_exports_through_networkx(tmp_path, capsys):
    at = ["--at", "u=2,v=3,w=4"]
    for fmt in ("dot", "graphml", "json", "png", "svg", "pdf"):
        out = tmp_path / f"fuv.{fmt}"
        code, _, err = run(capsys, "graph", EXAMPLES / "fuv.toml", "--format", fmt, "-o", out, *at)
        assert code == 0, err
    view = nx.read_graphml(tmp_path / "fuv.graphml")
    assert view.nodes["t1"]["formula"] == "t1 = u + v"
    assert view.nodes["u"]["value"] == 2.0 and view.nodes["u"]["gradient"] == 4.0
    assert view.nodes["f"]["value"] == 20.0 and set(view.successors("t1")) == {"f"}
    data = json.loads((tmp_path / "fuv.json").read_text())
    assert {n["id"]: n["op"] for n in data["nodes"]} == {"u": "input", "v": "input", "t1": "add", "w": "input", "f": "mul"}
    assert '"t1" -> "f" [label=<∂f/∂t1 = w = 4<br/><b>adds 4</b>>' in (tmp_path / "fuv.dot").read_text()
    assert (tmp_path / "fuv.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "fuv.pdf").read_bytes()[:5] == b"%PDF-"
    assert "<svg" in (tmp_path / "fuv.svg").read_text()


def test_check_compares_with_finite_differences(capsys):
    code, stdout, _ = run(capsys, "check", EXAMPLES / "digits.toml")
    assert code == 0
    assert [line.split()[0] for line in stdout.splitlines()] == ["W1", "b1", "W2", "b2", "logits", "loss"]
    assert all(line.endswith("ok") for line in stdout.splitlines())
    assert "<J v, u> = <v, J^T u>" in stdout.splitlines()[-1]  # forward mode against reverse mode
    code, _, err = run(capsys, "check", EXAMPLES / "fuv.toml", "--tolerance", "0")
    assert code == 1 and "gradient check failed" in err


def test_train_reaches_95_percent_on_held_out_digits(tmp_path, capsys):
    out = tmp_path / "params.npz"
    code, stdout, err = run(capsys, "train", EXAMPLES / "digits.toml", "--data", EXAMPLES / "data" / "digits.npz",
                            "--out", out, "-o", tmp_path / "digits_model.py")
    assert code == 0, err
    last = [line for line in stdout.splitlines() if line.startswith("epoch")][-1]
    val_accuracy = float(last.split("val accuracy ")[1].split("%")[0]) / 100
    assert val_accuracy >= 0.95, last
    assert {name for name in np.load(out).files if not name.startswith("run:")} == {"W1", "b1", "W2", "b2"}


def test_the_generated_module_trains_and_predicts_from_its_own_command_line(tmp_path, capsys):
    module = tmp_path / "xor_model.py"
    assert main(["compile", str(EXAMPLES / "xor.toml"), "-o", str(module)]) == 0
    params = tmp_path / "xor.npz"
    data = EXAMPLES / "data" / "xor.csv"
    trained = subprocess.run([sys.executable, str(module), "train", "--data", str(data), "--out", str(params)],
                             capture_output=True, text=True, check=True)
    assert "epoch 1000/1000" in trained.stdout and "accuracy 100.00%" in trained.stdout
    predicted = subprocess.run([sys.executable, str(module), "predict", "--params", str(params), "--data", str(data)],
                               capture_output=True, text=True, check=True)
    assert [float(v) > 0.5 for v in predicted.stdout.split()] == [False, True, True, False]
    failed = subprocess.run([sys.executable, str(module), "predict", "--params", str(tmp_path / "none.npz"),
                             "--data", str(data)], capture_output=True, text=True)
    assert failed.returncode == 2 and failed.stderr.startswith("error:") and "Traceback" not in failed.stderr


def test_custom_loss_spec_fits_through_outliers(tmp_path, capsys):
    out = tmp_path / "params.npz"
    code, _, err = run(capsys, "train", EXAMPLES / "custom_loss.toml", "--data", EXAMPLES / "data" / "outliers.csv",
                       "--out", out)
    assert code == 0, err
    np.testing.assert_allclose(np.load(out)["w"], [1.5, -2.0, 0.5], atol=0.1)


def test_every_shipped_python_example_is_a_spec(tmp_path, capsys):
    for example in ("xor.py", "mlp_spirals.py", "cnn_shapes.py", "rnn_mean.py"):  # three import a neighbour
        code, stdout, err = run(capsys, "check", EXAMPLES / example)
        assert code == 0, err
        assert "ok" in stdout


def test_a_python_spec_imports_its_neighbours_and_sets_what_a_toml_spec_sets(tmp_path, capsys):
    (tmp_path / "helpers.py").write_text("WIDTH = 3\n")
    source = tmp_path / "model.py"
    source.write_text(textwrap.dedent("""
        import graphcomp as gc
        from helpers import WIDTH
        loss, predict, target = "cost", "p", "y"
        training = {"lr": 0.3, "epochs": 7}
        graph = gc.Graph("py")
        x, y = graph.input("x", (None, 2)), graph.input("y", (None, 1))
        W = graph.param("W", (2, WIDTH))
        v = graph.param("v", (WIDTH, 1))
        p = graph.output("p", gc.sigmoid(gc.tanh(x @ W) @ v))
        graph.output("cost", gc.binary_cross_entropy(p, y))
        graph.output("other", gc.sum(x))
    """))
    out = tmp_path / "out.py"
    code, _, err = run(capsys, "compile", source, "-o", out)
    assert code == 0, err
    text = out.read_text()
    assert "LOSS = 'cost'" in text and "PREDICT = 'p'" in text and "'lr': 0.3" in text and "'epochs': 7" in text
    assert str(tmp_path) not in sys.path
    bad = tmp_path / "bad.py"
    bad.write_text(source.read_text().replace('training = {"lr": 0.3, "epochs": 7}', 'training = 0.3'))
    code, _, err = run(capsys, "compile", bad, "-o", tmp_path / "never.py")
    assert code == 2 and "bad.py: training: must be a dict, got float 0.3" in err


def test_grad_at_reads_arrays_from_npz_and_steps_prints_the_chain(tmp_path, capsys):
    at = tmp_path / "at.npz"
    np.savez(at, x=[[0.0, 1.0], [1.0, 1.0]], y=[[1.0], [0.0]], W1=np.full((2, 8), 0.1), b1=np.zeros(8),
             W2=np.full((8, 1), 0.2), b2=np.zeros(1))
    code, stdout, err = run(capsys, "grad", EXAMPLES / "xor.toml", "--at", at)
    assert code == 0, err
    lines = stdout.splitlines()
    assert lines[0] == f"# all 2 examples in {at}"  # which values these are: a data file may hold many
    assert lines[1] == "N = the number of examples = 2"  # the derivation defines N before dividing by it
    assert lines[2] == "t1 = x @ W1 = [0.1 0.1 0.1 0.1 0.1 0.1 0.1 0.1; 0.2 0.2 0.2 0.2 0.2 0.2 0.2 0.2]"
    assert any(line.startswith("d_W2 = transpose(h) @ d_t") for line in lines)
    code, stdout, _ = run(capsys, "grad", EXAMPLES / "xor.toml", "--steps")
    assert code == 0 and "d_h = d_t3 @ transpose(W2)" in stdout and "=" in stdout.splitlines()[0]
    code, _, err = run(capsys, "grad", EXAMPLES / "xor.toml", "--at", tmp_path / "missing.npz")
    assert code == 2 and "no such file" in err


def test_report_command_writes_the_story_with_values(tmp_path, capsys):
    out = tmp_path / "fuv.md"
    code, stdout, err = run(capsys, "report", EXAMPLES / "fuv.toml", "-o", out, "--at", "u=2,v=3,w=4")
    assert code == 0, err
    text = out.read_text()
    assert r"t_{1} &= u + v = 5 \\" in text and r"f &= t_{1} w = 20 \\" in text
    code, _, err = run(capsys, "report", EXAMPLES / "fuv.toml", "-o", tmp_path / "never.md", "--at", "u=2")
    assert code == 2 and "missing value(s) for v, w" in err and not (tmp_path / "never.md").exists()


def test_train_says_where_it_writes_and_prints_every_n_epochs(tmp_path, capsys):
    out, module = tmp_path / "p.npz", tmp_path / "xor_model.py"
    code, stdout, err = run(capsys, "train", EXAMPLES / "xor.toml", "--data", EXAMPLES / "data" / "xor.csv",
                            "--every", "250", "--out", out, "-o", module)
    assert code == 0, err
    lines = stdout.splitlines()
    assert lines[0] == f"wrote the module to {module}"
    assert [line.split()[1] for line in lines if line.startswith("epoch")] == ["250/1000", "500/1000", "750/1000", "1000/1000"]
    assert lines[-1] == f"saved the trained params to {out.resolve()}"
    code, stdout, _ = run(capsys, "train", EXAMPLES / "xor.toml", "--data", EXAMPLES / "data" / "xor.csv",
                          "--quiet", "--epochs", "3", "--out", out)
    assert code == 0 and not any(line.startswith("epoch") for line in stdout.splitlines())
    never = tmp_path / "never.py"
    code, _, err = run(capsys, "train", EXAMPLES / "xor.toml", "--data", EXAMPLES / "data" / "xor.csv",
                       "--lr", "-1", "-o", never)
    assert code == 2 and "--lr must be a number > 0, got -1.0" in err and not never.exists()


def test_the_generated_command_line_evaluates_and_says_what_is_wrong(tmp_path, capsys):
    module, params = tmp_path / "xor_model.py", tmp_path / "p.npz"
    code, _, err = run(capsys, "train", EXAMPLES / "xor.toml", "--data", EXAMPLES / "data" / "xor.csv",
                       "--quiet", "--out", params, "-o", module)
    assert code == 0, err

    def model_py(*argv):
        done = subprocess.run([sys.executable, str(module), *map(str, argv)], capture_output=True, text=True)
        return done.returncode, done.stdout, done.stderr
    code, out, _ = model_py("evaluate", "--params", params, "--data", EXAMPLES / "data" / "xor.csv")
    assert code == 0 and re.fullmatch(r"loss 0\.\d{4}  accuracy 100\.00%", out.strip()), out  # as train prints them
    npy = tmp_path / "p.npy"
    npy.write_bytes(params.read_bytes())
    code, _, err = model_py("predict", "--params", npy, "--data", EXAMPLES / "data" / "xor.csv")
    assert code == 2 and "params are read from the .npz file save_params writes" in err
    empty = tmp_path / "empty.csv"
    empty.write_text((EXAMPLES / "data" / "xor.csv").read_text().splitlines()[0] + "\n")
    code, _, err = model_py("predict", "--params", params, "--data", empty)
    assert code == 2 and err.strip() == f"error: {empty}: a header and no rows of data"
    shell = subprocess.run(f"'{sys.executable}' '{module}' predict --params '{params}' --data "
                           f"'{EXAMPLES / 'data' / 'xor.csv'}' | head -1", shell=True, capture_output=True, text=True)
    assert float(shell.stdout) < 0.5 and shell.stderr == ""  # one probability, and no broken-pipe error


def test_predict_needs_only_the_inputs_of_the_prediction(tmp_path, capsys):
    module, params = tmp_path / "xor_model.py", tmp_path / "p.npz"
    run(capsys, "train", EXAMPLES / "xor.toml", "--data", EXAMPLES / "data" / "xor.csv", "--quiet",
        "--out", params, "-o", module)
    lines = (EXAMPLES / "data" / "xor.csv").read_text().splitlines()
    keep = [k for k, column in enumerate(lines[0].split(",")) if column.startswith("x")]
    inputs_only = tmp_path / "x.csv"
    inputs_only.write_text("\n".join(",".join(line.split(",")[k] for k in keep) for line in lines) + "\n")
    done = subprocess.run([sys.executable, str(module), "predict", "--params", str(params), "--data", str(inputs_only)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert [float(v) > 0.5 for v in done.stdout.split()] == [False, True, True, False]


LINE = """
[model]
name = "line"
loss = "loss"

[inputs]
x = ["N", 1]
y = ["N", 1]

[params]
w = { shape = [1, 1], init = "zeros" }

[outputs]
loss = "mean((x @ w - y) ** 2)"

[training]
lr = 0.1
epochs = 100
batch_size = 4
"""


def params_of(path):
    with np.load(path) as stored:
        return {name: stored[name] for name in stored.files if not name.startswith("run:")}


def test_train_starts_from_saved_params_and_never_writes_over_them(tmp_path, capsys):
    first, second = tmp_path / "first.npz", tmp_path / "second.npz"
    data = EXAMPLES / "data" / "xor.csv"
    assert run(capsys, "train", EXAMPLES / "xor.toml", "--data", data, "--epochs", "3", "--out", first)[0] == 0
    code, _, err = run(capsys, "train", EXAMPLES / "xor.toml", "--data", data, "--epochs", "0", "--params", first,
                       "--out", second)
    assert code == 0, err
    assert params_of(first).keys() == params_of(second).keys() == {"W1", "b1", "W2", "b2"}
    for name, value in params_of(first).items():
        np.testing.assert_array_equal(params_of(second)[name], value)
    before = first.read_bytes()
    code, _, err = run(capsys, "train", EXAMPLES / "xor.toml", "--data", data, "--params", first, "--out", first)
    assert code == 2 and "is the same file as --params" in err and first.read_bytes() == before
    code, _, err = run(capsys, "train", EXAMPLES / "xor.toml", "--data", data, "--params", first, "--resume", second)
    assert code == 2 and "give --params (start from saved params) or --resume" in err


def test_errors_reading_the_data_or_params_name_that_file(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.array([{}, {}], dtype=object), y=np.zeros(2))
    spec = EXAMPLES / "digits.toml"
    code, _, err = run(capsys, "train", spec, "--data", bad, "--out", tmp_path / "p.npz")
    assert code == 2 and err.startswith(f"graphcomp: error: {bad}: ") and str(spec) not in err
    assert len(err.splitlines()) == 1
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"PK\x03\x04 half a zip file")
    for flag in ("--params", "--resume"):
        code, _, err = run(capsys, "train", EXAMPLES / "xor.toml", "--data", EXAMPLES / "data" / "xor.csv", flag, broken,
                           "--out", tmp_path / "p.npz")
        assert code == 2 and err.startswith(f"graphcomp: error: {broken}: ") and len(err.splitlines()) == 1
    assert not (tmp_path / "p.npz").exists()


def test_a_diverging_run_says_where_and_keeps_the_last_finite_params(tmp_path, capsys):
    spec, data, out = tmp_path / "line.toml", tmp_path / "line.csv", tmp_path / "line.npz"
    spec.write_text(LINE)
    data.write_text("x,y\n1,2\n2,4\n3,6\n4,8\n")
    code, _, err = run(capsys, "train", spec, "--data", data, "--lr", "10", "--out", out, "--quiet")
    assert code == 1 and len(err.splitlines()) == 1
    found = re.fullmatch(r"graphcomp: error: training diverged at epoch (\d+), batch 1: .*; "
                         r"saved the params of epoch (\d+) to (.*)\n", err)
    assert found and int(found[2]) == int(found[1]) - 1 and found[3] == str(out), err
    assert np.isfinite(params_of(out)["w"]).all() and int(np.load(out)["run:epoch"]) == int(found[2])


def interruptible():
    """Popen's preexec_fn for a child that must see Ctrl-C: none, unless this process ignores SIGINT (as
    background jobs do), which the child would inherit."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        return lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)
    return None


def test_ctrl_c_saves_the_last_epoch_and_resume_finishes_the_run_as_if_never_stopped(tmp_path, capsys):
    run_file, whole = tmp_path / "run.npz", tmp_path / "whole.npz"
    argv = ["train", EXAMPLES / "digits.toml", "--data", EXAMPLES / "data" / "digits.npz", "--epochs", "40", "--every", "1"]
    training = subprocess.Popen([sys.executable, "-m", "graphcomp", *map(str, argv), "--out", str(run_file)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=interruptible())
    for line in training.stdout:
        if line.startswith("epoch  2/40"):
            training.send_signal(signal.SIGINT)
            break
    _, err = training.communicate(timeout=120)
    assert training.returncode == 130 and "Traceback" not in err, err
    stopped = re.fullmatch(r"graphcomp: interrupted after epoch (\d+); saved the params of epoch \1 to (.*) "
                           r"\(continue with --resume \2\)", err.splitlines()[-1])
    assert stopped and stopped[2] == str(run_file) and 2 <= int(stopped[1]) < 40, err
    assert int(np.load(run_file)["run:epoch"]) == int(stopped[1])
    code, stdout, err = run(capsys, "train", *argv[1:4], "--every", "1", "--resume", run_file)  # --out: the run file itself
    assert code == 0, err
    assert f"(resuming {run_file} after epoch {stopped[1]})" in stdout.splitlines()[0]
    assert stdout.splitlines()[1].startswith(f"epoch {int(stopped[1]) + 1:>2}/40")
    assert run(capsys, *argv, "--out", whole, "--quiet")[0] == 0
    for name, value in params_of(whole).items():
        np.testing.assert_array_equal(params_of(run_file)[name], value)


def test_ctrl_c_anywhere_else_is_one_line_and_exit_130(tmp_path):
    slow = tmp_path / "slow.py"
    slow.write_text("import time\nprint('ready', flush=True)\ntime.sleep(60)\n")
    command = subprocess.Popen([sys.executable, "-m", "graphcomp", "compile", str(slow), "-o", str(tmp_path / "m.py")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=interruptible())
    assert command.stdout.readline() == "ready\n"
    command.send_signal(signal.SIGINT)
    _, err = command.communicate(timeout=60)
    assert command.returncode == 130 and err == "graphcomp: interrupted\n"
    assert not (tmp_path / "m.py").exists()


def test_a_validation_fraction_that_leaves_no_example_is_refused_before_the_module_is_written(tmp_path, capsys):
    data = tmp_path / "three.npz"
    np.savez(data, x=np.ones((3, 2)), y=np.array([0.0, 1.0, 0.0]))  # three examples
    spec = tmp_path / "tiny.toml"
    spec.write_text('[inputs]\nx = ["N", 2]\ny = ["N"]\n[params]\nw = [2]\n[outputs]\nloss = "mean((x @ w - y) ** 2)"\n')
    module = tmp_path / "tiny.py"
    code = main(["train", str(spec), "--data", str(data), "--validation", "0.9", "-o", str(module),
                 "--out", str(tmp_path / "p.npz")])
    err = capsys.readouterr().err
    assert code == 2 and err == f"graphcomp: error: {data}: no examples to train on (validation=0.9 holds out all 3)\n"
    assert not module.exists() and not (tmp_path / "p.npz").exists()


def test_resume_with_fewer_epochs_than_the_run_names_the_run_file(tmp_path, capsys):
    out = tmp_path / "run.npz"
    common = ["train", str(EXAMPLES / "xor.toml"), "--data", str(EXAMPLES / "data" / "xor.csv"), "--quiet"]
    assert main(common + ["--out", str(out), "--epochs", "3"]) == 0
    capsys.readouterr()
    assert main(common + ["--resume", str(out), "--epochs", "2"]) == 2
    assert capsys.readouterr().err == (f"graphcomp: error: {out}: the run has done 3 epochs already; "
                                       "--epochs counts from its start\n")
