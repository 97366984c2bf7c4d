"""Ops of neural networks — CNN layers (NCHW), dropout, the softmax family — in the one op table.

Their NumPy code lives in helper functions of the generated module
(templates/runtime/helpers.py), vectorised with sliding windows: the only Python
loops run over kernel offsets, never over pixels.
"""
from __future__ import annotations

import sympy as sp

from ..errors import ShapeError
from ..formulas.latex import axis_subscript, group, latex_operator
from ..formulas.derivatives import G, Y, placeholder
from ..ir import Node, apply, format_shape
from .batching import over_axes
from .pointwise import fuse
from .shape import reshape
from .table import Op, axes_canonical, like, linear_in, not_differentiable, register


def _positions(size, kernel: int, stride: int, padding: int, what: str, shape) -> int | None:
    if size is None:
        return None
    if size + 2 * padding < kernel:
        raise ShapeError(f"{what}: a {kernel}x{kernel} window does not fit input {format_shape(shape)} "
                         f"with padding {padding}")
    return (size + 2 * padding - kernel) // stride + 1


def _conv2d_shape(shapes: tuple, attrs: dict):
    x, w = shapes
    if len(x) != 4 or len(w) != 4:
        raise ShapeError(f"conv2d: input (N, C, H, W) and weight (out, in, kh, kw) must be 4-d, "
                         f"got {format_shape(x)} and {format_shape(w)}")
    if x[1] != w[1]:
        raise ShapeError(f"conv2d: input {format_shape(x)} has {x[1]} channels but weight {format_shape(w)} expects {w[1]}")
    stride, padding = attrs["stride"], attrs["padding"]
    return (x[0], w[0], _positions(x[2], w[2], stride, padding, "conv2d", x),
            _positions(x[3], w[3], stride, padding, "conv2d", x))


def _conv2d_vjp(node: Node, g: Node) -> tuple:
    x, w = node.inputs
    settings = dict(stride=node.attr("stride"), padding=node.attr("padding"))
    return (apply("conv2d_input_grad", g, w, x, **settings),
            apply("conv2d_weight_grad", g, x, w, **settings))


def _settings_latex(node: Node) -> str:
    """Stride and padding where they differ from 1 and 0."""
    parts = [f"s={node.attr('stride')}"] * (node.attr("stride") != 1) + [f"p={node.attr('padding')}"] * (node.attr("padding") != 0)
    return ",".join(parts)


def _pool_latex(node: Node) -> str:
    return f"{node.attr('size')}" if node.attr("size") == node.attr("stride") else f"{node.attr('size')},s={node.attr('stride')}"


def _settings(node: Node) -> str:
    return f"stride={node.attr('stride')}, padding={node.attr('padding')}"


register(Op(name="conv2d", arity=2, shape=_conv2d_shape,
            emit=lambda node, args: f"_conv2d(xp, {args[0]}, {args[1]}, {_settings(node)})",
            vjp=_conv2d_vjp,
            jvp=linear_in(0, 1), text=lambda node, args: f"conv2d({args[0]}, {args[1]}, {_settings(node)})",
            latex=lambda node, args: latex_operator("conv", args, _settings_latex(node))))

# ∂/∂x of conv2d: every output's gradient times the kernel, added back onto its input patch.
def _conv2d_input_grad_vjp(node: Node, h: Node) -> tuple:
    """conv2d_input_grad(g, w) is linear in g and in w: its adjoints are a convolution and a weight gradient."""
    g, w, x = node.inputs
    settings = dict(stride=node.attr("stride"), padding=node.attr("padding"))
    return apply("conv2d", h, w, **settings), apply("conv2d_weight_grad", g, h, w, **settings), None


def _conv2d_weight_grad_vjp(node: Node, h: Node) -> tuple:
    """conv2d_weight_grad(g, x) is linear in g and in x: the kernel h convolves x, and flows back into it."""
    g, x, w = node.inputs
    settings = dict(stride=node.attr("stride"), padding=node.attr("padding"))
    return apply("conv2d", x, h, **settings), apply("conv2d_input_grad", g, h, x, **settings), None


register(Op(name="conv2d_input_grad", arity=3, shape=like(2),
            emit=lambda node, args: f"_conv2d_input_grad(xp, {args[0]}, {args[1]}, {args[2]}, {_settings(node)})",
            vjp=_conv2d_input_grad_vjp, jvp=linear_in(0, 1), text=lambda node, args: f"conv2d_input_grad({args[0]}, {args[1]})",
            latex=lambda node, args: latex_operator("conv", args, _settings_latex(node), r"\partial x")))

# ∂/∂w of conv2d: Σ over examples and positions of the output gradient times the input patch.
register(Op(name="conv2d_weight_grad", arity=3, shape=like(2),
            emit=lambda node, args: f"_conv2d_weight_grad(xp, {args[0]}, {args[1]}, {args[2]}, {_settings(node)})",
            vjp=_conv2d_weight_grad_vjp, jvp=linear_in(0, 1), text=lambda node, args: f"conv2d_weight_grad({args[0]}, {args[1]})",
            latex=lambda node, args: latex_operator("conv", args, _settings_latex(node), r"\partial w")))


