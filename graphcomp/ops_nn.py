"""Ops of convolutional networks and dropout (layout NCHW), registered in the one op table.

Their NumPy code lives in helper functions of the generated module
(templates/helpers.py.j2), vectorised with sliding windows: the only Python
loops run over kernel offsets, never over pixels.
"""
from __future__ import annotations

from .errors import ShapeError
from .graph import Node, apply, format_shape
from .ops import Op, register


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


def _settings(node: Node) -> str:
    return f"stride={node.attr('stride')}, padding={node.attr('padding')}"


register(Op("conv2d", 2, _conv2d_shape,
            lambda node, args: f"_conv2d({args[0]}, {args[1]}, {_settings(node)})",
            _conv2d_vjp,
            lambda node, args: f"conv2d({args[0]}, {args[1]}, {_settings(node)})",
            lambda node, args: f"{args[0]} \\star {args[1]}",
            helpers=("windows", "conv2d")))

# ∂/∂x of conv2d: every output's gradient times the kernel, added back onto its input patch.
register(Op("conv2d_input_grad", 3, lambda shapes, attrs: shapes[2],
            lambda node, args: f"_conv2d_input_grad({args[0]}, {args[1]}, {args[2]}, {_settings(node)})",
            None, lambda node, args: f"conv2d_input_grad({args[0]}, {args[1]})",
            lambda node, args: f"{args[0]} \\star_x {args[1]}",
            helpers=("fold", "conv2d_input_grad")))

# ∂/∂w of conv2d: Σ over examples and positions of the output gradient times the input patch.
register(Op("conv2d_weight_grad", 3, lambda shapes, attrs: shapes[2],
            lambda node, args: f"_conv2d_weight_grad({args[0]}, {args[1]}, {args[2]}, {_settings(node)})",
            None, lambda node, args: f"conv2d_weight_grad({args[0]}, {args[1]})",
            lambda node, args: f"{args[1]} \\star_w {args[0]}",
            helpers=("windows", "conv2d_weight_grad")))


def _pool_shape(shapes: tuple, attrs: dict):
    (x,) = shapes
    if len(x) != 4:
        raise ShapeError(f"max_pool2d: input must be 4-d (N, C, H, W), got {format_shape(x)}")
    size, stride = attrs["size"], attrs["stride"]
    return x[:2] + (_positions(x[2], size, stride, 0, "max_pool2d", x), _positions(x[3], size, stride, 0, "max_pool2d", x))


def _pool_settings(node: Node) -> str:
    return f"size={node.attr('size')}, stride={node.attr('stride')}"


register(Op("max_pool2d", 1, _pool_shape,
            lambda node, args: f"_max_pool2d({args[0]}, {_pool_settings(node)})",
            lambda node, g: (apply("max_pool2d_grad", g, node.inputs[0], node,
                                   size=node.attr("size"), stride=node.attr("stride")),),
            lambda node, args: f"max_pool2d({args[0]}, {_pool_settings(node)})",
            lambda node, args: f"\\operatorname{{maxpool}}\\left({args[0]}\\right)",
            helpers=("windows", "max_pool2d")))

# ∂/∂x of max-pooling: each window's gradient routed to its max (shared equally at ties).
register(Op("max_pool2d_grad", 3, lambda shapes, attrs: shapes[1],
            lambda node, args: f"_max_pool2d_grad({args[0]}, {args[1]}, {args[2]}, {_pool_settings(node)})",
            None, lambda node, args: f"max_pool2d_grad({args[0]})", lambda node, args: args[0],
            helpers=("windows", "fold", "max_pool2d_grad")))

# Inverted dropout's mask: 0 with probability `rate`, 1/(1 - rate) otherwise, in training only
# (the generated code passes its seeded generator `_rng`; outside training it is None and the mask is 1).
register(Op("dropout_mask", 1, lambda shapes, attrs: shapes[0],
            lambda node, args: f"_dropout_mask(_rng, {args[0]}, rate={node.attr('rate')})",
            lambda node, g: (None,), lambda node, args: f"dropout_mask({args[0]}, rate={node.attr('rate')})",
            lambda node, args: f"m_{{{args[0]}}}", helpers=("dropout_mask",)))
