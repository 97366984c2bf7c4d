"""Forward-mode differentiation over the IR: directional derivatives as more nodes of the same IR.

Given a tangent for some values (ẋ: the direction the inputs move in), the walk goes through the graph
in topological order and gives every value that depends on them its tangent, by the `jvp` column of
the op table: ẏ = Σ_i ∂y/∂xi · ẋi for elementwise ops (one fused formula), the op itself applied to
the tangent for linear ones ((A B)' = Ȧ B + A Ḃ). An op with no forward rule of its own has a reverse
rule, which is linear in its adjoint u: its forward rule is that rule transposed, ẏ = ∂/∂u ⟨vjp(u), ẋ⟩,
taken by reverse mode (softmax, the norms, loops). One sweep gives the tangent of every output, with
each tangent computed right after the forward values it reads: the generated code interleaves them,
line by line, as a hand-written forward-mode program would.
"""
from __future__ import annotations

import heapq
import weakref
from typing import Callable, Sequence

from ..errors import DifferentiationError
from ..ir import Node, apply, as_node, constant, depending_on, format_shape, toposort
from ..ops import OPS
from ..ops.scan import placeholder
from ..ops.table import not_differentiable
from .reverse import pullback

# tangent node -> the value it is the tangent of: how the code and the formulas name it ẋ (dot_x).
TANGENT_OF: "weakref.WeakKeyDictionary[Node, Node]" = weakref.WeakKeyDictionary()


def forward_mode(outputs: Sequence[Node], seeds: dict[Node, Node]) -> dict[Node, Node]:
    """value -> its tangent, for every value of `outputs`' graph that depends on a seeded value
    (`seeds`: value -> its tangent, of its shape). Values that do not depend on them have none."""
    order = toposort(list(outputs))
    depends = depending_on(order, set(seeds))
    tangents: dict[Node, Node] = dict(seeds)
    known = set(order) | set(seeds.values())  # the values made before: a rule's new nodes are the others
    for node in order:
        if node in tangents or node not in depends or node.is_leaf or node.op == "scan":
            continue
        operands = node.inputs[0].inputs if OPS[node.op].selects is not None else node.inputs
        given = tuple(tangents.get(x) for x in operands)
        if all(t is None for t in given):
            continue
        tangent = _tangent(node, given, known)
        if tangent is None:
            continue
        if tuple(tangent.shape) != tuple(node.shape):
            raise DifferentiationError(f"the forward rule of op {node.op!r} gave shape "
                                       f"{format_shape(tangent.shape)} for a value of shape {format_shape(node.shape)}")
        if tangent not in known and not tangent.is_leaf:  # (a tangent that is another's is named after that one)
            TANGENT_OF.setdefault(tangent, node)
            known.add(tangent)
        tangents[node] = tangent
    return tangents


def _tangent(node: Node, tangents: tuple, known: set[Node]) -> Node | None:
    """One value's tangent, by its op's forward rule, or its reverse rule transposed."""
    op = OPS[node.op]
    if op.selects is not None:  # one result of a loop
        return _transposed(node, node.inputs[0].inputs, tangents, known)
    if op.jvp is not None:
        return op.jvp(node, tangents)
    if op.vjp is not_differentiable:
        return None
    if op.vjp is None:
        raise DifferentiationError(f"op {node.op!r} has no derivative rule")
    return _transposed(node, node.inputs, tangents, known)


def _transposed(node: Node, operands: tuple, tangents: tuple, known: set[Node]) -> Node | None:
    """ẏ = J ẋ from the reverse rule u ↦ Jᵀu (the op's own partial derivatives, one per operand, each
    operand taken as independent of the others): the gradient, with respect to u, of ⟨Jᵀu, ẋ⟩. The rule is
    linear in u, so the result does not depend on u's value; where its nodes still read u (for its shape),
    they read the node itself. The names reverse mode gives its results (alias) are left out."""
    u = placeholder(node.shape, "u")
    op = OPS[node.op]
    if op.selects is not None:  # a loop's rule takes the adjoints of its results at once
        loop = node.inputs[0]
        pieces = OPS[loop.op].vjp(loop, {op.selects(node): u})
    else:
        pieces = op.vjp(node, u)
    terms = [apply("sum", piece * tangent, axis=None) for piece, tangent in zip(pieces, tangents)
             if piece is not None and tangent is not None]
    if not terms:
        return None
    inner = terms[0]
    for term in terms[1:]:
        inner = inner + term
    (result,) = pullback([(inner, constant(1))], [u])
    return None if result is None else _cleaned(result, known, {u: node})