def _pool_shape(shapes: tuple, attrs: dict):
    (x,) = shapes
    if len(x) != 4:
        raise ShapeError(f"max_pool2d: input must be 4-d (N, C, H, W), got {format_shape(x)}")
    size, stride = attrs["size"], attrs["stride"]
    return x[:2] + (_positions(x[2], size, stride, 0, "max_pool2d", x), _positions(x[3], size, stride, 0, "max_pool2d", x))


def _pool_settings(node: Node) -> str:
    return f"size={node.attr('size')}, stride={node.attr('stride')}"


register(Op(name="max_pool2d", arity=1, shape=_pool_shape,
            emit=lambda node, args: f"_max_pool2d(xp, {args[0]}, {_pool_settings(node)})",
            vjp=lambda node, g: (apply("max_pool2d_grad", g, node.inputs[0], node,
                                       size=node.attr("size"), stride=node.attr("stride")),),
            text=lambda node, args: f"max_pool2d({args[0]}, {_pool_settings(node)})",
            latex=lambda node, args: latex_operator("maxpool", args, _pool_latex(node))))

def _pool_derivative(name: str, shape_of: int, superscript: str, vjp) -> Op:
    """One of max-pooling's two linear derivative maps, on (values, x, pooled); each is the other's
    adjoint, so each one's derivative rule applies the other."""
    return register(Op(name=name, arity=3, shape=like(shape_of),
                       emit=lambda node, args: f"_{name}(xp, {args[0]}, {args[1]}, {args[2]}, {_pool_settings(node)})",
                       vjp=vjp, text=lambda node, args: f"{name}({args[0]})",
                       latex=lambda node, args: latex_operator("maxpool", args, _pool_latex(node), superscript)))


# ∂/∂x of max-pooling: each window's gradient routed to its max (shared equally at ties).
_pool_derivative("max_pool2d_grad", 1, r"\partial",
                 lambda node, h: (apply("max_pool2d_select", h, *node.inputs[1:], size=node.attr("size"),
                                        stride=node.attr("stride")), None, None))
# Each window of its values read at the window's maximal positions (averaged over ties): what a second
# derivative through max-pooling reads.
_pool_derivative("max_pool2d_select", 2, r"\mathrm{sel}",
                 lambda node, g: (apply("max_pool2d_grad", g, *node.inputs[1:], size=node.attr("size"),
                                        stride=node.attr("stride")), None, None))

# Inverted dropout's mask: 0 with probability `rate`, 1/(1 - rate) otherwise, in training only
# (the generated code passes its seeded generator `_rng`; outside training it is None and the mask is 1).
register(Op(name="dropout_mask", arity=1, shape=like(0),
            emit=lambda node, args: f"_dropout_mask(xp, _rng, {args[0]}, rate={node.attr('rate')})",
            vjp=not_differentiable, text=lambda node, args: f"dropout_mask({args[0]}, rate={node.attr('rate')})",
            latex=lambda node, args: latex_operator("dropout", args, str(node.attr("rate")))))


# ---------------------------------------------------------------- softmax family
# Primitive ops with closed-form rules, so that the backward pass is one line each and reuses
# the forward value; every one goes through _logsumexp, which takes the max out before exp.

def _one_axis_shape(keep: bool):
    def rule(shapes: tuple, attrs: dict):
        (x,) = shapes[:1]
        axis = attrs["axis"]
        if keep:
            return x
        if attrs.get("keepdims"):
            return x[:axis] + (1,) + x[axis + 1:]
        return x[:axis] + x[axis + 1:]
    return rule


def _axis_of(node: Node) -> int:
    return node.attr("axis")


def kept(value: Node, axis: int) -> Node:
    """`value` with a size-1 axis put back at `axis` (as keepdims=True would have left it); a scalar
    broadcasts as it is."""
    if value.shape == ():
        return value
    return reshape(value, value.shape[:axis] + (1,) + value.shape[axis:])


def _logsumexp_vjp(node: Node, g: Node) -> tuple:
    axis, x = _axis_of(node), node.inputs[0]
    g_k, y_k = (g, node) if node.attr("keepdims") else (kept(g, axis), kept(node, axis))
    return (fuse(G * sp.exp(placeholder(0) - Y), {G: g_k, placeholder(0): x, Y: y_k}, x.shape),)


def _log_softmax_vjp(node: Node, g: Node) -> tuple:
    total = apply("sum", g, axis=_axis_of(node), keepdims=True)
    s = sp.Symbol("s")
    return (fuse(G - sp.exp(Y) * s, {G: g, Y: node, s: total}, node.shape),)


def _softmax_vjp(node: Node, g: Node) -> tuple:
    total = apply("sum", apply("mul", g, node), axis=_axis_of(node), keepdims=True)
    s = sp.Symbol("s")
    return (fuse(Y * (G - s), {G: g, Y: node, s: total}, node.shape),)


def _lse_text(node: Node, x: str, keepdims: bool) -> str:
    return f"_logsumexp(xp, {x}, axis={_axis_of(node)}{', keepdims=True' if keepdims else ''})"


