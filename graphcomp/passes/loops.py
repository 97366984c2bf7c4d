"""The passes inside loops: each loop's step (ops/scan.py's `Body`) is rewritten and fused like any
graph, so the code of its `for` block is simplified as the code around it is (tanh(x W + h U) one
line), and its derivative is taken of the simplified step. Loops inside a step are simplified too."""
from __future__ import annotations

import weakref

from ..ir import Graph, Node, apply, inherit, toposort
from ..ops.scan import Body
from .changes import rebuild
from .fusion import fuse_chains
from .rewrites import RULES, rewrite


def simplify_loops(roots: list[Node]) -> dict[Node, Node]:
    """old node -> new node: every loop among `roots`' values remade on its simplified step."""
    if not any(node.op == "scan" for node in toposort(roots)):
        return {}
    return rebuild(roots, lambda old, node: _with_simplified_body(node) if node.op == "scan" else node)


def simplified(body: Body) -> Body:
    """The step with the stable rewrites applied and elementwise chains fused; placeholders stay."""
    outputs = list(body.outputs)
    inner = simplify_loops(outputs)
    outputs = [inner.get(x, x) for x in outputs]
    mapping = rewrite(outputs, RULES)
    outputs = [mapping.get(x, x) for x in outputs]
    step = Graph("step")
    step.outputs = {f"out{k}": x for k, x in enumerate(outputs)}  # the step's values, named for the pass only
    fused = fuse_chains(step, set(body.carries + body.xs + body.captured))
    outputs = [fused.get(x, x) for x in outputs]
    for old, new in [*mapping.items(), *fused.items()]:  # where the user wrote each value of the step
        inherit(new, old)
    c = len(body.carries)
    return Body(carries=body.carries, xs=body.xs, captured=body.captured,
                new_carries=tuple(outputs[:c]), ys=tuple(outputs[c:]))


# Each step is simplified once: a loop remade on new operands, or a graph optimized twice, keeps it.
_DONE: "weakref.WeakKeyDictionary[Body, Body]" = weakref.WeakKeyDictionary()
_SIMPLIFIED: "weakref.WeakSet[Body]" = weakref.WeakSet()


def _with_simplified_body(loop: Node) -> Node:
    body = loop.attr("body")
    if body in _SIMPLIFIED:
        return loop
    if body not in _DONE:
        _DONE[body] = simplified(body)
        _SIMPLIFIED.add(_DONE[body])
    attrs = dict(loop.attrs)
    attrs["body"] = _DONE[body]
    return apply("scan", *loop.inputs, **attrs)