def _cleaned(root: Node, known: set[Node], new: dict[Node, Node]) -> Node:
    """`root` rebuilt with the values of `new` in place of its keys, and without alias nodes; only the
    nodes not in `known` (those a rule just made) are visited."""
    order: list[Node] = []
    stack, seen = [(root, False)], set(known)
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
        elif node not in seen and node not in new:
            seen.add(node)
            stack.append((node, True))
            stack.extend((x, False) for x in reversed(node.inputs))
    for node in order:
        inputs = tuple(new.get(x, x) for x in node.inputs)
        if node.op == "alias":
            new[node] = inputs[0]
        elif any(a is not b for a, b in zip(inputs, node.inputs)):
            new[node] = apply(node.op, *inputs, **dict(node.attrs))
    return new.get(root, root)


def jvp(outputs: Node | Sequence[Node], inputs: Sequence[Node], tangents: Sequence) -> Node | list[Node]:
    """The directional derivative of `outputs` when `inputs` move along `tangents`, by forward mode:
    ẏ = J ẋ, as graph values of the outputs' shapes. A tangent is a graph value of its input's shape
    or a number (gc.jvp(f, [x1, x2], [1, 0]) is ∂f/∂x1). One output gives one value, a list a list."""
    single = isinstance(outputs, Node)
    outputs = [outputs] if single else list(outputs)
    inputs, tangents = list(inputs), list(tangents)
    if any(not isinstance(x, Node) for x in outputs + inputs):
        raise DifferentiationError("gc.jvp takes graph values: gc.jvp(outputs, inputs, tangents)")
    if len(inputs) != len(tangents):
        raise DifferentiationError(f"gc.jvp: {len(inputs)} input(s) but {len(tangents)} tangent(s); give one "
                                   "tangent per input")
    seeds: dict[Node, Node] = {}
    for x, tangent in zip(inputs, tangents):
        seeds[x] = _seed(x, tangent)
    found = forward_mode(outputs, seeds)
    result = [found[y] if y in found else apply("zeros_like", y) for y in outputs]
    return result[0] if single else result


def _seed(x: Node, tangent) -> Node:
    """An input's tangent, checked: a graph value of its shape, or a number spread over it."""
    if x.is_integer_input:
        raise DifferentiationError(f"gc.jvp: input {x.name!r} holds integer ids, which have no tangent")
    tangent = as_node(tangent)
    if tangent.op == "const":
        return apply("expand", tangent, x) if x.shape != () else tangent
    if tuple(tangent.shape) != tuple(x.shape):
        raise DifferentiationError(f"gc.jvp: the tangent of {x.name or 'an input'} has shape "
                                   f"{format_shape(tangent.shape)}, the input {format_shape(x.shape)}")
    return tangent


def interleaved(order: list[Node], primal_of: Callable[[Node], Node | None]) -> list[Node]:
    """The same nodes in another topological order: each tangent right after the value it is the tangent
    of (`primal_of`), once what it reads is computed; the other values in their order. Code in this order
    interleaves the tangent lines with the forward lines (t = sin(a); dot_t = cos(a)*dot_a), as a
    forward-mode program is written by hand."""
    primals = {node: primal_of(node) for node in order}
    if all(primal is None for primal in primals.values()):
        return order
    position = {node: k for k, node in enumerate(order)}
    users: dict[Node, list[Node]] = {}
    for node in order:
        for x in set(node.inputs):
            users.setdefault(x, []).append(node)
    key: dict[Node, float] = {}
    tangent_side: set[Node] = set()  # tangents, and the values only tangents read (a rule's parts)
    for node in reversed(order):
        primal = primals[node]
        readers = users.get(node, [])
        key[node] = -1 if node.is_leaf else position[primal] + 0.5 if primal in position else position[node]
        if primal is not None:
            tangent_side.add(node)
        elif not node.is_leaf and readers and all(user in tangent_side for user in readers):
            tangent_side.add(node)
            key[node] = min(key[user] for user in readers)
    waiting = {node: len(set(node.inputs)) for node in order}
    ready = [(key[node], position[node], node) for node in order if not waiting[node]]
    heapq.heapify(ready)
    result = []
    while ready:
        *_, node = heapq.heappop(ready)
        result.append(node)
        for user in users.get(node, ()):
            waiting[user] -= 1
            if not waiting[user]:
                heapq.heappush(ready, (key[user], position[user], user))
    return result