register(Op(name="logsumexp", arity=1, canonical=axes_canonical("logsumexp", keepdims=True, one=True),
            shape=_one_axis_shape(False),
            emit=lambda node, args: _lse_text(node, args[0], bool(node.attr("keepdims"))),
            vjp=_logsumexp_vjp, batch=over_axes,
            text=lambda node, args: f"logsumexp({args[0]}, axis={node.attr('axis')})",
            latex=lambda node, args: latex_operator("logsumexp", args, axis_subscript(_axis_of(node), bool(node.attr("keepdims"))))))
register(Op(name="log_softmax", arity=1, canonical=axes_canonical("log_softmax", one=True),
            shape=_one_axis_shape(True),
            emit=lambda node, args: f"{args[0]} - {_lse_text(node, args[0], True)}",
            vjp=_log_softmax_vjp, batch=over_axes,
            text=lambda node, args: f"log_softmax({args[0]}, axis={node.attr('axis')})",
            latex=lambda node, args: r"\log " + latex_operator("softmax", args, axis_subscript(_axis_of(node)))))
register(Op(name="softmax", arity=1, canonical=axes_canonical("softmax", one=True),
            shape=_one_axis_shape(True),
            emit=lambda node, args: f"xp.exp({args[0]} - {_lse_text(node, args[0], True)})",
            vjp=_softmax_vjp, batch=over_axes,
            text=lambda node, args: f"softmax({args[0]}, axis={node.attr('axis')})",
            latex=lambda node, args: latex_operator("softmax", args, axis_subscript(_axis_of(node)))))


def _xent_shape(shapes: tuple, attrs: dict):
    logits, targets, lse = shapes
    if logits != targets:
        raise ShapeError(f"softmax_cross_entropy: logits {format_shape(logits)} and targets "
                         f"{format_shape(targets)} differ in shape")
    return _one_axis_shape(False)(shapes[:1], attrs)


def _xent_emit(node: Node, args: tuple) -> str:
    z, y, lse = args
    axis = _axis_of(node)
    lse = f"xp.squeeze({lse}, axis={axis})"
    if node.attr("normalized"):
        return f"{lse} - xp.sum({y} * {z}, axis={axis})"
    return f"xp.sum({y}, axis={axis}) * {lse} - xp.sum({y} * {z}, axis={axis})"


def _xent_vjp(node: Node, g: Node) -> tuple:
    """∂/∂z = g (softmax(z) Σy - y), which is g (p - y) for one-hot or probability targets; softmax and
    log-softmax are exp(z - L) and z - L with the L = logsumexp(z) the loss computed."""
    z, y, lse = node.inputs
    axis = _axis_of(node)
    g_k, s, x0, x1 = kept(g, axis), sp.Symbol("s"), placeholder(0), placeholder(1)
    p = fuse(sp.exp(x0 - x1), {x0: z, x1: lse}, z.shape)
    binding = {G: g_k, x0: p, x1: y}
    if node.attr("normalized"):
        dz = fuse(G * (x0 - x1), binding, z.shape)
    else:
        total = apply("sum", y, axis=axis, keepdims=True)
        dz = fuse(G * (x0 * s - x1), {**binding, s: total}, z.shape)
    dy = fuse(-G * (x0 - x1), {G: g_k, x0: z, x1: lse}, y.shape)
    return dz, dy, None


def cross_entropy(z: Node, y: Node, axis: int, normalized: bool) -> Node:
    """-Σ y log softmax(z) along `axis`, as one op over z, y and the logsumexp of z (kept for the
    gradient's softmax, so that it is computed once)."""
    lse = apply("logsumexp", z, axis=axis, keepdims=True)
    return apply("softmax_cross_entropy", z, y, lse, axis=axis, normalized=normalized)


# -Σ y log softmax(z) along `axis`, per example, fused so that its gradient is one line: g (p - y).
register(Op(name="softmax_cross_entropy", arity=3, canonical=axes_canonical("softmax_cross_entropy", one=True),
            shape=_xent_shape, emit=_xent_emit, vjp=_xent_vjp, batch=over_axes,
            text=lambda node, args: f"softmax_cross_entropy({args[0]}, {args[1]})",
            latex=lambda node, args: "-" + latex_operator("sum", [rf"{group(args[1])} \odot \log "
                                                     + latex_operator("softmax", args[:1], axis_subscript(_axis_of(node)))],
                                                     axis_subscript(_axis_of(node)))))


def softmax_of(node: Node) -> tuple[Node, int] | None:
    """(z, axis) where node computes softmax(z) as e^(z - L) from the L = logsumexp(z) of a softmax
    cross-entropy (its gradient's probabilities, P = softmax(z)); None otherwise."""
    if node.op != "formula" or len(node.inputs) != 2:
        return None
    z, total = node.inputs
    if (total.op == "logsumexp" and total.inputs[0] is z and total.attr("keepdims")
            and node.attr("expr") == sp.exp(placeholder(0) - placeholder(1))):
        return z, total.attr("axis")
    return None
