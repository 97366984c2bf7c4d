"""The two language-model examples, examples/bengio_lm.py (an MLP over three letters with batch norm) and
examples/tiny_gpt.py (two transformer blocks, weight-tied output, dropout), against PyTorch's autograd in
float64: a full training step (loss and every gradient, to 1e-10) with the weights copied both ways,
graphcomp's init into PyTorch modules and PyTorch's own init into graphcomp; the tiny GPT with dropout on,
PyTorch multiplying by the very masks the generated code drew; three optimizer steps of the generated
`train` with each example's own settings (AdamW, clipping and warm-up for the GPT) against torch.optim.
Then each example's main() at a small size: its loss goes down and it samples names."""
import functools
import math
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import graphcomp as gc

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
sys.path.insert(0, str(EXAMPLES))
import bengio_lm  # noqa: E402 - the examples themselves
import tiny_gpt  # noqa: E402

TOLERANCE = dict(rtol=1e-10, atol=1e-10)
NAMES = bengio_lm.read_names()


@functools.cache
def module(example: str, dropout: float | None = None):
    """The example's generated module (the tiny GPT at another dropout rate when given)."""
    if example == "bengio_lm":
        return gc.compile(bengio_lm.build(), loss="loss").load()
    graph = tiny_gpt.build() if dropout is None else tiny_gpt.build(dropout=dropout)
    return gc.compile(graph, loss="loss").load()


# ---- the same models written with torch.nn --------------------------------------------------------

class TorchBengio(nn.Module):
    def __init__(self):
        super().__init__()
        self.C = nn.Embedding(bengio_lm.VOCAB, bengio_lm.EMBED)
        self.hidden = nn.Linear(bengio_lm.CONTEXT * bengio_lm.EMBED, bengio_lm.HIDDEN, bias=False)
        self.bn = nn.BatchNorm1d(bengio_lm.HIDDEN)
        self.out = nn.Linear(bengio_lm.HIDDEN, bengio_lm.VOCAB)

    def forward(self, context):
        x = self.C(context).flatten(1)
        return self.out(torch.tanh(self.bn(self.hidden(x))))


class TorchGPT(nn.Module):
    """GPT-2's layout: pre-layer-norm blocks, causal attention, GELU (tanh form), a tied output layer.
    `masks`, when given, are the dropout masks to multiply by, in the order the layers apply them."""

    def __init__(self, dropout: float = 0.0):
        super().__init__()
        width, context, self.dropout = tiny_gpt.WIDTH, tiny_gpt.CONTEXT, dropout
        self.wte, self.wpe = nn.Embedding(tiny_gpt.VOCAB, width), nn.Embedding(context, width)
        for k in range(tiny_gpt.LAYERS):
            setattr(self, f"h{k}_ln1", nn.LayerNorm(width))
            setattr(self, f"h{k}_attn", nn.Linear(width, 3 * width))
            setattr(self, f"h{k}_proj", nn.Linear(width, width))
            setattr(self, f"h{k}_ln2", nn.LayerNorm(width))
            setattr(self, f"h{k}_fc", nn.Linear(width, 4 * width))
            setattr(self, f"h{k}_fc2", nn.Linear(4 * width, width))
        self.ln_f = nn.LayerNorm(width)

    def forward(self, ids, masks=None):
        masks = iter(masks) if masks is not None else None

        def drop(x):
            return x * next(masks) if masks is not None else F.dropout(x, self.dropout, self.training)
        n, t = ids.shape
        x = drop(self.wte(ids) + self.wpe(torch.arange(t)))
        for k in range(tiny_gpt.LAYERS):
            layer = functools.partial(getattr, self)
            q, key, v = layer(f"h{k}_attn")(layer(f"h{k}_ln1")(x)).split(tiny_gpt.WIDTH, dim=2)
            q, key, v = (z.reshape(n, t, tiny_gpt.HEADS, -1).transpose(1, 2) for z in (q, key, v))
            y = F.scaled_dot_product_attention(q, key, v, is_causal=True).transpose(1, 2).reshape(n, t, -1)
            x = x + drop(layer(f"h{k}_proj")(y))
            x = x + drop(layer(f"h{k}_fc2")(F.gelu(layer(f"h{k}_fc")(layer(f"h{k}_ln2")(x)), approximate="tanh")))
        return F.linear(self.ln_f(x), self.wte.weight)  # the embedding table is the output layer


