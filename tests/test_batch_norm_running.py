"""Batch norm's running statistics, as PyTorch's BatchNorm1d keeps them: the generated training loop
blends each step's batch mean and unbiased variance into two buffers, which the params file carries and
forward() normalises with outside training. Compared with torch.nn.BatchNorm1d in float64 after three
SGD steps on the same minibatches (to 1e-10), at (N, C) and (N, T, C); saved, loaded and resumed."""
import copy
import importlib.util
import py_compile
import textwrap

import numpy as np
import pytest
import torch

import graphcomp as gc
from graphcomp.codegen.loading import source_spec
from graphcomp.frontend import spec

LR = 0.1


def network(shape, momentum=0.1, eps=1e-5, name="bn"):
    """Linear -> batch norm -> tanh -> Linear, mean squared error: x of `shape`, three channels in, four
    normalised, two out."""
    g = gc.Graph("bn_net")
    x, y = g.input("x", shape), g.input("y", shape[:-1] + (2,))
    W1, b1 = g.param("W1", (3, 4)), g.param("b1", (4,), init="uniform", fan_in=3)
    gamma, beta = g.param("gamma", (4,), init="normal"), g.param("beta", (4,), init="normal")
    W2, b2 = g.param("W2", (4, 2)), g.param("b2", (2,), init="uniform", fan_in=4)
    h = gc.batch_norm(x @ W1 + b1, gamma, beta, momentum=momentum, eps=eps, name=name)
    p = g.output("p", gc.tanh(h) @ W2 + b2)
    g.output("loss", gc.mean((p - y) ** 2))
    return g


def loaded(g, **options):
    return gc.compile(g, loss="loss", **options).load()


def torch_copy(params, momentum, eps):
    """The same network in PyTorch (float64), its weights copied from `params`."""
    torch.manual_seed(0)
    first, norm, last = torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4, eps=eps, momentum=momentum), torch.nn.Linear(4, 2)
    model = torch.nn.ModuleDict({"first": first, "norm": norm, "last": last}).double()
    with torch.no_grad():
        for module, weight, bias in ((first, "W1", "b1"), (norm, "gamma", "beta"), (last, "W2", "b2")):
            value = params[weight].T if weight.startswith("W") else params[weight]
            module.weight.copy_(torch.tensor(value))
            module.bias.copy_(torch.tensor(params[bias]))
    return model


def torch_forward(model, x):
    """The network on x (N, C) or (N, T, C): BatchNorm1d normalises (N, C, T), the transpose."""
    h = model["first"](x)
    h = model["norm"](h) if h.ndim == 2 else model["norm"](h.transpose(1, 2)).transpose(1, 2)
    return model["last"](torch.tanh(h))


def torch_params(model):
    first, norm, last = model["first"], model["norm"], model["last"]
    return {"W1": first.weight.T, "b1": first.bias, "gamma": norm.weight, "beta": norm.bias, "W2": last.weight.T,
            "b2": last.bias, "bn_running_mean": norm.running_mean, "bn_running_var": norm.running_var}


def data_for(shape, examples=12, seed=0):
    rng = np.random.default_rng(seed)
    size = (examples,) + tuple(3 if d == "T" else d for d in shape[1:])
    x = rng.normal(size=size) * 2 + 0.5
    return {"x": x, "y": np.tanh(x[..., :2] * 1.5 - x[..., 2:])}


def recorded_steps(module):
    """Wraps the module's training step so that each minibatch it is given is recorded."""
    batches, step, step_in_place = [], module._gradients, module._gradients_in_place

    def recording(xp, *arguments):
        batches.append(dict(zip(module.GRADIENT_ARGS, (np.array(a) for a in arguments))))
        return step(xp, *arguments)

    def recording_in_place(buffers, xp, *arguments):  # the step train() takes on NumPy arrays
        batches.append(dict(zip(module.GRADIENT_ARGS, (np.array(a) for a in arguments))))
        return step_in_place(buffers, xp, *arguments)
    module._gradients, module._gradients_in_place = recording, recording_in_place
    return batches


SHAPES = [(None, 3), (None, "T", 3)]
OPTIONS = [{}, {"momentum": 0.3, "eps": 1e-3}]


