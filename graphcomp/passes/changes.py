"""What every pass shares: rebuilding a graph bottom-up on new operands, and the log of what changed."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..ir import Node, apply, toposort


@dataclass(frozen=True)
class Change:
    """One thing a pass did, for the report: a rule that fired, or a fused formula."""

    kind: str          # "rewrite" or "fusion"
    before: Node       # the node as it was (a rewrite), or the last node of the fused chain
    after: Node        # what replaced it
    why: str           # the rule's own words, or why the chain was fused
    ops: tuple[str, ...] = ()   # a fusion: the ops it merged


def rebuild(roots: list[Node], transform: Callable[[Node, Node], Node],
            new: dict[Node, Node] | None = None) -> dict[Node, Node]:
    """old node -> new node, rebuilding bottom-up: each node is remade on its operands' new
    versions, and `transform(old, remade)` gives what replaces it. `new` is filled as it goes."""
    new = {} if new is None else new
    for node in toposort(roots):
        if node.is_leaf:
            new[node] = node
            continue
        inputs = tuple(new[x] for x in node.inputs)
        same = all(a is b for a, b in zip(inputs, node.inputs))
        new[node] = transform(node, node if same else apply(node.op, *inputs, **dict(node.attrs)))
    return new
