"""gc.lstm and gc.gru against torch.nn.LSTM and torch.nn.GRU in float64: the same weights copied over,
forward values and every gradient (weights, biases, the sequence, the initial state) to 1e-10."""
import numpy as np
import pytest

import graphcomp as gc

import torch  # noqa: E402 - in the test extra

D, H = 3, 4


def torch_run(layer, xs, init, weights):
    """torch's outputs and the gradients of sum(outputs * w_out) + sum(final * w_final)."""
    x = torch.tensor(xs, requires_grad=True)
    states = tuple(torch.tensor(s[None], requires_grad=True) for s in init)
    out, final = layer(x, states if len(states) > 1 else states[0])
    finals = final if isinstance(final, tuple) else (final,)
    loss = (out * torch.tensor(weights[0])).sum() + sum((f[0] * torch.tensor(w)).sum() for f, w in zip(finals, weights[1:]))
    loss.backward()
    grads = {"xs": x.grad.numpy()} | {f"init{k}": s.grad[0].numpy() for k, s in enumerate(states)}
    for name, param in layer.named_parameters():
        grads[name.removesuffix("_l0")] = param.grad.numpy()
    return out.detach().numpy(), [f[0].detach().numpy() for f in finals], grads


def graphcomp_model(kind, length):
    g = gc.Graph(kind)
    xs = g.input("xs", ("T" if length is None else length, None, D))
    states = [g.input(f"init{k}", (None, H)) for k in range(2 if kind == "lstm" else 1)]
    w_out = g.input("w_out", ("T" if length is None else length, None, H))
    w_final = [g.input(f"w_final{k}", (None, H)) for k in range(len(states))]
    if kind == "lstm":
        hs, finals = gc.lstm(g, xs, H, name="rnn", init=tuple(states))
    else:
        hs, final = gc.gru(g, xs, H, name="rnn", init=states[0])
        finals = (final,)
    g.output("hs", hs)
    for k, f in enumerate(finals):
        g.output(f"final{k}", f)
    g.output("loss", gc.sum(hs * w_out) + sum(gc.sum(f * w) for f, w in zip(finals, w_final)))
    return gc.compile(g, loss="loss", wrt=["xs", *[s.name for s in states], "rnn_weight_ih", "rnn_weight_hh",
                                           "rnn_bias_ih", "rnn_bias_hh"], runtime=False).load()


MODELS = {}


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("length", [1, 7, 200])
@pytest.mark.parametrize("batch", [1, 5])
def test_the_layer_computes_what_pytorch_computes(kind, length, batch):
    torch.manual_seed(length * 10 + batch)
    layer = (torch.nn.LSTM if kind == "lstm" else torch.nn.GRU)(D, H).double()
    rng = np.random.default_rng(length + batch)
    xs = rng.normal(size=(length, batch, D))
    init = [rng.normal(size=(batch, H)) for _ in range(2 if kind == "lstm" else 1)]
    weights = [rng.normal(size=(length, batch, H))] + [rng.normal(size=(batch, H)) for _ in init]
    out, finals, want = torch_run(layer, xs, init, weights)
    if kind not in MODELS:  # one module, any length
        MODELS[kind] = graphcomp_model(kind, None)
    module = MODELS[kind]
    params = {f"rnn_{name.removesuffix('_l0')}": p.detach().numpy() for name, p in layer.named_parameters()}
    arrays = {"xs": xs, "w_out": weights[0], **{f"init{k}": s for k, s in enumerate(init)},
              **{f"w_final{k}": w for k, w in enumerate(weights[1:])}, **params}
    outputs, grads = module.gradients(**arrays)
    np.testing.assert_allclose(outputs["hs"], out, rtol=1e-10, atol=1e-10)
    for k, final in enumerate(finals):
        np.testing.assert_allclose(outputs[f"final{k}"], final, rtol=1e-10, atol=1e-10)
    for name, value in want.items():
        np.testing.assert_allclose(grads[name if name in grads else f"rnn_{name}"], value, rtol=1e-10, atol=1e-10, err_msg=name)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_zero_initial_state_by_default_and_pytorch_shapes(kind):
    g = gc.Graph(kind)
    xs = g.input("xs", (None, "T", D))
    hs, _ = getattr(gc, kind)(g, xs, H, name="cell", axis=1)
    g.output("hs", hs)
    gates = 4 if kind == "lstm" else 3
    assert {name: p.shape for name, p in g.params.items()} == {
        "cell_weight_ih": (gates * H, D), "cell_weight_hh": (gates * H, H), "cell_bias_ih": (gates * H,), "cell_bias_hh": (gates * H,)}
    module = gc.compile(g, runtime=False).load()
    torch.manual_seed(0)
    layer = (torch.nn.LSTM if kind == "lstm" else torch.nn.GRU)(D, H, batch_first=True).double()
    xs_value = np.random.default_rng(0).normal(size=(2, 9, D))
    params = {f"cell_{name.removesuffix('_l0')}": p.detach().numpy() for name, p in layer.named_parameters()}
    got = module.forward(xs=xs_value, **params)["hs"]
    np.testing.assert_allclose(got, layer(torch.tensor(xs_value))[0].detach().numpy(), rtol=1e-10, atol=1e-10)


def test_the_lstm_example_learns_the_adding_problem(tmp_path):
    """examples/lstm_adding.py trains with the generated loops: a task that needs memory over 20 steps."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).parents[1] / "examples"))
    import lstm_adding
    test_loss, baseline = lstm_adding.main(tmp_path)
    assert test_loss < 0.01 < baseline / 10
    assert (tmp_path / "lstm_adding_model.py").exists()
