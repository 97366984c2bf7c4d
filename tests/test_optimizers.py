"""AdamW, clipping by global norm and a warm-up before the cosine schedule, against PyTorch in float64:
torch.optim.AdamW (and Adam, SGD), torch.nn.utils.clip_grad_norm_ and a LambdaLR of the documented
formula, fed the same minibatches as train() (read off the rows it cuts), step by step to 1e-10; a
resumed run ends bit-identical to an uninterrupted one; both command lines and a spec's [training]
table take the settings, and refuse bad ones with one error each."""
import importlib.util
import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import graphcomp as gc
from graphcomp.errors import GraphError
from graphcomp.frontend.cli import main
from graphcomp.frontend.spec import load as load_spec

N, D, H, K = 24, 3, 6, 2


def mlp():
    """A 3-6-2 tanh network with a squared-error loss, and data whose gradients are large (so that a
    clip of 0.5 is active at every step)."""
    g = gc.Graph("opt")
    x, y = g.input("x", (None, D)), g.input("y", (None, K))
    g.output("out", gc.mlp(g, x, [H, K], activation="tanh"))
    g.output("loss", gc.mse(g.outputs["out"], y))
    rng = np.random.default_rng(7)
    X = rng.normal(size=(N, D))
    Y = np.stack([3 * X[:, 0] - X[:, 1] ** 2, np.sin(2 * X[:, 2]) * 4], axis=1) + 2.0
    return gc.compile(g, loss="loss").load(), {"x": X, "y": Y}


def torch_loss(p, x, y):
    h = torch.tanh(x @ p["W1"] + p["b1"])
    return torch.mean((h @ p["W2"] + p["b2"] - y) ** 2)


def factor(k, warmup, steps, cosine=True):
    """The documented learning-rate factor of step k (from 0): the warm-up, then the cosine per step."""
    warm = min(1.0, (k + 1) / warmup) if warmup else 1.0
    if not cosine:
        return warm
    return warm * 0.5 * (1 + math.cos(math.pi * max(0, k - warmup) / max(1, steps - warmup)))


def trained(m, data, monkeypatch, **settings):
    """train()'s params and epoch records, and the rows of `x` each of its steps took (None: all)."""
    batches, cut, records = [], m._rows, []

    def rows(xp, value, taken, *rest):
        if np.shape(value)[-1] == D and len(taken):  # x's rows (the split asks for none held out first)
            batches.append(np.array(taken))
        return cut(xp, value, taken, *rest)
    monkeypatch.setattr(m, "_rows", rows)
    params, _ = m.train(m.init_params(0), data, on_epoch=records.append, **settings)
    monkeypatch.undo()
    return params, records, batches


def torch_trained(start, data, batches, make_optimizer, clip=None, lam=None):
    """The same steps in PyTorch: (params, the learning rate of each step, the gradients' norm before
    clipping at each step)."""
    p = {name: torch.tensor(value, dtype=torch.float64, requires_grad=True) for name, value in start.items()}
    X, Y = (torch.tensor(data[key], dtype=torch.float64) for key in ("x", "y"))
    optimizer = make_optimizer(list(p.values()))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lam) if lam is not None else None
    rates, norms = [], []
    for rows in batches:
        optimizer.zero_grad()
        index = torch.as_tensor(rows) if rows is not None else slice(None)
        torch_loss(p, X[index], Y[index]).backward()
        if clip is not None:
            norms.append(float(torch.nn.utils.clip_grad_norm_(list(p.values()), clip)))
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        if schedule is not None:
            schedule.step()
    return {name: value.detach().numpy() for name, value in p.items()}, rates, norms


def assert_close(ours, theirs, tolerance=1e-10):
    assert set(ours) == set(theirs)
    for name in ours:
        np.testing.assert_allclose(ours[name], theirs[name], rtol=0, atol=tolerance, err_msg=name)