@pytest.mark.parametrize("options", OPTIONS, ids=["defaults", "momentum 0.3"])
@pytest.mark.parametrize("shape", SHAPES, ids=["N C", "N T C"])
def test_three_sgd_steps_give_pytorchs_params_and_running_statistics(shape, options):
    m = loaded(network(shape, **options))
    params, data = m.init_params(1), data_for(shape)
    model = torch_copy(params, options.get("momentum", 0.1), options.get("eps", 1e-5))
    batches = recorded_steps(m)
    trained, _ = m.train(params, data, epochs=1, lr=LR, batch_size=4, seed=2)
    assert len(batches) == 3 and all(len(b["x"]) == 4 for b in batches)
    sgd = torch.optim.SGD(model.parameters(), lr=LR)
    for batch in batches:  # the same minibatches, in the same order
        sgd.zero_grad()
        p = torch_forward(model, torch.tensor(batch["x"]))
        torch.mean((p - torch.tensor(batch["y"])) ** 2).backward()
        sgd.step()
    assert set(trained) == set(m.PARAMS) | set(m.BUFFERS)
    for name, want in torch_params(model).items():
        np.testing.assert_allclose(trained[name], want.detach().numpy(), rtol=1e-10, atol=1e-10, err_msg=name)
    assert not np.allclose(trained["bn_running_mean"], 0) and not np.allclose(trained["bn_running_var"], 1)

    model.eval()  # inference: forward, predict and evaluate normalise with the running statistics
    x = torch.tensor(data["x"])
    want = torch_forward(model, x).detach().numpy()
    np.testing.assert_allclose(m.forward(**data, **trained)["p"], want, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(m.predict(trained, {"x": data["x"]})["p"], want, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(m.evaluate(trained, data)["loss"], np.mean((want - data["y"]) ** 2), rtol=1e-10)
    one = m.forward(x=data["x"][:1], **trained)["p"]  # one example: no batch statistic needed
    np.testing.assert_allclose(one, want[:1], rtol=1e-10, atol=1e-10)

    model.train()  # training mode: the batch's own statistics, as gradients() uses
    want = torch_forward(copy.deepcopy(model), x).detach().numpy()
    np.testing.assert_allclose(m.forward(training=True, x=data["x"], **{k: trained[k] for k in m.PARAMS})["p"], want,
                               rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(m.gradients(**data, **trained)[0]["p"], want, rtol=1e-10, atol=1e-10)


def test_the_buffers_are_declared_initialised_and_never_trained():
    m = loaded(network((None, 3)))
    assert m.BUFFERS == {"bn_running_mean": (4,), "bn_running_var": (4,)}
    assert m.RUNNING_MOMENTUM == {"bn_running_mean": 0.1, "bn_running_var": 0.1}
    assert not set(m.BUFFERS) & (set(m.PARAMS) | set(m.TRAINED) | set(m.WRT) | set(m.GRADIENT_ARGS))
    params = m.init_params(0)
    np.testing.assert_array_equal(params["bn_running_mean"], np.zeros(4))
    np.testing.assert_array_equal(params["bn_running_var"], np.ones(4))
    assert params["bn_running_var"].dtype == np.float64
    assert set(m.gradients(**data_for((None, 3)), **params)[1]) == set(m.TRAINED)


def test_save_and_load_keep_the_buffers_and_a_file_without_them_is_refused(tmp_path):
    m = loaded(network((None, 3)))
    data = data_for((None, 3))
    trained, _ = m.train(m.init_params(0), data, epochs=2, lr=LR, batch_size=4)
    path = m.save_params(tmp_path / "p.npz", trained)
    with np.load(path) as stored:
        assert set(stored.files) == set(m.PARAMS) | set(m.BUFFERS)
    back = m.load_params(path)
    for name in list(m.PARAMS) + list(m.BUFFERS):
        np.testing.assert_array_equal(back[name], trained[name])
    np.testing.assert_array_equal(m.forward(**data, **back)["p"], m.forward(**data, **trained)["p"])
    np.savez(tmp_path / "old.npz", **{name: trained[name] for name in m.PARAMS})
    with pytest.raises(ValueError, match=r"old.npz: load_params\(\) is missing array\(s\) bn_running_mean, "
                                         r"bn_running_var \(batch norm's running statistics"):
        m.load_params(tmp_path / "old.npz")


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_an_interrupted_run_resumed_ends_with_the_buffers_of_an_uninterrupted_one(tmp_path, optimizer):
    m = loaded(network((None, 3)))
    data = data_for((None, 3), examples=40)
    common = {"epochs": 5, "lr": 0.05, "batch_size": 8, "seed": 3, "optimizer": optimizer, "validation": 0.2}
    whole, whole_losses = m.train(m.init_params(0), data, **common)

    def stop_after_two(record):
        if record["epoch"] == 2:
            raise KeyboardInterrupt
    out = tmp_path / "run.npz"
    with pytest.raises(m.TrainingInterrupted):
        m.train(m.init_params(0), data, out=out, on_epoch=stop_after_two, **common)
    run = m.load_run(out)
    assert set(run["moments"]) == set(m.PARAMS)  # no optimizer state for the buffers
    with np.load(out) as stored:
        assert not [key for key in stored.files if key.startswith("run:") and "running" in key]
    resumed, losses = m.train(None, data, resume=run, **common)
    for name in list(m.PARAMS) + list(m.BUFFERS):
        np.testing.assert_array_equal(resumed[name], whole[name], err_msg=name)
    assert losses == whole_losses


def test_forward_names_the_missing_buffers_and_training_mode_needs_none():
    m = loaded(network((None, 3)))
    params, data = m.init_params(0), data_for((None, 3))
    weights = {name: params[name] for name in m.PARAMS}
    with pytest.raises(TypeError, match=r"forward\(\) is missing array\(s\) bn_running_mean, bn_running_var "
                                        r"\(batch norm's running statistics.*training=True"):
        m.forward(**data, **weights)
    assert m.forward(training=True, **data, **weights)["p"].shape == (12, 2)
    assert m.forward(training=True, **data, **params)["p"].shape == (12, 2)  # buffers given are not read
    # fresh buffers (mean 0, variance 1) make inference the affine map of x itself
    h = data["x"] @ params["W1"] + params["b1"]
    want = np.tanh(params["gamma"] * h / np.sqrt(1 + 1e-5) + params["beta"]) @ params["W2"] + params["b2"]
    np.testing.assert_allclose(m.forward(**data, **params)["p"], want, rtol=1e-12)
    assert m.forward(x=data["x"], **params).keys() == {"p"}  # an output needing an absent input is left out


def test_momentum_and_names_are_checked():
    g = gc.Graph("bad")
    x, gamma, beta = g.input("x", (None, 3)), g.param("gamma", (3,)), g.param("beta", (3,))
    for momentum in (-0.1, 1.5, True, "0.1", float("nan")):
        with pytest.raises(gc.GraphError, match=r"batch_norm: momentum must be a number in \[0, 1\]"):
            gc.batch_norm(x, gamma, beta, momentum=momentum)
    with pytest.raises(gc.GraphError, match="batch_norm: its running statistics are named after gamma"):
        gc.batch_norm(x, gamma * 2, beta)
    g.output("a", gc.batch_norm(x, gamma, beta))
    with pytest.raises(gc.GraphError, match="buffer name 'gamma_running_mean' is already used .* its own name="):
        g.output("b", gc.batch_norm(x, gamma, beta, eps=1e-3))
    g.output("c", gc.batch_norm(x, gamma, beta, eps=1e-3, name="second"))
    assert list(g.buffers) == ["gamma_running_mean", "gamma_running_var", "second_running_mean", "second_running_var"]
    with pytest.raises(gc.GraphError, match="name 'second_running_var' is already used"):
        g.param("second_running_var", (3,))


def test_a_spec_sets_momentum_and_its_module_has_the_buffers(tmp_path):
    path = tmp_path / "bn.toml"
    path.write_text(textwrap.dedent('''
        [model]
        name = "bn_spec"
        loss = "loss"

        [inputs]
        x = ["N", 3]
        y = ["N", 2]

        [params]
        W = { shape = [3, 2] }
        g1 = { shape = [2], init = "zeros" }
        b1 = { shape = [2], init = "zeros" }

        [outputs]
        p = "batch_norm(x @ W, g1, b1, momentum=0.25, name='norm')"
        loss = "mean((p - y) ** 2)"
    '''), encoding="utf-8")
    parsed = spec.load(path)
    assert list(parsed.graph.buffers) == ["norm_running_mean", "norm_running_var"]
    m = gc.compile(parsed.graph, loss="loss").load()
    assert m.RUNNING_MOMENTUM == {"norm_running_mean": 0.25, "norm_running_var": 0.25}
    data = data_for((None, 3))
    trained, _ = m.train(m.init_params(0), data, epochs=1, lr=LR, batch_size=12)
    x = data["x"] @ m.init_params(0)["W"]
    np.testing.assert_allclose(trained["norm_running_mean"], 0.25 * x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(trained["norm_running_var"], 0.75 + 0.25 * x.var(axis=0, ddof=1), rtol=1e-12)


def test_dropout_and_batch_norm_are_in_eval_mode_in_evaluate():
    def built(rate):
        g = gc.Graph("drop")
        x, y = g.input("x", (None, 3)), g.input("y", (None, 2))
        W, gamma, beta = g.param("W", (3, 2)), g.param("gamma", (2,)), g.param("beta", (2,), init="zeros")
        h = gc.batch_norm(gc.dropout(x, rate) @ W, gamma, beta) if rate else gc.batch_norm(x @ W, gamma, beta)
        p = g.output("p", h)
        g.output("loss", gc.mean((p - y) ** 2))
        return loaded(g)
    dropped, plain = built(0.5), built(0)
    data = data_for((None, 3))
    trained, _ = dropped.train(dropped.init_params(0), data, epochs=3, lr=LR, batch_size=4)
    assert not np.allclose(trained["gamma_running_var"], 1)
    scores = dropped.evaluate(trained, data)
    assert scores == dropped.evaluate(trained, data) == plain.evaluate(trained, data)
    np.testing.assert_array_equal(dropped.predict(trained, data)["p"], plain.forward(**data, **trained)["p"])


def test_the_module_is_numpy_only_deterministic_and_compiles(tmp_path):
    first = gc.compile(network((None, "T", 3)), loss="loss")
    second = gc.compile(network((None, "T", 3)), loss="loss")
    assert first.source == second.source
    imports = {line.split()[1] for line in first.source.splitlines() if line.startswith(("import ", "from "))}
    assert imports == {"numpy"}
    path = first.save(tmp_path / "bn_net.py")
    py_compile.compile(str(path), doraise=True)
    assert ("statistics = {'bn_running_mean': xp.reshape(t3, (4,)), 'bn_running_var': xp.reshape(t5, (4,)) * "
            "(t2.shape[0] * t2.shape[1] / (t2.shape[0] * t2.shape[1] - 1))}") in first.source
    assert "def _forward_training(xp, " in first.source and "forward(training=False, **arrays)" in first.source
    plain = gc.compile(network((None, 3)), loss="loss", check_shapes=True)
    module = importlib.util.module_from_spec(source_spec("checked", plain.source))
    module.__spec__.loader.exec_module(module)
    params, data = module.init_params(0), data_for((None, 3))
    assert module.forward(**data, **params)["p"].shape == module.forward(training=True, **data, **params)["p"].shape


def test_a_model_without_batch_norm_has_no_buffers_and_an_unchanged_forward():
    g = gc.Graph("plain")
    x = g.input("x", (None, 3))
    g.output("loss", gc.sum(x @ g.param("W", (3, 2))))
    model = gc.compile(g, loss="loss")
    m = model.load()
    assert m.BUFFERS == {} and "def forward(**arrays):" in model.source and "_forward_training" not in model.source
    assert len(m._gradients(np, np.ones((2, 3)), np.ones((3, 2)))) == 2


def test_an_input_named_training_is_refused_beside_batch_norm():
    g = gc.Graph("clash")
    x, training = g.input("x", (None, 3)), g.input("training", (None, 3))
    gamma, beta = g.param("gamma", (3,)), g.param("beta", (3,))
    g.output("loss", gc.sum(gc.batch_norm(x, gamma, beta) * training))
    with pytest.raises(gc.GraphError, match="none of its inputs or params may be named 'training'"):
        gc.compile(g, loss="loss")


def test_float32_and_a_module_without_the_training_loop_keep_the_modes():
    data = data_for((None, 3))
    m32 = loaded(network((None, 3)), dtype="float32")
    trained, _ = m32.train(m32.init_params(0), data, epochs=2, lr=LR, batch_size=4)
    assert trained["bn_running_var"].dtype == np.float32
    m64 = loaded(network((None, 3)))
    want, _ = m64.train(m64.init_params(0), data, epochs=2, lr=LR, batch_size=4)
    np.testing.assert_allclose(trained["bn_running_var"], want["bn_running_var"], rtol=1e-5)
    bare = loaded(network((None, 3)), runtime=False)
    assert not hasattr(bare, "train")
    params = {name: value.astype(np.float64) for name, value in trained.items()}
    np.testing.assert_allclose(bare.forward(**data, **params)["p"], m64.forward(**data, **params)["p"], rtol=1e-12)
    _, _, statistics = bare._gradients(np, *(np.asarray({**data, **params}[n]) for n in bare.GRADIENT_ARGS))
    h = data["x"] @ params["W1"] + params["b1"]
    np.testing.assert_allclose(statistics["bn_running_mean"], h.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(statistics["bn_running_var"], h.var(axis=0, ddof=1), rtol=1e-12)


def test_batch_norm_inside_a_loop_step_is_refused():
    g = gc.Graph("loop")
    xs, h0 = g.input("xs", (None, "T", 3)), g.input("h0", (None, 3))
    gamma, beta = g.param("gamma", (3,)), g.param("beta", (3,))
    h, _ = gc.scan(lambda h, x: (gc.tanh(gc.batch_norm(h + x, gamma, beta)), None), h0, xs, axis=1)
    g.output("loss", gc.sum(h))
    with pytest.raises(gc.GraphError, match=r"batch_norm inside a loop's step \(gc.scan\): its running statistics "
                                            r"\(gamma_running_mean, gamma_running_var\)"):
        gc.compile(g, loss="loss")
