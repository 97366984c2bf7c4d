"""Normalisation layers: batch norm and layer norm, each one row whose derivative is the closed form.

Both standardise x over some axes A, x̂ = (x - μ) / σ with μ the mean and σ = sqrt(var + eps) (the
biased variance, as PyTorch), then scale and shift: y = γ ⊙ x̂ + β. The statistics are ordinary values
of the graph, computed before the row (`standardized`): μ by `mean`, var by the `variance` op (which
refuses, at run time, a statistic of one value), σ and x̂ by elementwise formulas. The row reads x, γ,
β, x̂ and σ; its derivative rule gives x the whole closed form of the lecture,

    x̄ = 1/(M σ) (M ĝ - Σ_A ĝ - x̂ ⊙ Σ_A(ĝ ⊙ x̂)),   ĝ = γ ⊙ ȳ,   M = the number of values in A,

and nothing to x̂ and σ: the closed form already holds their dependence on x, so the gradient is a few
readable lines and no chain through the mean and the variance. For batch norm γ is constant over A (A
holds the batch axes, γ one value per channel), so it comes out of the sums: x̄ = γ/(N σ)(N ȳ - Σȳ -
x̂ ⊙ Σ(ȳ ⊙ x̂)). The row's operands keep μ (x̂'s) and var (σ's) reachable for running statistics.

Batch norm's running statistics (PyTorch's BatchNorm1d) are two buffers the row declares (attr `buffers`:
`<name>_running_mean`, zeros, and `<name>_running_var`, ones, one value per channel), with its `momentum`
and `eps`. The graph differentiated is the one above, with the batch's statistics; `inference` gives a
row's x̂ and σ from the buffers instead, x̂ = (x - running_mean) / sqrt(running_var + eps), which the
generated forward() computes outside training; `statistics` finds the batch mean and variance a training
step blends into the buffers.
"""
from __future__ import annotations

import math

import sympy as sp

from ..errors import ShapeError
from ..formulas.derivatives import G, placeholder
from ..formulas.latex import axis_subscript, group, latex_operator
from ..formulas.printing import axis_argument
from ..errors import GraphError
from ..ir.graph import Node, apply, constant
from ..ir.shapes import Shape, format_shape
from .linalg import reduced_count
from .pointwise import fuse
from .shape import sum_to
from .table import Op, like, register


def standardized(x: Node, axes: tuple[int, ...], eps: float, what: str) -> tuple[Node, Node]:
    """(x̂, σ) over `axes`: x̂ = (x - μ) / σ, σ = sqrt(var + eps), μ and var kept over the axes
    (keepdims) so that they broadcast against x. A statistic over one value is refused: x̂ would be 0."""
    sizes = [x.shape[a] for a in axes]
    if all(isinstance(d, int) for d in sizes) and math.prod(sizes) == 1:
        raise ShapeError(f"{what}: the normalised axes {axes} of shape {format_shape(x.shape)} hold one value "
                         "each, so every normalised value would be 0; normalise over axes with 2 or more values")
    mu = apply("mean", x, axis=axes, keepdims=True)
    var = apply("variance", x, mu, axis=axes)
    sigma = apply("sqrt", apply("add", var, constant(float(eps))))
    return apply("div", apply("sub", x, mu), sigma), sigma


def _variance_emit(node: Node, args: tuple) -> str:
    return f"_variance(xp, {args[0]}, {args[1]}, axis={axis_argument(node.attr('axis'))})"


def _variance_vjp(node: Node, g: Node) -> tuple:
    """x̄ = 2 (x - μ) ḡ / M and μ̄ = -Σ_A 2 (x - μ) ḡ / M (0 where μ is the mean): what flows through var
    where a graph uses x̂ or σ itself. The norm rows give them nothing, their closed forms holding it."""
    x, mu = node.inputs
    m, x0, x1 = sp.Symbol("m", positive=True), placeholder(0), placeholder(1)
    binding = {G: g, x0: x, x1: mu, m: reduced_count(x, node.attr("axis"))}
    dx = fuse(2 * (x0 - x1) * G / m, binding, x.shape)
    return dx, sum_to(fuse(-2 * (x0 - x1) * G / m, binding, x.shape), mu.shape)


