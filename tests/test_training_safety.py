"""Nothing a user owns is lost by the generated module: params files are replaced atomically, Ctrl-C
saves the last complete epoch, an interrupted run resumed ends where an uninterrupted one does,
divergence and bad data stop training with one line, and a full disk leaves the old file whole."""
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import graphcomp as gc


def classifier(dropout=0.0):
    """A small softmax classifier with a hidden layer (and dropout, whose masks use the generator)."""
    g = gc.Graph("safety")
    x, labels = g.input("x", (None, 4)), g.input("labels", (None,))
    W1, b1 = g.param("W1", (4, 16)), g.param("b1", (16,), init="zeros")
    W2, b2 = g.param("W2", (16, 3)), g.param("b2", (3,), init="zeros")
    h = gc.tanh(x @ W1 + b1)
    if dropout:
        h = gc.dropout(h, dropout)
    g.output("logits", h @ W2 + b2)
    g.output("loss", gc.softmax_cross_entropy(g.outputs["logits"], labels))
    rng = np.random.default_rng(1)
    X = rng.normal(size=(120, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(float) + (X[:, 2] > 1)
    return gc.compile(g, loss="loss", predict="logits", target="labels"), {"x": X, "labels": y}


def regression():
    """Least squares on a linear model: plain SGD with a large rate overflows to inf, then NaN."""
    g = gc.Graph("linear")
    x, y = g.input("x", (None, 3)), g.input("y", (None,))
    w, b = g.param("w", (3,), init="zeros"), g.param("b", (), init="zeros")
    g.output("loss", gc.mse(x @ w + b, y))
    X = np.random.default_rng(0).normal(size=(64, 3))
    return gc.compile(g), {"x": X, "y": X @ np.array([1.0, -2.0, 0.5]) + 0.25}


class StopAfter:
    """on_epoch that presses Ctrl-C (raises KeyboardInterrupt) once `epochs` epochs are done."""

    def __init__(self, epochs):
        self.epochs = epochs

    def __call__(self, record):
        if record["epoch"] == self.epochs:
            raise KeyboardInterrupt


@pytest.mark.parametrize("settings", [
    {"optimizer": "sgd"},
    {"optimizer": "momentum", "validation": 0.25},
    {"optimizer": "adam", "schedule": "cosine", "weight_decay": 1e-3},
    {"optimizer": "adam", "dropout": 0.3},
])
def test_an_interrupted_run_resumed_ends_with_the_params_of_an_uninterrupted_one(tmp_path, settings):
    settings = dict(settings)
    model, data = classifier(settings.pop("dropout", 0.0))
    m = model.load()
    common = dict(epochs=7, lr=0.05, batch_size=16, seed=3, **settings)
    whole, whole_losses = m.train(m.init_params(0), data, **common)

    out = tmp_path / "run.npz"
    with pytest.raises(m.TrainingInterrupted) as stopped:
        m.train(m.init_params(0), data, out=out, on_epoch=StopAfter(3), **common)
    assert stopped.value.epoch == 3 and stopped.value.saved == str(out)
    assert isinstance(stopped.value, KeyboardInterrupt)
    run = m.load_run(out)
    assert run["epoch"] == 3 and run["status"] == "interrupted" and len(run["losses"]) == 3
    for name in m.PARAMS:  # the params of epoch 3 are saved, not those of a partial epoch
        np.testing.assert_array_equal(run["params"][name], stopped.value.params[name])

    resumed, losses = m.train(None, data, resume=run, out=out, **common)
    for name in m.PARAMS:
        np.testing.assert_array_equal(resumed[name], whole[name])
    assert losses == whole_losses
    assert m.load_run(out)["status"] == "finished" and m.load_run(out)["epoch"] == 7


def test_resume_refuses_settings_that_would_not_continue_the_run(tmp_path):
    model, data = classifier()
    m = model.load()
    m.train(m.init_params(0), data, epochs=2, lr=0.1, batch_size=16, optimizer="adam", out=tmp_path / "r.npz")
    run = m.load_run(tmp_path / "r.npz")
    with pytest.raises(ValueError, match="trained with optimizer='adam', not 'sgd'"):
        m.train(None, data, epochs=4, lr=0.1, batch_size=16, optimizer="sgd", resume=run)
    with pytest.raises(ValueError, match="has done 2 epochs already"):
        m.train(None, data, epochs=1, lr=0.1, batch_size=16, optimizer="adam", resume=run)
    with pytest.raises(ValueError, match="give params=None"):
        m.train(m.init_params(0), data, epochs=4, lr=0.1, batch_size=16, optimizer="adam", resume=run)
    m.save_params(tmp_path / "plain.npz", m.init_params(0))
    with pytest.raises(ValueError, match="plain.npz: holds params but no run to resume"):
        m.load_run(tmp_path / "plain.npz")


def test_divergence_stops_training_and_keeps_the_last_finite_params(tmp_path):
    model, data = regression()
    m = model.load()
    out = tmp_path / "p.npz"
    m.save_params(out, m.init_params(5))
    before = out.read_bytes()
    with pytest.raises(m.TrainingDiverged, match=r"training diverged at epoch 1, batch [2-4]: the loss is inf") as bad:
        m.train(m.init_params(0), data, epochs=3, lr=1e200, batch_size=16, out=out)
    assert isinstance(bad.value, FloatingPointError) and bad.value.saved is None
    assert out.read_bytes() == before  # no epoch was finished: the file keeps what it held

    # The loss grows by about 10^50 an epoch: finite for a few epochs, then not.
    with pytest.raises(m.TrainingDiverged, match="the loss is (inf|nan)") as bad:
        m.train(m.init_params(0), data, epochs=20, lr=1e6, batch_size=16, out=out)
    epoch = bad.value.epoch
    assert epoch >= 2 and bad.value.saved == str(out)
    saved = m.load_run(out)
    assert saved["status"] == "diverged" and saved["epoch"] == epoch - 1
    assert all(np.isfinite(value).all() for value in saved["params"].values())


def test_data_that_is_not_finite_is_refused_naming_the_input_and_position(tmp_path):
    model, data = classifier()
    m = model.load()
    x = data["x"].copy()
    x[57, 2] = np.inf
    with pytest.raises(ValueError, match=r"train\(\): input 'x' holds inf at index \[57, 2\]"):
        m.train(m.init_params(0), {**data, "x": x}, epochs=1, lr=0.1, batch_size=16)
    np.savez(tmp_path / "nan.npz", x=np.where(x == np.inf, np.nan, x), labels=data["labels"])
    with pytest.raises(ValueError, match=r"nan.npz: input 'x' holds nan at index \[57, 2\]"):
        m.load_data(tmp_path / "nan.npz")


def test_bad_data_and_params_files_are_one_error_naming_the_file(tmp_path):
    model, data = classifier()
    m = model.load()
    np.savez(tmp_path / "d.npz", **data)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes((tmp_path / "d.npz").read_bytes()[:300])
    for load in (m.load_data, m.load_params):
        with pytest.raises(ValueError, match="truncated.npz: cannot read the .*not a complete .npz file"):
            load(truncated)
    np.savez(tmp_path / "objects.npz", x=np.array([{"a": 1}], dtype=object), labels=data["labels"])
    with pytest.raises(ValueError, match="objects.npz: cannot read the data: it holds Python objects"):
        m.load_data(tmp_path / "objects.npz")
    with pytest.raises(ValueError, match="absent.npz: no such file"):
        m.load_data(tmp_path / "absent.npz")


def test_a_wide_csv_header_is_read_by_name(tmp_path):
    model, data = classifier()
    m = model.load()
    extra = [f"unused{k}" for k in range(20000)]
    columns = extra[:10000] + ["labels"] + [f"x:{k}" for k in (3, 1, 0, 2)] + extra[10000:]
    rows = np.zeros((3, len(columns)))
    rows[:, columns.index("labels")] = [0, 2, 1]
    for k in range(4):
        rows[:, columns.index(f"x:{k}")] = [k, 10 + k, 20 + k]
    path = tmp_path / "wide.csv"
    path.write_text(",".join(columns) + "\n" + "\n".join(",".join(map(str, row)) for row in rows) + "\n")
    loaded = m.load_data(path)
    np.testing.assert_array_equal(loaded["x"], [[0, 1, 2, 3], [10, 11, 12, 13], [20, 21, 22, 23]])
    np.testing.assert_array_equal(loaded["labels"], [0, 2, 1])


# ------------------------------------------------------------------ the module's command line, for real

@pytest.fixture
def module_file(tmp_path):
    model, data = classifier()
    path = tmp_path / "model.py"
    model.save(path)
    big = {"x": np.tile(data["x"], (40, 1)), "labels": np.tile(data["labels"], 40)}  # 4,800 examples
    np.savez(tmp_path / "data.npz", **big)
    return path


def command(module, *args, launcher=None):
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    start = [sys.executable] + (["-c", launcher] if launcher else [])
    return subprocess.Popen([*start, str(module), *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def test_ctrl_c_saves_the_last_complete_epoch_and_resume_finishes_the_run(module_file, tmp_path):
    data, out = tmp_path / "data.npz", tmp_path / "run.npz"
    settings = ["--epochs", "400", "--lr", "0.05", "--batch-size", "8", "--optimizer", "adam", "--every", "1"]
    process = command(module_file, "train", "--data", data, "--out", out, *settings)
    assert process.stdout.readline().startswith("epoch   1/400")
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("interrupted during epoch ") and f"(continue with --resume {out})" in last
    run = np.load(out)
    epoch = int(run["run:epoch"])
    assert epoch >= 1 and f"saved the params of epoch {epoch} to {out}" in last

    finished = command(module_file, "train", "--data", data, "--resume", out, "--out", out, "--epochs", str(epoch + 2),
                       "--every", "1")
    stdout, stderr = finished.communicate(timeout=60)
    assert finished.returncode == 0, stderr
    assert stdout.splitlines()[0].startswith(f"epoch {epoch + 1:>{len(str(epoch + 2))}}/{epoch + 2}")
    assert int(np.load(out)["run:epoch"]) == epoch + 2


def test_the_params_file_is_always_whole_whenever_training_is_killed(module_file, tmp_path):
    data, out = tmp_path / "data.npz", tmp_path / "params.npz"
    first = command(module_file, "train", "--data", data, "--out", out, "--epochs", "1", "--batch-size", "64")
    assert first.wait(timeout=60) == 0
    rng = random.Random(0)
    started = time.perf_counter()
    done = command(module_file, "train", "--data", data, "--out", out, "--epochs", "3", "--batch-size", "64")
    assert done.wait(timeout=60) == 0
    lifetime = time.perf_counter() - started  # start-up, training and the save of one whole run
    for _ in range(16):
        process = command(module_file, "train", "--data", data, "--out", out, "--epochs", "3", "--batch-size", "64")
        time.sleep(rng.uniform(0, lifetime))
        process.kill()
        process.communicate()
        with np.load(out) as stored:  # readable, with every param, at every instant
            assert {"W1", "b1", "W2", "b2"} <= set(stored.files)
            assert stored["W1"].shape == (4, 16)
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp") and "params" not in name]


def test_a_params_file_rewritten_in_a_loop_is_whole_whenever_the_writer_is_killed(module_file, tmp_path):
    """Kills that land inside save_params itself: a writer that does nothing else."""
    out = tmp_path / "params.npz"
    writer = tmp_path / "writer.py"
    writer.write_text(
        "import sys\nimport numpy as np\nsys.path.insert(0, sys.argv[1])\nimport model\n"
        "params = model.init_params(0)\nprint('ready', flush=True)\nk = 0\nwhile True:\n"
        "    k += 1\n    model.save_params(sys.argv[2], {name: value + k for name, value in params.items()})\n")
    rng = random.Random(1)
    for _ in range(20):
        process = subprocess.Popen([sys.executable, str(writer), str(tmp_path), str(out)], stdout=subprocess.PIPE,
                                   text=True)
        assert process.stdout.readline() == "ready\n"
        time.sleep(rng.uniform(0.0, 0.05))
        process.kill()
        process.communicate()
        if out.exists():
            with np.load(out) as stored:
                k = stored["b1"][0]  # every array of one save: the same k throughout
                for name in ("W1", "b1", "W2", "b2"):
                    assert stored[name].shape == (dict(W1=(4, 16), b1=(16,), W2=(16, 3), b2=(3,))[name])
                assert np.all(stored["b2"] == k) and np.all(stored["b1"] == k)
    assert out.exists()


def limited(limit, module, *args):
    """`python module args...` whose files may not grow past `limit` bytes: writes past it fail with
    EFBIG (SIGXFSZ ignored), as on a full disk. The limit is set by a small launcher that then execs
    Python, rather than by a preexec_fn, which would fork this (multithreaded) process."""
    launcher = ("import os, resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
                f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit})); "
                "os.execv(sys.executable, [sys.executable] + sys.argv[1:])")
    return command(module, *args, launcher=launcher)


def test_a_full_disk_is_one_line_and_leaves_the_old_params(module_file, tmp_path):
    data, out = tmp_path / "data.npz", tmp_path / "params.npz"
    assert command(module_file, "train", "--data", data, "--out", out, "--epochs", "1").wait(timeout=60) == 0
    before = out.read_bytes()
    process = limited(len(before) // 2, module_file, "train", "--data", data, "--out", out, "--epochs", "2",
                      "--optimizer", "adam")
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 2
    assert stderr.strip().splitlines()[-1] == f"error: cannot write {out}: File too large; the file there is unchanged"
    assert out.read_bytes() == before
    assert [name for name in os.listdir(tmp_path) if name.endswith(".tmp")] == []


def test_the_out_folder_is_checked_before_training(module_file, tmp_path):
    (tmp_path / "taken").write_text("a file, not a folder")
    process = command(module_file, "train", "--data", tmp_path / "data.npz", "--out", tmp_path / "taken" / "p.npz")
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 2 and stdout == ""  # not one epoch was run
    assert stderr.startswith(f"error: cannot write {tmp_path / 'taken' / 'p.npz'}: {tmp_path / 'taken'} is a file, not a folder")


def test_out_may_not_be_the_data_file(module_file, tmp_path):
    data = tmp_path / "data.npz"
    before = data.read_bytes()
    (tmp_path / "link.npz").symlink_to(data)
    os.link(data, tmp_path / "hard.npz")
    for out in (data, tmp_path / "link.npz", tmp_path / "hard.npz"):
        process = command(module_file, "train", "--data", data, "--out", out)
        stdout, stderr = process.communicate(timeout=60)
        assert process.returncode == 2 and stdout == ""
        assert stderr == f"error: --out {out} is the --data file: writing the params there would destroy it\n"
    assert data.read_bytes() == before


def test_out_is_named_as_written(module_file, tmp_path):
    process = command(module_file, "train", "--data", tmp_path / "data.npz", "--out", tmp_path / "trained",
                      "--epochs", "1")
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert stdout.splitlines()[-1] == f"saved params to {tmp_path / 'trained.npz'}"
    assert (tmp_path / "trained.npz").is_file()
    process = command(module_file, "train", "--data", tmp_path / "data.npz", "--out", tmp_path, "--epochs", "1")
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 2 and stderr == f"error: {tmp_path} is a folder; give a file such as {tmp_path / 'params.npz'}\n"


def test_a_diverging_run_exits_1_with_one_line(tmp_path):
    model, data = regression()
    model.save(tmp_path / "linear.py")
    np.savez(tmp_path / "data.npz", **data)
    out = tmp_path / "p.npz"
    process = command(tmp_path / "linear.py", "train", "--data", tmp_path / "data.npz", "--out", out, "--lr", "1e200")
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 1 and "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1].startswith("error: training diverged at epoch 1, batch ")
    assert stderr.strip().endswith(f"nothing saved ({out} is unchanged)") and not out.exists()


# ------------------------------------------------------------------ arrays of other libraries

def test_torch_params_that_require_grad_are_detached_not_a_crash():
    import torch

    model, data = regression()
    m = model.load()
    x, y = torch.tensor(data["x"]), torch.tensor(data["y"])
    params = {"w": torch.zeros(3, dtype=torch.float64, requires_grad=True),
              "b": torch.zeros((), dtype=torch.float64, requires_grad=True)}
    trained, losses = m.train(params, {"x": x, "y": y}, epochs=3, lr=0.1, batch_size=16)
    want, want_losses = m.train(m.init_params(0), data, epochs=3, lr=0.1, batch_size=16)
    np.testing.assert_allclose(trained["w"].numpy(), want["w"], rtol=1e-12)
    np.testing.assert_allclose(losses, want_losses, rtol=1e-12)
    assert params["w"].grad is None and not params["w"].detach().any()  # the caller's tensors are untouched
    _, grads = m.gradients(x=x, y=y, **params)
    assert not grads["w"].requires_grad
    moved, _ = m.train({"w": torch.zeros(3, requires_grad=True), "b": torch.zeros((), requires_grad=True)}, data,
                       epochs=3, lr=0.1, batch_size=16, backend="torch")
    np.testing.assert_allclose(moved["w"].numpy(), want["w"], rtol=1e-12)


def test_jax_without_64_bit_mode_is_refused_by_a_float64_module():
    import jax
    import jax.numpy as jnp

    model, data = regression()
    m = model.load()
    m32 = gc.compile(model.graph, dtype="float32").load()
    was = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", False)
    try:
        arrays = {"x": jnp.asarray(data["x"]), "y": jnp.asarray(data["y"]), "w": jnp.zeros(3), "b": jnp.zeros(())}
        with pytest.raises(TypeError, match=r"gradients\(\): array '\w' computes in float32, not float64 .*"
                                            r"jax.config.update\('jax_enable_x64', True\)"):
            m.gradients(**arrays)
        with pytest.raises(TypeError, match="train\\(\\): array '\\w' computes in float32, not float64"):
            m.train(m.init_params(0), data, epochs=1, lr=0.1, batch_size=16, backend="jax")
        _, grads = m32.gradients(**arrays)  # a float32 module takes them as they are
        _, want = m32.gradients(**{name: np.asarray(value) for name, value in arrays.items()})
        np.testing.assert_allclose(np.asarray(grads["w"]), want["w"], rtol=1e-5)
    finally:
        jax.config.update("jax_enable_x64", was)


def test_training_cuts_a_time_major_sequence_along_its_batch_axis():
    """A sequence declared ("T", None, 3) is cut into minibatches along its second axis: training it
    time-major gives the params of training the same network batch first on the transposed data,
    validation split, shuffling and evaluation included."""
    trained = []
    rng = np.random.default_rng(0)
    xs, y = rng.normal(size=(5, 12, 3)), rng.normal(size=(12, 2))
    for axis in (0, 1):
        g = gc.Graph("layout")
        seq = g.input("xs", ("T", None, 3) if axis == 0 else (None, "T", 3))
        target = g.input("y", (None, 2))
        _, (h, _) = gc.lstm(g, seq, 2, name="lstm", axis=axis)
        g.output("loss", gc.mse(h, target))
        m = gc.compile(g).load()
        data = {"xs": xs if axis == 0 else xs.transpose(1, 0, 2), "y": y}
        params, losses = m.train(m.init_params(0), data, epochs=3, lr=0.1, batch_size=4, validation=0.25)
        trained.append((params, losses, m.evaluate(params, data)["loss"]))
    (time_major, losses, score), (batch_first, expected_losses, expected_score) = trained
    np.testing.assert_allclose(losses, expected_losses, rtol=1e-12)
    assert abs(score - expected_score) < 1e-12
    for name in batch_first:
        np.testing.assert_allclose(time_major[name], batch_first[name], rtol=1e-10, atol=1e-12)
