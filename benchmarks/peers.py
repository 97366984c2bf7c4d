"""The other libraries' training steps that bench_step.py times beside the generated module.

Each builder returns an `epoch()` callable doing one epoch of the same minibatch SGD (shuffle, slice,
forward, backward, update) as the hand-written NumPy loop, or None where the library is not installed
(`pip install -e '.[bench]'` installs them). They compute in the dtype asked for, on the CPU, and are
set up (compiled, traced) outside the timing.
"""
import numpy as np

LR = 0.01


def _module(name):
    try:
        return __import__(name)
    except ImportError:
        return None


def mlp_weights(sizes, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [((rng.normal(size=(a, b)) * 0.1).astype(dtype), np.zeros(b, dtype=dtype))
            for a, b in zip(sizes[:-1], sizes[1:])]


def _epoch_over(step, size, batch, seed=0):
    """An epoch of `step(rows)` over shuffled minibatches of `size` examples."""
    rng = np.random.default_rng(seed)

    def epoch():
        order = rng.permutation(size)
        for start in range(0, size, batch):
            step(order[start:start + batch])
    return epoch


# ---------------------------------------------------------------------------------------------- JAX

def jax_mlp(sizes, activation, data, batch, dtype):
    """The MLP step in JAX (jit; x64 for float64)."""
    if _module("jax") is None:
        return None
    import jax
    import jax.numpy as jnp
    jax.config.update("jax_enable_x64", dtype == "float64")
    act = jax.nn.sigmoid if activation == "sigmoid" else jax.nn.relu

    def loss(params, x, labels):
        h = x
        for W, b in params[:-1]:
            h = act(h @ W + b)
        logits = h @ params[-1][0] + params[-1][1]
        return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(len(x)), labels])

    @jax.jit
    def sgd(params, x, labels):
        return jax.tree_util.tree_map(lambda p, g: p - LR * g, params, jax.grad(loss)(params, x, labels))

    state = {"params": [tuple(jnp.asarray(a) for a in layer) for layer in mlp_weights(sizes, dtype)]}
    x, labels = jnp.asarray(data["x"]), jnp.asarray(data["labels"].astype(int))
    jax.block_until_ready(sgd(state["params"], x[:batch], labels[:batch]))  # compile outside the timing

    def step(rows):
        state["params"] = sgd(state["params"], x[rows], labels[rows])
    epoch = _epoch_over(step, len(x), batch)
    return lambda: (epoch(), jax.block_until_ready(state["params"]))


# ------------------------------------------------------------------------------------------ PyTorch

def _torch():
    torch = _module("torch")
    if torch is not None:
        torch.set_num_threads(2)
    return torch


def _torch_step(torch, params, loss_of, data):
    """An SGD step in eager PyTorch: autograd backward, then an in-place update without autograd."""
    tensors = {name: torch.from_numpy(np.ascontiguousarray(value)) for name, value in data.items()}

    def step(rows):
        index = torch.from_numpy(rows)
        loss = loss_of({name: value[index] for name, value in tensors.items()})
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for p, g in zip(params, grads):
                p.sub_(LR * g)
    return step


def torch_mlp(sizes, activation, data, batch, dtype):
    """The MLP step in eager PyTorch (CPU)."""
    torch = _torch()
    if torch is None:
        return None
    params = [torch.from_numpy(a).requires_grad_() for layer in mlp_weights(sizes, dtype) for a in layer]
    act = torch.sigmoid if activation == "sigmoid" else torch.relu

    def loss_of(batch_data):
        h = batch_data["x"]
        for k in range(0, len(params) - 2, 2):
            h = act(h @ params[k] + params[k + 1])
        logits = h @ params[-2] + params[-1]
        return torch.nn.functional.cross_entropy(logits, batch_data["labels"])
    data = {"x": data["x"], "labels": data["labels"].astype(np.int64)}
    return _epoch_over(_torch_step(torch, params, loss_of, data), len(data["x"]), batch)


def torch_cnn(data, batch, dtype):
    """The CNN step of the lecture notes on convolutional networks in eager PyTorch (CPU)."""
    torch = _torch()
    if torch is None:
        return None
    rng = np.random.default_rng(0)
    params = [torch.from_numpy(a.astype(dtype)).requires_grad_() for a in (
        rng.normal(size=(8, 1, 3, 3)) * 0.3, np.zeros(8), rng.normal(size=(8 * 14 * 14, 10)) * 0.03, np.zeros(10))]
    F = torch.nn.functional

    def loss_of(batch_data):
        pooled = F.max_pool2d(F.relu(F.conv2d(batch_data["x"], params[0], params[1], padding=1)), 2)
        return F.cross_entropy(pooled.flatten(1) @ params[2] + params[3], batch_data["labels"])
    data = {"x": data["x"], "labels": data["labels"].astype(np.int64)}
    return _epoch_over(_torch_step(torch, params, loss_of, data), len(data["x"]), batch)


def torch_rnn(data, batch, dtype, hidden=64):
    """The unrolled RNN step in eager PyTorch (CPU), written as the same loop of tanh cells."""
    torch = _torch()
    if torch is None:
        return None
    rng = np.random.default_rng(0)
    inputs = data["x"].shape[2]
    params = [torch.from_numpy(a.astype(dtype)).requires_grad_() for a in (
        rng.normal(size=(inputs, hidden)) * 0.3, rng.normal(size=(hidden, hidden)) * 0.1, np.zeros(hidden),
        rng.normal(size=(hidden, 1)) * 0.1)]

    def loss_of(batch_data):
        Wx, Wh, bh, Wy = params
        x = batch_data["x"]
        h = torch.tanh(x[:, 0, :] @ Wx + bh)
        for t in range(1, x.shape[1]):
            h = torch.tanh(x[:, t, :] @ Wx + h @ Wh + bh)
        return torch.mean((h @ Wy - batch_data["y"]) ** 2)
    return _epoch_over(_torch_step(torch, params, loss_of, data), len(data["x"]), batch)


# ----------------------------------------------------------------------------------------- PyTensor

def pytensor_mlp(sizes, activation, data, batch, dtype):
    """The MLP step in PyTensor: one compiled function returning nothing, updating shared weights."""
    if _module("pytensor") is None:
        return None
    import pytensor
    import pytensor.tensor as pt
    x, labels = pt.matrix("x", dtype=dtype), pt.lvector("labels")
    params = [pytensor.shared(a) for layer in mlp_weights(sizes, dtype) for a in layer]
    act = pt.sigmoid if activation == "sigmoid" else (lambda a: pt.maximum(a, 0))
    h = x
    for k in range(0, len(params) - 2, 2):
        h = act(h @ params[k] + params[k + 1])
    logits = h @ params[-2] + params[-1]
    log_p = logits - pt.logsumexp(logits, axis=1, keepdims=True)
    loss = -pt.mean(log_p[pt.arange(labels.shape[0]), labels])
    grads = pytensor.grad(loss, params)
    rate = np.asarray(LR, dtype=dtype)  # a Python float would make the float32 update float64
    sgd = pytensor.function([x, labels], [], updates=[(p, p - rate * g) for p, g in zip(params, grads)])
    xs, ys = data["x"], data["labels"].astype(np.int64)
    return _epoch_over(lambda rows: sgd(xs[rows], ys[rows]), len(xs), batch)


MLP_PEERS = {"JAX jit": jax_mlp, "PyTorch": torch_mlp, "PyTensor": pytensor_mlp}
