"""Forward mode step by step: the forward pass with each value's tangent right after it, as the
automatic-differentiation survey tabulates it (t1 = log(x1) = 0.693, dot_t1 = dot_x1/x1 = 0.5, ...).

The loss is differentiated along given input tangents on a copy of the graph as written, whose new
inputs dot_<x> hold the tangents; that copy is compiled as written, run once, and each of its values,
forward and tangent, is shown with its formula and its number, in the order the code computes them.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from ..codegen import GeneratedModule, generate
from ..diff.forward import TANGENT_OF, forward_mode, interleaved
from ..errors import GraphError
from ..formulas.symbols import TANGENT_PREFIX
from ..ir import Graph, toposort
from .derivation import Derivation, ForwardStep
from .notation import Notation


def tangent_derivation(model: GeneratedModule, tangents: Mapping[str, object],
                       at: Mapping[str, object] | None = None) -> Derivation:
    """The loss's forward-mode derivation along `tangents` (input or param name -> its tangent, a number
    or an array of its shape; the others do not move): every forward value followed by its tangent,
    with their numbers when `at` gives the leaves' values. The last line is the loss's directional
    derivative, dot_<loss>."""
    source = model.as_written().graph
    loss = model.loss_or_error()
    graph, moved = source.remapped({}), {}
    for name in tangents:
        if name not in source.leaves:
            raise GraphError(f"--tangent: {name!r} is no input or param of graph {source.name!r}; they are "
                             + ", ".join(source.leaves))
        leaf = source.leaves[name]
        moved[leaf] = graph.input(free_name(graph, TANGENT_PREFIX + name), leaf.shape)
    loss_node = source.outputs[loss]
    found = forward_mode([loss_node], moved)
    if loss_node not in found:
        raise GraphError(f"--tangent: {model.loss} does not depend on {', '.join(tangents)}")
    graph.output(free_name(graph, TANGENT_PREFIX + loss), found[loss_node])
    traced = generate(graph, wrt=[], loss=loss, simplify=False)
    notation = Notation(traced.graph)
    values = _values(traced, {**(at or {}), **{moved[source.leaves[n]].name: v for n, v in tangents.items()}}) \
        if at is not None else {}
    order = interleaved(toposort(list(traced.graph.outputs.values())), TANGENT_OF.get)
    steps = [ForwardStep(notation.name(n), notation.value(n), notation.formula(n), notation.text(n), values.get(n))
             for n in order if not n.is_leaf and n.op != "const" and n in notation]
    return Derivation(loss, [], {notation.name(n): v for n, v in values.items() if n in notation}, steps)


def free_name(graph: Graph, name: str) -> str:
    """`name`, or name_2, ... if the graph has a leaf or an output of that name: a name a view may add."""
    taken, candidate, k = set(graph.leaves) | set(graph.outputs), name, 2
    while candidate in taken:
        candidate, k = f"{name}_{k}", k + 1
    return candidate


def _values(traced: GeneratedModule, at: Mapping[str, object]) -> dict:
    """Every value of one run, numbers of a graph of scalars as floats."""
    missing = [name for name in traced.graph.leaves if name not in at]
    if missing:
        raise GraphError(f"derivation at: missing value(s) for {', '.join(missing)}")
    arrays = {name: np.asarray(value, dtype=np.float64) for name, value in at.items()}
    try:
        with np.errstate(all="ignore"):
            values = traced.values_at(arrays)
    except (TypeError, ValueError) as error:
        raise GraphError(f"derivation at: {error}") from None
    return {n: float(v) if np.ndim(v) == 0 else v for n, v in values.items()}