# mean((x - μ)², over A, keepdims): the biased variance of a normalisation. Its helper refuses a run-time
# statistic of one value (a batch of one example).
register(Op(name="variance", arity=2, shape=like(1), emit=_variance_emit, vjp=_variance_vjp,
            text=lambda node, args: f"mean(({args[0]} - {args[1]}) ** 2, axis={node.attr('axis')}, keepdims=True)",
            latex=lambda node, args: latex_operator("mean", [rf"\left({args[0]} - {args[1]}\right)^{{2}}"],
                                                    axis_subscript(node.attr("axis"), True))))


def _norm_shape(what: str, scale_shape):
    """x, γ, β, x̂, σ: γ and β must have the shape `scale_shape(x, axes)` gives."""
    def rule(shapes: tuple, attrs: dict) -> Shape:
        x, gamma, beta, xhat, _ = shapes
        want = scale_shape(x, attrs["axis"])
        for name, shape in (("gamma", gamma), ("beta", beta)):
            if tuple(shape) != want:
                raise ShapeError(f"{what}: {name} has shape {format_shape(shape)}, but input {format_shape(x)} "
                                 f"needs {format_shape(want)}")
        if xhat != x:
            raise ShapeError(f"{what}: the normalised value {format_shape(xhat)} differs from x {format_shape(x)}")
        return x
    return rule


def _sums(node: Node, g: Node) -> tuple[Node, Node, Node]:
    """(ĝ, Σ_A ĝ, Σ_A(ĝ ⊙ x̂)), ĝ = ȳ for batch norm, γ ⊙ ȳ for layer norm. Batch norm's sums over
    leading axes (from axis 0) broadcast back as they are: they are β̄ and γ̄ themselves, computed once;
    over later axes (a batch axis after others) they keep their axes, as layer norm's."""
    _, gamma, _, xhat, _ = node.inputs
    axes = node.attr("axis")
    outside = _leading(node)
    gy = g if node.op == "batch_norm" else apply("mul", gamma, g)
    total = apply("sum", gy, axis=axes, keepdims=not outside)
    return gy, total, apply("sum", apply("mul", gy, xhat), axis=axes, keepdims=not outside)


def _norm_vjp(node: Node, g: Node) -> tuple:
    """x̄ = 1/(M σ)(M ĝ - Σ ĝ - x̂ ⊙ Σ(ĝ ⊙ x̂)), with γ taken out of the sums for batch norm (constant
    over them): γ/(N σ)(N ȳ - Σȳ - x̂ ⊙ Σ(ȳ ⊙ x̂)); γ̄ and β̄ the sums of ȳ ⊙ x̂ and ȳ over the axes γ
    and β are shared along; x̂ and σ nothing, their dependence on x being in x̄'s closed form."""
    x, gamma, beta, xhat, sigma = node.inputs
    gy, total, weighted = _sums(node, g)
    m, s, t, h, c, gm = sp.symbols("m s t h c gamma", real=True)
    batch = node.op == "batch_norm"
    scale = gm / (m * c) if batch else 1 / (m * c)
    binding = {gm: gamma, m: reduced_count(x, node.attr("axis")), c: sigma, G: gy, s: total, h: xhat, t: weighted}
    dx = fuse(scale * (m * G - s - h * t), binding, x.shape)
    if batch and _leading(node):
        return dx, weighted, total, None, None
    if batch:  # statistics per value of the axes before the batch axis: γ and β are shared along those too
        return dx, sum_to(weighted, gamma.shape), sum_to(total, beta.shape), None, None
    return dx, sum_to(apply("mul", g, xhat), gamma.shape), sum_to(g, beta.shape), None, None


