"""Reverse-mode differentiation over the IR.

A pure function from (loss, wrt leaves) to more nodes of the same IR: the walk
goes through the graph in reversed topological order, keeps one adjoint per
node, and sums the contributions of a node used more than once (the seeds'
"duplicate" module). Only nodes on a path from a wrt leaf to the loss are
visited. Because the result is ordinary IR, the printers, the code generator
and a second differentiation (Hessian-vector products, through every op that
has a rule) all work on it unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import sympy as sp

from ..errors import DifferentiationError
from ..ir import Node, apply, constant, depending_on, format_shape, toposort
from ..ops import OPS, fuse
from ..ops.scan import PULLBACK


@dataclass
class Backward:
    """The adjoint nodes of one loss, and where each backward node comes from."""

    loss: Node
    gradients: dict[Node, Node]                     # wrt leaf -> ∂loss/∂leaf
    adjoints: dict[Node, Node]                      # forward node -> its total adjoint
    made_by: dict[Node, Node] = field(default_factory=dict)       # backward node -> forward node whose rule made it
    flows_into: dict[Node, Node] = field(default_factory=dict)    # contribution -> forward input it is the adjoint (part) of
    fan_out: dict[Node, Node] = field(default_factory=dict)       # sum of paths -> the forward node used several times
    paths: dict[tuple[Node, int], Node] = field(default_factory=dict)  # (node, operand index) -> gradient into it


def reverse_mode(loss: Node, wrt: Sequence[Node]) -> Backward:
    """∂loss/∂leaf for every leaf in `wrt`, as IR nodes."""
    if loss.shape != ():
        raise DifferentiationError(f"gradients need a scalar output, but it has shape {format_shape(loss.shape)}; "
                                   "reduce it first, e.g. with gc.sum or gc.mean")
    order = toposort([loss])
    depends = depending_on(order, set(wrt))
    seed = constant(1)  # ∂loss/∂loss
    parts: dict[Node, list[Node]] = {loss: [seed]} if loss in depends else {}
    result = Backward(loss, {}, {})
    _walk(order, depends, parts, result)
    for leaf in wrt:
        adjoint = result.adjoints.get(leaf)
        result.gradients[leaf] = apply("zeros_like", leaf) if adjoint is None else adjoint
    return result


def pullback(seeds: Sequence[tuple[Node, Node]], wrt: Sequence[Node]) -> list[Node | None]:
    """The vector-Jacobian product of several values at once: given (value, adjoint) pairs, the
    gradient of the sum of ⟨value, adjoint⟩ with respect to each of `wrt`, None where no path leads.
    A loop's derivative is made of its step's (ops/scan.py)."""
    order = toposort([value for value, _ in seeds])
    depends = depending_on(order, set(wrt))
    parts: dict[Node, list[Node]] = {}
    for value, adjoint in seeds:
        if value in depends:
            parts.setdefault(value, []).append(adjoint)
    result = Backward(seeds[0][0] if seeds else constant(0), {}, {})
    _walk(order, depends, parts, result)
    return [result.adjoints.get(x) for x in wrt]


def _walk(order: list[Node], depends: set[Node], parts: dict, result: Backward) -> None:
    """The reverse sweep: from the adjoints in `parts`, every adjoint of `order`, into `result`."""
    forward = set(order)
    for node in reversed(order):
        if node not in parts:
            continue
        if isinstance(parts[node], dict):  # a value that is a tuple (a loop): its results' adjoints
            adjoint = parts.pop(node)
        else:
            adjoint = _total(node, parts.pop(node), result)
            if adjoint is None:  # its paths cancel (t - t): nothing flows back from here
                continue
            result.adjoints[node] = adjoint
            if node.is_leaf:
                continue
            selects = OPS[node.op].selects
            if selects is not None:  # one result of a loop: the loop's rule takes them all at once
                parts.setdefault(node.inputs[0], {})[selects(node)] = adjoint
                continue
        rule = OPS[node.op].vjp
        if rule is None:
            raise DifferentiationError(f"op {node.op!r} has no derivative rule")
        pieces = _checked(node, rule(node, adjoint))
        for index, (x, piece) in enumerate(zip(node.inputs, pieces)):
            if piece is None or x not in depends:
                continue
            if piece in forward:
                piece = apply("alias", piece)  # give ∂loss/∂x its own name, e.g. `d_t1 = w`
            parts.setdefault(x, []).append(piece)
            result.paths[(node, index)] = piece
            result.flows_into.setdefault(piece, x)
            _claim_new_nodes(piece, node, forward, result)


def _checked(node: Node, pieces) -> tuple:
    """A rule's result, held to the contract: one Node (or None) per operand, each of its operand's
    shape. A rule that returned too few pieces would otherwise leave a gradient silently zero."""
    pieces = tuple(pieces) if isinstance(pieces, (tuple, list)) else (pieces,)
    if len(pieces) != len(node.inputs):
        raise DifferentiationError(f"the derivative rule of op {node.op!r} gave {len(pieces)} piece(s) for "
                                   f"{len(node.inputs)} operand(s); it must give one (or None) per operand")
    for index, (x, piece) in enumerate(zip(node.inputs, pieces)):
        if piece is not None and not isinstance(piece, Node):
            raise DifferentiationError(f"the derivative rule of op {node.op!r} gave {type(piece).__name__} for "
                                       f"operand {index}; it must give a graph value or None")
        if piece is not None and tuple(piece.shape) != tuple(x.shape):
            raise DifferentiationError(f"the derivative rule of op {node.op!r} gave shape {format_shape(piece.shape)} "
                                       f"for operand {index}, of shape {format_shape(x.shape)}")
    return pieces


# Paths summed by one fan-out node at most: a value used by thousands of others gets its gradient
# added up in groups of this size, group sums then summed the same way. Each line of the generated
# code stays short (a sum of 10,000 terms in one expression is deeper than Python compiles), and
# the work per sum stays bounded, so the backward pass stays linear in the number of uses.
FAN_IN = 12


def _total(node: Node, parts: list[Node], result: Backward) -> Node | None:
    """One path: its contribution. Several (fan-out): their sum (None if it is 0), in groups of at
    most FAN_IN."""
    while len(parts) > FAN_IN:
        groups = (_sum(node, parts[k:k + FAN_IN], result) for k in range(0, len(parts), FAN_IN))
        parts = [total for total in groups if total is not None]
    if len(parts) <= 1:
        return parts[0] if parts else None
    return _sum(node, parts, result)


def _sum(node: Node, parts: list[Node], result: Backward) -> Node | None:
    """The sum of some of the paths into `node`, as one node (None if they cancel)."""
    if len(parts) == 1:
        return parts[0]
    symbols = [sp.Symbol(f"p{k}") for k in range(len(parts))]
    total = fuse(sp.Add(*symbols), dict(zip(symbols, parts)), node.shape)
    if total is not None:
        result.fan_out[total] = node
    return total


def _claim_new_nodes(piece: Node, owner: Node, forward: set[Node], result: Backward) -> None:
    """Record which forward node's rule made each new backward node (for comments and reports)."""
    stack = [piece]
    while stack:
        node = stack.pop()
        if node in forward or node in result.made_by or node.op == "const":
            continue
        result.made_by[node] = owner
        stack.extend(node.inputs)


def grad(loss: Node, wrt: Sequence[Node]) -> list[Node]:
    """The gradient of a scalar `loss` with respect to each of `wrt`, as graph values.

    They can be used like any other value: output, combined, differentiated again
    (gc.sum(gc.grad(loss, [W])[0] * v) differentiated for W is a Hessian-vector product).
    """
    if not isinstance(loss, Node) or any(not isinstance(x, Node) for x in wrt):
        raise DifferentiationError("gc.grad takes a graph value and a list of graph values")
    ids = [x.name for x in wrt if x.is_integer_input]
    if ids:
        raise DifferentiationError(f"gc.grad: input {ids[0]!r} holds integer ids, which have no gradient; "
                                   "differentiate with respect to what they pick (the table)")
    backward = reverse_mode(loss, list(wrt))
    return [backward.gradients[x] for x in wrt]


PULLBACK.append(pullback)  # the op table's loop rule differentiates its step with this reverse mode