def test_adamw_with_clipping_warmup_and_cosine_is_pytorchs_step_by_step(monkeypatch):
    m, data = mlp()
    epochs, batch_size, warmup, clip, lr = 6, 8, 5, 0.5, 0.05
    steps = epochs * N // batch_size
    params, records, batches = trained(m, data, monkeypatch, epochs=epochs, lr=lr, batch_size=batch_size, seed=4,
                                       optimizer="adamw", beta1=0.8, beta2=0.99, weight_decay=0.3, clip=clip,
                                       warmup=warmup, schedule="cosine")
    assert len(batches) == steps and all(len(rows) == batch_size for rows in batches)
    assert len({tuple(rows) for rows in batches}) == steps  # shuffled: the steps see different minibatches
    theirs, rates, norms = torch_trained(
        m.init_params(0), data, batches, clip=clip, lam=lambda k: factor(k, warmup, steps),
        make_optimizer=lambda p: torch.optim.AdamW(p, lr=lr, betas=(0.8, 0.99), eps=1e-8, weight_decay=0.3))
    assert min(norms) > 2 * clip  # the clip is active at every step
    assert_close(params, theirs)
    assert [record["lr"] for record in records] == pytest.approx(rates[2::3], rel=1e-15)
    assert rates == pytest.approx([lr * factor(k, warmup, steps) for k in range(steps)], rel=1e-15)
    assert rates[warmup - 1] == rates[warmup] == lr and rates[0] == pytest.approx(lr / warmup)


def test_adamw_without_weight_decay_given_decays_by_pytorchs_default(monkeypatch):
    m, data = mlp()
    params, _, batches = trained(m, data, monkeypatch, epochs=8, lr=0.1, batch_size=N, optimizer="adamw")
    assert batches == []  # a batch of every example takes the inputs whole
    theirs, _, _ = torch_trained(m.init_params(0), data, [None] * 8, lambda p: torch.optim.AdamW(p, lr=0.1))
    assert torch.optim.AdamW([torch.zeros(1)]).defaults["weight_decay"] == 0.01
    assert_close(params, theirs)
    plain, _ = m.train(m.init_params(0), data, epochs=8, lr=0.1, batch_size=N, optimizer="adamw", weight_decay=0.0)
    adam, _ = m.train(m.init_params(0), data, epochs=8, lr=0.1, batch_size=N, optimizer="adam")
    for name in plain:  # AdamW without decay is Adam; with it, it is not
        np.testing.assert_array_equal(plain[name], adam[name])
    assert max(np.abs(params[name] - adam[name]).max() for name in params) > 1e-4


@pytest.mark.parametrize("optimizer, make", [
    ("adam", lambda p: torch.optim.Adam(p, lr=0.05, weight_decay=0.2)),
    ("sgd", lambda p: torch.optim.SGD(p, lr=0.05, weight_decay=0.2)),
    ("momentum", lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=0.2)),
])
def test_weight_decay_of_the_other_optimizers_is_still_l2_after_clipping(monkeypatch, optimizer, make):
    m, data = mlp()
    params, _, batches = trained(m, data, monkeypatch, epochs=4, lr=0.05, batch_size=6, seed=1,
                                 optimizer=optimizer, weight_decay=0.2, clip=0.5)
    theirs, _, norms = torch_trained(m.init_params(0), data, batches, make, clip=0.5)
    assert min(norms) > 1.0
    assert_close(params, theirs)


def test_a_clip_above_the_norm_leaves_the_run_as_it_was(monkeypatch):
    m, data = mlp()
    common = dict(epochs=3, lr=0.05, batch_size=8, seed=2, optimizer="adam")
    unclipped, _ = m.train(m.init_params(0), data, **common)
    loose, _ = m.train(m.init_params(0), data, clip=1e6, **common)
    for name in unclipped:
        np.testing.assert_array_equal(loose[name], unclipped[name])
    tight, _ = m.train(m.init_params(0), data, clip=1e-3, **common)
    assert max(np.abs(tight[name] - unclipped[name]).max() for name in tight) > 1e-3


