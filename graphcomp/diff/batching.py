"""Batching: a computation rebuilt for k values of some of its nodes at once, as more IR (JAX's vmap).

Given output nodes and {node: its k values stacked along one extra leading axis}, every node that depends
on those is rebuilt with that leading axis, through one rule per op: the op table's `batch` column;
ops declared by a formula need none (the operands are lined up so that broadcasting meets the batch axis
with the batch axis). An op with no rule is computed by a loop over the k values (a `scan` node, a `for`
in the generated code), so that every op works, vectorised where rules exist. This is how a whole
Jacobian is built (diff/jacobian.py): one derivative pass, batched over the rows of an identity.
"""
from __future__ import annotations

from typing import Sequence

from ..errors import DifferentiationError
from ..ir import Node, apply, format_shape, toposort
from ..ops import OPS
from ..ops.batching import lifted
from ..ops.scan import make_loop, placeholder, result


def batch(outputs: Sequence[Node], mapping: dict[Node, Node]) -> list[Node | None]:
    """Each output computed for the k values `mapping` gives (node -> (k, *node.shape)): its batched
    value, or None where it does not depend on any node of `mapping`."""
    sizes = {value.shape[0] for value in mapping.values()}
    for node, value in mapping.items():
        if tuple(value.shape[1:]) != tuple(node.shape) or len(sizes) != 1:
            raise DifferentiationError(f"batch: a batch of shape {format_shape(value.shape)} for a value of shape "
                                       f"{format_shape(node.shape)}; every batch needs one leading axis of one size")
    batched: dict[Node, Node] = dict(mapping)
    loops: dict[Node, tuple] = {}  # a loop (a tuple of values) -> its operands' batches, for its results
    for node in toposort(outputs):
        if node in batched or node.is_leaf:
            continue
        operands = tuple(batched.get(x) for x in node.inputs)
        if node.op == "scan":
            if any(b is not None for b in operands):
                loops[node] = operands
            continue
        if node.op == "scan_result" and node.inputs[0] in loops:
            batched[node] = _looped(node, loops[node.inputs[0]])
            continue
        if all(b is None for b in operands):
            continue
        value = _batched(node, operands)
        if value is not None:
            batched[node] = _checked(node, value, operands)
    return [batched.get(y) for y in outputs]


def _batched(node: Node, operands: tuple) -> Node | None:
    """The node's batch by its op's rule: the table's, broadcasting for a formula, else a loop."""
    op = OPS[node.op]
    if op.batch is not None:
        return op.batch(node, operands)
    if op.has_formula:
        lined_up = [x if b is None else lifted(b, node.ndim) for x, b in zip(node.inputs, operands)]
        return apply(node.op, *lined_up, **dict(node.attrs))
    return _looped(node, operands)


def _checked(node: Node, value: Node, operands: tuple) -> Node:
    """A rule's result, held to the contract: the node's shape under the batch axis."""
    k = next(b for b in operands if b is not None).shape[0]
    if tuple(value.shape) != (k,) + tuple(node.shape):
        raise DifferentiationError(f"the batching rule of op {node.op!r} gave shape {format_shape(value.shape)} "
                                   f"for a batch of {k} values of shape {format_shape(node.shape)}")
    return value


def _looped(node: Node, operands: tuple) -> Node:
    """A loop whose step computes `node` (a loop's result: the loop, then the result) from one element of
    each batched operand, the others read as they are; its stacked outputs are the batch."""
    slots = [None if b is None else placeholder(b.shape[1:], f"x{k}") for k, b in enumerate(operands)]
    sequences = tuple(b for b in operands if b is not None)
    elements = tuple(s for s in slots if s is not None)
    if node.op == "scan_result":
        loop = node.inputs[0]
        inner = apply("scan", *(x if s is None else s for x, s in zip(loop.inputs, slots)), **dict(loop.attrs))
        step = apply("scan_result", inner, **dict(node.attrs))
    else:
        step = apply(node.op, *(x if s is None else s for x, s in zip(node.inputs, slots)), **dict(node.attrs))
    outer = make_loop((), sequences, (), elements, (), (step,), reverse=False, axes=(0,) * len(sequences),
                      y_axes=(0,))
    return result(outer, index=0)