def graphcomp_name(key: str) -> str:
    """A torch parameter's name as graphcomp's param (`h0_attn.weight` is `h0_attn_weight`)."""
    return {"wte.weight": "wte", "wpe.weight": "wpe"}.get(key, key.replace(".", "_"))


def trained(model: nn.Module) -> dict:
    return {graphcomp_name(key): value for key, value in model.named_parameters()}


def torch_model(example: str, params: dict | None = None, dropout: float = 0.0) -> nn.Module:
    """The torch model in float64, with graphcomp's params copied in (or its own init, seed 0)."""
    torch.manual_seed(0)
    model = (TorchBengio() if example == "bengio_lm" else TorchGPT(dropout)).double()
    if params is not None:
        with torch.no_grad():
            for name, value in trained(model).items():
                value.copy_(torch.from_numpy(params[name]))
    return model


def torch_params(model: nn.Module) -> dict:
    """graphcomp's params from a torch model's own (copied, NumPy)."""
    return {name: value.detach().numpy().copy() for name, value in trained(model).items()}


def batch(example: str, size: int, seed: int = 0) -> dict:
    data = (bengio_lm.examples if example == "bengio_lm" else tiny_gpt.examples)(NAMES[::7])
    rows = np.random.default_rng(seed).choice(len(next(iter(data.values()))), size, replace=False)
    return {name: value[rows] for name, value in data.items()}


def torch_loss(example: str, model: nn.Module, data: dict, masks=None):
    if example == "bengio_lm":
        return F.cross_entropy(model(torch.from_numpy(data["context"])), torch.from_numpy(data["next"]))
    logits = model(torch.from_numpy(data["ids"]), masks)
    return F.cross_entropy(logits.reshape(-1, tiny_gpt.VOCAB), torch.from_numpy(data["targets"]).reshape(-1))


def initial(example: str, m, init: str) -> dict:
    if init == "graphcomp":
        return (bengio_lm if example == "bengio_lm" else tiny_gpt).initial_params(m, seed=3)
    return torch_params(torch_model(example))


def same_step(example, m, params, data, torch_model_, got_loss, got_grads, masks=None) -> None:
    """graphcomp's loss and gradients are PyTorch's, to 1e-10, and no gradient is all zeros."""
    loss = torch_loss(example, torch_model_, data, masks)
    want = dict(zip(trained(torch_model_), torch.autograd.grad(loss, list(trained(torch_model_).values()))))
    assert set(got_grads) == set(want) <= set(params)
    np.testing.assert_allclose(got_loss, loss.item(), **TOLERANCE)
    for name, value in want.items():
        np.testing.assert_allclose(got_grads[name], value.numpy(), **TOLERANCE, err_msg=name)
        assert np.abs(value.numpy()).max() > 1e-8, name


# ---- one training step, both ways ----------------------------------------------------------------

@pytest.mark.parametrize("init", ["graphcomp", "torch"], ids=["graphcomp's init", "torch's init"])
def test_the_bengio_models_step_is_pytorchs(init):
    m = module("bengio_lm")
    params, data = initial("bengio_lm", m, init), batch("bengio_lm", 200)
    outputs, grads = m.gradients(**data, **params)
    same_step("bengio_lm", m, params, data, torch_model("bengio_lm", params), outputs["loss"], grads)


@pytest.mark.parametrize("init", ["graphcomp", "torch"], ids=["graphcomp's init", "torch's init"])
def test_the_tiny_gpts_step_is_pytorchs_without_dropout(init):
    m = module("tiny_gpt")  # dropout 0.1, which gradients() leaves off, as PyTorch's eval() does
    params, data = initial("tiny_gpt", m, init), batch("tiny_gpt", 12)
    outputs, grads = m.gradients(**data, **params)
    model = torch_model("tiny_gpt", params, dropout=tiny_gpt.DROPOUT)
    model.eval()
    same_step("tiny_gpt", m, params, data, model, outputs["loss"], grads)
    assert grads["wte"].shape == (tiny_gpt.VOCAB, tiny_gpt.WIDTH)  # the table's gradient: lookup and output layer


