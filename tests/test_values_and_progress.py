"""--params and --examples beside --at (grad, report, graph), and what training prints and where it
saves: the default progress lines, the best validation epoch, evaluate's percentages, and the params
file written beside the module, whatever the current folder."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

import graphcomp as gc
from graphcomp.frontend.cli import _compiled, main, read_spec

ROOT = Path(__file__).parents[1]
EXAMPLES = ROOT / "examples"
DIGITS, DIGITS_DATA = EXAMPLES / "digits.toml", EXAMPLES / "data" / "digits.npz"
XOR, XOR_DATA = EXAMPLES / "xor.toml", EXAMPLES / "data" / "xor.csv"


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def error_line(err):
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# ------------------------------------------------------------------ --params and --examples

def test_params_init_seed_are_the_modules_own_initial_params(tmp_path, capsys):
    """--at data.npz --params init:3 --examples 4 shows what the merged file of the first 4 examples and
    init_params(3) shows, which are also the params `graphcomp train --seed 3` starts from."""
    code, drawn, err = run(capsys, "grad", DIGITS, "--at", DIGITS_DATA, "--params", "init:3", "--examples", 4)
    assert code == 0, err
    assert drawn.splitlines()[0] == f"# the first 4 of the 1797 examples in {DIGITS_DATA}; params init:3"
    m = _compiled(read_spec(str(DIGITS))).load()
    with np.load(DIGITS_DATA) as data:
        merged = {"x": data["x"][:4], "labels": data["labels"][:4], **m.init_params(3)}
    np.savez(tmp_path / "merged.npz", **merged)
    code, by_hand, err = run(capsys, "grad", DIGITS, "--at", tmp_path / "merged.npz")
    assert code == 0, err
    assert by_hand.splitlines()[0] == f"# all 4 examples in {tmp_path / 'merged.npz'}"
    assert drawn.splitlines()[1:] == by_hand.splitlines()[1:] and len(by_hand.splitlines()) > 10
    start = tmp_path / "start.npz"  # zero epochs: the run's file holds the params training starts from
    code, _, err = run(capsys, "train", DIGITS, "--data", DIGITS_DATA, "--epochs", 0, "--seed", 3, "--out", start)
    assert code == 0, err
    code, saved, err = run(capsys, "grad", DIGITS, "--at", DIGITS_DATA, "--params", start, "--examples", 4)
    assert code == 0, err
    assert saved.splitlines()[0].endswith(f"; params {start}") and saved.splitlines()[1:] == drawn.splitlines()[1:]
    code, spec_seed, _ = run(capsys, "grad", DIGITS, "--at", DIGITS_DATA, "--params", "init", "--examples", 4)
    code, seed_0, _ = run(capsys, "grad", DIGITS, "--at", DIGITS_DATA, "--params", "init:0", "--examples", 4)
    assert spec_seed.splitlines()[1:] == seed_0.splitlines()[1:] != drawn.splitlines()[1:]  # digits.toml: seed = 0


def test_every_example_by_default_and_the_latex_comment(capsys):
    code, stdout, err = run(capsys, "grad", DIGITS, "--at", DIGITS_DATA, "--params", "init:0", "--latex")
    assert code == 0, err
    assert stdout.splitlines()[0] == f"% all 1797 examples in {DIGITS_DATA}; params init:0"
    assert "1797 \\times 64" in stdout  # x, every example of the file


def test_a_csv_data_set_gives_the_inputs_as_graphcomp_train_reads_them(capsys):
    """XOR's data ships as CSV: --at reads it with the module's own load_data, all four examples."""
    code, stdout, err = run(capsys, "grad", XOR, "--at", XOR_DATA, "--params", "init:0")
    assert code == 0, err
    assert stdout.splitlines()[0] == f"# all 4 examples in {XOR_DATA}; params init:0"
    module = _compiled(read_spec(str(XOR))).load()
    data, params = module.load_data(str(XOR_DATA)), module.init_params(0)
    loss = float(module.forward(**data, **params)["loss"])
    assert f"loss = mean(t12) = {loss:.6g}" in stdout


def test_report_and_graph_take_the_same_values(tmp_path, capsys):
    out = tmp_path / "digits.md"
    code, stdout, err = run(capsys, "report", DIGITS, "-o", out, "--at", DIGITS_DATA, "--params", "init:0",
                            "--examples", 2)
    assert code == 0, err
    assert stdout.strip() == f"wrote {out} (values at the first 2 of the 1797 examples in {DIGITS_DATA}; params init:0)"
    m = _compiled(read_spec(str(DIGITS))).load()
    with np.load(DIGITS_DATA) as data:
        loss = m.forward(x=data["x"][:2], labels=data["labels"][:2], **m.init_params(0))["loss"]
    assert f"= {loss:.5g}" in out.read_text()  # the loss of those two examples at those params
    picture = tmp_path / "digits.json"
    code, stdout, err = run(capsys, "graph", DIGITS, "-o", picture, "--at", DIGITS_DATA, "--params", "init:0",
                            "--examples", 2)
    assert code == 0 and stdout.startswith(f"wrote {picture}"), err
    text = picture.read_text()
    code, _, err = run(capsys, "graph", DIGITS, "-o", tmp_path / "no.json", "--at", DIGITS_DATA)
    assert code == 2 and "missing value(s) for W1, b1, W2, b2" in error_line(err)
    assert text and not (tmp_path / "no.json").exists()


def test_each_problem_with_the_values_is_one_line(tmp_path, capsys):
    def refused(*argv):
        code, stdout, err = run(capsys, *argv)
        assert code == 2 and not stdout, (stdout, err)
        return error_line(err)
    at = ["--at", DIGITS_DATA]
    assert refused("grad", DIGITS, *at) == (
        "graphcomp: error: --at: missing value(s) for W1, b1, W2, b2: give the params with --params init:0 "
        "(the spec's initial params) or --params FILE.npz")
    assert refused("grad", DIGITS, "--params", "init:0").startswith(
        "graphcomp: error: --at: missing value(s) for x, labels: give the inputs with --at")
    for seed in ("init:x", "init:-1", "init:1.5", "init: 3"):
        assert refused("grad", DIGITS, *at, "--params", seed) == (
            f"graphcomp: error: --params {seed}: SEED must be a whole number >= 0, as in --params init:0")
    assert "give init:SEED" in refused("grad", DIGITS, *at, "--params", "seed0")
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, W1=np.zeros(3), b1=np.zeros(64), W2=np.zeros((64, 10)), b2=np.zeros(10))
    assert refused("grad", DIGITS, *at, "--params", wrong) == (
        f"graphcomp: error: --params {wrong}: param W1 has shape (3,), the spec gives (64, 64)")
    assert refused("grad", DIGITS, *at, "--params", DIGITS_DATA) == (
        f"graphcomp: error: --params {DIGITS_DATA}: no array for param(s) W1, b1, W2, b2; it holds labels, x")
    assert "no such file" in refused("grad", DIGITS, *at, "--params", tmp_path / "none.npz")
    broken = tmp_path / "broken.npz"
    broken.write_bytes(DIGITS_DATA.read_bytes()[:200])
    assert refused("grad", DIGITS, *at, "--params", broken).startswith(f"graphcomp: error: {broken}: cannot read")
    assert refused("grad", DIGITS, *at, "--params", "init:0", "--examples", 0) == (
        "graphcomp: error: --examples 0: must be between 1 and 1797, the examples --at gives")
    assert "between 1 and 1797" in refused("grad", DIGITS, *at, "--params", "init:0", "--examples", 1798)
    assert "give --at data.npz" in refused("grad", DIGITS, "--examples", 3)
    assert "has no params" in refused("grad", EXAMPLES / "fuv.toml", "--at", "u=1,v=2,w=3", "--params", "init:0")
    both = tmp_path / "both.npz"
    with np.load(DIGITS_DATA) as data:
        np.savez(both, x=data["x"][:3], labels=data["labels"][:3], W1=np.zeros((64, 64)))
    assert refused("grad", DIGITS, "--at", both, "--params", "init:0") == (
        "graphcomp: error: W1 given by both --at and --params init:0; give each value once")
    params = tmp_path / "params.npz"
    shutil.copy(wrong, params)
    before = params.read_bytes()
    for command in ("report", "graph"):  # a params file is an input: never an output
        assert refused(command, DIGITS, *at, "--params", params, "-o", params) == (
            f"graphcomp: error: -o {params} is the same file as --params {params}: writing it would destroy "
            "that input; choose another file")
    assert params.read_bytes() == before


# ------------------------------------------------------------------ training: progress, summary, files

def test_a_long_run_prints_about_twenty_lines_and_a_validated_one_its_best_epoch(tmp_path, capsys):
    code, stdout, err = run(capsys, "train", XOR, "--data", XOR_DATA, "--out", tmp_path / "p.npz")
    assert code == 0, err
    epochs = [line.split()[1] for line in stdout.splitlines() if line.startswith("epoch")]
    assert epochs == [f"{k}/1000" for k in range(50, 1001, 50)]
    assert not any(line.startswith("best validation") for line in stdout.splitlines())  # none held out
    code, stdout, err = run(capsys, "train", DIGITS, "--data", DIGITS_DATA, "--epochs", 7, "--every", 1,
                            "--out", tmp_path / "d.npz")
    assert code == 0, err
    lines = stdout.splitlines()
    records = [re.search(r"epoch +(\d+)/7 .* val loss ([\d.]+)  val accuracy ([\d.]+%)", line) for line in lines
               if line.startswith("epoch")]
    assert len(records) == 7
    best = min(records, key=lambda record: float(record[2]))
    assert lines[-2] == f"best validation loss {best[2]} at epoch {best[1]} (accuracy {best[3]})"
    code, stdout, _ = run(capsys, "train", DIGITS, "--data", DIGITS_DATA, "--epochs", 30, "--quiet",
                          "--out", tmp_path / "d.npz")
    assert code == 0 and not [line for line in stdout.splitlines() if line.startswith("epoch")]
    assert stdout.splitlines()[-2].startswith("best validation loss ")


def test_the_default_every_is_about_twenty_lines():
    m = _compiled(read_spec(str(XOR))).load()
    for epochs, every in ((1, 1), (20, 1), (21, 2), (30, 2), (1000, 50), (1001, 51)):
        assert m._progress_every(epochs) == every
        assert sum(m._shown(epoch, epochs, every) for epoch in range(1, epochs + 1)) <= 21


def test_train_without_out_saves_beside_the_module_whatever_the_current_folder(tmp_path):
    elsewhere, work = tmp_path / "elsewhere", tmp_path / "work"
    elsewhere.mkdir()
    work.mkdir()
    spec = work / "xor.toml"
    shutil.copy(XOR, spec)
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}

    def graphcomp(*argv):
        return subprocess.run([sys.executable, "-m", "graphcomp", *map(str, argv)], cwd=elsewhere, env=env,
                              capture_output=True, text=True)
    done = graphcomp("train", spec, "--data", XOR_DATA, "--epochs", 5, "-o", work / "m.py")
    assert done.returncode == 0, done.stderr
    assert f"saving the params beside the module, to {work / 'm_params.npz'} (--out chooses another file)" in done.stdout
    assert (work / "m_params.npz").is_file()
    done = graphcomp("train", spec, "--data", XOR_DATA, "--epochs", 5)
    assert done.returncode == 0, done.stderr
    assert f"saving the params beside the spec, to {work / 'xor_params.npz'}" in done.stdout
    assert done.stdout.splitlines()[-1] == f"saved the trained params to {work / 'xor_params.npz'}"
    done = subprocess.run([sys.executable, str(work / "m.py"), "train", "--data", str(XOR_DATA), "--epochs", "40"],
                          cwd=elsewhere, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"saving the params beside the module, to {work / 'm_params.npz'} (--out chooses another file)"
    assert [line.split()[1] for line in lines if line.startswith("epoch")] == [f"{k}/40" for k in range(2, 41, 2)]
    assert lines[-1] == f"saved params to {work / 'm_params.npz'}"
    assert os.listdir(elsewhere) == []  # nothing written where the commands ran


def test_the_modules_own_train_prints_every_n_epochs_its_best_epoch_and_evaluate_percentages(tmp_path):
    module = tmp_path / "digits_model.py"
    gc_done = main(["compile", str(DIGITS), "-o", str(module)])
    assert gc_done == 0

    def model_py(*argv):
        return subprocess.run([sys.executable, str(module), *map(str, argv)], capture_output=True, text=True)
    out = tmp_path / "p.npz"
    done = model_py("train", "--data", DIGITS_DATA, "--epochs", 6, "--every", 3, "--out", out)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[1] for line in lines if line.startswith("epoch")] == ["3/6", "6/6"]
    assert re.fullmatch(r"best validation loss 0\.\d{4} at epoch [1-6] \(accuracy \d+\.\d\d%\)", lines[-2]), lines
    done = model_py("evaluate", "--params", out, "--data", DIGITS_DATA)
    assert done.returncode == 0 and re.fullmatch(r"loss 0\.\d{4}  accuracy 9\d\.\d\d%\n", done.stdout), done.stdout
    done = model_py("train", "--data", DIGITS_DATA, "--every", 0, "--out", out)
    assert done.returncode == 2 and done.stderr == "error: --every must be a whole number >= 1, got 0\n"
    before = out.read_bytes()
    done = model_py("train", "--data", DIGITS_DATA, "--params", out, "--out", out)
    assert done.returncode == 2 and "is the --params file" in done.stderr and out.read_bytes() == before
    done = model_py("train", "--data", DIGITS_DATA, "--epochs", 8, "--resume", out)  # no --out: the run, in place
    assert done.returncode == 0 and done.stdout.splitlines()[-1] == f"saved params to {out}", done.stdout
    assert int(np.load(out)["run:epoch"]) == 8 and not (tmp_path / "digits_model_params.npz").exists()
