"""Graph passes run before differentiation: stable rewrites (log σ, log-softmax, cross-entropy of
softmax ...) and the fusion of elementwise chains into one formula each, with a log of what changed.
It may import `ir`, `formulas` and `ops`.
"""
from __future__ import annotations

from typing import Iterable

from ..ir import Graph, Node
from .changes import Change, rebuild
from .fusion import MAX_REGION, fuse_chains
from .loops import simplify_loops
from .rewrites import RULES, Rule, rewrite

__all__ = [
    "Change", "rebuild", "MAX_REGION", "fuse_chains", "RULES", "Rule", "rewrite", "optimize"
]


def optimize(graph: Graph, wrt: Iterable[Node] | None = None, log: list[Change] | None = None,
             origins: dict[Node, Node] | None = None) -> Graph:
    """The graph with stable rewrites applied and elementwise chains fused.

    wrt: the leaves gradients will be taken for (default: all); fusion only weighs the
    derivatives that the backward pass will compute. log: receives a Change for every
    rewrite that fired and every fused formula the result keeps. origins: receives, for each
    value of the result that stands for a value of `graph`, that value (a fused formula stands
    for the last value of its chain), so that both are shown under one name.
    """
    written = graph
    mapping = rewrite(list(graph.outputs.values()) + list(graph.labels), RULES, log)
    graph = graph.remapped(mapping)
    fusions: list[Change] = []
    fused = fuse_chains(graph, set(graph.leaves.values()) if wrt is None else set(wrt), fusions)
    graph = graph.remapped(fused)
    looped = simplify_loops(list(graph.outputs.values()) + list(graph.labels))  # the steps of loops, likewise
    graph = graph.remapped(looped)
    kept = set(graph.nodes())
    if log is not None:
        log.extend(change for change in fusions if change.after in kept)
    if origins is not None:
        for old in written.nodes():  # topological order: a value rewritten into one before it keeps that one's name
            new = fused.get(mapping.get(old, old), mapping.get(old, old))
            new = looped.get(new, new)
            if new in kept and new.op != "const":
                origins.setdefault(new, old)
    return graph