def _leading(node: Node) -> bool:
    """A batch norm whose statistics run over the leading axes (its batch axis is axis 0)."""
    return node.op == "batch_norm" and node.attr("axis")[0] == 0


def _affine_emit(node: Node, args: tuple) -> str:
    return f"{args[1]} * {args[3]} + {args[2]}"


def _affine_latex(node: Node, args: tuple) -> str:
    return rf"{group(args[1])} \odot {group(args[3])} + {group(args[2])}"


def _norm_row(name: str, scale_shape) -> Op:
    return register(Op(name=name, arity=5, shape=_norm_shape(name, scale_shape), emit=_affine_emit,
                       vjp=_norm_vjp,
                       text=lambda node, args: f"{args[1]} * {args[3]} + {args[2]}",
                       latex=_affine_latex))


def batch_norm_axes(shape: Shape, axis: int) -> tuple[int, ...]:
    """Batch norm's statistics are over the batch axis `axis` and every later axis but the last, the
    channels: (N, C) over axis 0, (N, T, C) over axes 0 and 1, one mean and variance per channel."""
    return tuple(range(axis, len(shape) - 1))


# γ ⊙ x̂ + β with statistics over the batch (and time) axes; γ, β one value per channel (the last axis).
_norm_row("batch_norm", lambda x, axes: x[-1:])
# γ ⊙ x̂ + β with statistics over the trailing axes from `axis`; γ, β shaped like those axes.
_norm_row("layer_norm", lambda x, axes: tuple(x[a] for a in axes))


RUNNING = ("running_mean", "running_var")  # the buffers of a batch norm named `name`: name_running_mean, ...


def running_attrs(gamma: Node, name: str | None, momentum: float) -> dict:
    """The attributes that give a batch norm its running statistics: the two buffers, named after
    `name` (default: gamma's own name), one value per channel, and the momentum that blends each batch's
    statistics into them. A momentum outside [0, 1] is refused."""
    if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not 0 <= momentum <= 1:
        raise GraphError(f"batch_norm: momentum must be a number in [0, 1] (the weight of each batch's statistics "
                         f"in the running ones, PyTorch's 0.1 by default), got {momentum!r}")
    if name is None:
        if not gamma.is_leaf or gamma.name is None:
            raise GraphError("batch_norm: its running statistics are named after gamma, which here is a computed "
                             "value with no name of its own; give the layer a name=\"...\"")
        name = gamma.name
    if not isinstance(name, str):
        raise GraphError(f"batch_norm: name must be a string, got {name!r}")
    return {"buffers": tuple((f"{name}_{kind}", tuple(gamma.shape), init) for kind, init in zip(RUNNING, ("zeros", "ones"))),
            "momentum": float(momentum)}


def inference(row: Node, x: Node, buffers: dict[str, Node]) -> tuple[Node, Node]:
    """(x̂, σ) of a batch norm `row` outside training, read off its running statistics (`buffers`: name ->
    buffer leaf), for its input x: σ = sqrt(running_var + eps), x̂ = (x - running_mean) / σ."""
    (mean_name, _, _), (var_name, _, _) = row.attr("buffers")
    sigma = apply("sqrt", apply("add", buffers[var_name], constant(row.attr("eps"))))
    return apply("div", apply("sub", x, buffers[mean_name]), sigma), sigma


def statistics(row: Node, order: list[Node]) -> tuple[Node, Node]:
    """(μ, var) of a batch norm `row`: the batch mean and biased variance it normalised with, found among
    the nodes `order` (the variance of the row's input over its axes, and the mean that variance reads)."""
    x, axes = row.inputs[0], row.attr("axis")
    for node in order:
        if node.op == "variance" and node.inputs[0] is x and node.attr("axis") == axes:
            return node.inputs[1], node
    raise GraphError(f"batch_norm: the batch statistics of {row.attr('buffers')[0][0]} are not computed")
