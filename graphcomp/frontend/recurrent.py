"""Loops as loops: `scan`, and the recurrent layers built on it (`lstm`, `gru`).

`scan(step, init, xs)` calls `step` once, on placeholders for the carry and for one element of each
sequence, and keeps what it builds as the body of one loop node (graphcomp/ops/scan.py): the generated
module runs it as a `for` loop over time, and its gradients as a reversed `for` loop.
"""
from __future__ import annotations

from typing import Any, Callable

from . import dsl
from ..errors import GraphError, ShapeError
from ..ir import Graph, Node, apply, as_node, format_shape
from ..ops.scan import make_loop, placeholder, result, sequence_length, step_shape

__all__ = ["scan", "lstm", "gru"]


def scan(step: Callable, init: Any, xs: Any, *, axis: int = 0, reverse: bool = False,
         checkpoint: int | None = None) -> tuple:
    """Run `step(carry, x_t) -> (carry, y_t)` over the time axis `axis` of `xs`, as jax.lax.scan does.

    `init` (and so the carry) is one value or a tuple of values; `xs` one sequence or a tuple of them,
    all of one length along `axis`; `y_t` one value, a tuple of values, or None. Values from outside
    that the step uses (params) are shared by every step, and their gradients add up over the steps.
    Returns `(final_carry, ys)`: the carry after the last step, in the structure of `init`, and each
    y_t stacked along `axis` (in time order, also when `reverse=True` walks from the last step back).
    With no step at all (length 0) the final carry is `init` and ys are empty.
    `checkpoint=k`: the gradients keep the carries every k steps instead of every value the backward
    loop reads at each step, and compute the steps in between again (memory for time; same numbers).
    """
    if checkpoint is not None and (not isinstance(checkpoint, int) or isinstance(checkpoint, bool) or checkpoint < 1):
        raise GraphError(f"gc.scan: checkpoint must be a whole number of steps >= 1 (or None), got {checkpoint!r}")
    single_carry = not isinstance(init, (tuple, list))
    inits = tuple(as_node(x) for x in ((init,) if single_carry else init))
    single_x = not isinstance(xs, (tuple, list))
    seqs = tuple((xs,) if single_x else xs)
    if not seqs:
        raise GraphError("gc.scan: xs must hold at least one sequence (it gives the number of steps)")
    for k, seq in enumerate(seqs):
        if not isinstance(seq, Node):
            raise GraphError(f"gc.scan: sequence {k} is a {type(seq).__name__}, not a graph value")
    if not isinstance(axis, int) or isinstance(axis, bool):
        raise ShapeError(f"gc.scan: axis must be an int, got {axis!r}")
    axes = []
    for k, seq in enumerate(seqs):
        if not -seq.ndim <= axis < seq.ndim:
            raise ShapeError(f"gc.scan: axis {axis} is out of range for sequence {k} of shape {format_shape(seq.shape)}")
        axes.append(axis % seq.ndim)
    sequence_length(tuple(s.shape for s in seqs), tuple(axes))
    carries = tuple(placeholder(x.shape, f"carry{i}") for i, x in enumerate(inits))
    elements = tuple(placeholder(step_shape(s.shape, a), f"x{k}") for k, (s, a) in enumerate(zip(seqs, axes)))
    returned = step(carries[0] if single_carry else carries, elements[0] if single_x else elements)
    new_carries, ys, single_y = _structure(returned, inits, single_carry)
    y_axes = []
    for j, y in enumerate(ys):
        if not -(y.ndim + 1) <= axis <= y.ndim:
            raise ShapeError(f"gc.scan: output {j} of the step has shape {format_shape(y.shape)}: it cannot be stacked along axis {axis}")
        y_axes.append(axis % (y.ndim + 1))
    loop = make_loop(inits, seqs, carries, elements, new_carries, ys, reverse=reverse, axes=tuple(axes), y_axes=tuple(y_axes),
                     checkpoint=checkpoint)
    finals = tuple(result(loop, index=i) for i in range(len(inits)))
    stacked = tuple(result(loop, index=len(inits) + j) for j in range(len(ys)))
    final = finals[0] if single_carry else finals
    outputs = None if single_y is None else stacked[0] if single_y else stacked
    return final, outputs