class Recording:
    """A NumPy generator that keeps every array of uniform numbers it hands out (the dropout draws)."""

    def __init__(self, seed):
        self.rng, self.draws = np.random.default_rng(seed), []

    def random(self, shape):
        self.draws.append(self.rng.random(shape))
        return self.draws[-1]


@pytest.mark.parametrize("init", ["graphcomp", "torch"], ids=["graphcomp's init", "torch's init"])
def test_the_tiny_gpts_training_step_with_dropout_is_pytorchs_with_the_same_masks(init):
    m = module("tiny_gpt")
    assert m.USES_DROPOUT
    params, data = initial("tiny_gpt", m, init), batch("tiny_gpt", 12, seed=1)
    arguments = [data[name] if name in data else params[name] for name in m.GRADIENT_ARGS]
    rng = Recording(5)
    outputs, grads = m._gradients(rng, m._namespace(arguments), *arguments)  # the step train() takes
    rate = tiny_gpt.DROPOUT
    masks = [torch.from_numpy((draw >= rate).astype(np.float64) / (1 - rate)) for draw in rng.draws]
    assert len(masks) == 1 + 2 * tiny_gpt.LAYERS and all(mask.shape == (12, 16, 64) for mask in masks)
    assert 0.05 < float(np.mean([(mask == 0).float().mean() for mask in masks])) < 0.15
    model = torch_model("tiny_gpt", params)
    same_step("tiny_gpt", m, params, data, model, outputs["loss"], grads, masks)
    no_dropout, _ = m.gradients(**data, **params)
    assert abs(no_dropout["loss"] - outputs["loss"]) > 1e-3  # the masks did change the step


# ---- three optimizer steps of the generated train() -----------------------------------------------

def torch_schedule(settings: dict, steps: int):
    """The learning-rate factor of optimizer step k: the warm-up, then the cosine per step (as the
    training settings describe them), or the cosine over epochs of one step each without a warm-up."""
    warmup = settings.get("warmup", 0)

    def factor(k):
        if settings.get("schedule") != "cosine":
            return min(1.0, (k + 1) / warmup) if warmup else 1.0
        if not warmup:
            return 0.5 * (1 + math.cos(math.pi * k / steps))
        return 0.5 * (1 + math.cos(math.pi * max(0, k - warmup) / max(1, steps - warmup))) * min(1.0, (k + 1) / warmup)
    return factor


def torch_training(example: str, model: nn.Module, data: dict, settings: dict, steps: int) -> list[float]:
    """`steps` full-batch steps of torch.optim with the example's settings: clipping, then the update."""
    kind = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[settings["optimizer"]]
    options = {"weight_decay": settings["weight_decay"]} if "weight_decay" in settings else {}
    optimizer = kind(model.parameters(), lr=settings["lr"], betas=(0.9, 0.999), eps=1e-8, **options)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, torch_schedule(settings, steps))
    norms = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = torch_loss(example, model, data)
        loss.backward()
        if settings.get("clip") is not None:
            norms.append(float(nn.utils.clip_grad_norm_(model.parameters(), settings["clip"])))
        optimizer.step()
        schedule.step()
    return norms


@pytest.mark.parametrize("example", ["bengio_lm", "tiny_gpt"])
def test_three_steps_of_the_examples_training_are_torch_optims(example):
    source = bengio_lm if example == "bengio_lm" else tiny_gpt
    m = module(example, None if example == "bengio_lm" else 0.0)  # the GPT without dropout: no random masks
    data = batch(example, 96 if example == "bengio_lm" else 16, seed=2)
    settings = dict(source.training, batch_size=len(next(iter(data.values()))))  # one step per epoch
    if example == "tiny_gpt":
        settings |= {"warmup": 2, "clip": 0.5, "weight_decay": 0.1}  # the warm-up, the clipping and the decay all act
    params = source.initial_params(m, seed=1)
    got, losses = m.train(params, data, epochs=3, seed=0, **settings)
    model = torch_model(example, params)
    model.train()
    norms = torch_training(example, model, data, settings, steps=3)
    assert len(losses) == 3 and losses[2] < losses[0]
    if settings.get("clip") is not None:
        assert min(norms) > settings["clip"]  # every step was clipped
    for name, value in torch_params(model).items():
        np.testing.assert_allclose(got[name], value, **TOLERANCE, err_msg=name)
        assert np.abs(got[name] - params[name]).max() > 1e-6, name  # every param moved
    buffers = {graphcomp_name(key): value.numpy() for key, value in model.named_buffers() if "running" in key}
    assert set(got) == set(params) == set(torch_params(model)) | set(buffers)
    for name, value in buffers.items():  # batch norm's running mean and variance, blended at each step
        np.testing.assert_allclose(got[name], value, **TOLERANCE, err_msg=name)
        assert np.abs(got[name] - params[name]).max() > 1e-3, name