@pytest.mark.parametrize("schedule, warmup", [
    ("cosine", 4), ("cosine", 30), (None, 3), ("step", 3), ("exponential", 2), ("cosine", 0), ("step", 0)])
def test_the_rate_of_each_step_is_the_documented_formula(schedule, warmup):
    m, data = mlp()
    epochs, lr = 12, 0.2  # a batch of every example: one step per epoch, whose record says its rate
    records = []
    m.train(m.init_params(0), data, epochs=epochs, lr=lr, batch_size=N, schedule=schedule, step_size=5,
            gamma=0.5, warmup=warmup, on_epoch=records.append)
    rates = [record["lr"] for record in records]
    warm = [min(1.0, (k + 1) / warmup) if warmup else 1.0 for k in range(epochs)]
    if schedule == "cosine" and warmup:
        expected = [lr * factor(k, warmup, epochs) for k in range(epochs)]
    else:  # the per-epoch schedules as they were, times the warm-up
        expected = [warm[k] * m._rate(lr, k, epochs, schedule, 5, 0.5) for k in range(epochs)]
    assert rates == pytest.approx(expected, rel=1e-15, abs=0)
    if schedule == "cosine" and not warmup:
        assert rates == pytest.approx([lr * 0.5 * (1 + math.cos(math.pi * k / epochs)) for k in range(epochs)])
    if schedule == "step" and not warmup:
        assert rates == [lr * 0.5 ** (k // 5) for k in range(epochs)]


def test_the_warmup_counts_steps_across_epochs_and_the_cosine_ends_above_zero():
    m, data = mlp()
    steps = {}
    m.train(m.init_params(0), data, epochs=3, lr=1.0, batch_size=5, warmup=7, schedule="cosine",
            on_epoch=lambda record: steps.setdefault(record["epoch"], record["lr"]))
    per_epoch = -(-N // 5)  # 5 steps per epoch (the last batch holds 4 examples), 15 in all
    expected = [factor(k, 7, 3 * per_epoch) for k in range(3 * per_epoch)]
    assert [steps[e] for e in (1, 2, 3)] == pytest.approx([expected[e * per_epoch - 1] for e in (1, 2, 3)], rel=1e-15)
    assert steps[1] == pytest.approx(5 / 7) and 0 < steps[3] < 0.05


@pytest.mark.parametrize("validation", [0.0, 0.25])
def test_an_interrupted_adamw_run_with_clip_and_warmup_resumes_bit_identical(tmp_path, validation):
    m, data = mlp()
    common = dict(epochs=6, lr=0.05, batch_size=5, seed=3, optimizer="adamw", clip=0.5, warmup=7,
                  schedule="cosine", weight_decay=0.1, validation=validation)
    whole, whole_losses = m.train(m.init_params(0), data, **common)

    def stop_after(epoch):
        def on_epoch(record):
            if record["epoch"] == epoch:
                raise KeyboardInterrupt
        return on_epoch
    out = tmp_path / "run.npz"
    with pytest.raises(m.TrainingInterrupted):  # stopped during the warm-up, then after it
        m.train(m.init_params(0), data, out=out, on_epoch=stop_after(1), **common)
    run = m.load_run(out)
    assert run["epoch"] == 1 and run["step"] == (5 if not validation else 4) and run["settings"]["clip"] == 0.5
    assert run["moments"]["W1"][0] is not None and run["moments"]["W1"][1] is not None
    with pytest.raises(m.TrainingInterrupted):
        m.train(None, data, resume=run, out=out, on_epoch=stop_after(4), **common)
    run = m.load_run(out)
    assert run["epoch"] == 4
    resumed, losses = m.train(None, data, resume=run, out=out, **run["settings"])
    for name in m.PARAMS:
        np.testing.assert_array_equal(resumed[name], whole[name])
    assert losses == whole_losses


BAD = [("clip", 0, "clip must be a number > 0 (or none: no clipping), got 0", "0.0"),
       ("clip", -1.5, "clip must be a number > 0 (or none: no clipping), got -1.5", "-1.5"),
       ("warmup", -1, "warmup must be a whole number >= 0, got -1", "-1"),
       ("optimizer", "adamx", "optimizer must be one of sgd, momentum, adam, adamw, got 'adamx'", "'adamx'")]


@pytest.mark.parametrize("name, value, message, _", BAD)
def test_a_bad_setting_is_one_error_in_train_compile_and_a_spec(tmp_path, name, value, message, _):
    m, data = mlp()
    with pytest.raises(ValueError) as error:
        m.train(m.init_params(0), data, epochs=1, lr=0.1, batch_size=8, **{name: value})
    assert str(error.value) == message
    g = gc.Graph("bad")
    g.output("loss", gc.sum(g.param("w", (2,)) ** 2))
    with pytest.raises(GraphError) as error:
        gc.compile(g, training={name: value})
    assert str(error.value) == f"training setting {message}"
    spec = tmp_path / "bad.toml"
    spec.write_text(SPEC.replace("[training]", f"[training]\n{name} = {value!r}".replace("'", '"')))
    with pytest.raises(ValueError) as error:
        load_spec(spec)
    assert str(error.value) == f"{spec}: training.{message.replace(' ', ': ', 1)}"


@pytest.mark.parametrize("name, value, message, parsed", BAD)
def test_a_bad_flag_is_one_line_from_both_command_lines(tmp_path, capsys, name, value, message, parsed):
    spec, data = spec_files(tmp_path)
    module, out = tmp_path / "never.py", tmp_path / "never.npz"
    code = main(["train", str(spec), "--data", str(data), f"--{name}", str(value), "-o", str(module), "--out", str(out)])
    err = capsys.readouterr().err
    flag_message = "--" + message.rsplit(" got ", 1)[0] + " got " + parsed  # the flag's text, parsed
    assert code == 2 and err.splitlines() == [f"graphcomp: error: {spec}: {flag_message}"], err
    assert not module.exists() and not out.exists()
    assert main(["compile", str(spec), "-o", str(module)]) == 0
    capsys.readouterr()
    done = subprocess.run([sys.executable, str(module), "train", "--data", str(data), f"--{name}", str(value),
                           "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.splitlines() == [f"error: {flag_message}"], done.stderr
    assert not out.exists()


SPEC = textwrap.dedent("""
    [model]
    name = "opt"
    loss = "loss"

    [inputs]
    x = ["N", 3]
    y = ["N", 2]

    [params]
    W1 = { shape = [3, 6] }
    b1 = { shape = [6], init = "zeros" }
    W2 = { shape = [6, 2] }
    b2 = { shape = [2], init = "zeros" }

    [nodes]
    h = "tanh(x @ W1 + b1)"

    [outputs]
    out = "h @ W2 + b2"
    loss = "mse(out, y)"

    [training]
    epochs = 5
    lr = 0.05
    batch_size = 8
    seed = 2
""")


def spec_files(tmp_path, training=""):
    spec, data = tmp_path / "opt.toml", tmp_path / "data.npz"
    spec.write_text(SPEC.replace("[training]", "[training]\n" + training))
    _, arrays = mlp()
    np.savez(data, **arrays)
    return spec, data


def imported(path):
    found = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(found)
    found.loader.exec_module(module)
    return module


def test_graphcomp_train_takes_the_flags_and_the_spec_table(tmp_path, capsys):
    spec, data = spec_files(tmp_path, 'optimizer = "adamw"\nclip = 0.5\nwarmup = 4\nschedule = { kind = "cosine" }\n')
    module, out = tmp_path / "opt_model.py", tmp_path / "opt.npz"
    assert main(["train", str(spec), "--data", str(data), "-o", str(module), "--out", str(out), "--quiet"]) == 0
    stdout = capsys.readouterr().out
    assert "optimizer=adamw" in stdout and "clip=0.5" in stdout and "warmup=4" in stdout
    m = imported(module)
    assert {key: m.TRAINING[key] for key in ("optimizer", "clip", "warmup", "schedule")} == {
        "optimizer": "adamw", "clip": 0.5, "warmup": 4, "schedule": "cosine"}
    arrays = dict(np.load(data))
    expected, _ = m.train(m.init_params(2), arrays, **m.TRAINING)
    assert_close(m.load_params(out), expected, 0)
    assert {key: m.load_run(out)["settings"][key] for key in ("optimizer", "clip", "warmup")} == {
        "optimizer": "adamw", "clip": 0.5, "warmup": 4}

    flags = ["--optimizer", "adamw", "--clip", "0.25", "--warmup", "6", "--weight-decay", "0.05"]
    plain, _ = spec_files(tmp_path)
    assert main(["train", str(plain), "--data", str(data), "--out", str(out), "--quiet", *flags]) == 0
    settings = dict(m.TRAINING, schedule=None, optimizer="adamw", clip=0.25, warmup=6, weight_decay=0.05)
    expected, _ = m.train(m.init_params(2), arrays, **settings)
    assert_close(m.load_params(out), expected, 0)
    assert m.load_run(out)["settings"]["clip"] == 0.25


def test_the_module_command_line_takes_the_flags(tmp_path, capsys):
    spec, data = spec_files(tmp_path)
    module, out = tmp_path / "opt_model.py", tmp_path / "p.npz"
    assert main(["compile", str(spec), "-o", str(module)]) == 0
    done = subprocess.run([sys.executable, str(module), "train", "--data", str(data), "--out", str(out), "--quiet",
                           "--optimizer", "adamw", "--clip", "1.0", "--warmup", "3", "--schedule", "cosine"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    m = imported(module)
    settings = dict(m.TRAINING, optimizer="adamw", clip=1.0, warmup=3, schedule="cosine")
    expected, _ = m.train(m.init_params(2), dict(np.load(data)), **settings)
    assert_close(m.load_params(out), expected, 0)
    assert {key: m.load_run(out)["settings"][key] for key in ("optimizer", "clip", "warmup", "weight_decay")} == {
        "optimizer": "adamw", "clip": 1.0, "warmup": 3, "weight_decay": None}


def test_none_given_as_a_flag_overrides_the_spec(tmp_path, capsys):
    spec, data = spec_files(tmp_path, 'optimizer = "adamw"\nclip = 0.5\nweight_decay = 0.2\n')
    module, out = tmp_path / "opt_model.py", tmp_path / "p.npz"
    assert main(["train", str(spec), "--data", str(data), "-o", str(module), "--out", str(out), "--quiet",
                 "--clip", "none", "--weight-decay", "none"]) == 0
    assert "clip=None" in capsys.readouterr().out
    m = imported(module)
    assert m.TRAINING["clip"] == 0.5 and m.TRAINING["weight_decay"] == 0.2
    arrays = dict(np.load(data))
    expected, _ = m.train(m.init_params(2), arrays, **dict(m.TRAINING, clip=None, weight_decay=0.01))
    assert_close(m.load_params(out), expected, 0)
    assert m.load_run(out)["settings"]["clip"] is None and m.load_run(out)["settings"]["weight_decay"] is None
    done = subprocess.run([sys.executable, str(module), "train", "--data", str(data), "--out", str(out), "--quiet",
                           "--clip", "none", "--weight-decay", "none"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert_close(m.load_params(out), expected, 0)


def test_torch_tensors_train_with_adamw_clip_and_warmup_as_numpy_does():
    m, data = mlp()
    settings = dict(epochs=4, lr=0.05, batch_size=8, seed=4, optimizer="adamw", clip=0.5, warmup=5, schedule="cosine")
    expected, losses = m.train(m.init_params(0), data, **settings)
    params, torch_losses = m.train(m.init_params(0), data, backend="torch", **settings)
    assert all(isinstance(value, torch.Tensor) for value in params.values())
    assert_close({name: value.numpy() for name, value in params.items()}, expected)
    assert torch_losses == pytest.approx(losses, rel=1e-12)