def _structure(returned: Any, inits: tuple, single_carry: bool) -> tuple[tuple, tuple, bool | None]:
    """The step's (carry, y) checked against `init`: (new carries, ys, whether y was one value; None
    for no y). A carry of another structure or shape is one error naming the carry and both shapes."""
    if not isinstance(returned, tuple) or len(returned) != 2:
        raise GraphError(f"gc.scan: the step must return a pair (carry, y), got {_described(returned)}")
    carry, y = returned
    if single_carry:
        if isinstance(carry, (tuple, list)):
            raise GraphError(f"gc.scan: the step returned {len(carry)} carries, but init is one value "
                             f"of shape {format_shape(inits[0].shape)}")
        carry = (carry,)
    elif not isinstance(carry, (tuple, list)) or len(carry) != len(inits):
        got = f"{len(carry)} carries" if isinstance(carry, (tuple, list)) else "one carry"
        raise GraphError(f"gc.scan: the step returned {got}, but init holds {len(inits)} "
                         f"(shapes {', '.join(format_shape(x.shape) for x in inits)})")
    new_carries = []
    for i, (start, new) in enumerate(zip(inits, carry)):
        new = as_node(new)
        if tuple(new.shape) != tuple(start.shape):
            raise ShapeError(f"gc.scan: carry {i} starts with shape {format_shape(start.shape)}, "
                             f"but the step returns it with shape {format_shape(new.shape)}")
        new_carries.append(new)
    if y is None:
        return tuple(new_carries), (), None
    single_y = not isinstance(y, (tuple, list))
    ys = tuple(as_node(v) for v in ((y,) if single_y else y))
    return tuple(new_carries), ys, single_y


def _described(value: Any) -> str:
    if isinstance(value, tuple):
        return f"a tuple of {len(value)}"
    return f"a {type(value).__name__}"


def lstm(g: Graph, xs: Node, hidden: int, name: str = "lstm", axis: int = 0, init: tuple | None = None,
         checkpoint: int | None = None) -> tuple:
    """A one-layer LSTM over the sequence `xs` (time along `axis`: (T, N, D) by default, as PyTorch's
    torch.nn.LSTM; axis=1 for (N, T, D)), with PyTorch's params and gate order, so that weights copy
    over as they are: `<name>_weight_ih` (4H, D), `<name>_weight_hh` (4H, H), `<name>_bias_ih` and
    `<name>_bias_hh` (4H,), rows in the order input, forget, cell, output gate.

        i, f, g, o = σ(·), σ(·), tanh(·), σ(·) of x W_ihᵀ + b_ih + h W_hhᵀ + b_hh, split in four
        c' = f c + i g,   h' = o tanh(c')

    `init`: (h0, c0), each (N, H); zeros by default. Returns (hs, (h_T, c_T)), hs stacked along `axis`.
    `checkpoint=k`: as gc.scan's (the gradients keep the state every k steps and compute the rest again).
    """
    W_ih, W_hh, b_ih, b_hh = _recurrent_params(g, name, xs, hidden, 4, axis)
    H = hidden
    # each gate's rows, sliced once before the loop: the step's values are then whole (a slice of a
    # per-step value would make the forward loop save that value for the slice's gradient)
    w_x, w_h, bias = _per_gate(W_ih, W_hh, b_ih + b_hh, 4, H)

    def step(carry, x):
        h, c = carry
        pre = [x @ w_x[k] + h @ w_h[k] + bias[k] for k in range(4)]
        i, f, cell, o = dsl.sigmoid(pre[0]), dsl.sigmoid(pre[1]), dsl.tanh(pre[2]), dsl.sigmoid(pre[3])
        c = f * c + i * cell
        h = o * dsl.tanh(c)
        return (h, c), h

    if init is None:
        zero = _zero_state(xs, axis, b_hh[0:H])
        init = (zero, zero)
    (h, c), hs = scan(step, tuple(init), xs, axis=axis, checkpoint=checkpoint)
    return hs, (h, c)