# ---- the examples, small ---------------------------------------------------------------------------

def test_the_examples_stream_of_names():
    data = tiny_gpt.examples(["ab", "c"], context=4)
    assert data["ids"].tolist() == [[0, 1, 2, 0], [0, 3, 0, 1]]
    assert data["targets"].tolist() == [[1, 2, 0, 3], [3, 0, 1, 2]]
    pairs = bengio_lm.examples(["ab"])
    assert pairs["context"].tolist() == [[0, 0, 0], [0, 0, 1], [0, 1, 2]] and pairs["next"].tolist() == [1, 2, 0]


def test_the_gpts_logits_at_a_position_ignore_the_later_ones():
    """What sampling relies on: the letters after position k change no logit at positions <= k."""
    m = module("tiny_gpt")
    params = tiny_gpt.initial_params(m, seed=2)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, tiny_gpt.VOCAB, size=(2, tiny_gpt.CONTEXT))
    changed = ids.copy()
    changed[:, 6:] = rng.integers(0, tiny_gpt.VOCAB, size=(2, tiny_gpt.CONTEXT - 6))
    a, b = (m.forward(ids=x, **params)["logits"] for x in (ids, changed))
    np.testing.assert_array_equal(a[:, :6], b[:, :6])
    assert np.abs(a[:, 6:] - b[:, 6:]).max() > 1e-3


@pytest.mark.parametrize("example", ["bengio_lm", "tiny_gpt"])
def test_the_example_trains_and_samples_names(example, tmp_path, capsys):
    source = bengio_lm if example == "bengio_lm" else tiny_gpt
    small = {"bengio_lm": dict(epochs=2, names=NAMES[::4]), "tiny_gpt": dict(epochs=3, names=NAMES[::8], warmup=10)}
    result = source.main(tmp_path, **small[example])
    printed = capsys.readouterr().out
    assert result["losses"][-1] < result["losses"][0] < result["start"]
    assert result["validation"] < result["start"] - 0.3 and result["train"] < result["start"] - 0.3
    assert len(result["names"]) == 10 and all(re.fullmatch(r"[a-z]{1,30}", name) for name in result["names"])
    assert len(set(result["names"])) > 5
    assert "sampled names: " + ", ".join(result["names"]) in printed and "final loss" in printed
    assert (tmp_path / f"{example}_model.py").exists() and (tmp_path / f"{example}_params.npz").exists()
    again = source.sample(module(example), result_params(tmp_path, example), seed=0)
    assert again == result["names"]  # the same seed, the same names: sampling is reproducible


def result_params(folder: Path, example: str) -> dict:
    with np.load(folder / f"{example}_params.npz") as saved:
        return {name: saved[name] for name in saved.files}


# ---- the benchmark's peers ---------------------------------------------------------------------------

def test_the_benchmarks_peers_compute_the_examples_loss_and_gradients():
    """benchmarks/bench_lm.py times PyTorch and JAX steps of both examples: here they are checked to give
    graphcomp's loss and gradients (dropout off) to 1e-10, as the benchmark checks them before timing."""
    import jax

    sys.path.insert(0, str(EXAMPLES.parent / "benchmarks"))
    import bench_lm

    x64 = jax.config.jax_enable_x64
    try:
        for example in ("bengio_lm", "tiny_gpt"):
            module, params, data = bench_lm.workload(example, "float64", 8)
            outputs, grads = module.gradients(**data, **params)
            for peer in (bench_lm.torch_step, bench_lm.jax_step):
                got = peer(example, module, params, data, "float64", dropout=False)()
                assert bench_lm.difference(got, (outputs["loss"], grads)) < 1e-10, (example, peer.__name__)
            first = next(iter(grads))
            assert bench_lm.difference(got, (outputs["loss"], {**grads, first: grads[first] * 1.001})) > 1e-4
    finally:
        jax.config.update("jax_enable_x64", x64)