def gru(g: Graph, xs: Node, hidden: int, name: str = "gru", axis: int = 0, init: Node | None = None,
        checkpoint: int | None = None) -> tuple:
    """A one-layer GRU over the sequence `xs` (time along `axis`, as `lstm`), with PyTorch's params and
    gate order (torch.nn.GRU): `<name>_weight_ih` (3H, D), `<name>_weight_hh` (3H, H), `<name>_bias_ih`
    and `<name>_bias_hh` (3H,), rows in the order reset, update, new.

        r = σ(x W_irᵀ + b_ir + h W_hrᵀ + b_hr),  z = σ(x W_izᵀ + b_iz + h W_hzᵀ + b_hz)
        n = tanh(x W_inᵀ + b_in + r (h W_hnᵀ + b_hn)),  h' = (1 - z) n + z h

    `init`: h0 (N, H); zeros by default. Returns (hs, h_T), hs stacked along `axis`. `checkpoint`: as lstm's.
    """
    W_ih, W_hh, b_ih, b_hh = _recurrent_params(g, name, xs, hidden, 3, axis)
    H = hidden
    w_x, w_h, b_x = _per_gate(W_ih, W_hh, b_ih, 3, H)
    b_h = [b_hh[k * H:(k + 1) * H] for k in range(3)]

    def step(h, x):
        r = dsl.sigmoid(x @ w_x[0] + b_x[0] + h @ w_h[0] + b_h[0])
        z = dsl.sigmoid(x @ w_x[1] + b_x[1] + h @ w_h[1] + b_h[1])
        n = dsl.tanh(x @ w_x[2] + b_x[2] + r * (h @ w_h[2] + b_h[2]))
        h = (1 - z) * n + z * h
        return h, h

    h, hs = scan(step, _zero_state(xs, axis, b_hh[0:H]) if init is None else init, xs, axis=axis,
                 checkpoint=checkpoint)
    return hs, h


def _recurrent_params(g: Graph, name: str, xs: Node, hidden: int, gates: int, axis: int) -> tuple:
    if not isinstance(hidden, int) or isinstance(hidden, bool) or hidden < 1:
        raise GraphError(f"{name}: hidden must be a positive int, got {hidden!r}")
    if not isinstance(xs, Node) or xs.ndim < 2 or not isinstance(xs.shape[-1], int):
        raise GraphError(f"{name}: xs must be a sequence whose last axis has a fixed size, got "
                         f"{format_shape(xs.shape) if isinstance(xs, Node) else type(xs).__name__}")
    size = xs.shape[-1]
    return (g.param(f"{name}_weight_ih", (gates * hidden, size), init="xavier"),
            g.param(f"{name}_weight_hh", (gates * hidden, hidden), init="xavier"),
            g.param(f"{name}_bias_ih", (gates * hidden,), init="zeros"),
            g.param(f"{name}_bias_hh", (gates * hidden,), init="zeros"))


def _per_gate(W_ih: Node, W_hh: Node, bias: Node, gates: int, H: int) -> tuple[list, list, list]:
    """Each gate's input and hidden weights, transposed to multiply on the right, and its bias."""
    rows = [slice(k * H, (k + 1) * H) for k in range(gates)]
    return [W_ih[r].T for r in rows], [W_hh[r].T for r in rows], [bias[r] for r in rows]


def _zero_state(xs: Node, axis: int, like: Node) -> Node:
    """Zeros of shape (N, H): the batch axis of one step's element (the sequence summed over time, whose
    values are not read, only its shape) broadcast with a hidden-sized value."""
    batch = dsl.sum(xs, axis=axis)[..., 0:1]
    return apply("expand", 0, batch, like)
